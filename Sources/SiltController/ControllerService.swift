import Foundation
import Logging
import NIOCore
import SiltConfig
import SiltMetadata
import SiltNet
import SiltProtocol
import SiltRaft
import SiltRecords

/// The controller's Kafka-framed API on the CONTROLLER listener.
///
/// Voters speak KRaft's RPCs to each other here (Vote, BeginQuorumEpoch, EndQuorumEpoch,
/// Fetch and FetchSnapshot on `__cluster_metadata` partition 0; see docs/quorum.md).
/// Brokers forward changes (CreateTopics, DeleteTopics, CreatePartitions, the config APIs,
/// as KRaft forwards them, and Silt's object lifecycle) to the active controller, which
/// answers once they are committed, and follow the committed log with Fetch as observers.
public final class ControllerService: KafkaRequestHandler, @unchecked Sendable {
    public static let metadataTopic = "__cluster_metadata"

    public static let supportedApis: [Int16: ClosedRange<Int16>] = [
        ApiVersionsRequest.apiKey: 0...4,
        FetchRequest.apiKey: 12...17,
        FetchSnapshotRequest.apiKey: 0...1,
        VoteRequest.apiKey: 0...1,
        BeginQuorumEpochRequest.apiKey: 0...1,
        EndQuorumEpochRequest.apiKey: 0...1,
        CreateTopicsRequest.apiKey: 5...7,
        DeleteTopicsRequest.apiKey: 4...6,
        CreatePartitionsRequest.apiKey: 2...3,
        AlterConfigsRequest.apiKey: 0...2,
        IncrementalAlterConfigsRequest.apiKey: 0...1,
        AlterUserScramCredentialsRequest.apiKey: 0...0,
        CreateAclsRequest.apiKey: 3...3,
        DeleteAclsRequest.apiKey: 3...3,
        // Silt's internal APIs (specs/silt/): the object lifecycle.
        OpenUploaderRequest.apiKey: 0...0,
        PrepareS3ObjectRequest.apiKey: 0...0,
        CommitS3ObjectsRequest.apiKey: 0...0,
        TrimStreamsRequest.apiKey: 0...0,
        OpenStreamsRequest.apiKey: 0...0,
        ReleaseStreamsRequest.apiKey: 0...0,
        TakeOverNodeRequest.apiKey: 0...0,
        DescribeBalancerRequest.apiKey: 0...0,
        UnregisterBrokerRequest.apiKey: 0...0,
        AlterPartitionReassignmentsRequest.apiKey: 0...0,
        ListPartitionReassignmentsRequest.apiKey: 0...0,
        AllocateProducerIdsRequest.apiKey: 0...0,
        BrokerRegistrationRequest.apiKey: 0...4,
        BrokerHeartbeatRequest.apiKey: 0...1,
        DescribeQuorumRequest.apiKey: 0...2,
        DescribeClusterRequest.apiKey: 1...1,   // KIP-919: endpoint type 2, the controllers
    ]

    public let controller: MetadataController
    let config: ServerConfig
    let logger: Logger
    /// Brokers following the metadata log (DescribeQuorum's observers), by broker id.
    let observerLock = NSLock()
    var observerStates: [Int32: ObserverState] = [:]
    /// The auto balancer, when the role runs one (DescribeBalancer shows its decisions).
    public var balancer: AutoBalancerService?

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
        // The quorum (KRaft's RPCs): voters among themselves, brokers as observers.
        case VoteRequest.apiKey:
            return try serveRequest(VoteRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.quorumRequest(KRaftWire.message(req), clusterId: req.clusterId, tagged: req.unknownTaggedFields,
                                   from: req.topics.first?.partitions.first?.candidateId ?? -1, on: loop,
                                   refuse: { code, detail in var r = VoteResponse(); r.errorCode = code; r.unknownTaggedFields = detail; return r },
                                   answer: KRaftWire.voteResponse)
            }
        case BeginQuorumEpochRequest.apiKey:
            return try serveRequest(BeginQuorumEpochRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.quorumRequest(KRaftWire.message(req), clusterId: req.clusterId, tagged: req.unknownTaggedFields,
                                   from: req.topics.first?.partitions.first?.leaderId ?? -1, on: loop,
                                   refuse: { code, detail in var r = BeginQuorumEpochResponse(); r.errorCode = code; r.unknownTaggedFields = detail; return r },
                                   answer: KRaftWire.beginResponse)
            }
        case EndQuorumEpochRequest.apiKey:
            return try serveRequest(EndQuorumEpochRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.quorumRequest(KRaftWire.message(req), clusterId: req.clusterId, tagged: req.unknownTaggedFields,
                                   from: req.topics.first?.partitions.first?.leaderId ?? -1, on: loop,
                                   refuse: { code, detail in var r = EndQuorumEpochResponse(); r.errorCode = code; r.unknownTaggedFields = detail; return r },
                                   answer: KRaftWire.endResponse)
            }
        case FetchRequest.apiKey:
            return try serveRequest(FetchRequest.self, frame: frame, eventLoop: loop) { req, header in
                let replicaId = header.requestApiVersion >= 15 ? req.replicaState.replicaId : req.replicaId
                if self.controller.quorum.config.voters.contains(replicaId) {
                    let bytesMax = self.controller.quorum.config.fetchBytesMax
                    return self.quorumRequest(KRaftWire.message(req, version: header.requestApiVersion), clusterId: req.clusterId,
                                              tagged: req.unknownTaggedFields, from: replicaId, on: loop,
                                              refuse: { code, detail in var r = FetchResponse(); r.errorCode = code; r.unknownTaggedFields = detail; return r },
                                              answer: { KRaftWire.fetchResponse($0, bytesMax: bytesMax) })
                }
                return self.observerFetch(req, clientId: header.clientId, on: loop).map { $0 }
            }
        case FetchSnapshotRequest.apiKey:
            return try serveRequest(FetchSnapshotRequest.self, frame: frame, eventLoop: loop) { req, _ in
                if self.controller.quorum.config.voters.contains(req.replicaId) {
                    return self.quorumRequest(KRaftWire.message(req), clusterId: req.clusterId, tagged: req.unknownTaggedFields,
                                              from: req.replicaId, on: loop,
                                              refuse: { code, detail in var r = FetchSnapshotResponse(); r.errorCode = code; r.unknownTaggedFields = detail; return r },
                                              answer: KRaftWire.fetchSnapshotResponse)
                }
                return loop.makeSucceededFuture(self.observerFetchSnapshot(req))
            }
        case CreateTopicsRequest.apiKey:
            return try serveRequest(CreateTopicsRequest.self, frame: frame, eventLoop: loop) { req, header in
                self.afterCommit(on: loop) { self.createTopics(req, version: header.requestApiVersion) }
            }
        case DeleteTopicsRequest.apiKey:
            return try serveRequest(DeleteTopicsRequest.self, frame: frame, eventLoop: loop) { req, header in
                self.afterCommit(on: loop) { self.deleteTopics(req, version: header.requestApiVersion) }
            }
        case CreatePartitionsRequest.apiKey:
            return try serveRequest(CreatePartitionsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.createPartitions(req) }
            }
        case AlterConfigsRequest.apiKey:
            return try serveRequest(AlterConfigsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.alterConfigs(req) }
            }
        case IncrementalAlterConfigsRequest.apiKey:
            return try serveRequest(IncrementalAlterConfigsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.incrementalAlterConfigs(req) }
            }
        case AlterUserScramCredentialsRequest.apiKey:
            return try serveRequest(AlterUserScramCredentialsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.alterUserScramCredentials(req) }
            }
        case CreateAclsRequest.apiKey:
            return try serveRequest(CreateAclsRequest.self, frame: frame, eventLoop: loop) { req, header in
                self.afterCommit(on: loop) { self.createAcls(req, version: header.requestApiVersion) }
            }
        case DeleteAclsRequest.apiKey:
            return try serveRequest(DeleteAclsRequest.self, frame: frame, eventLoop: loop) { req, header in
                self.afterCommit(on: loop) { self.deleteAcls(req, version: header.requestApiVersion) }
            }
        case OpenUploaderRequest.apiKey:
            return try serveRequest(OpenUploaderRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.openUploader(req) }
            }
        case PrepareS3ObjectRequest.apiKey:
            return try serveRequest(PrepareS3ObjectRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.prepareObjects(req) }
            }
        case CommitS3ObjectsRequest.apiKey:
            return try serveRequest(CommitS3ObjectsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.commitObjects(req) }
            }
        case TrimStreamsRequest.apiKey:
            return try serveRequest(TrimStreamsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.trimStreams(req) }
            }
        case OpenStreamsRequest.apiKey:
            return try serveRequest(OpenStreamsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.openStreams(req) }
            }
        case ReleaseStreamsRequest.apiKey:
            return try serveRequest(ReleaseStreamsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.releaseStreams(req) }
            }
        case TakeOverNodeRequest.apiKey:
            return try serveRequest(TakeOverNodeRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.takeOverNode(req) }
            }
        case DescribeBalancerRequest.apiKey:
            return try serveRequest(DescribeBalancerRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.describeBalancer(req))
            }
        case UnregisterBrokerRequest.apiKey:
            return try serveRequest(UnregisterBrokerRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.unregisterBroker(req) }
            }
        case AlterPartitionReassignmentsRequest.apiKey:
            return try serveRequest(AlterPartitionReassignmentsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.alterPartitionReassignments(req) }
            }
        case ListPartitionReassignmentsRequest.apiKey:
            return try serveRequest(ListPartitionReassignmentsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.listPartitionReassignments(req))
            }
        case AllocateProducerIdsRequest.apiKey:
            return try serveRequest(AllocateProducerIdsRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.allocateProducerIds(req) }
            }
        case BrokerRegistrationRequest.apiKey:
            return try serveRequest(BrokerRegistrationRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.brokerRegistration(req) }
            }
        case BrokerHeartbeatRequest.apiKey:
            return try serveRequest(BrokerHeartbeatRequest.self, frame: frame, eventLoop: loop) { req, _ in
                self.afterCommit(on: loop) { self.brokerHeartbeat(req) }
            }
        case DescribeQuorumRequest.apiKey:
            return try serveRequest(DescribeQuorumRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.describeQuorum(req))
            }
        case DescribeClusterRequest.apiKey:
            return try serveRequest(DescribeClusterRequest.self, frame: frame, eventLoop: loop) { req, _ in
                loop.makeSucceededFuture(self.describeCluster(req))
            }
        default:
            preconditionFailure("api key \(apiKey) is in supportedApis but has no handler")
        }
    }

    /// Runs a handler that may propose records, and answers once they are committed. The
    /// handler only validates and proposes (no disk I/O happens on this event loop). If this
    /// controller loses leadership before the commit, the request fails and its connection
    /// closes: the sender retries, and the new leader's validation decides.
    func afterCommit<T>(on loop: EventLoop, _ handler: () -> T) -> EventLoopFuture<T?> {
        let before = controller.lastProposedOffset
        let response = handler()
        let after = controller.lastProposedOffset
        guard after != before else { return loop.makeSucceededFuture(response) }
        return controller.whenCommitted(after, on: loop).map { response }
    }

    // MARK: The quorum's RPCs

    /// A voter's request: checks the cluster id and the voter set first (KRaft's
    /// INCONSISTENT_CLUSTER_ID / INCONSISTENT_VOTER_SET, with our value in the tag so the
    /// sender can name both), then hands it to the core and answers when the core does.
    func quorumRequest<Response>(_ message: RaftMessage?, clusterId: String?, tagged: [Int: [UInt8]], from peer: Int32,
                                 on loop: EventLoop,
                                 refuse: (Int16, [Int: [UInt8]]) -> Response,
                                 answer: @escaping (RaftMessage) -> Response) -> EventLoopFuture<Response?> {
        let quorum = controller.quorum!
        if let clusterId, clusterId != quorum.clusterId {
            logger.error("a voter of another cluster asked this controller", metadata: [
                "voter": "\(peer)", "theirClusterId": "\(clusterId)", "ourClusterId": "\(quorum.clusterId)"])
            return loop.makeSucceededFuture(refuse(KafkaErrorCode.inconsistentClusterId,
                                                   [KRaftWire.votersTag: Array(quorum.clusterId.utf8)]))
        }
        guard let message else {
            return loop.makeSucceededFuture(refuse(KafkaErrorCode.invalidRequest, [:]))   // no __cluster_metadata partition
        }
        let theirs = String(decoding: tagged[KRaftWire.votersTag] ?? [], as: UTF8.self)
        guard quorum.sameVoters(theirs) else {
            logger.error("a voter with another voter set asked this controller", metadata: [
                "voter": "\(peer)", "theirVoters": "\(theirs)", "ourVoters": "\(quorum.voterString)",
                "key": "controller.quorum.voters"])
            return loop.makeSucceededFuture(refuse(KafkaErrorCode.inconsistentVoterSet,
                                                   [KRaftWire.votersTag: Array(quorum.voterString.utf8)]))
        }
        return quorum.receiveRequest(message, from: peer, on: loop).map { answer($0) }
    }

    /// A broker following the log: committed batches only, from the leader.
    func observerFetch(_ req: FetchRequest, clientId: String?, on loop: EventLoop) -> EventLoopFuture<FetchResponse> {
        guard let topic = req.topics.first, topic.topic == ControllerService.metadataTopic,
              let part = topic.partitions.first, part.partition == 0 else {
            var resp = FetchResponse()
            resp.errorCode = KafkaErrorCode.unknownTopicOrPartition
            return loop.makeSucceededFuture(resp)
        }
        if let clusterId = req.clusterId, clusterId != controller.quorum.clusterId {
            logger.error("a broker of another cluster follows this controller's log", metadata: [
                "theirClusterId": "\(clusterId)", "ourClusterId": "\(controller.quorum.clusterId)"])
            var resp = FetchResponse()
            resp.errorCode = KafkaErrorCode.inconsistentClusterId
            resp.unknownTaggedFields = [KRaftWire.votersTag: Array(controller.quorum.clusterId.utf8)]
            return loop.makeSucceededFuture(resp)
        }
        noteObserverFetch(clientId: clientId, fetchOffset: part.fetchOffset)
        return controller.quorum.observerFetch(fetchOffset: part.fetchOffset, maxWaitMs: req.maxWaitMs, on: loop)
            .map { KRaftWire.fetchResponse($0) }
    }

    /// Serves the latest snapshot to an observer, from `position`, at most `maxBytes` at a time.
    func observerFetchSnapshot(_ req: FetchSnapshotRequest) -> FetchSnapshotResponse {
        let latest = controller.quorum.latestSnapshotForObservers
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
                    r.errorCode = KafkaErrorCode.unknownTopicOrPartition
                    return r
                }
                guard let latest, latest.id.endOffset == p.snapshotId.endOffset, latest.id.epoch == p.snapshotId.epoch else {
                    r.errorCode = KafkaErrorCode.snapshotNotFound
                    return r
                }
                let bytes = latest.bytes
                guard p.position >= 0, p.position <= Int64(bytes.count) else {
                    r.errorCode = KafkaErrorCode.positionOutOfRange
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
                // One replica per partition: object storage is the replica. Which broker leads is
                // the cluster's business, not this controller's id.
                guard t.assignments.allSatisfy({ $0.brokerIds.count == 1 }) else {
                    fail(39, "Every partition must be assigned exactly one broker (object storage is the replica).")   // INVALID_REPLICA_ASSIGNMENT
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
                out.errorCode = KafkaErrorCode.unknownServerError
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
                if let assignments = t.assignments, !assignments.allSatisfy({ $0.brokerIds.count == 1 }) {
                    throw ControllerError.invalidPartitions("Every new partition must be assigned exactly one broker (object storage is the replica).")
                }
                _ = try controller.createPartitions(name: t.name, count: t.count, validateOnly: req.validateOnly)
            } catch let e as ControllerError {
                out.errorCode = e.kafkaErrorCode
                out.errorMessage = e.description
            } catch {
                out.errorCode = KafkaErrorCode.unknownServerError
                out.errorMessage = "\(error)"
            }
            resp.results.append(out)
        }
        return resp
    }
}
