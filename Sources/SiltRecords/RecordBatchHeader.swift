import NIOCore

/// Compression codec, attributes bits 0-2.
public enum CompressionType: Int8, Sendable, CaseIterable {
    case none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4
}

/// Timestamp type, attributes bit 3.
public enum TimestampType: Int8, Sendable {
    case createTime = 0
    case logAppendTime = 1
}

/// The fixed 61-byte header of a Kafka record batch, magic 2. All fields big endian.
///
/// ```
///  offset  size  field
///       0     8  baseOffset             ─┐ not covered by the CRC;
///       8     4  batchLength            │ rewritten by the broker
///      12     4  partitionLeaderEpoch  ─┘ (baseOffset, partitionLeaderEpoch)
///      16     1  magic (= 2)
///      17     4  crc  (CRC-32C of bytes 21 ..< 12 + batchLength)
///      21     2  attributes ── bits 0-2 compression, 3 timestampType, 4 transactional, 5 control
///      23     4  lastOffsetDelta
///      27     8  baseTimestamp
///      35     8  maxTimestamp
///      43     8  producerId
///      51     2  producerEpoch
///      53     4  baseSequence
///      57     4  recordCount
///      61     …  records
/// ```
public struct RecordBatchHeader: Sendable, Equatable {
    /// Size of the fixed header in bytes.
    public static let sizeBytes = 61
    /// baseOffset + batchLength: the bytes not counted in batchLength.
    public static let logOverheadBytes = 12
    /// Bytes before the magic byte, plus the magic byte.
    public static let sizeUpToMagicBytes = 17
    /// Smallest legal batchLength (a header with no records).
    public static let minBatchLength: Int32 = Int32(sizeBytes - logOverheadBytes)

    // Field offsets inside the batch.
    public static let baseOffsetOffset = 0
    public static let batchLengthOffset = 8
    public static let partitionLeaderEpochOffset = 12
    public static let magicOffset = 16
    public static let crcOffset = 17
    public static let attributesOffset = 21
    public static let lastOffsetDeltaOffset = 23
    public static let baseTimestampOffset = 27
    public static let maxTimestampOffset = 35
    public static let producerIdOffset = 43
    public static let producerEpochOffset = 51
    public static let baseSequenceOffset = 53
    public static let recordCountOffset = 57

    /// Absolute index in the buffer this header was parsed from (informational).
    public var index: Int
    public var baseOffset: Int64
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var recordCount: Int32

    public init(index: Int = 0, baseOffset: Int64, batchLength: Int32, partitionLeaderEpoch: Int32, magic: Int8,
                crc: UInt32, attributes: Int16, lastOffsetDelta: Int32, baseTimestamp: Int64, maxTimestamp: Int64,
                producerId: Int64, producerEpoch: Int16, baseSequence: Int32, recordCount: Int32) {
        self.index = index
        self.baseOffset = baseOffset
        self.batchLength = batchLength
        self.partitionLeaderEpoch = partitionLeaderEpoch
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.lastOffsetDelta = lastOffsetDelta
        self.baseTimestamp = baseTimestamp
        self.maxTimestamp = maxTimestamp
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.recordCount = recordCount
    }

    /// Parses the 61-byte header at absolute `index` of `buffer` without copying or checking the CRC.
    /// Throws `.corruptMessage` when fewer than 61 readable bytes remain or magic is not 2.
    /// Does not require the records (batchLength bytes) to be present; see `isComplete(in:)`.
    public init(parsing buffer: ByteBuffer, at index: Int) throws(RecordBatchError) {
        guard index >= buffer.readerIndex, buffer.writerIndex - index >= RecordBatchHeader.sizeUpToMagicBytes else {
            throw .corruptMessage("truncated batch header at index \(index)")
        }
        let magic: Int8 = buffer.getInteger(at: index + RecordBatchHeader.magicOffset)!
        guard magic == 2 else {
            if magic == 0 || magic == 1 {
                throw .invalidRecord("record batch magic \(magic) is not supported; produce requests v3+ require magic 2")
            }
            throw .corruptMessage("unknown record batch magic \(magic)")
        }
        guard buffer.writerIndex - index >= RecordBatchHeader.sizeBytes else {
            throw .corruptMessage("truncated batch header at index \(index)")
        }
        self.index = index
        baseOffset = buffer.getInteger(at: index)!
        batchLength = buffer.getInteger(at: index + 8)!
        partitionLeaderEpoch = buffer.getInteger(at: index + 12)!
        self.magic = magic
        crc = buffer.getInteger(at: index + 17)!
        attributes = buffer.getInteger(at: index + 21)!
        lastOffsetDelta = buffer.getInteger(at: index + 23)!
        baseTimestamp = buffer.getInteger(at: index + 27)!
        maxTimestamp = buffer.getInteger(at: index + 35)!
        producerId = buffer.getInteger(at: index + 43)!
        producerEpoch = buffer.getInteger(at: index + 51)!
        baseSequence = buffer.getInteger(at: index + 53)!
        recordCount = buffer.getInteger(at: index + 57)!
    }

    /// Compression codec, or nil for the reserved values 5-7.
    public var compression: CompressionType? { CompressionType(rawValue: Int8(attributes & 0x7)) }
    public var isCompressed: Bool { attributes & 0x7 != 0 }
    public var timestampType: TimestampType { attributes & 0x8 != 0 ? .logAppendTime : .createTime }
    public var isTransactional: Bool { attributes & 0x10 != 0 }
    public var isControl: Bool { attributes & 0x20 != 0 }
    public var hasProducerId: Bool { producerId >= 0 }

    /// Size of the whole batch on the wire and on disk: 12 + batchLength.
    public var totalSize: Int { RecordBatchHeader.logOverheadBytes + Int(batchLength) }
    /// Offset of the last record: baseOffset + lastOffsetDelta.
    public var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
    /// The offset after this batch.
    public var nextOffset: Int64 { lastOffset + 1 }

    /// True when the whole batch (totalSize bytes from `index`) is within the readable bytes of `buffer`.
    public func isComplete(in buffer: ByteBuffer) -> Bool {
        batchLength >= RecordBatchHeader.minBatchLength && buffer.writerIndex - index >= totalSize
    }

    /// The CRC-32C over attributes..end, computed from the bytes of `buffer` (the batch must be complete).
    public func computeCRC(in buffer: ByteBuffer) -> UInt32 {
        precondition(isComplete(in: buffer), "batch not complete")
        let start = index + RecordBatchHeader.attributesOffset
        return crc32c(buffer, at: start, length: totalSize - RecordBatchHeader.attributesOffset)
    }

    /// True when the stored CRC matches the bytes (the batch must be complete).
    public func isCRCValid(in buffer: ByteBuffer) -> Bool { computeCRC(in: buffer) == crc }
}
