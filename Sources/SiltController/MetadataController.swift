import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltMetadata
import SiltProtocol
import SiltRaft

/// Why the controller refused a change. Each case maps to the Kafka error a client expects.
public enum ControllerError: Error, Equatable, CustomStringConvertible {
    case invalidTopic(String)
    case topicAlreadyExists(String)
    case unknownTopic(String)
    case unknownTopicId(UUID)
    case invalidPartitions(String)
    case invalidConfig(String)
    case invalidReplicationFactor(String)
    case deletionDisabled
    case storage(String)
    /// A node epoch that is not the node's current one (a fenced uploader).
    case staleNodeEpoch(String)
    /// A stream epoch that is not the stream's current one (a fenced writer).
    case fencedStreamEpoch(String)
    /// A range that does not start at the stream's committed end.
    case offsetOutOfRange(String)
    case invalidRequest(String)
    case unknownStream(UInt64)
    /// This controller is not the quorum's ready leader (the message names the leader if known).
    case notController(String)
    case duplicateBroker(String)
    case staleBrokerEpoch(String)
    /// The partition is not led by the broker asking.
    case notLeader(String)
    /// A reassignment names no broker, several, or one that cannot take the partition.
    case invalidReplicaAssignment(String)
    /// A cancel or release of a partition that is not moving.
    case noReassignmentInProgress(String)
    /// UnregisterBroker of a node id with no registration.
    case brokerNotRegistered(String)

    /// Kafka's error code for this refusal.
    public var kafkaErrorCode: Int16 {
        switch self {
        case .invalidTopic: return KafkaErrorCode.invalidTopic
        case .topicAlreadyExists: return KafkaErrorCode.topicAlreadyExists
        case .unknownTopic: return KafkaErrorCode.unknownTopicOrPartition
        case .unknownTopicId: return KafkaErrorCode.unknownTopicId
        case .invalidPartitions: return KafkaErrorCode.invalidPartitions
        case .invalidConfig: return KafkaErrorCode.invalidConfig
        case .invalidReplicationFactor: return KafkaErrorCode.invalidReplicationFactor
        case .deletionDisabled: return KafkaErrorCode.topicDeletionDisabled
        case .storage: return KafkaErrorCode.unknownServerError
        case .staleNodeEpoch: return KafkaErrorCode.staleBrokerEpoch
        case .fencedStreamEpoch: return KafkaErrorCode.fencedLeaderEpoch
        case .offsetOutOfRange: return KafkaErrorCode.offsetOutOfRange
        case .invalidRequest: return KafkaErrorCode.invalidRequest
        case .unknownStream: return KafkaErrorCode.unknownTopicOrPartition
        case .notController: return KafkaErrorCode.notController
        case .duplicateBroker: return KafkaErrorCode.duplicateBrokerRegistration
        case .staleBrokerEpoch: return KafkaErrorCode.staleBrokerEpoch
        case .notLeader: return KafkaErrorCode.notLeaderOrFollower
        case .invalidReplicaAssignment: return KafkaErrorCode.invalidReplicaAssignment
        case .noReassignmentInProgress: return KafkaErrorCode.noReassignmentInProgress
        case .brokerNotRegistered: return KafkaErrorCode.brokerIdNotRegistered
        }
    }

    public var description: String {
        switch self {
        case .invalidTopic(let m), .invalidPartitions(let m), .invalidConfig(let m),
             .invalidReplicationFactor(let m), .storage(let m), .staleNodeEpoch(let m), .fencedStreamEpoch(let m),
             .offsetOutOfRange(let m), .invalidRequest(let m), .notController(let m), .duplicateBroker(let m),
             .staleBrokerEpoch(let m), .notLeader(let m), .invalidReplicaAssignment(let m),
             .noReassignmentInProgress(let m), .brokerNotRegistered(let m): return m
        case .unknownStream(let id): return "Stream \(id) does not exist."
        case .topicAlreadyExists(let n): return "Topic '\(n)' already exists."
        case .unknownTopic(let n): return "Topic '\(n)' does not exist."
        case .unknownTopicId(let id): return "Topic id \(id) does not exist."
        case .deletionDisabled: return "Topic deletion is disabled (delete.topic.enable=false)."
        }
    }
}

/// The node's metadata authority: validates changes against the image, proposes them to
/// the controller quorum, and answers once they are committed.
///
/// ```
///   request ──validate(_image)──▶ propose ──▶ QuorumDriver ──majority durable──▶ apply(committed)
///                 │ apply to _image at once (the leader's view: committed + its own proposals)
///                 ▼
///   response parked on whenCommitted(endOffset) ◀──────────────────────────────────┘
/// ```
///
/// Invariants:
/// - `committed` is the fold of the committed log: snapshot, then batches in order.
/// - While this node is the ready leader of `activeEpoch`, `_image` is `committed` plus this
///   leader's own proposals not yet committed, and `_image.nextOffset` is the log end. At
///   any other time `_image == committed`, and every proposal is refused (NOT_CONTROLLER).
/// - A response waits for the commit of every record its request proposed; if leadership
///   is lost first, the wait fails (the client retries against the new leader).
public final class MetadataController: @unchecked Sendable {
    public static let topicNameLengthMax = 249
    public static let partitionsMax: Int32 = 100_000
    /// One metadata record's bytes at most (a proposal travels whole in one fetch answer).
    public static let recordBytesMax = 1 << 20

    let lock = NSLock()
    var _image: MetadataImage
    /// The fold of the committed log (see the invariants above).
    var committed: MetadataImage
    /// The epoch this node leads and takes proposals in; nil when not the ready leader.
    var activeEpoch: Int32?
    /// The end offset of the latest proposal this node made.
    var proposedEndOffset: Int64 = 0
    /// Responses waiting for the commit of an offset.
    var commitWaiters: [(endOffset: Int64, promise: EventLoopPromise<Void>)] = []
    /// Callers blocked in `awaitCommitted` (never a network event loop).
    let commitCondition = NSCondition()
    /// Expired prepared ids the janitor is deleting: no commit may take them any more,
    /// whatever the clock says. In memory only; the janitor claims them again after a restart.
    var janitorClaims = Set<UInt64>()
    var bytesSinceSnapshot = 0
    /// Kafka's `metadata.log.max.record.bytes.between.snapshots`.
    let snapshotIntervalBytes: Int
    let logger: Logger
    /// Validates topic config overrides; injected so the controller need not know the key table.
    private let validateConfigs: ([String: String]) throws -> Void
    /// The replicated log.
    public private(set) var quorum: QuorumDriver!
    private let ownGroup: EventLoopGroup?
    /// Why the quorum stopped for good (set once, by the driver's fatal path).
    let fatalReason = FatalReason()
    /// Broker sessions (leader-only memory; MetadataController+Cluster.swift).
    let sessions: BrokerSessions
    /// The brokers' load reports (leader-only memory; LoadWindow.swift), for the auto balancer.
    let loads = LoadWindow(windowMs: AutoBalancer.Config().loadWindowMs)
    /// Where waits for commits complete when the caller has no event loop of its own.
    let eventLoop: EventLoop
    private var closed = false

    /// How this controller joins the quorum. The default is a quorum of one voter (tests, tools).
    public struct QuorumSetup: Sendable {
        public var nodeId: Int32
        public var voters: [QuorumDriver.Voter]
        public var clusterId: String
        /// The address outgoing quorum connections start from (this node's CONTROLLER host).
        public var localHost: String?
        public var electionTimeoutMs: Int64
        public var fetchTimeoutMs: Int64
        public var electionBackoffMaxMs: Int64

        public init(nodeId: Int32, voters: [QuorumDriver.Voter], clusterId: String, localHost: String? = nil,
                    electionTimeoutMs: Int64 = 1000, fetchTimeoutMs: Int64 = 2000, electionBackoffMaxMs: Int64 = 1000) {
            self.nodeId = nodeId; self.voters = voters; self.clusterId = clusterId; self.localHost = localHost
            self.electionTimeoutMs = electionTimeoutMs; self.fetchTimeoutMs = fetchTimeoutMs
            self.electionBackoffMaxMs = electionBackoffMaxMs
        }

        /// One voter (it elects itself at once): what a single-node controller and the unit tests run.
        public static func single(nodeId: Int32 = 0, clusterId: String = "local") -> QuorumSetup {
            QuorumSetup(nodeId: nodeId, voters: [QuorumDriver.Voter(id: nodeId, host: "127.0.0.1", port: 0)],
                        clusterId: clusterId)
        }
    }

    /// Opens the metadata log in `directory` (migrating a JSON log of an earlier release) and
    /// joins the quorum. With a single voter it returns once this node leads and has applied
    /// the whole log; with several it returns at once (`isActive` tells when it leads).
    /// `group` runs the quorum's timers and peer connections (nil: a thread of its own).
    public init(directory: String, logger: Logger, snapshotIntervalBytes: Int = 20 << 20,
                quorum setup: QuorumSetup = .single(), group: EventLoopGroup? = nil,
                onFatal: @escaping @Sendable (String) -> Void = { reason in fatalError("controller: \(reason)") },
                brokerSessionTimeoutMs: Int64 = 9000,
                validateConfigs: @escaping ([String: String]) throws -> Void) throws {
        let (store, persisted) = try MetadataController.openStore(directory: directory, logger: logger)
        self.sessions = BrokerSessions(sessionTimeoutMs: brokerSessionTimeoutMs)
        self._image = MetadataImage()
        self.committed = MetadataImage()
        self.snapshotIntervalBytes = snapshotIntervalBytes
        self.logger = logger
        self.validateConfigs = validateConfigs
        self.ownGroup = group == nil ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        self.eventLoop = (group ?? ownGroup!).next()
        // A parked fetch and a request's retry both fit inside the fetch timeout (as in KRaft,
        // where they are derived from it).
        let config = RaftConfig(nodeId: setup.nodeId, voters: setup.voters.map(\.id).sorted(),
                                electionTimeoutMs: setup.electionTimeoutMs, fetchTimeoutMs: setup.fetchTimeoutMs,
                                electionBackoffMaxMs: setup.electionBackoffMaxMs,
                                fetchMaxWaitMs: max(1, setup.fetchTimeoutMs / 4),
                                requestTimeoutMs: max(2, setup.fetchTimeoutMs / 2))
        self.quorum = QuorumDriver(config: config, voters: setup.voters, clusterId: setup.clusterId, store: store,
                                   persisted: persisted, clientGroup: group ?? ownGroup!, localHost: setup.localHost,
                                   logger: logger, onFatal: { [fatalReason, commitCondition] reason in
                                       fatalReason.set(reason)
                                       commitCondition.lock(); commitCondition.broadcast(); commitCondition.unlock()
                                       onFatal(reason)
                                   })
        do {
            try quorum.start(stateMachine: self)
        } catch {
            close()
            throw error
        }
        if setup.voters.count == 1 {
            guard awaitActive(timeoutMs: 30_000) else {
                close()
                throw ControllerError.storage(fatalReason.value
                    ?? "the single-voter metadata quorum did not elect itself within 30 s")
            }
        }
        logger.info("metadata log opened", metadata: [
            "snapshotEndOffset": "\(persisted.snapshot?.id.endOffset ?? 0)", "batches": "\(persisted.batches.count)",
            "voters": "\(setup.voters.map(\.id))"])
    }

    /// Stops the quorum (a leader resigns first) and releases its threads; idempotent.
    public func close() {
        let first: Bool = lock.withLock { defer { closed = true }; return !closed }
        guard first else { return }
        quorum?.stop()
        try? ownGroup?.syncShutdownGracefully()
    }

    deinit { close() }

    /// A consistent copy of the current metadata.
    public var image: MetadataImage { lock.withLock { _image } }

    public static func validateTopicName(_ name: String) throws {
        guard !name.isEmpty else { throw ControllerError.invalidTopic("Topic name is empty.") }
        guard name != "." && name != ".." else { throw ControllerError.invalidTopic("Topic name cannot be '.' or '..'.") }
        guard name.utf8.count <= topicNameLengthMax else {
            throw ControllerError.invalidTopic("Topic name is longer than \(topicNameLengthMax) characters.")
        }
        for c in name.utf8 {
            let ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2E || c == 0x5F || c == 0x2D
            guard ok else {
                throw ControllerError.invalidTopic(
                    "Topic name '\(name)' is illegal; it contains a character other than ASCII alphanumerics, '.', '_' and '-'.")
            }
        }
    }

    /// Creates a topic, or only checks that it could be created when `validateOnly`.
    @discardableResult
    public func createTopic(name: String, partitions: Int32, configs: [String: String],
                            validateOnly: Bool) throws -> TopicInfo {
        try MetadataController.validateTopicName(name)
        guard partitions >= 1 && partitions <= MetadataController.partitionsMax else {
            throw ControllerError.invalidPartitions("Number of partitions must be between 1 and \(MetadataController.partitionsMax).")
        }
        do { try validateConfigs(configs) } catch { throw ControllerError.invalidConfig("\(error)") }
        return try mutate {
            if _image.topic(named: name) != nil { throw ControllerError.topicAlreadyExists(name) }
            let collisionKey = name.replacingOccurrences(of: ".", with: "_")
            if let other = _image.topicsByName.keys.first(where: { $0.replacingOccurrences(of: ".", with: "_") == collisionKey }) {
                throw ControllerError.invalidTopic("Topic '\(name)' collides with existing topic '\(other)'.")
            }
            var id = UUID()
            while _image.topic(id: id) != nil { id = UUID() }
            let first = _image.nextStreamId
            let streamIds = (0..<UInt64(partitions)).map { first + $0 }
            let record = MetadataRecord.TopicRecord(name: name, id: id, partitions: partitions, configs: configs,
                                                    streamIds: streamIds)
            if !validateOnly {
                var after = _image
                after.apply(.topic(record))
                try commit([.topic(record)] + placements(for: streamIds, in: after))
            }
            logger.info("topic \(validateOnly ? "validated" : "created")", metadata: [
                "topic": "\(name)", "partitions": "\(partitions)"])
            if !validateOnly { warnIgnored(configs.keys, topicKeys: true, resource: "topic '\(name)'") }
            return TopicInfo(name: name, id: id, partitionCount: partitions, configs: configs, streamIds: streamIds)
        }
    }

    /// Deletes a topic by name or id and returns what it was.
    public func deleteTopic(name: String?, id: UUID?) throws -> TopicInfo {
        try mutate {
            let topic: TopicInfo
            if let name {
                guard let t = _image.topic(named: name) else { throw ControllerError.unknownTopic(name) }
                topic = t
            } else if let id {
                guard let t = _image.topic(id: id) else { throw ControllerError.unknownTopicId(id) }
                topic = t
            } else {
                throw ControllerError.invalidTopic("Neither a topic name nor a topic id was given.")
            }
            try commit([.removeTopic(topicId: topic.id)])
            logger.info("topic deleted", metadata: ["topic": "\(topic.name)"])
            return topic
        }
    }

    /// Grows a topic to `count` partitions.
    public func createPartitions(name: String, count: Int32, validateOnly: Bool) throws -> TopicInfo {
        try mutate {
            guard var topic = _image.topic(named: name) else { throw ControllerError.unknownTopic(name) }
            guard count > topic.partitionCount else {
                throw ControllerError.invalidPartitions(
                    "Topic currently has \(topic.partitionCount) partitions, which is higher than or equal to the requested \(count).")
            }
            guard count <= MetadataController.partitionsMax else {
                throw ControllerError.invalidPartitions("Number of partitions must be at most \(MetadataController.partitionsMax).")
            }
            let first = _image.nextStreamId
            let streamIds = (0..<UInt64(count - topic.partitionCount)).map { first + $0 }
            if !validateOnly {
                let grow = MetadataRecord.partitionCount(topicId: topic.id, count: count, streamIds: streamIds)
                var after = _image
                after.apply(grow)
                try commit([grow] + placements(for: streamIds, in: after))
            }
            topic.partitionCount = count
            topic.streamIds += streamIds
            return topic
        }
    }

    /// The one seam of every change: under the lock, and only on the ready leader, so that no
    /// validation runs against a follower's (possibly stale) image.
    func mutate<T>(_ body: () throws -> T) throws -> T {
        try lock.withLock {
            guard activeEpoch != nil else { throw notController() }
            return try body()
        }
    }

    /// Proposes records and applies them to the leader's image. Caller holds the lock.
    /// Throws NOT_CONTROLLER when this node is not the ready leader.
    func commit(_ new: [MetadataRecord]) throws {
        guard let epoch = activeEpoch else { throw notController() }
        switch quorum.propose(new.map(MetadataRecordSerde.encode), epoch: epoch) {
        case .success(let end):
            precondition(end == _image.nextOffset + Int64(new.count),
                         "proposal ends at \(end) but the leader's image is at \(_image.nextOffset)")
            for r in new { _image.apply(r) }
            proposedEndOffset = end
        case .failure:
            throw notController()
        }
    }

    func notController() -> ControllerError {
        let (leader, epoch) = quorum.leader
        return .notController(leader.map { "This controller is not the active one; the leader of epoch \(epoch) is node \($0)." }
            ?? "This controller is not the active one, and no leader is known (epoch \(epoch)).")
    }
}

/// The first reason the quorum gave for stopping, readable from any thread.
final class FatalReason: @unchecked Sendable {
    private let lock = NSLock()
    private var reason: String?
    func set(_ r: String) { lock.withLock { if reason == nil { reason = r } } }
    var value: String? { lock.withLock { reason } }
}
