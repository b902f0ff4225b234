#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors of the storage layer. Operating errors are thrown; broken invariants are preconditions.
public enum StorageError: Error, Equatable, CustomStringConvertible {
    /// A system call failed. Kafka: KAFKA_STORAGE_ERROR (56).
    case io(errno: Int32, operation: String, path: String)
    /// The partition was deleted or its store shut down. Kafka: UNKNOWN_TOPIC_OR_PARTITION (3).
    case closed(topic: String, partition: Int32)
    /// The partition is moving to another broker: this one stopped taking appends.
    /// Kafka: NOT_LEADER_OR_FOLLOWER (6), which clients retry at the new leader.
    case released(topic: String, partition: Int32)
    /// One batch larger than the partition's largest batch (`maxBatchBytes`). Kafka: MESSAGE_TOO_LARGE (10).
    case batchTooLarge(sizeBytes: Int, maxBytes: Int)
    /// A topic name or partition number that cannot be a directory name. Kafka: INVALID_TOPIC_EXCEPTION (17).
    case invalidTopic(String)

    public var kafkaErrorCode: Int16 {
        switch self {
        case .io: return 56
        case .closed: return 3
        case .released: return 6
        case .batchTooLarge: return 10
        case .invalidTopic: return 17
        }
    }

    public var description: String {
        switch self {
        case let .io(errno, operation, path):
            return "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
        case let .closed(topic, partition):
            return "partition \(topic)-\(partition) is closed"
        case let .released(topic, partition):
            return "partition \(topic)-\(partition) is moving to another broker"
        case let .batchTooLarge(size, max):
            return "batch of \(size) bytes exceeds maxBatchBytes \(max)"
        case let .invalidTopic(reason):
            return "invalid topic: \(reason)"
        }
    }
}
