import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol

/// Partition moves on the controller's listener: Kafka's AlterPartitionReassignments and
/// ListPartitionReassignments (forwarded by brokers), and Silt's ReleaseStreams.
extension ControllerService {
    /// A refusal as Kafka's error code and message (a `ControllerError`, else UNKNOWN_SERVER_ERROR).
    static func refusal(_ error: Error) -> (Int16, String?) {
        if let e = error as? ControllerError { return (e.kafkaErrorCode, e.description) }
        return (KafkaErrorCode.unknownServerError, "\(error)")
    }

    func alterPartitionReassignments(_ req: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
        var resp = AlterPartitionReassignmentsResponse()
        let flat = req.topics.flatMap { t in
            t.partitions.map { MetadataController.ReassignmentRequest(topic: t.name, partition: $0.partitionIndex, replicas: $0.replicas) }
        }
        let results: [Result<Void, ControllerError>]
        do {
            results = try controller.reassign(flat)
        } catch {
            (resp.errorCode, resp.errorMessage) = Self.refusal(error)
            return resp
        }
        var i = 0
        resp.responses = req.topics.map { t in
            var out = AlterPartitionReassignmentsResponse.ReassignableTopicResponse()
            out.name = t.name
            out.partitions = t.partitions.map { p in
                var r = AlterPartitionReassignmentsResponse.ReassignablePartitionResponse()
                r.partitionIndex = p.partitionIndex
                if case .failure(let e) = results[i] {
                    r.errorCode = e.kafkaErrorCode
                    r.errorMessage = e.description
                }
                i += 1
                return r
            }
            return out
        }
        return resp
    }

    func listPartitionReassignments(_ req: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
        var resp = ListPartitionReassignmentsResponse()
        let wanted = req.topics.map { Dictionary($0.map { ($0.name, $0.partitionIndexes) }, uniquingKeysWith: +) }
        let moves = controller.reassignments(topics: wanted)
        let byTopic = Dictionary(grouping: moves, by: \.topic)
        resp.topics = byTopic.keys.sorted().map { name in
            var t = ListPartitionReassignmentsResponse.OngoingTopicReassignment()
            t.name = name
            t.partitions = byTopic[name]!.map { m in
                var p = ListPartitionReassignmentsResponse.OngoingPartitionReassignment()
                p.partitionIndex = m.partition
                p.replicas = [m.from, m.to]
                p.addingReplicas = [m.to]
                p.removingReplicas = [m.from]
                return p
            }
            return t
        }
        return resp
    }

    func releaseStreams(_ req: ReleaseStreamsRequest) -> ReleaseStreamsResponse {
        var resp = ReleaseStreamsResponse()
        let streams = req.streams.map { (streamId: UInt64(bitPattern: $0.streamId), endOffset: $0.endOffset) }
        do {
            let results = try controller.releaseStreams(nodeId: req.nodeId, brokerEpoch: req.brokerEpoch, streams: streams)
            resp.streams = streams.map { s in
                var r = ReleaseStreamsResponse.ReleaseStreamResult()
                r.streamId = Int64(bitPattern: s.streamId)
                switch results[s.streamId]! {
                case .success(let leader): r.newLeader = leader
                case .failure(let e):
                    r.errorCode = e.kafkaErrorCode
                    r.errorMessage = e.description
                }
                return r
            }
        } catch {
            (resp.errorCode, resp.errorMessage) = Self.refusal(error)
        }
        return resp
    }

    func takeOverNode(_ req: TakeOverNodeRequest) -> TakeOverNodeResponse {
        var resp = TakeOverNodeResponse()
        do {
            resp.partitionsMoved = Int32(try controller.takeOverNode(req.nodeId, nodeEpoch: req.nodeEpoch).count)
            logger.info("WAL takeover", metadata: ["taker": "\(req.takerId)", "node": "\(req.nodeId)",
                                                   "partitions": "\(resp.partitionsMoved)"])
        } catch {
            (resp.errorCode, resp.errorMessage) = Self.refusal(error)
        }
        return resp
    }
}
