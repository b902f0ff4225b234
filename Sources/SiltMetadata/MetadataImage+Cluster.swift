import Foundation

/// One advertised listener of a registered broker.
public struct BrokerEndpoint: Codable, Equatable, Sendable {
    public var name: String
    public var host: String
    public var port: Int32
    /// Kafka's security protocol id (0 PLAINTEXT).
    public var securityProtocol: Int16
    public init(name: String, host: String, port: Int32, securityProtocol: Int16 = 0) {
        self.name = name; self.host = host; self.port = port; self.securityProtocol = securityProtocol
    }
}

/// A broker as the metadata log knows it.
///
/// Lifecycle (the controller writes every step; see `MetadataController+Cluster.swift`):
///
///     BrokerRegistration(fenced) ─heartbeat, caught up─▶ unfenced ─session timeout─▶ fenced
///            ▲                                              │                      │
///            └──────── a new incarnation registers ◀────────┴──── heartbeat ───────┘ (unfenced)
///
/// Invariant: `brokerEpoch` grows with every registration of a node, so a heartbeat or fence
/// record of an earlier registration is recognisably stale.
public struct BrokerRegistration: Codable, Equatable, Sendable {
    public var nodeId: Int32
    /// Random per broker process: a restart registers a new one.
    public var incarnationId: UUID
    public var brokerEpoch: Int64
    public var rack: String?
    public var listeners: [BrokerEndpoint]
    /// A fenced broker leads nothing: its partitions are offline until it is unfenced.
    public var fenced: Bool
    public init(nodeId: Int32, incarnationId: UUID, brokerEpoch: Int64, rack: String?, listeners: [BrokerEndpoint], fenced: Bool) {
        self.nodeId = nodeId; self.incarnationId = incarnationId; self.brokerEpoch = brokerEpoch; self.rack = rack
        self.listeners = listeners; self.fenced = fenced
    }
}

/// A partition's leadership. Object storage is the only replica, so `replicas` holds exactly
/// one broker: the one whose WAL may hold the partition's tail that is not yet in an object.
///
/// Invariants:
/// - `leader` is `replicas[0]` while that broker is unfenced, else -1 (offline). A partition is
///   never led by a broker other than its assigned one, so it is never reopened behind an
///   acknowledged tail that sits in another node's WAL.
/// - `leaderEpoch` grows with every change of `leader`, to and from -1 (what clients see).
/// - `streamEpoch` grows at every open of the stream and when `replicas` changes (the stream
///   changes owner); commits carrying another stream epoch are refused.
/// - `target`, while set, is the broker the partition moves to; it is never `replicas[0]`.
///   The move (see `MetadataController+Moves.swift`):
///
///       leader B1, target B2 ─B1 stops appends, commits the stream, ReleaseStreams─▶
///       leader B2 (or -1 while B2 is fenced), replicas [B2], leaderEpoch + 1, streamEpoch + 1,
///       target nil ─B2 opens the stream (OpenStreams: streamEpoch + 1)─▶ B2 serves
///
///   The release is one record, written only once the stream's committed end is the end B1
///   reached, so the stream never changes owner with an acknowledged tail in B1's WAL.
public struct PartitionLeadership: Codable, Equatable, Sendable {
    public var leader: Int32
    public var leaderEpoch: Int32
    public var replicas: [Int32]
    public var streamEpoch: Int64
    public var target: Int32?
    public init(leader: Int32, leaderEpoch: Int32, replicas: [Int32], streamEpoch: Int64, target: Int32? = nil) {
        self.leader = leader; self.leaderEpoch = leaderEpoch; self.replicas = replicas; self.streamEpoch = streamEpoch
        self.target = target
    }

    /// Whether a move away from the leader is in flight: it takes no appends meanwhile.
    public var isMoving: Bool { target != nil }
    public static let noLeader: Int32 = -1
}

extension MetadataImage {
    /// Unfenced brokers, by node id.
    public var unfencedBrokers: [BrokerRegistration] {
        brokers.values.filter { !$0.fenced }.sorted { $0.nodeId < $1.nodeId }
    }

    /// The leadership of partition `partition` of `topic`, nil when it has none recorded.
    public func leadership(topic: TopicInfo, partition: Int32) -> PartitionLeadership? {
        guard partition >= 0, partition < topic.partitionCount else { return nil }
        return partitions[topic.streamIds[Int(partition)]]
    }

    /// Whether node `nodeId` compacts `object` (stream-set and stream-object compaction, and
    /// the log cleaner, which all start from the objects a node may rewrite): every stream in it
    /// that has an assigned broker is assigned to `nodeId`. A node uploads only the streams
    /// assigned to it, so each object has one compacting node, and no stream is compacted on two
    /// nodes at once. Streams of deleted topics and of partitions not yet placed do not count.
    /// An object mixing two brokers' streams (possible once partitions move) is compacted by
    /// neither until its streams are back on one broker.
    public func isCompacted(by nodeId: Int32, _ object: CommittedObject) -> Bool {
        object.ranges.allSatisfy { r in partitions[r.streamId].map { $0.replicas.first == nodeId } ?? true }
    }

    /// Snapshot form: registrations, then one leadership record per partition (after the
    /// stream states, whose epochs it repeats).
    var clusterSnapshotRecords: [MetadataRecord] {
        brokers.keys.sorted().map { .brokerRegistration(brokers[$0]!) }
            + partitions.keys.sorted().map { .partitionLeader(streamId: $0, partitions[$0]!) }
    }

    mutating func applyClusterRecord(_ record: MetadataRecord) {
        switch record {
        case .brokerRegistration(let b):
            precondition(b.brokerEpoch > (brokers[b.nodeId]?.brokerEpoch ?? -1),
                         "metadata log: broker \(b.nodeId) registered in epoch \(b.brokerEpoch) after \(brokers[b.nodeId]!.brokerEpoch)")
            brokers[b.nodeId] = b
        case .brokerFence(let nodeId, let brokerEpoch, let fenced):
            precondition(brokers[nodeId]?.brokerEpoch == brokerEpoch,
                         "metadata log: fencing broker \(nodeId) epoch \(brokerEpoch), registered \(String(describing: brokers[nodeId]?.brokerEpoch))")
            brokers[nodeId]!.fenced = fenced
        case .unregisterBroker(let nodeId, let brokerEpoch):
            precondition(brokers[nodeId]?.brokerEpoch == brokerEpoch && brokers[nodeId]!.fenced,
                         "metadata log: unregistering broker \(nodeId) epoch \(brokerEpoch), registered \(String(describing: brokers[nodeId]))")
            precondition(!partitions.values.contains { $0.replicas[0] == nodeId || $0.target == nodeId },
                         "metadata log: unregistering broker \(nodeId), which still owns partitions")
            brokers[nodeId] = nil
        case .partitionLeader(let streamId, let p):
            precondition(streams[streamId] != nil, "metadata log: leader of unknown stream \(streamId)")
            precondition(p.replicas.count == 1 && (p.leader == PartitionLeadership.noLeader || p.leader == p.replicas[0]),
                         "metadata log: stream \(streamId) led by \(p.leader) with replicas \(p.replicas)")
            precondition(p.target != p.replicas[0], "metadata log: stream \(streamId) moving to its own broker \(p.replicas)")
            if let old = partitions[streamId] {
                precondition(p.leaderEpoch >= old.leaderEpoch && p.streamEpoch >= old.streamEpoch,
                             "metadata log: stream \(streamId) leadership goes back from \(old) to \(p)")
            }
            precondition(p.streamEpoch >= streamStates[streamId]!.epoch,
                         "metadata log: stream \(streamId) epoch goes back to \(p.streamEpoch)")
            partitions[streamId] = p
            streamStates[streamId]!.epoch = p.streamEpoch
        default:
            preconditionFailure("not a cluster record: \(record)")
        }
    }
}
