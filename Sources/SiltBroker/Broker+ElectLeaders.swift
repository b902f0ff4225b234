import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol

/// ElectLeaders (api key 43), answered as Kafka's controller answers it, for partitions of
/// one replica each.
///
/// Silt places every partition on one broker, which is its only and so its preferred
/// replica; the controller makes that broker leader whenever it is unfenced. There is never
/// another replica to elect, so the answer is read from this broker's metadata copy through
/// the partition seam (`ledPartition`) and writes nothing:
///
///     unknown topic                    → UNKNOWN_TOPIC_OR_PARTITION "No such topic as T"
///     unknown partition                → UNKNOWN_TOPIC_OR_PARTITION "No such partition as T-P"
///     has its leader (here or elsewhere) → ELECTION_NOT_NEEDED
///     offline (its broker is fenced)   → PREFERRED_LEADER_NOT_AVAILABLE (election type 0, preferred)
///                                        ELIGIBLE_LEADERS_NOT_AVAILABLE (election type 1, unclean)
///     election type other than 0 or 1  → INVALID_REQUEST for the request and every partition
///
/// With no partitions named (a null list) every partition of every topic is considered and,
/// as Kafka does, those answering ELECTION_NOT_NEEDED are left out.
extension Broker {
    static let electionTypePreferred: Int8 = 0
    static let electionTypeUnclean: Int8 = 1

    func electLeaders(_ req: ElectLeadersRequest, _ r: Request) -> EventLoopFuture<ElectLeadersResponse?> {
        r.eventLoop.makeSucceededFuture(electLeaders(req, image: metadata.image))
    }

    func electLeaders(_ req: ElectLeadersRequest, image: MetadataImage) -> ElectLeadersResponse {
        typealias TopicResult = ElectLeadersResponse.ReplicaElectionResult
        typealias PartitionResult = ElectLeadersResponse.PartitionResult
        func result(_ partition: Int32, _ code: Int16, _ message: String?) -> PartitionResult {
            var p = PartitionResult()
            p.partitionId = partition
            p.errorCode = code
            p.errorMessage = message
            return p
        }
        var resp = ElectLeadersResponse()
        guard req.electionType == Broker.electionTypePreferred || req.electionType == Broker.electionTypeUnclean else {
            let message = "Unknown election type \(req.electionType)"
            resp.errorCode = ErrorCode.invalidRequest
            resp.replicaElectionResults = (req.topicPartitions ?? []).map { t in
                var out = TopicResult()
                out.topic = t.topic
                out.partitionResult = t.partitions.map { result($0, ErrorCode.invalidRequest, message) }
                return out
            }
            return resp
        }
        if let named = req.topicPartitions {
            resp.replicaElectionResults = named.map { t in
                var out = TopicResult()
                out.topic = t.topic
                out.partitionResult = t.partitions.map { p in
                    let (code, message) = election(t.topic, p, type: req.electionType, image: image)
                    return result(p, code, message)
                }
                return out
            }
        } else {
            resp.replicaElectionResults = image.topicsByName.keys.sorted().map { name in
                var out = TopicResult()
                out.topic = name
                let count = image.topic(named: name)!.partitionCount
                out.partitionResult = (0..<count).compactMap { p in
                    let (code, message) = election(name, p, type: req.electionType, image: image)
                    return code == ErrorCode.electionNotNeeded ? nil : result(p, code, message)
                }
                return out
            }
        }
        return resp
    }

    /// One partition's answer: its error code and message.
    func election(_ topic: String, _ partition: Int32, type: Int8, image: MetadataImage) -> (Int16, String?) {
        switch ledPartition(topic, partition, image: image) {
        case .success:
            return (ErrorCode.electionNotNeeded, nil)
        case .failure(let refusal) where refusal.code == ErrorCode.unknownTopicOrPartition:
            return image.topic(named: topic) == nil
                ? (ErrorCode.unknownTopicOrPartition, "No such topic as \(topic)")
                : (ErrorCode.unknownTopicOrPartition, "No such partition as \(topic)-\(partition)")
        case .failure(let refusal):
            // Not led here: led elsewhere (it has its leader), led here but not serving yet
            // (opening, session lapsed: still its leader), or offline.
            let info = image.topic(named: topic)!
            if let l = image.leadership(topic: info, partition: partition), l.leader != PartitionLeadership.noLeader {
                return (ErrorCode.electionNotNeeded, nil)
            }
            let code = type == Broker.electionTypePreferred ? ErrorCode.preferredLeaderNotAvailable
                                                            : ErrorCode.eligibleLeadersNotAvailable
            return (code, refusal.message)
        }
    }
}
