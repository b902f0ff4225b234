/// Kafka error codes the broker returns (Kafka's `Errors` numbering).
enum ErrorCode {
    static let none: Int16 = 0
    static let unknownServerError: Int16 = -1
    static let offsetOutOfRange: Int16 = 1
    static let corruptMessage: Int16 = 2
    static let unknownTopicOrPartition: Int16 = 3
    static let leaderNotAvailable: Int16 = 5
    static let requestTimedOut: Int16 = 7
    static let messageTooLarge: Int16 = 10
    static let invalidTopic: Int16 = 17
    static let invalidRequiredAcks: Int16 = 21
    static let invalidTimestamp: Int16 = 32
    static let unsupportedVersion: Int16 = 35
    static let invalidRequest: Int16 = 42
    static let unsupportedForMessageFormat: Int16 = 43
    static let kafkaStorageError: Int16 = 56
    static let unknownProducerId: Int16 = 59
    static let fetchSessionIdNotFound: Int16 = 70
    static let fencedLeaderEpoch: Int16 = 74
    static let unknownLeaderEpoch: Int16 = 75
    static let invalidRecord: Int16 = 87
    static let unknownTopicId: Int16 = 100
    static let transactionalIdAuthorizationFailed: Int16 = 53
}
