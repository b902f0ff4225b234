/// Kafka error codes the broker returns itself (Kafka's `Errors` numbering). Record batch and
/// storage errors carry their own codes (`RecordBatchError`, `StorageError`, `ControllerError`).
enum ErrorCode {
    static let unknownServerError: Int16 = -1
    static let offsetOutOfRange: Int16 = 1
    static let corruptMessage: Int16 = 2
    static let unknownTopicOrPartition: Int16 = 3
    static let leaderNotAvailable: Int16 = 5
    static let requestTimedOut: Int16 = 7
    static let coordinatorLoadInProgress: Int16 = 14
    static let invalidTopic: Int16 = 17
    static let invalidRequiredAcks: Int16 = 21
    static let unsupportedVersion: Int16 = 35
    static let invalidRequest: Int16 = 42
    static let policyViolation: Int16 = 44
    static let kafkaStorageError: Int16 = 56
    static let unknownProducerId: Int16 = 59
    static let fetchSessionIdNotFound: Int16 = 70
    static let unknownLeaderEpoch: Int16 = 75
    static let unknownTopicId: Int16 = 100
}
