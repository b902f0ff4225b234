import Foundation
import NIOCore
import SiltProtocol

/// DescribeQuorum (KIP-595's admin view of `__cluster_metadata`), served by the controller
/// and forwarded to it by brokers; `bin/kafka-metadata-quorum.sh` prints it.
///
/// Today the quorum is this controller alone (`ServerConfig.quorumVotersMax`): it is the
/// leader of epoch 0 for ever, every record is committed once it is fsynced, so the high
/// watermark is the log end and the one voter is always caught up. The observers are the
/// brokers that follow the log (Fetch with replica id -1 and client id `silt-broker-<id>`),
/// with the offset they last fetched from and when.
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

    func describeQuorum(_ req: DescribeQuorumRequest, nowMs: Int64 = MetadataController.wallClockMs()) -> DescribeQuorumResponse {
        var resp = DescribeQuorumResponse()
        let logEnd = controller.image.nextOffset
        let observers = observerLock.withLock { observerStates }
        let voter = config.quorumVoters.first { $0.id == config.nodeId }
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
                pd.leaderId = config.nodeId
                pd.leaderEpoch = 0
                pd.highWatermark = logEnd
                var me = DescribeQuorumResponse.ReplicaState()
                me.replicaId = config.nodeId
                me.logEndOffset = logEnd
                me.lastFetchTimestamp = nowMs
                me.lastCaughtUpTimestamp = nowMs
                pd.currentVoters = [me]
                pd.observers = observers.keys.sorted().map { id in
                    var o = DescribeQuorumResponse.ReplicaState()
                    o.replicaId = id
                    o.logEndOffset = observers[id]!.logEndOffset
                    o.lastFetchTimestamp = observers[id]!.lastFetchMs
                    o.lastCaughtUpTimestamp = observers[id]!.logEndOffset >= logEnd ? observers[id]!.lastFetchMs : -1
                    return o
                }
                return pd
            }
            return out
        }
        // v2: the voters' endpoints on the controller listener.
        if let voter {
            var node = DescribeQuorumResponse.Node()
            node.nodeId = voter.id
            var l = DescribeQuorumResponse.Listener()
            l.name = config.controllerListenerNames.first ?? "CONTROLLER"
            l.host = voter.host
            l.port = UInt16(clamping: voter.port)
            node.listeners = [l]
            resp.nodes = [node]
        }
        return resp
    }
}
