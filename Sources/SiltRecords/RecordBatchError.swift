/// Why a record batch was rejected. Each case maps to the Kafka error code the broker returns.
public enum RecordBatchError: Error, Equatable, CustomStringConvertible {
    /// Bad CRC, impossible or truncated batchLength, unknown magic, unknown compression codec.
    /// Kafka: CORRUPT_MESSAGE (2).
    case corruptMessage(String)
    /// Well formed but not allowed: non-zero baseOffset from a client, count/offset-delta mismatch,
    /// control batch from a client, magic 0/1 in a v3+ produce, bad producer sequence, bad record framing.
    /// Kafka: INVALID_RECORD (87).
    case invalidRecord(String)
    /// A batch larger than max.message.bytes. Kafka: MESSAGE_TOO_LARGE (10).
    case messageTooLarge(sizeBytes: Int, maxBytes: Int)
    /// A compressed batch whose records inflate past the limit (max.message.bytes on produce): a
    /// zip bomb or a batch too big to hold. Kafka: MESSAGE_TOO_LARGE (10).
    case decompressedTooLarge(codec: CompressionType, compressedBytes: Int, maxBytes: Int)
    /// Some records of the batch are invalid, the others valid (KIP-467): the whole batch is
    /// refused, and `records` names the bad ones by their index in the produce's records.
    /// Kafka: INVALID_RECORD (87) with record_errors.
    case invalidRecords([RecordError])
    /// Records whose CreateTime timestamps are outside the allowed difference, each named
    /// (KIP-467); the whole batch is refused. Kafka: INVALID_TIMESTAMP (32) with record_errors.
    case invalidTimestamps([RecordError])

    /// The Kafka protocol error code for this error.
    public var kafkaErrorCode: Int16 {
        switch self {
        case .corruptMessage: return 2
        case .invalidRecord, .invalidRecords: return 87
        case .messageTooLarge, .decompressedTooLarge: return 10
        case .invalidTimestamps: return 32
        }
    }

    public var description: String {
        switch self {
        case .corruptMessage(let reason): return "CORRUPT_MESSAGE: \(reason)"
        case .invalidRecord(let reason): return "INVALID_RECORD: \(reason)"
        case .invalidRecords(let records): return "INVALID_RECORD: \(RecordError.summary(records))"
        case .invalidTimestamps(let records): return "INVALID_TIMESTAMP: \(RecordError.summary(records))"
        case .messageTooLarge(let size, let max): return "MESSAGE_TOO_LARGE: batch of \(size) bytes exceeds max.message.bytes \(max)"
        case .decompressedTooLarge(let codec, let compressed, let max):
            return "MESSAGE_TOO_LARGE: the records of a \(compressed)-byte \(codec) batch inflate past max.message.bytes \(max) (a zip bomb?): refused"
        }
    }
}

/// One invalid record of a batch (KIP-467's record_errors): its index among the records of
/// the produce (in a one-batch produce, its offset delta) and why it was refused.
public struct RecordError: Sendable, Equatable {
    public var batchIndex: Int32
    public var message: String

    public init(batchIndex: Int32, message: String) {
        self.batchIndex = batchIndex
        self.message = message
    }

    /// Kafka's error_message for a batch refused for `errors` (UnifiedLog), which clients show users.
    static func summary(_ errors: [RecordError]) -> String {
        let shown = errors.prefix(3).map { "[\($0.batchIndex): \($0.message)]" }.joined(separator: ", ")
        return "One or more records have been rejected due to \(errors.count) record errors in total, "
            + "and only showing the first three errors at most: \(shown)"
    }
}
