/// Kafka's error codes (Kafka's `Errors` numbering) that Silt sends or reads, in one place,
/// with Kafka's names for messages and tools.
public enum KafkaErrorCode {
    public static let unknownServerError: Int16 = -1
    public static let none: Int16 = 0
    public static let offsetOutOfRange: Int16 = 1
    public static let corruptMessage: Int16 = 2
    public static let unknownTopicOrPartition: Int16 = 3
    public static let leaderNotAvailable: Int16 = 5
    public static let notLeaderOrFollower: Int16 = 6
    public static let requestTimedOut: Int16 = 7
    public static let coordinatorLoadInProgress: Int16 = 14
    public static let invalidTopic: Int16 = 17
    public static let invalidRequiredAcks: Int16 = 21
    public static let unsupportedVersion: Int16 = 35
    public static let notController: Int16 = 41
    public static let invalidRequest: Int16 = 42
    public static let policyViolation: Int16 = 44
    public static let kafkaStorageError: Int16 = 56
    public static let unknownProducerId: Int16 = 59
    public static let fetchSessionIdNotFound: Int16 = 70
    public static let fencedLeaderEpoch: Int16 = 74
    public static let unknownLeaderEpoch: Int16 = 75
    public static let inconsistentVoterSet: Int16 = 94
    public static let invalidUpdateVersion: Int16 = 95
    public static let snapshotNotFound: Int16 = 98
    public static let positionOutOfRange: Int16 = 99
    public static let unknownTopicId: Int16 = 100
    public static let inconsistentClusterId: Int16 = 104

    /// Kafka's name for `code` (as its tools print it), or "UNKNOWN(code)".
    public static func name(_ code: Int16) -> String {
        switch code {
        case unknownServerError: return "UNKNOWN_SERVER_ERROR"
        case none: return "NONE"
        case offsetOutOfRange: return "OFFSET_OUT_OF_RANGE"
        case corruptMessage: return "CORRUPT_MESSAGE"
        case unknownTopicOrPartition: return "UNKNOWN_TOPIC_OR_PARTITION"
        case leaderNotAvailable: return "LEADER_NOT_AVAILABLE"
        case notLeaderOrFollower: return "NOT_LEADER_OR_FOLLOWER"
        case requestTimedOut: return "REQUEST_TIMED_OUT"
        case coordinatorLoadInProgress: return "COORDINATOR_LOAD_IN_PROGRESS"
        case invalidTopic: return "INVALID_TOPIC_EXCEPTION"
        case invalidRequiredAcks: return "INVALID_REQUIRED_ACKS"
        case unsupportedVersion: return "UNSUPPORTED_VERSION"
        case notController: return "NOT_CONTROLLER"
        case invalidRequest: return "INVALID_REQUEST"
        case policyViolation: return "POLICY_VIOLATION"
        case kafkaStorageError: return "KAFKA_STORAGE_ERROR"
        case unknownProducerId: return "UNKNOWN_PRODUCER_ID"
        case fetchSessionIdNotFound: return "FETCH_SESSION_ID_NOT_FOUND"
        case fencedLeaderEpoch: return "FENCED_LEADER_EPOCH"
        case unknownLeaderEpoch: return "UNKNOWN_LEADER_EPOCH"
        case inconsistentVoterSet: return "INCONSISTENT_VOTER_SET"
        case invalidUpdateVersion: return "INVALID_UPDATE_VERSION"
        case snapshotNotFound: return "SNAPSHOT_NOT_FOUND"
        case positionOutOfRange: return "POSITION_OUT_OF_RANGE"
        case unknownTopicId: return "UNKNOWN_TOPIC_ID"
        case inconsistentClusterId: return "INCONSISTENT_CLUSTER_ID"
        default: return "UNKNOWN(\(code))"
        }
    }
}
