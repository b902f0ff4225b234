#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors of the storage layer. Operating errors are thrown; broken invariants are preconditions.
public enum StorageError: Error, Equatable, CustomStringConvertible {
    /// A read or lookup at an offset outside [logStartOffset, highWatermark]. Kafka: OFFSET_OUT_OF_RANGE (1).
    case offsetOutOfRange(offset: Int64, logStartOffset: Int64, highWatermark: Int64)
    /// A system call failed. Kafka: KAFKA_STORAGE_ERROR (56).
    case io(errno: Int32, operation: String, path: String)
    /// Bytes on disk that do not form valid batches where valid batches must be. Kafka: KAFKA_STORAGE_ERROR (56).
    case corrupt(path: String, positionBytes: Int, reason: String)
    /// The partition stopped accepting appends after a failed fsync (or a failed rollback of a failed
    /// write): the page cache can no longer be trusted. Reads up to the high watermark still work;
    /// restart (recovery) brings it back. Kafka: KAFKA_STORAGE_ERROR (56).
    case offline(topic: String, partition: Int32, cause: String)
    /// The partition was deleted or the log manager shut down. Kafka: UNKNOWN_TOPIC_OR_PARTITION (3).
    case closed(topic: String, partition: Int32)
    /// One batch larger than `StorageConfig.maxBatchBytes`. Kafka: MESSAGE_TOO_LARGE (10).
    case batchTooLarge(sizeBytes: Int, maxBytes: Int)
    /// A topic name or partition number that cannot be a directory name. Kafka: INVALID_TOPIC_EXCEPTION (17).
    case invalidTopic(String)

    public var kafkaErrorCode: Int16 {
        switch self {
        case .offsetOutOfRange: return 1
        case .io, .corrupt, .offline: return 56
        case .closed: return 3
        case .batchTooLarge: return 10
        case .invalidTopic: return 17
        }
    }

    public var description: String {
        switch self {
        case let .offsetOutOfRange(offset, start, hw):
            return "offset \(offset) out of range [\(start), \(hw)]"
        case let .io(errno, operation, path):
            return "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
        case let .corrupt(path, position, reason):
            return "corrupt log \(path) at byte \(position): \(reason)"
        case let .offline(topic, partition, cause):
            return "partition \(topic)-\(partition) is offline: \(cause)"
        case let .closed(topic, partition):
            return "partition \(topic)-\(partition) is closed"
        case let .batchTooLarge(size, max):
            return "batch of \(size) bytes exceeds maxBatchBytes \(max)"
        case let .invalidTopic(reason):
            return "invalid topic: \(reason)"
        }
    }
}

/// Where `StorageConfig.faultInjector` can make a system call fail (tests only; nil in production).
public enum StorageFaultPoint: Sendable, Equatable {
    /// The segment write. The injected failure happens after HALF the bytes were really written,
    /// to exercise the rollback of a partial write.
    case write
    /// fdatasync of a segment file.
    case fsync
    /// fsync of a partition directory.
    case directoryFsync
}
