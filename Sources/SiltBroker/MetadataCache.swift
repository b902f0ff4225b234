import Foundation
import Logging
import NIOCore
import SiltController
import SiltNet
import SiltProtocol

/// How a broker reaches its controller: over the CONTROLLER listener (`KafkaClient`), or,
/// in tests and single-process tools, a controller service in the same process.
public protocol ControllerChannel: AnyObject, Sendable {
    func send<R: KafkaRequest>(_ request: R, version: Int16, timeout: TimeAmount) -> EventLoopFuture<R.Response>
}

extension KafkaClient: ControllerChannel {}

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
    private let logger: Logger
    private let lock = NSLock()
    private var _image = MetadataImage()
    /// Serializes apply + onChange so that changes are reported in log order.
    private let applyLock = NSLock()
    var onChange: ((_ old: MetadataImage, _ new: MetadataImage) -> Void)?
    private var following = false
    private var stopped = false

    public init(channel: ControllerChannel, logger: Logger) {
        self.channel = channel
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
    private func fetchOnce(maxWaitMs: Int32, on loop: EventLoop) -> EventLoopFuture<Bool> {
        var req = FetchRequest()
        req.replicaId = -1
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
        return channel.send(req, version: MetadataCache.fetchVersion, timeout: .milliseconds(Int64(maxWaitMs) + 10_000))
            .hop(to: loop)
            .flatMapThrowing { resp in
                guard let part = resp.responses.first?.partitions.first else {
                    throw RequestViolation("metadata fetch: empty answer (error \(resp.errorCode))")
                }
                if part.errorCode != 0 { throw RequestViolation("metadata fetch: error \(part.errorCode)") }
                guard let records = part.records, records.readableBytes > 0 else { return false }
                try self.apply(MetadataRecordCodec.decode(records))
                return true
            }
    }

    /// Applies fetched records in order; records this copy already has are skipped.
    func apply(_ records: [(offset: Int64, record: MetadataRecord)]) throws {
        try applyLock.withLock {
            let old = image
            var new = old
            for (offset, record) in records {
                if offset < new.nextOffset { continue }
                guard offset == new.nextOffset else {
                    throw RequestViolation("metadata fetch: gap at offset \(new.nextOffset), got \(offset)")
                }
                new.apply(record)
            }
            guard new.nextOffset != old.nextOffset else { return }
            lock.withLock { _image = new }
            onChange?(old, new)
        }
    }
}
