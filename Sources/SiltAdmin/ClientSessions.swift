import Foundation
import SiltProtocol

/// The connections of a client tool (console producer and consumer, kafka-consumer-groups)
/// that talks to more than one broker: the bootstrap session for metadata, one session per
/// partition leader, and one per group coordinator, each opened on first use and kept.
///
///     bootstrap ──Metadata──▶ leaders by node id ──▶ sessions[nodeId] (Produce, Fetch, ListOffsets)
///               ──FindCoordinator(group)──────────▶ sessions[nodeId] (group APIs)
///
/// Bounded by the cluster: at most one session per broker.
public final class ClientSessions {
    public let bootstrap: AdminSession
    private let clientId: String
    private var sessions: [Int32: AdminSession] = [:]
    /// The coordinator's node id of each group asked about.
    public private(set) var coordinatorIds: [String: Int32] = [:]
    /// The brokers of the last Metadata answer, by node id.
    private var brokers: [Int32: MetadataQuorum.HostPort] = [:]

    public init(_ addresses: [MetadataQuorum.HostPort], clientId: String) throws {
        self.bootstrap = try AdminSession.connect(addresses, clientId: clientId)
        self.clientId = clientId
    }

    public func close() {
        for s in sessions.values { s.close() }
        sessions = [:]
        bootstrap.close()
    }

    /// One topic's partitions and their leaders, as a client sees them.
    public struct TopicLayout: Equatable, Sendable {
        public var name: String
        public var topicId: KafkaUUID
        /// Leader node id by partition index; -1 while a partition has none.
        public var leaders: [Int32: Int32]
        public var partitions: [Int32] { leaders.keys.sorted() }
    }

    /// Metadata for `topics` (every topic when nil), never creating one. Topics that do not
    /// exist are left out; other per-topic errors throw.
    public func layout(_ topics: [String]?) throws -> [String: TopicLayout] {
        var req = MetadataRequest()
        req.topics = topics.map { names in
            names.map { n in
                var t = MetadataRequest.MetadataRequestTopic()
                t.name = n
                return t
            }
        }
        req.allowAutoTopicCreation = false
        let meta = try bootstrap.send(req)
        for b in meta.brokers { brokers[b.nodeId] = .init(host: b.host, port: Int(b.port)) }
        var out: [String: TopicLayout] = [:]
        for t in meta.topics {
            guard let name = t.name else { continue }
            if t.errorCode == KafkaErrorCode.unknownTopicOrPartition { continue }
            if t.errorCode != 0 { throw AdminSession.Failure("Topic '\(name)': \(KafkaErrorCode.name(t.errorCode))") }
            out[name] = TopicLayout(name: name, topicId: t.topicId,
                                    leaders: Dictionary(t.partitions.map { ($0.partitionIndex, $0.leaderId) },
                                                        uniquingKeysWith: { a, _ in a }))
        }
        return out
    }

    /// The session to broker `nodeId` (the bootstrap one when it is that broker).
    public func session(node nodeId: Int32) throws -> AdminSession {
        if let s = sessions[nodeId] { return s }
        guard let address = brokers[nodeId] else {
            throw AdminSession.Failure("broker \(nodeId) is not in the cluster's metadata (partition offline?)")
        }
        let s = address == bootstrap.address ? bootstrap : try AdminSession.connect([address], clientId: clientId)
        if s !== bootstrap { sessions[nodeId] = s }
        return s
    }

    /// FindCoordinator attempts while the coordinator is not available yet (the broker
    /// creates `__consumer_offsets` on the first ask) or loading, `coordinatorRetryMs` apart.
    static let coordinatorAttemptsMax = 50
    static let coordinatorRetryMs = 200

    /// The session to `group`'s coordinator (FindCoordinator at the bootstrap broker).
    public func coordinator(_ group: String) throws -> AdminSession {
        var req = FindCoordinatorRequest()
        req.key = group
        req.keyType = 0
        req.coordinatorKeys = [group]
        var attempt = 0
        var answer: (Int16, Int32, String, Int32)
        repeat {
            if attempt > 0 { Thread.sleep(forTimeInterval: Double(Self.coordinatorRetryMs) / 1000) }
            attempt += 1
            let resp = try bootstrap.send(req)
            // v4+ answers in `coordinators`; older versions in the top-level fields.
            answer = resp.coordinators.first.map { ($0.errorCode, $0.nodeId, $0.host, $0.port) }
                ?? (resp.errorCode, resp.nodeId, resp.host, resp.port)
        } while (answer.0 == KafkaErrorCode.coordinatorNotAvailable || answer.0 == KafkaErrorCode.coordinatorLoadInProgress)
            && attempt < Self.coordinatorAttemptsMax
        let (code, nodeId, host, port) = answer
        guard code == 0 else {
            throw AdminSession.Failure("FindCoordinator for group '\(group)' failed with \(KafkaErrorCode.name(code))")
        }
        coordinatorIds[group] = nodeId
        if brokers[nodeId] == nil { brokers[nodeId] = .init(host: host, port: Int(port)) }
        return try session(node: nodeId)
    }

    /// The offset of each partition at `timestamp` (-2 earliest, -1 latest), asking each
    /// partition's leader.
    public func listOffsets(_ partitions: [(topic: String, partition: Int32)], timestamp: Int64,
                            layouts: [String: TopicLayout]) throws -> [PartitionKey: Int64] {
        var byLeader: [Int32: [(String, Int32)]] = [:]
        for (t, p) in partitions {
            guard let leader = layouts[t]?.leaders[p], leader >= 0 else {
                throw AdminSession.Failure("Partition \(t)-\(p) has no leader")
            }
            byLeader[leader, default: []].append((t, p))
        }
        var out: [PartitionKey: Int64] = [:]
        for (leader, parts) in byLeader {
            var req = ListOffsetsRequest()
            req.replicaId = -1
            req.topics = Dictionary(grouping: parts, by: \.0).map { topic, ps in
                var t = ListOffsetsRequest.ListOffsetsTopic()
                t.name = topic
                t.partitions = ps.map { _, p in
                    var lp = ListOffsetsRequest.ListOffsetsPartition()
                    lp.partitionIndex = p
                    lp.timestamp = timestamp
                    return lp
                }
                return t
            }
            let resp = try session(node: leader).send(req)
            for t in resp.topics {
                for p in t.partitions {
                    guard p.errorCode == 0 else {
                        throw AdminSession.Failure("ListOffsets \(t.name)-\(p.partitionIndex): \(KafkaErrorCode.name(p.errorCode))")
                    }
                    out[PartitionKey(t.name, p.partitionIndex)] = p.offset
                }
            }
        }
        return out
    }
}

/// A topic partition, as the client tools key their maps (`t-0`, Kafka's order).
public typealias PartitionKey = KafkaReassignPartitions.TopicPartition
