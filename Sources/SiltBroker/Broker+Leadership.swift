import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol
import SiltStorage

/// The one seam every partition request goes through: is this broker the partition's
/// leader, in the epoch the client believes in, with its session alive?
///
/// Produce, Fetch, ListOffsets, OffsetForLeaderEpoch and DeleteRecords all call
/// `ledPartition`; none of them checks leadership on its own. Refusals follow Kafka:
///
///     unknown topic or partition                      → UNKNOWN_TOPIC_OR_PARTITION
///     led by another broker, offline, or not open yet  → NOT_LEADER_OR_FOLLOWER (+ the leader, KIP-951)
///     moving away from this broker                     → NOT_LEADER_OR_FOLLOWER (+ the target, next epoch)
///     this broker's session with the controller lapsed → NOT_LEADER_OR_FOLLOWER
///     client's leader epoch < ours                      → FENCED_LEADER_EPOCH
///     client's leader epoch > ours                      → UNKNOWN_LEADER_EPOCH
extension Broker {
    /// A partition this broker leads, with its open log.
    struct LedPartition {
        let topic: TopicInfo
        let log: StreamLog
        let leaderEpoch: Int32
    }

    /// Why a partition request is refused here, and who leads instead (when anyone does).
    struct PartitionRefusal: Error {
        let code: Int16
        let message: String
        /// The current leader and its epoch, for KIP-951's CurrentLeader fields; nil when unknown.
        let leader: (id: Int32, epoch: Int32)?
    }

    /// The partition `partition` of topic `name` if this broker leads it. `currentLeaderEpoch`
    /// is the client's (-1: not given).
    func ledPartition(_ name: String, _ partition: Int32, image: MetadataImage,
                      currentLeaderEpoch: Int32 = -1) -> Result<LedPartition, PartitionRefusal> {
        guard let topic = image.topic(named: name), partition >= 0, partition < topic.partitionCount else {
            return .failure(PartitionRefusal(code: ErrorCode.unknownTopicOrPartition,
                                             message: "This server does not host this topic-partition.", leader: nil))
        }
        guard let leadership = image.leadership(topic: topic, partition: partition) else {
            return .failure(PartitionRefusal(code: ErrorCode.notLeaderOrFollower,
                                             message: "The partition has no leader yet.", leader: nil))
        }
        guard leadership.leader == nodeId else {
            let leader = leadership.leader >= 0 ? (leadership.leader, leadership.leaderEpoch) : nil
            return .failure(PartitionRefusal(
                code: ErrorCode.notLeaderOrFollower,
                message: leadership.leader >= 0 ? "Broker \(leadership.leader) leads this partition."
                    : "The partition is offline: its broker \(leadership.replicas.first ?? -1) is fenced.",
                leader: leader))
        }
        if let target = leadership.target {
            return .failure(PartitionRefusal(
                code: ErrorCode.notLeaderOrFollower,
                message: "The partition is moving to broker \(target).", leader: (target, leadership.leaderEpoch + 1)))
        }
        if currentLeaderEpoch >= 0 && currentLeaderEpoch < leadership.leaderEpoch {
            return .failure(PartitionRefusal(code: ErrorCode.fencedLeaderEpoch,
                                             message: "Leader epoch \(currentLeaderEpoch) is older than \(leadership.leaderEpoch).",
                                             leader: (nodeId, leadership.leaderEpoch)))
        }
        if currentLeaderEpoch > leadership.leaderEpoch {
            return .failure(PartitionRefusal(code: ErrorCode.unknownLeaderEpoch,
                                             message: "Leader epoch \(currentLeaderEpoch) is newer than this broker's \(leadership.leaderEpoch).",
                                             leader: nil))
        }
        guard lifecycle.hasLiveSession else {
            return .failure(PartitionRefusal(
                code: ErrorCode.notLeaderOrFollower,
                message: "This broker has not reached the controller within broker.session.timeout.ms; it takes no requests for its partitions.",
                leader: nil))
        }
        guard let log = logs.partition(topic: name, partition: partition), !isLoading(log.streamId) else {
            return .failure(PartitionRefusal(code: ErrorCode.notLeaderOrFollower,
                                             message: "This broker is still opening the partition.", leader: nil))
        }
        return .success(LedPartition(topic: topic, log: log, leaderEpoch: leadership.leaderEpoch))
    }

    /// The brokers a response names (Metadata, DescribeCluster, KIP-951's NodeEndpoints): the
    /// unfenced ones, each at its listener named `listenerName` (else its first).
    func liveBrokerEndpoints(_ image: MetadataImage, listenerName: String) -> [(id: Int32, host: String, port: Int32, rack: String?)] {
        image.unfencedBrokers.compactMap { b in
            guard let l = b.listeners.first(where: { $0.name == listenerName }) ?? b.listeners.first else { return nil }
            return (b.nodeId, l.host, l.port, b.rack)
        }
    }
}
