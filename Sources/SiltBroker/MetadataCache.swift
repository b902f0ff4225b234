import Foundation
import Logging
import NIOCore
import SiltController
import SiltMetadata
import SiltNet
import SiltProtocol
import SiltRaft

/// How a broker reaches its controller: over the CONTROLLER listener (`KafkaClient`), or,
/// in tests and single-process tools, a controller service in the same process.
public protocol ControllerChannel: AnyObject, Sendable {
    func send<R: KafkaRequest>(_ request: R, version: Int16, timeout: TimeAmount) -> EventLoopFuture<R.Response>
}

extension KafkaClient: ControllerChannel {}
extension ControllerQuorumClient: ControllerChannel {}

/// A controller service called in-process, through the same frames as the network path.
public final class LocalControllerChannel: ControllerChannel, @unchecked Sendable {
    let service: ControllerService
    let eventLoop: EventLoop
    let logger: Logger

    public init(service: ControllerService, eventLoop: EventLoop, logger: Logger) {
        self.service = service
        self.eventLoop = eventLoop
        self.logger = logger
    }

    public func send<R: KafkaRequest>(_ request: R, version: Int16, timeout: TimeAmount) -> EventLoopFuture<R.Response> {
        var frame = frameRequest(request, version: version, correlationId: 1, clientId: "local")
        frame.moveReaderIndex(forwardBy: 4)
        do {
            let context = RequestContext(eventLoop: eventLoop, listenerName: "CONTROLLER", logger: logger)
            return try service.handle(frame: frame, context: context).flatMapThrowing { out in
                guard var out else { throw RequestViolation("controller sent no response") }
                out.moveReaderIndex(forwardBy: 4)
                _ = try ResponseHeader(from: &out, version: responseHeaderVersion(apiKey: R.apiKey, apiVersion: version))
                return try R.Response(from: &out, version: version)
            }
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }
}

/// The broker's copy of the metadata log, followed from the controller with Fetch on
/// `__cluster_metadata` (as KRaft brokers follow it as observers).
///
/// Every change of the image is reported to `onChange` in log order, so the broker opens
/// and deletes partition logs exactly as the log says.
public final class MetadataCache: @unchecked Sendable {
    static let fetchVersion: Int16 = 12
    static let longPollMs: Int32 = 1000

    private let channel: ControllerChannel
    /// Where catch-up fetches go (no wait): not behind a parked long poll on `channel`, since
    /// a connection answers in order. `channel` when not given.
    private let catchUpChannel: ControllerChannel
    /// This node's cluster id, sent with every fetch: the controllers of another cluster refuse it.
    private let clusterId: String?
    private let logger: Logger
    private let lock = NSLock()
    private var _image = MetadataImage()
    /// Serializes apply + onChange so that changes are reported in log order.
    private let applyLock = NSLock()
    var onChange: ((_ old: MetadataImage, _ new: MetadataImage) -> Void)?
    private var following = false
    private var stopped = false

    /// The controllers belong to another cluster (INCONSISTENT_CLUSTER_ID): waiting will not help.
    public struct ClusterMismatch: Error, CustomStringConvertible {
        public var description: String
    }

    public init(channel: ControllerChannel, catchUpChannel: ControllerChannel? = nil, clusterId: String? = nil, logger: Logger) {
        self.clusterId = clusterId
        self.channel = channel
        self.catchUpChannel = catchUpChannel ?? channel
        self.logger = logger
    }

    public var image: MetadataImage { lock.withLock { _image } }

    /// Fetches until this copy has everything the controller had when the call began.
    public func catchUp(on loop: EventLoop) -> EventLoopFuture<Void> {
        fetchOnce(maxWaitMs: 0, on: loop).flatMap { gotRecords in
            gotRecords ? self.catchUp(on: loop) : loop.makeSucceededVoidFuture()
        }
    }

    /// Follows the log in the background with long polls until `stop()`; reconnects with a pause on errors.
    public func startFollowing(on loop: EventLoop) {
        let start: Bool = lock.withLock {
            if following { return false }
            following = true
            return true
        }
        guard start else { return }
        followLoop(on: loop)
    }

    public func stop() { lock.withLock { stopped = true } }

    private func followLoop(on loop: EventLoop) {
        if lock.withLock({ stopped }) { return }
        fetchOnce(maxWaitMs: MetadataCache.longPollMs, on: loop).whenComplete { result in
            if case .failure(let error) = result {
                self.logger.debug("metadata follow: \(error); retrying")
                loop.scheduleTask(in: .milliseconds(200)) { self.followLoop(on: loop) }
            } else {
                self.followLoop(on: loop)
            }
        }
    }

    /// One fetch; true when it returned records.
    /// One fetch (and a snapshot load when the controller points to one); true when it made progress.
    private func fetchOnce(maxWaitMs: Int32, on loop: EventLoop) -> EventLoopFuture<Bool> {
        var req = FetchRequest()
        req.replicaId = -1
        req.clusterId = clusterId
        req.maxWaitMs = maxWaitMs
        req.minBytes = 1
        req.maxBytes = 8 << 20
        var t = FetchRequest.FetchTopic()
        t.topic = ControllerService.metadataTopic
        var p = FetchRequest.FetchPartition()
        p.partition = 0
        p.fetchOffset = image.nextOffset
        p.partitionMaxBytes = 8 << 20
        t.partitions = [p]
        req.topics = [t]
        let link = maxWaitMs == 0 ? catchUpChannel : channel
        return link.send(req, version: MetadataCache.fetchVersion, timeout: .milliseconds(Int64(maxWaitMs) + 10_000))
            .hop(to: loop)
            .flatMapThrowing { resp -> FetchOutcome in
                if resp.errorCode == KafkaErrorCode.inconsistentClusterId {
                    let theirs = String(decoding: resp.unknownTaggedFields[KRaftWire.votersTag] ?? [], as: UTF8.self)
                    throw ClusterMismatch(description: "the cluster id differs: this node has '\(self.clusterId ?? "")' "
                        + "(meta.properties, or the s3url's cluster-id), the controllers have '\(theirs)'")
                }
                guard let part = resp.responses.first?.partitions.first else {
                    throw RequestViolation("metadata fetch: empty answer (error \(resp.errorCode))")
                }
                if part.errorCode != 0 {
                    throw RequestViolation("metadata fetch: \(KafkaErrorCode.name(part.errorCode))")
                }
                if part.snapshotId.endOffset >= 0 {
                    return .snapshot(SnapshotId(endOffset: part.snapshotId.endOffset, epoch: part.snapshotId.epoch))
                }
                guard let records = part.records, records.readableBytes > 0 else { return .none }
                try self.apply(KRaftWire.decodeBatches(records))
                return .records
            }
            .flatMap { outcome in
                switch outcome {
                case .none: return loop.makeSucceededFuture(false)
                case .records: return loop.makeSucceededFuture(true)
                case .snapshot(let id):
                    return self.loadSnapshot(id, on: loop).map { true }
                }
            }
    }

    private enum FetchOutcome { case none, records, snapshot(SnapshotId) }

    /// Fetches the controller's snapshot ending at `endOffset` (FetchSnapshot, in chunks)
    /// and replaces this copy with it.
    private func loadSnapshot(_ id: SnapshotId, on loop: EventLoop, position: Int64 = 0,
                              bytes: [UInt8] = []) -> EventLoopFuture<Void> {
        let endOffset = id.endOffset
        var req = FetchSnapshotRequest()
        req.maxBytes = 4 << 20
        var t = FetchSnapshotRequest.TopicSnapshot()
        t.name = ControllerService.metadataTopic
        var p = FetchSnapshotRequest.PartitionSnapshot()
        p.partition = 0
        p.snapshotId.endOffset = endOffset
        p.snapshotId.epoch = id.epoch
        p.position = position
        t.partitions = [p]
        req.topics = [t]
        return channel.send(req, version: 0, timeout: .seconds(30)).hop(to: loop).flatMap { resp in
            guard let part = resp.topics.first?.partitions.first, part.errorCode == 0, resp.errorCode == 0,
                  let chunk = part.unalignedRecords else {
                return loop.makeFailedFuture(RequestViolation("metadata snapshot fetch failed: \(resp)"))
            }
            let all = bytes + Array(chunk.readableBytesView)
            if Int64(all.count) < part.size {
                return self.loadSnapshot(id, on: loop, position: Int64(all.count), bytes: all)
            }
            do {
                let records = try MetadataSnapshot.decode(all)
                self.applySnapshot(MetadataImage(snapshot: records, endOffset: endOffset))
                self.logger.info("metadata snapshot loaded", metadata: ["endOffset": "\(endOffset)"])
                return loop.makeSucceededVoidFuture()
            } catch {
                return loop.makeFailedFuture(error)
            }
        }
    }

    private func applySnapshot(_ new: MetadataImage) {
        applyLock.withLock {
            let old = image
            guard new.nextOffset > old.nextOffset else { return }
            lock.withLock { _image = new }
            onChange?(old, new)
        }
    }

    /// Applies fetched batches of the committed log in order (the controller sends brokers
    /// committed batches only); batches this copy already has are skipped, and control
    /// batches (a new leader's first) only move the offset.
    func apply(_ batches: [RaftBatch]) throws {
        try applyLock.withLock {
            let old = image
            var new = old
            for batch in batches {
                if batch.endOffset <= new.nextOffset { continue }
                guard batch.baseOffset == new.nextOffset else {
                    throw RequestViolation("metadata fetch: gap at offset \(new.nextOffset), got a batch at \(batch.baseOffset)")
                }
                if batch.isControl {
                    new.skip(to: batch.endOffset)
                    continue
                }
                for (i, payload) in batch.records.enumerated() {
                    do {
                        new.apply(try MetadataRecordSerde.decode(payload))
                    } catch {
                        throw RequestViolation("metadata record at offset \(batch.baseOffset + Int64(i)) cannot be decoded: \(error)")
                    }
                }
            }
            guard new.nextOffset != old.nextOffset else { return }
            lock.withLock { _image = new }
            onChange?(old, new)
        }
    }
}
