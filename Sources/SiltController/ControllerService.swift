import Foundation
import Logging
import NIOCore
import SiltMetadata
import SiltNet
import SiltNode
import SiltProtocol
import SiltRecords

/// The controller's Kafka-framed API on the CONTROLLER listener.
///
/// Brokers forward topic changes here (CreateTopics, DeleteTopics, CreatePartitions, as
/// KRaft forwards them) and follow the metadata log with Fetch on `__cluster_metadata`
/// partition 0, whose records are the controller's `MetadataRecord`s (`MetadataRecordCodec`).
/// This is the surface the Raft issue replicates; today there is a single voter.
public final class ControllerService: KafkaRequestHandler, @unchecked Sendable {
    public static let metadataTopic = "__cluster_metadata"
    /// Records per metadata fetch answer.
    static let fetchRecordsMax = 2000

    public static let supportedApis: [Int16: ClosedRange<Int16>] = [
        ApiVersionsRequest.apiKey: 0...4,
        FetchRequest.apiKey: 12...17,
        FetchSnapshotRequest.apiKey: 0...1,
        CreateTopicsRequest.apiKey: 5...7,
        DeleteTopicsRequest.apiKey: 4...6,
        CreatePartitionsRequest.apiKey: 2...3,
        AlterConfigsRequest.apiKey: 0...2,
        IncrementalAlterConfigsRequest.apiKey: 0...1,
        // Silt's internal APIs (specs/silt/): the object lifecycle.
        OpenUploaderRequest.apiKey: 0...0,
        PrepareS3ObjectRequest.apiKey: 0...0,
        CommitS3ObjectsRequest.apiKey: 0...0,
        TrimStreamsRequest.apiKey: 0...0,
        AllocateProducerIdsRequest.apiKey: 0...0,
        DescribeQuorumRequest.apiKey: 0...2,
    ]

    public let controller: MetadataController
    let config: ServerConfig
    let logger: Logger
    /// Brokers following the metadata log (DescribeQuorum's observers), by broker id.
    let observerLock = NSLock()
    var observerStates: [Int32: ObserverState] = [:]

    public init(controller: MetadataController, config: ServerConfig, logger: Logger) {
        self.controller = controller
        self.config = config
        self.logger = logger
    }

    public func handle(frame: ByteBuffer, context: RequestContext) throws -> EventLoopFuture<ByteBuffer?> {
        let (apiKey, apiVersion, _) = try peekRequestKey(frame)
        guard let range = ControllerService.supportedApis[apiKey], range.contains(apiVersion) else {
            throw RequestViolation("controller does not serve api key \(apiKey) v\(apiVersion)")
        }
        let loop = context.eventLoop
        switch apiKey {
        case ApiVersionsRequest.apiKey:
            return try serveRequest(ApiVersionsRequest.self, frame: frame, eventLoop: loop) { _, _ in
                var resp = ApiVersionsResponse()
                resp.apiKeys = ControllerService.supportedApis.keys.sorted().map { key in
                    var v = ApiVersionsResponse.ApiVersion()
                    v.apiKey = key
                    v.minVersion = ControllerService.supportedApis[key]!.lowerBound
                    v.maxVersion = ControllerService.supportedApis[key]!.upperBound
                    return v
                }
                return loop.makeSucceededFuture(resp)
            }
        case FetchRequest.apiKey:
            return try serveRequest(FetchRequest.self, frame: frame, eventLoop: loop) { req, header in
                if let offset = req.topics.first?.partitions.first?.fetchOffset {
                    self.noteObserverFetch(clientId: header.clientId, fetchOffset: offset)
                }
                return self.fetchMetadata(req, eventLoop: loop).map { $0 }
            }
        case FetchSnapshotRequest.apiKey:
            return try serveRequest(FetchSnapshotRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.fetchSnapshot(req))
            }
        case CreateTopicsRequest.apiKey:
            return try serveRequest(CreateTopicsRequest.self, frame: frame, eventLoop: loop) { req, header in
                loop.makeSucceededFuture(self.createTopics(req, version: header.requestApiVersion))
            }
        case DeleteTopicsRequest.apiKey:
            return try serveRequest(DeleteTopicsRequest.self, frame: frame, eventLoop: loop) { req, header in
                loop.makeSucceededFuture(self.deleteTopics(req, version: header.requestApiVersion))
            }
        case CreatePartitionsRequest.apiKey:
            return try serveRequest(CreatePartitionsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.createPartitions(req))
            }
        case AlterConfigsRequest.apiKey:
            return try serveRequest(AlterConfigsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.alterConfigs(req))
            }
        case IncrementalAlterConfigsRequest.apiKey:
            return try serveRequest(IncrementalAlterConfigsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.incrementalAlterConfigs(req))
            }
        case OpenUploaderRequest.apiKey:
            return try serveRequest(OpenUploaderRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.openUploader(req))
            }
        case PrepareS3ObjectRequest.apiKey:
            return try serveRequest(PrepareS3ObjectRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.prepareObjects(req))
            }
        case CommitS3ObjectsRequest.apiKey:
            return try serveRequest(CommitS3ObjectsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.commitObjects(req))
            }
        case TrimStreamsRequest.apiKey:
            return try serveRequest(TrimStreamsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.trimStreams(req))
            }
        case AllocateProducerIdsRequest.apiKey:
            return try serveRequest(AllocateProducerIdsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.allocateProducerIds(req))
            }
        case DescribeQuorumRequest.apiKey:
            return try serveRequest(DescribeQuorumRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.describeQuorum(req))
            }
        default:
            preconditionFailure("api key \(apiKey) is in supportedApis but has no handler")
        }
    }

    // MARK: Metadata log fetch

    func fetchMetadata(_ req: FetchRequest, eventLoop: EventLoop) -> EventLoopFuture<FetchResponse> {
        guard let topic = req.topics.first, topic.topic == ControllerService.metadataTopic,
              let part = topic.partitions.first, part.partition == 0 else {
            var resp = FetchResponse()
            resp.errorCode = 3   // UNKNOWN_TOPIC_OR_PARTITION
            return eventLoop.makeSucceededFuture(resp)
        }
        let offset = part.fetchOffset
        let answer = { () -> FetchResponse in self.metadataFetchResponse(from: offset) }
        guard case .records(let slice, let end) = controller.records(from: offset, countMax: 1),
              slice.isEmpty, offset == end, req.maxWaitMs > 0 else {
            return eventLoop.makeSucceededFuture(answer())
        }
        let promise = eventLoop.makePromise(of: FetchResponse.self)
        let done = OnceFlag()
        let timer = eventLoop.scheduleTask(in: .milliseconds(Int64(req.maxWaitMs))) {
            if done.set() { promise.succeed(answer()) }
        }
        controller.onceLogPasses(offset) { _ in
            eventLoop.execute {
                if done.set() { timer.cancel(); promise.succeed(answer()) }
            }
        }
        return promise.futureResult
    }

    func metadataFetchResponse(from offset: Int64) -> FetchResponse {
        var pd = FetchResponse.PartitionData()
        pd.partitionIndex = 0
        pd.records = ByteBuffer()
        let (snapshotBytes, logStart) = controller.snapshot
        pd.logStartOffset = logStart
        switch controller.records(from: offset, countMax: ControllerService.fetchRecordsMax) {
        case .records(let slice, let end):
            pd.highWatermark = end
            pd.lastStableOffset = end
            if !slice.isEmpty { pd.records = MetadataRecordCodec.encodeBatch(Array(slice), baseOffset: offset) }
        case .snapshotNeeded(let end):
            // As KRaft does: point the follower at the snapshot (FetchSnapshot), then go on from its end.
            precondition(!snapshotBytes.isEmpty, "log start \(end) without a snapshot")
            var id = FetchResponse.SnapshotId()
            id.endOffset = end
            id.epoch = 0
            pd.snapshotId = id
            pd.highWatermark = end
        case .outOfRange(let end):
            pd.errorCode = 1   // OFFSET_OUT_OF_RANGE: the follower is ahead of this log
            pd.highWatermark = end
        }
        var t = FetchResponse.FetchableTopicResponse()
        t.topic = ControllerService.metadataTopic
        t.partitions = [pd]
        var resp = FetchResponse()
        resp.responses = [t]
        return resp
    }

    /// Serves the latest snapshot's bytes from `position` (at most `maxBytes`).
    func fetchSnapshot(_ req: FetchSnapshotRequest) -> FetchSnapshotResponse {
        let (bytes, endOffset) = controller.snapshot
        var resp = FetchSnapshotResponse()
        resp.topics = req.topics.map { t in
            var out = FetchSnapshotResponse.TopicSnapshot()
            out.name = t.name
            out.partitions = t.partitions.map { p in
                var r = FetchSnapshotResponse.PartitionSnapshot()
                r.index = p.partition
                r.snapshotId.endOffset = p.snapshotId.endOffset
                r.snapshotId.epoch = p.snapshotId.epoch
                guard t.name == ControllerService.metadataTopic, p.partition == 0 else {
                    r.errorCode = 3   // UNKNOWN_TOPIC_OR_PARTITION
                    return r
                }
                guard !bytes.isEmpty, p.snapshotId.endOffset == endOffset else {
                    r.errorCode = 98   // SNAPSHOT_NOT_FOUND
                    return r
                }
                guard p.position >= 0, p.position <= Int64(bytes.count) else {
                    r.errorCode = 99   // POSITION_OUT_OF_RANGE
                    return r
                }
                let start = Int(p.position)
                let count = min(bytes.count - start, Int(max(1, req.maxBytes)))
                var chunk = ByteBufferAllocator().buffer(capacity: count)
                chunk.writeBytes(bytes[start..<(start + count)])
                r.size = Int64(bytes.count)
                r.position = p.position
                r.unalignedRecords = chunk
                return r
            }
            return out
        }
        return resp
    }

    // MARK: Topic changes

    func createTopics(_ req: CreateTopicsRequest, version: Int16) -> CreateTopicsResponse {
        var resp = CreateTopicsResponse()
        var seen: [String: Int] = [:]
        for t in req.topics { seen[t.name, default: 0] += 1 }
        for t in req.topics {
            var out = CreateTopicsResponse.CreatableTopicResult()
            out.name = t.name
            func fail(_ code: Int16, _ message: String) {
                out.errorCode = code
                out.errorMessage = message
                out.configs = nil
            }
            if seen[t.name]! > 1 {
                fail(42, "Duplicate topic name.")   // INVALID_REQUEST
                resp.topics.append(out)
                continue
            }
            var partitions = t.numPartitions
            if !t.assignments.isEmpty {
                guard t.numPartitions == -1 && t.replicationFactor == -1 else {
                    fail(42, "Both numPartitions or replicationFactor and replicasAssignments were set.")
                    resp.topics.append(out); continue
                }
                let indices = Set(t.assignments.map(\.partitionIndex))
                guard indices == Set(0..<Int32(t.assignments.count)) else {
                    fail(37, "Partition assignments must cover partitions 0..\(t.assignments.count - 1) exactly.")
                    resp.topics.append(out); continue
                }
                guard t.assignments.allSatisfy({ $0.brokerIds == [config.nodeId] }) else {
                    fail(39, "Every partition must be assigned to broker \(config.nodeId) alone.")   // INVALID_REPLICA_ASSIGNMENT
                    resp.topics.append(out); continue
                }
                partitions = Int32(t.assignments.count)
            }
            if partitions == -1 { partitions = config.numPartitions }
            if t.replicationFactor != -1 && t.replicationFactor < 1 {
                fail(38, "Replication factor must be at least 1.")
                resp.topics.append(out); continue
            }
            var configs: [String: String] = [:]
            var badConfig: String?
            for c in t.configs {
                guard let v = c.value else { badConfig = "Null value not supported for topic config '\(c.name)'."; break }
                configs[c.name] = v
            }
            if let badConfig {
                fail(40, badConfig)
                resp.topics.append(out); continue
            }
            do {
                let topic = try controller.createTopic(name: t.name, partitions: partitions, configs: configs,
                                                       validateOnly: req.validateOnly)
                out.topicId = req.validateOnly ? .zero : topic.id.kafka
                out.numPartitions = topic.partitionCount
                out.replicationFactor = 1
                out.configs = TopicConfigResolver(config: config, image: controller.image).topicEntries(overrides: configs).map { e in
                    var c = CreateTopicsResponse.CreatableTopicConfigs()
                    c.name = e.name
                    c.value = e.value
                    c.readOnly = false
                    c.configSource = e.source
                    c.isSensitive = false
                    return c
                }
            } catch let e as ControllerError {
                fail(e.kafkaErrorCode, e.description)
            } catch {
                fail(-1, "\(error)")
            }
            resp.topics.append(out)
        }
        return resp
    }

    func deleteTopics(_ req: DeleteTopicsRequest, version: Int16) -> DeleteTopicsResponse {
        var resp = DeleteTopicsResponse()
        let targets: [(name: String?, id: KafkaUUID)] = version >= 6
            ? req.topics.map { ($0.name, $0.topicId) }
            : req.topicNames.map { ($0, KafkaUUID.zero) }
        for t in targets {
            var out = DeleteTopicsResponse.DeletableTopicResult()
            out.name = t.name
            out.topicId = t.id
            do {
                guard config.deleteTopicEnable else { throw ControllerError.deletionDisabled }
                let useId = t.name == nil && t.id != .zero
                let deleted = try controller.deleteTopic(name: useId ? nil : t.name, id: useId ? t.id.foundation : nil)
                out.name = deleted.name
                out.topicId = deleted.id.kafka
            } catch let e as ControllerError {
                out.errorCode = e.kafkaErrorCode
                out.errorMessage = e.description
            } catch {
                out.errorCode = -1
                out.errorMessage = "\(error)"
            }
            resp.responses.append(out)
        }
        return resp
    }

    func createPartitions(_ req: CreatePartitionsRequest) -> CreatePartitionsResponse {
        var resp = CreatePartitionsResponse()
        for t in req.topics {
            var out = CreatePartitionsResponse.CreatePartitionsTopicResult()
            out.name = t.name
            do {
                if let assignments = t.assignments, !assignments.allSatisfy({ $0.brokerIds == [config.nodeId] }) {
                    throw ControllerError.invalidPartitions("Every new partition must be assigned to broker \(config.nodeId) alone.")
                }
                _ = try controller.createPartitions(name: t.name, count: t.count, validateOnly: req.validateOnly)
            } catch let e as ControllerError {
                out.errorCode = e.kafkaErrorCode
                out.errorMessage = e.description
            } catch {
                out.errorCode = -1
                out.errorMessage = "\(error)"
            }
            resp.results.append(out)
        }
        return resp
    }
}

/// A once-only flag shared between a timer and a wake-up.
final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    /// True for the first caller only.
    func set() -> Bool { lock.withLock { if fired { return false }; fired = true; return true } }
}
