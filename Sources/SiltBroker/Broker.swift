import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SiltConfig
import SiltAuthorizer
import SiltController
import SiltGroups
import SiltMetadata
import SiltMetrics
import SiltNet
import SiltProtocol
import SiltStorage

/// The Kafka-facing broker of one node: decodes requests, applies them to the metadata
/// controller and the partition logs, and encodes the answers.
///
/// Threading: `handle` runs on the connection's event loop. Metadata reads take a copy of
/// the controller's image; partition logs are thread-safe; completions hop back to the
/// connection's loop (see `KafkaConnectionHandler`).
public final class Broker: KafkaRequestHandler, @unchecked Sendable {
    let config: ServerConfig
    let clusterId: String
    let controllerChannel: ControllerChannel
    let metadata: MetadataCache
    let logs: StreamLogManager
    let writePath: WritePath
    /// Reads committed stream data from object storage (nil: partitions keep data locally).
    let objectReader: StreamObjectReader?
    let logger: Logger
    let fetchWaiters = FetchWaiters()
    /// This broker's block of producer ids (Broker+Producer.swift).
    let producerIds = ProducerIdAllocator()
    /// Registration and heartbeats with the active controller (BrokerLifecycle.swift).
    let lifecycle: BrokerLifecycle
    /// The group coordinator and what starting it needs (Broker+OffsetsTopic.swift).
    struct CoordinatorState {
        var loop: EventLoop?
        var coordinator: GroupCoordinator?
        var creating = false
        /// Connections to other brokers for consumer lag's ListOffsets, by node id, with the
        /// endpoint each was opened to (one per broker: bounded by the cluster).
        var lagClients: [Int32: (endpoint: String, client: KafkaClient)] = [:]
    }
    let coordinatorState = NIOLockedValueBox(CoordinatorState())
    /// Streams being opened (Broker+Recovery.swift).
    let streamOpening = NIOLockedValueBox(StreamOpening())
    /// The loop `start` ran on: background work of the broker (stream opens) schedules here.
    let backgroundLoop = NIOLockedValueBox<EventLoop?>(nil)
    /// Streams of compacted topics with an upload timer pending (Broker+CompactionLag.swift).
    let compactionLagUploads = NIOLockedValueBox<Set<UInt64>>([])
    /// The authorizer settings (from the config) and the authorizer of the moment, rebuilt
    /// when the image's ACLs change (Broker+Acls.swift, Broker+Authorization.swift).
    let authorizerSettings: AuthorizerSettings
    let authorizerBox: NIOLockedValueBox<Authorizer>
    /// nil until `__consumer_offsets` exists and `startGroupCoordinator` ran: groups are unavailable.
    var groupCoordinator: GroupCoordinator? { coordinatorState.withLockedValue { $0.coordinator } }

    /// The APIs and versions this broker serves, and nothing else: an API that is not in
    /// this table is not advertised, and a request for it closes the connection.
    static let supportedApis: [Int16: ClosedRange<Int16>] = [
        ProduceRequest.apiKey: 3...11,          // v3+: record batch v2 (the only format stored)
        FetchRequest.apiKey: 4...17,            // v4+: record batch v2
        ListOffsetsRequest.apiKey: 0...7,       // v7: max-timestamp lookups (KIP-734); v8+ are tiered storage's
        MetadataRequest.apiKey: 0...12,
        OffsetForLeaderEpochRequest.apiKey: 0...4,
        ApiVersionsRequest.apiKey: 0...4,
        CreateTopicsRequest.apiKey: 0...7,
        DeleteTopicsRequest.apiKey: 0...6,
        DescribeConfigsRequest.apiKey: 0...4,
        CreatePartitionsRequest.apiKey: 0...3,
        DescribeClusterRequest.apiKey: 0...1,
        DescribeQuorumRequest.apiKey: 0...2,    // forwarded to the controller
        AlterConfigsRequest.apiKey: 0...2,
        IncrementalAlterConfigsRequest.apiKey: 0...1,
        DeleteRecordsRequest.apiKey: 0...2,
        InitProducerIdRequest.apiKey: 0...5,
        FindCoordinatorRequest.apiKey: 0...6,
        JoinGroupRequest.apiKey: 0...9,
        SyncGroupRequest.apiKey: 0...5,
        HeartbeatRequest.apiKey: 0...4,
        LeaveGroupRequest.apiKey: 0...5,
        OffsetCommitRequest.apiKey: 0...9,      // v10+ names topics by id: not in the specs served here
        OffsetFetchRequest.apiKey: 0...9,
        ListGroupsRequest.apiKey: 0...5,
        DescribeGroupsRequest.apiKey: 0...5,
        DeleteGroupsRequest.apiKey: 0...2,
        OffsetDeleteRequest.apiKey: 0...0,
        ConsumerGroupHeartbeatRequest.apiKey: 0...1,   // KIP-848 (Broker+ConsumerGroups)
        ConsumerGroupDescribeRequest.apiKey: 0...0,
        AlterPartitionReassignmentsRequest.apiKey: 0...0,   // forwarded to the controller
        UnregisterBrokerRequest.apiKey: 0...0,              // forwarded to the controller
        ListPartitionReassignmentsRequest.apiKey: 0...0,
        ElectLeadersRequest.apiKey: 0...2,      // one replica per partition: answered read-only (Broker+ElectLeaders)
        DescribeLogDirsRequest.apiKey: 0...4,   // the partitions led here (Broker+DescribeLogDirs)
        DescribeProducersRequest.apiKey: 0...0, // the leader's idempotent producer state (Broker+DescribeProducers)
        DescribeUserScramCredentialsRequest.apiKey: 0...0,   // KIP-554, from the metadata image (Broker+Scram)
        AlterUserScramCredentialsRequest.apiKey: 0...0,      // forwarded to the controller
        CreateAclsRequest.apiKey: 0...3,        // forwarded to the controller (Broker+Acls)
        DeleteAclsRequest.apiKey: 0...3,        // forwarded to the controller
        DescribeAclsRequest.apiKey: 0...3,      // from this broker's image
    ]

    /// Partition and move metrics (the node's region in production).
    let metrics: MetricsRegion
    /// Per-partition traffic for the load reports the heartbeats carry (the auto balancer's input).
    let loadMeter = PartitionLoadMeter()

    public init(config: ServerConfig, clusterId: String, controllerChannel: ControllerChannel, logs: StreamLogManager,
                writePath: WritePath, objectReader: StreamObjectReader? = nil, metrics: MetricsRegion = .local(),
                metadataChannel: ControllerChannel? = nil, logger: Logger) {
        self.metrics = metrics
        self.config = config
        self.clusterId = clusterId
        self.controllerChannel = controllerChannel
        // Long polls on their own connection when given one (see BrokerRole).
        self.metadata = MetadataCache(channel: metadataChannel ?? controllerChannel, catchUpChannel: controllerChannel,
                                      clusterId: clusterId, logger: logger)
        self.logs = logs
        self.writePath = writePath
        self.objectReader = objectReader
        self.logger = logger
        let settings = AuthorizerSettings(className: config.value("authorizer.class.name").value,
                                          superUsers: config.value("super.users").value,
                                          allowEveryoneIfNoAclFound: config.value("allow.everyone.if.no.acl.found").value)
        self.authorizerSettings = settings
        self.authorizerBox = NIOLockedValueBox(Authorizer(settings: settings, acls: []))
        self.lifecycle = BrokerLifecycle(
            settings: .init(nodeId: config.nodeId, clusterId: clusterId,
                            listeners: config.advertisedListeners.map { BrokerEndpoint(name: $0.name, host: $0.host, port: Int32($0.port)) },
                            rack: config.value("broker.rack").value,
                            heartbeatIntervalMs: Int64(config.value("broker.heartbeat.interval.ms").value!)!,
                            sessionTimeoutMs: Int64(config.value("broker.session.timeout.ms").value!)!),
            channel: controllerChannel, metadata: metadata, logger: logger)
        let waiters = fetchWaiters
        logs.addHighWatermarkListener { log, _ in
            waiters.notify(PartitionKey(topic: log.topic, partition: log.partition))
        }
        metadata.onChange = { [weak self] old, new in self?.metadataChanged(from: old, to: new) }
        lifecycle.setLoadReporter { [weak self] in self?.takeLoadReport() ?? (0, []) }
    }

    /// The load report for the next heartbeat: the partitions this broker has open, with their
    /// traffic since the previous report; also this broker's load gauges.
    func takeLoadReport() -> (intervalMs: Int64, loads: [BrokerHeartbeatRequest.PartitionLoad]) {
        let report = loadMeter.report(led: logs.allStreams().map(\.streamId))
        metrics.set(.brokerBytesInPerSecond, UInt64(report.loads.reduce(0) { $0 + $1.bytesInPerSec }))
        metrics.set(.brokerBytesOutPerSecond, UInt64(report.loads.reduce(0) { $0 + $1.bytesOutPerSec }))
        return report
    }

    /// Catches up with the controller's metadata log (retrying while it is unreachable, up
    /// to `timeout`), registers and waits to be unfenced, removes data of topics that no
    /// longer exist, then follows the log and heartbeats in the background. It opens no
    /// partition: `openAssignedPartitions` does, after recovery (Broker+Recovery.swift).
    public func start(on loop: EventLoop, timeout: TimeAmount = .seconds(60)) throws {
        backgroundLoop.withLockedValue { $0 = loop }
        let deadline = NIODeadline.now() + timeout
        while true {
            do {
                try metadata.catchUp(on: loop).wait()
                break
            } catch let mismatch as MetadataCache.ClusterMismatch {
                throw mismatch
            } catch {
                if NIODeadline.now() > deadline { throw error }
                logger.info("waiting for the controller: \(error)")
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        try lifecycle.register(on: loop, timeout: max(timeout, .milliseconds(3 * lifecycle.settings.sessionTimeoutMs)))
        lifecycle.startHeartbeats(on: loop)
        let known = Set(metadata.image.topicsByName.keys)
        for stale in Set(logs.allStreams().map(\.topic)) where !known.contains(stale) {
            logger.warning("removing data of deleted topic", metadata: ["topic": "\(stale)"])
            try logs.deletePartitions(topic: stale)
        }
        metadata.startFollowing(on: loop)
    }

    /// Controlled shutdown (this broker's partitions move to the others; see
    /// `BrokerLifecycle.shutDown`), then stops following the metadata log.
    public func stop() {
        lifecycle.shutDown()
        metadata.stop()
        let lagClients = coordinatorState.withLockedValue { state in
            defer { state.lagClients = [:] }
            return state.lagClients.values.map(\.client)
        }
        for c in lagClients { c.close() }
    }

    /// The loop background work schedules on (the one `start` ran on).
    var controllerLoop: EventLoop { backgroundLoop.withLockedValue { $0 }! }

    /// Applies a metadata change to local storage: partitions this broker comes to lead are
    /// opened, deleted topics lose their logs.
    private func metadataChanged(from old: MetadataImage, to new: MetadataImage) {
        aclsChanged(from: old, to: new)
        releaseMovingPartitions(new)
        dropPartitionsLedElsewhere(new)
        openMissingPartitions(image: new)
        reportPartitions(new)
        // Trims move log start offsets; a committed end beyond the local one (data that the
        // uploader committed from the WAL after a restart) becomes readable.
        for log in logs.allStreams() {
            guard let state = new.streamStates[log.streamId] else { continue }
            if state.startOffset > log.logStartOffset { log.trim(startOffset: state.startOffset) }
            if state.endOffset > log.logEndOffset { log.recover(endOffset: state.endOffset) }
        }
        offsetsLeadershipChanged(from: old, to: new)
        for (name, topic) in old.topicsByName where new.topic(id: topic.id) == nil {
            writePath.forgetStreams(topic.streamIds)
            do { try logs.deletePartitions(topic: name) } catch {
                logger.error("deleting topic data failed", metadata: ["topic": "\(name)", "error": "\(error)"])
            }
            fetchWaiters.notifyTopic(name)
        }
    }

    // MARK: - Dispatch

    /// Handles one request frame. Throws when the connection must be closed: an unknown
    /// api key, an unsupported version (other than ApiVersions), or a malformed request.
    public func handle(frame: ByteBuffer, context: RequestContext) throws -> EventLoopFuture<ByteBuffer?> {
        let (apiKey, apiVersion, correlationId) = try peekRequestKey(frame)
        guard let range = Broker.supportedApis[apiKey] else {
            throw RequestViolation("unknown or unsupported api key \(apiKey) (version \(apiVersion), correlation id \(correlationId))")
        }
        guard range.contains(apiVersion) else {
            if apiKey == ApiVersionsRequest.apiKey {
                return context.eventLoop.makeSucceededFuture(unsupportedApiVersionsResponse(correlationId: correlationId, range: range))
            }
            throw RequestViolation("api key \(apiKey) version \(apiVersion) is not supported (\(range))")
        }
        switch apiKey {
        case ApiVersionsRequest.apiKey: return try serve(ApiVersionsRequest.self, frame, context, apiVersions)
        case MetadataRequest.apiKey: return try serve(MetadataRequest.self, frame, context, metadata)
        case ProduceRequest.apiKey: return try serve(ProduceRequest.self, frame, context, produce)
        case FetchRequest.apiKey:
            return try serve(FetchRequest.self, frame, context) { req, r in
                self.fetchTimed(req, r).map { resp in
                    if let resp { self.meterFetched(resp) }
                    return resp
                }
            }
        case ListOffsetsRequest.apiKey: return try serve(ListOffsetsRequest.self, frame, context, listOffsets)
        case OffsetForLeaderEpochRequest.apiKey:
            return try serve(OffsetForLeaderEpochRequest.self, frame, context, offsetForLeaderEpoch)
        case CreateTopicsRequest.apiKey: return try serve(CreateTopicsRequest.self, frame, context, createTopics)
        case DeleteTopicsRequest.apiKey: return try serve(DeleteTopicsRequest.self, frame, context, deleteTopics)
        case CreatePartitionsRequest.apiKey: return try serve(CreatePartitionsRequest.self, frame, context, createPartitions)
        case DescribeConfigsRequest.apiKey: return try serve(DescribeConfigsRequest.self, frame, context, describeConfigs)
        case DescribeClusterRequest.apiKey: return try serve(DescribeClusterRequest.self, frame, context, describeCluster)
        case DescribeQuorumRequest.apiKey: return try serve(DescribeQuorumRequest.self, frame, context, describeQuorum)
        case AlterConfigsRequest.apiKey: return try serve(AlterConfigsRequest.self, frame, context, alterConfigs)
        case IncrementalAlterConfigsRequest.apiKey:
            return try serve(IncrementalAlterConfigsRequest.self, frame, context, incrementalAlterConfigs)
        case DeleteRecordsRequest.apiKey: return try serve(DeleteRecordsRequest.self, frame, context, deleteRecords)
        case ElectLeadersRequest.apiKey: return try serve(ElectLeadersRequest.self, frame, context, electLeaders)
        case DescribeLogDirsRequest.apiKey: return try serve(DescribeLogDirsRequest.self, frame, context, describeLogDirs)
        case DescribeProducersRequest.apiKey: return try serve(DescribeProducersRequest.self, frame, context, describeProducers)
        case DescribeUserScramCredentialsRequest.apiKey:
            return try serve(DescribeUserScramCredentialsRequest.self, frame, context, describeUserScramCredentials)
        case AlterUserScramCredentialsRequest.apiKey:
            return try serve(AlterUserScramCredentialsRequest.self, frame, context, alterUserScramCredentials)
        case CreateAclsRequest.apiKey: return try serve(CreateAclsRequest.self, frame, context, createAcls)
        case DeleteAclsRequest.apiKey: return try serve(DeleteAclsRequest.self, frame, context, deleteAcls)
        case DescribeAclsRequest.apiKey: return try serve(DescribeAclsRequest.self, frame, context, describeAcls)
        case InitProducerIdRequest.apiKey: return try serve(InitProducerIdRequest.self, frame, context, initProducerId)
        case FindCoordinatorRequest.apiKey: return try serve(FindCoordinatorRequest.self, frame, context, findCoordinator)
        case JoinGroupRequest.apiKey: return try serve(JoinGroupRequest.self, frame, context, joinGroup)
        case SyncGroupRequest.apiKey: return try serve(SyncGroupRequest.self, frame, context, syncGroup)
        case HeartbeatRequest.apiKey: return try serve(HeartbeatRequest.self, frame, context, heartbeat)
        case LeaveGroupRequest.apiKey: return try serve(LeaveGroupRequest.self, frame, context, leaveGroup)
        case OffsetCommitRequest.apiKey: return try serve(OffsetCommitRequest.self, frame, context, offsetCommit)
        case OffsetFetchRequest.apiKey: return try serve(OffsetFetchRequest.self, frame, context, offsetFetch)
        case ListGroupsRequest.apiKey: return try serve(ListGroupsRequest.self, frame, context, listGroups)
        case DescribeGroupsRequest.apiKey: return try serve(DescribeGroupsRequest.self, frame, context, describeGroups)
        case DeleteGroupsRequest.apiKey: return try serve(DeleteGroupsRequest.self, frame, context, deleteGroups)
        case OffsetDeleteRequest.apiKey: return try serve(OffsetDeleteRequest.self, frame, context, offsetDelete)
        case ConsumerGroupHeartbeatRequest.apiKey:
            return try serve(ConsumerGroupHeartbeatRequest.self, frame, context, consumerGroupHeartbeat)
        case ConsumerGroupDescribeRequest.apiKey:
            return try serve(ConsumerGroupDescribeRequest.self, frame, context, consumerGroupDescribe)
        case UnregisterBrokerRequest.apiKey:
            return try serve(UnregisterBrokerRequest.self, frame, context, unregisterBroker)
        case AlterPartitionReassignmentsRequest.apiKey:
            return try serve(AlterPartitionReassignmentsRequest.self, frame, context, alterPartitionReassignments)
        case ListPartitionReassignmentsRequest.apiKey:
            return try serve(ListPartitionReassignmentsRequest.self, frame, context, listPartitionReassignments)
        default:
            preconditionFailure("api key \(apiKey) is in supportedApis but has no handler")
        }
    }

    /// Decodes a request, passes it through the authorization gate (Broker+Authorization.swift)
    /// and runs its handler on what the gate lets through.
    private func serve<R: KafkaRequest>(
        _ type: R.Type, _ frame: ByteBuffer, _ context: RequestContext,
        _ handler: (R, Request) throws -> EventLoopFuture<R.Response?>
    ) throws -> EventLoopFuture<ByteBuffer?> {
        let startedNs = DispatchTime.now().uptimeNanoseconds
        do {
            return try serveRequest(type, frame: frame, eventLoop: context.eventLoop, observer: self, startedNs: startedNs) { req, header in
                let request = Request(header: header, context: context)
                switch self.gate(req, request) {
                case .answer(let resp): return request.eventLoop.makeSucceededFuture(resp)
                case .proceed(let allowed, let finish): return try handler(allowed, request).map { $0.map(finish) }
                }
            }
        } catch {
            requestFailed(apiKey: R.apiKey, startedNs: startedNs)
            throw error
        }
    }

    // MARK: - ApiVersions

    private static let softwareNamePattern = try! NSRegularExpression(pattern: "^[a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?$")

    static func isValidSoftwareField(_ s: String) -> Bool {
        softwareNamePattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    func apiVersions(_ req: ApiVersionsRequest, _ r: Request) -> EventLoopFuture<ApiVersionsResponse?> {
        var resp = ApiVersionsResponse()
        if r.version >= 3 && !(Broker.isValidSoftwareField(req.clientSoftwareName) && Broker.isValidSoftwareField(req.clientSoftwareVersion)) {
            resp.errorCode = ErrorCode.invalidRequest
            r.logger.warning("ApiVersions with invalid client software name/version", metadata: [
                "name": "\(req.clientSoftwareName)", "version": "\(req.clientSoftwareVersion)"])
            return r.succeed(resp)
        }
        resp.apiKeys = Broker.advertisedApiVersions()
        return r.succeed(resp)
    }

    static func advertisedApiVersions() -> [ApiVersionsResponse.ApiVersion] {
        supportedApis.keys.sorted().map { key in
            var v = ApiVersionsResponse.ApiVersion()
            v.apiKey = key
            v.minVersion = supportedApis[key]!.lowerBound
            v.maxVersion = supportedApis[key]!.upperBound
            return v
        }
    }

    /// KIP-511: a client that asks with a newer ApiVersions than we know gets a v0 answer
    /// (v0 header) with UNSUPPORTED_VERSION and the range of ApiVersions we do serve.
    private func unsupportedApiVersionsResponse(correlationId: Int32, range: ClosedRange<Int16>) -> ByteBuffer {
        var resp = ApiVersionsResponse()
        resp.errorCode = ErrorCode.unsupportedVersion
        var v = ApiVersionsResponse.ApiVersion()
        v.apiKey = ApiVersionsRequest.apiKey
        v.minVersion = range.lowerBound
        v.maxVersion = range.upperBound
        resp.apiKeys = [v]
        return frameResponse(resp, apiKey: ApiVersionsRequest.apiKey, version: 0, correlationId: correlationId)
    }

    // MARK: - Helpers shared by handlers

    var nodeId: Int32 { config.nodeId }

    /// The advertised endpoint of `listenerName` (clients get back the listener they used).
    func advertisedEndpoint(for listenerName: String) -> Listener {
        config.advertisedListeners.first(where: { $0.name == listenerName }) ?? config.advertisedListeners[0]
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// One decoded request with its header and origin.
struct Request {
    let header: RequestHeader
    let context: RequestContext
    var version: Int16 { header.requestApiVersion }
    var logger: Logger { context.logger }
    var eventLoop: EventLoop { context.eventLoop }
    func succeed<T>(_ value: T) -> EventLoopFuture<T?> { eventLoop.makeSucceededFuture(value) }
}

