/// Kafka's error codes, in one place: named constants for the codes Silt sends or reads, and
/// Kafka's whole `Errors` table for names (tools and messages print them). Kafka's message
/// specs carry no error codes, so this table is written from `Errors.java`'s numbering; a
/// test checks the constants against it.
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
    public static let coordinatorNotAvailable: Int16 = 15
    public static let notCoordinator: Int16 = 16
    public static let invalidTopic: Int16 = 17
    public static let invalidRequiredAcks: Int16 = 21
    public static let illegalGeneration: Int16 = 22
    public static let unknownMemberId: Int16 = 25
    public static let rebalanceInProgress: Int16 = 27
    public static let topicAuthorizationFailed: Int16 = 29
    public static let groupAuthorizationFailed: Int16 = 30
    public static let clusterAuthorizationFailed: Int16 = 31
    public static let invalidReplicaAssignment: Int16 = 39
    public static let unsupportedVersion: Int16 = 35
    public static let topicAlreadyExists: Int16 = 36
    public static let invalidPartitions: Int16 = 37
    public static let invalidReplicationFactor: Int16 = 38
    public static let invalidConfig: Int16 = 40
    public static let unsupportedSaslMechanism: Int16 = 33
    public static let notController: Int16 = 41
    public static let invalidRequest: Int16 = 42
    public static let policyViolation: Int16 = 44
    public static let transactionalIdAuthorizationFailed: Int16 = 53
    public static let securityDisabled: Int16 = 54
    public static let kafkaStorageError: Int16 = 56
    public static let nonEmptyGroup: Int16 = 68
    public static let groupIdNotFound: Int16 = 69
    public static let unknownProducerId: Int16 = 59
    public static let fetchSessionIdNotFound: Int16 = 70
    public static let topicDeletionDisabled: Int16 = 73
    public static let fencedLeaderEpoch: Int16 = 74
    public static let unknownLeaderEpoch: Int16 = 75
    public static let staleBrokerEpoch: Int16 = 77
    public static let memberIdRequired: Int16 = 79
    public static let preferredLeaderNotAvailable: Int16 = 80
    public static let eligibleLeadersNotAvailable: Int16 = 83
    public static let electionNotNeeded: Int16 = 84
    public static let noReassignmentInProgress: Int16 = 85
    public static let resourceNotFound: Int16 = 91
    public static let duplicateResource: Int16 = 92
    public static let unacceptableCredential: Int16 = 93
    public static let inconsistentVoterSet: Int16 = 94
    public static let invalidUpdateVersion: Int16 = 95
    public static let snapshotNotFound: Int16 = 98
    public static let positionOutOfRange: Int16 = 99
    public static let unknownTopicId: Int16 = 100
    public static let duplicateBrokerRegistration: Int16 = 101
    public static let brokerIdNotRegistered: Int16 = 102
    public static let inconsistentClusterId: Int16 = 104
    public static let fencedMemberEpoch: Int16 = 110
    public static let unreleasedInstanceId: Int16 = 111
    public static let unsupportedAssignor: Int16 = 112
    public static let staleMemberEpoch: Int16 = 113
    public static let unsupportedEndpointType: Int16 = 115
    public static let invalidRegularExpression: Int16 = 128

    /// Kafka's `Errors` name for a code (as its tools print it); codes Kafka does not know
    /// print as `UNKNOWN_SERVER_ERROR`, as `Errors.forCode` maps them.
    public static func name(_ code: Int16) -> String {
        guard code >= 0, Int(code) < names.count else { return "UNKNOWN_SERVER_ERROR" }
        return names[Int(code)]
    }

    /// Kafka's `Errors`, codes 0 through 133, in order (Kafka 4.1).
    public static let names: [String] = [
        "NONE", "OFFSET_OUT_OF_RANGE", "CORRUPT_MESSAGE", "UNKNOWN_TOPIC_OR_PARTITION", "INVALID_FETCH_SIZE",
        "LEADER_NOT_AVAILABLE", "NOT_LEADER_OR_FOLLOWER", "REQUEST_TIMED_OUT", "BROKER_NOT_AVAILABLE",
        "REPLICA_NOT_AVAILABLE", "MESSAGE_TOO_LARGE", "STALE_CONTROLLER_EPOCH", "OFFSET_METADATA_TOO_LARGE",
        "NETWORK_EXCEPTION", "COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR",
        "INVALID_TOPIC_EXCEPTION", "RECORD_LIST_TOO_LARGE", "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        "INVALID_REQUIRED_ACKS", "ILLEGAL_GENERATION", "INCONSISTENT_GROUP_PROTOCOL", "INVALID_GROUP_ID",
        "UNKNOWN_MEMBER_ID", "INVALID_SESSION_TIMEOUT", "REBALANCE_IN_PROGRESS", "INVALID_COMMIT_OFFSET_SIZE",
        "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
        "INVALID_TIMESTAMP", "UNSUPPORTED_SASL_MECHANISM", "ILLEGAL_SASL_STATE", "UNSUPPORTED_VERSION",
        "TOPIC_ALREADY_EXISTS", "INVALID_PARTITIONS", "INVALID_REPLICATION_FACTOR", "INVALID_REPLICA_ASSIGNMENT",
        "INVALID_CONFIG", "NOT_CONTROLLER", "INVALID_REQUEST", "UNSUPPORTED_FOR_MESSAGE_FORMAT", "POLICY_VIOLATION",
        "OUT_OF_ORDER_SEQUENCE_NUMBER", "DUPLICATE_SEQUENCE_NUMBER", "INVALID_PRODUCER_EPOCH", "INVALID_TXN_STATE",
        "INVALID_PRODUCER_ID_MAPPING", "INVALID_TRANSACTION_TIMEOUT", "CONCURRENT_TRANSACTIONS",
        "TRANSACTION_COORDINATOR_FENCED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "SECURITY_DISABLED",
        "OPERATION_NOT_ATTEMPTED", "KAFKA_STORAGE_ERROR", "LOG_DIR_NOT_FOUND", "SASL_AUTHENTICATION_FAILED",
        "UNKNOWN_PRODUCER_ID", "REASSIGNMENT_IN_PROGRESS", "DELEGATION_TOKEN_AUTH_DISABLED",
        "DELEGATION_TOKEN_NOT_FOUND", "DELEGATION_TOKEN_OWNER_MISMATCH", "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED",
        "DELEGATION_TOKEN_AUTHORIZATION_FAILED", "DELEGATION_TOKEN_EXPIRED", "INVALID_PRINCIPAL_TYPE",
        "NON_EMPTY_GROUP", "GROUP_ID_NOT_FOUND", "FETCH_SESSION_ID_NOT_FOUND", "INVALID_FETCH_SESSION_EPOCH",
        "LISTENER_NOT_FOUND", "TOPIC_DELETION_DISABLED", "FENCED_LEADER_EPOCH", "UNKNOWN_LEADER_EPOCH",
        "UNSUPPORTED_COMPRESSION_TYPE", "STALE_BROKER_EPOCH", "OFFSET_NOT_AVAILABLE", "MEMBER_ID_REQUIRED",
        "PREFERRED_LEADER_NOT_AVAILABLE", "GROUP_MAX_SIZE_REACHED", "FENCED_INSTANCE_ID",
        "ELIGIBLE_LEADERS_NOT_AVAILABLE", "ELECTION_NOT_NEEDED", "NO_REASSIGNMENT_IN_PROGRESS",
        "GROUP_SUBSCRIBED_TO_TOPIC", "INVALID_RECORD", "UNSTABLE_OFFSET_COMMIT", "THROTTLING_QUOTA_EXCEEDED",
        "PRODUCER_FENCED", "RESOURCE_NOT_FOUND", "DUPLICATE_RESOURCE", "UNACCEPTABLE_CREDENTIAL",
        "INCONSISTENT_VOTER_SET", "INVALID_UPDATE_VERSION", "FEATURE_UPDATE_FAILED",
        "PRINCIPAL_DESERIALIZATION_FAILURE", "SNAPSHOT_NOT_FOUND", "POSITION_OUT_OF_RANGE", "UNKNOWN_TOPIC_ID",
        "DUPLICATE_BROKER_REGISTRATION", "BROKER_ID_NOT_REGISTERED", "INCONSISTENT_TOPIC_ID",
        "INCONSISTENT_CLUSTER_ID", "TRANSACTIONAL_ID_NOT_FOUND", "FETCH_SESSION_TOPIC_ID_ERROR",
        "INELIGIBLE_REPLICA", "NEW_LEADER_ELECTED", "OFFSET_MOVED_TO_TIERED_STORAGE", "FENCED_MEMBER_EPOCH",
        "UNRELEASED_INSTANCE_ID", "UNSUPPORTED_ASSIGNOR", "STALE_MEMBER_EPOCH", "MISMATCHED_ENDPOINT_TYPE",
        "UNSUPPORTED_ENDPOINT_TYPE", "UNKNOWN_CONTROLLER_ID", "UNKNOWN_SUBSCRIPTION_ID", "TELEMETRY_TOO_LARGE",
        "INVALID_REGISTRATION", "TRANSACTION_ABORTABLE", "INVALID_RECORD_STATE", "SHARE_SESSION_NOT_FOUND",
        "INVALID_SHARE_SESSION_EPOCH", "FENCED_STATE_EPOCH", "INVALID_VOTER_KEY", "DUPLICATE_VOTER",
        "VOTER_NOT_FOUND", "INVALID_REGULAR_EXPRESSION", "REBOOTSTRAP_REQUIRED", "STREAMS_INVALID_TOPOLOGY",
        "STREAMS_INVALID_TOPOLOGY_EPOCH", "STREAMS_TOPOLOGY_FENCED", "SHARE_SESSION_LIMIT_REACHED",
    ]
}
