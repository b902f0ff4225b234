import Foundation
import NIOCore
import SiltProtocol

/// DescribeQuorum (KIP-595's admin view of `__cluster_metadata`), served by the controllers
/// and forwarded to them by brokers; `bin/kafka-metadata-quorum.sh` prints it.
///
/// Only the leader knows every voter's progress, so a follower answers
/// NOT_LEADER_OR_FOLLOWER and the asker tries the next controller (as KRaft does). The
/// observers are the brokers that follow the log (Fetch with replica id -1 and client id
/// `silt-broker-<id>`), with the offset they last fetched from and when.
extension ControllerService {
    /// A broker's last metadata fetch, for DescribeQuorum's observers.
    struct ObserverState: Equatable {
        var logEndOffset: Int64
        var lastFetchMs: Int64
    }

    /// Observers remembered at most (each entry is a few bytes; ids beyond this are not listed).
    static let observersMax = 1024
    static let brokerClientIdPrefix = "silt-broker-"

    /// Notes a metadata fetch by `clientId` at `fetchOffset` (only brokers are observers).
    func noteObserverFetch(clientId: String?, fetchOffset: Int64, nowMs: Int64 = MetadataController.wallClockMs()) {
        guard let clientId, clientId.hasPrefix(ControllerService.brokerClientIdPrefix),
              let id = Int32(clientId.dropFirst(ControllerService.brokerClientIdPrefix.count)), id >= 0 else { return }
        observerLock.withLock {
            guard observerStates[id] != nil || observerStates.count < ControllerService.observersMax else { return }
            observerStates[id] = ObserverState(logEndOffset: fetchOffset, lastFetchMs: nowMs)
        }
    }

    func describeQuorum(_ req: DescribeQuorumRequest) -> DescribeQuorumResponse {
        var resp = DescribeQuorumResponse()
        let (view, isLeader) = controller.quorum.describe()
        let observers = observerLock.withLock { observerStates }
        let caughtUpTo = view.highWatermark
        resp.topics = req.topics.map { t in
            var out = DescribeQuorumResponse.TopicData()
            out.topicName = t.topicName
            out.partitions = t.partitions.map { p in
                var pd = DescribeQuorumResponse.PartitionData()
                pd.partitionIndex = p.partitionIndex
                guard t.topicName == ControllerService.metadataTopic, p.partitionIndex == 0 else {
                    pd.errorCode = KafkaErrorCode.unknownTopicOrPartition
                    pd.errorMessage = "The metadata quorum is \(ControllerService.metadataTopic) partition 0."
                    return pd
                }
                pd.leaderId = view.leaderId
                pd.leaderEpoch = view.leaderEpoch
                guard isLeader else {
                    pd.errorCode = KafkaErrorCode.notLeaderOrFollower
                    pd.errorMessage = "Node \(config.nodeId) is not the quorum leader"
                        + (view.leaderId >= 0 ? "; node \(view.leaderId) is." : ".")
                    return pd
                }
                pd.highWatermark = view.highWatermark
                pd.currentVoters = view.voters.map { v in
                    var r = DescribeQuorumResponse.ReplicaState()
                    r.replicaId = v.replicaId
                    r.logEndOffset = v.logEndOffset
                    r.lastFetchTimestamp = v.lastFetchTimestampMs
                    r.lastCaughtUpTimestamp = v.lastCaughtUpTimestampMs
                    return r
                }
                pd.observers = observers.keys.sorted().map { id in
                    var o = DescribeQuorumResponse.ReplicaState()
                    o.replicaId = id
                    o.logEndOffset = observers[id]!.logEndOffset
                    o.lastFetchTimestamp = observers[id]!.lastFetchMs
                    o.lastCaughtUpTimestamp = observers[id]!.logEndOffset >= caughtUpTo ? observers[id]!.lastFetchMs : -1
                    return o
                }
                return pd
            }
            return out
        }
        // v2: the voters' endpoints on the controller listener.
        let listener = config.controllerListenerNames.first ?? "CONTROLLER"
        resp.nodes = config.quorumVoters.map { v in
            var node = DescribeQuorumResponse.Node()
            node.nodeId = v.id
            var l = DescribeQuorumResponse.Listener()
            l.name = listener
            l.host = v.host
            l.port = UInt16(clamping: v.port)
            node.listeners = [l]
            return node
        }
        return resp
    }

    /// DescribeCluster on the CONTROLLER listener (KIP-919): the cluster id, the active
    /// controller, and the voters' controller endpoints. Only endpoint type 2 (controllers).
    func describeCluster(_ req: DescribeClusterRequest) -> DescribeClusterResponse {
        var resp = DescribeClusterResponse()
        resp.endpointType = req.endpointType
        guard req.endpointType == 2 else {
            resp.errorCode = KafkaErrorCode.unsupportedEndpointType
            resp.errorMessage = "A controller describes the controllers (endpoint type 2); ask a broker for the brokers."
            return resp
        }
        resp.clusterId = controller.quorum.clusterId
        resp.controllerId = controller.quorum.leader.id ?? -1
        resp.brokers = config.quorumVoters.map { v in
            var b = DescribeClusterResponse.DescribeClusterBroker()
            b.brokerId = v.id
            b.host = v.host
            b.port = Int32(v.port)
            return b
        }
        return resp
    }
}
