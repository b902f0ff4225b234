import NIOCore
import SiltMetadata
import SiltProtocol
import SiltStorage

/// DescribeProducers (api key 61, KIP-664): the idempotent producers a partition's leader
/// remembers, read from its producer state (`ProducerStateTable`). As Kafka's leader answers:
///
///     unknown topic or partition       → UNKNOWN_TOPIC_OR_PARTITION
///     led by another broker, no leader → NOT_LEADER_OR_FOLLOWER
///     led here                         → each producer: id, epoch, last sequence, last
///                                        timestamp; coordinatorEpoch -1 and
///                                        currentTxnStartOffset -1 (no transactions yet)
extension Broker {
    func describeProducers(_ req: DescribeProducersRequest, _ r: Request) -> EventLoopFuture<DescribeProducersResponse?> {
        r.eventLoop.makeSucceededFuture(describeProducers(req, image: metadata.image))
    }

    func describeProducers(_ req: DescribeProducersRequest, image: MetadataImage) -> DescribeProducersResponse {
        var resp = DescribeProducersResponse()
        resp.topics = req.topics.map { t in
            var out = DescribeProducersResponse.TopicResponse()
            out.name = t.name
            out.partitions = t.partitionIndexes.map { index in
                var p = DescribeProducersResponse.PartitionResponse()
                p.partitionIndex = index
                switch ledPartition(t.name, index, image: image) {
                case .failure(let refusal):
                    p.errorCode = refusal.code
                    p.errorMessage = refusal.message
                case .success(let led):
                    p.activeProducers = led.log.producerStateSnapshot().producers.map { e in
                        var s = DescribeProducersResponse.ProducerState()
                        s.producerId = e.producerId
                        s.producerEpoch = Int32(e.epoch)
                        s.lastSequence = e.batches.last?.lastSequence ?? -1
                        s.lastTimestamp = e.lastTimestampMs
                        s.coordinatorEpoch = -1
                        s.currentTxnStartOffset = -1
                        return s
                    }
                }
                return p
            }
            return out
        }
        return resp
    }
}
