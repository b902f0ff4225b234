import NIOCore

/// One record header (Kafka "headers" inside a record): a UTF-8 key and nullable bytes.
public struct RecordHeader: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]?
    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }
}

/// One record decoded from a v2 batch (compressed batches are decoded first).
///
/// ```
/// length: varint (bytes after this field)
/// attributes: int8 (unused)
/// timestampDelta: varlong
/// offsetDelta: varint
/// keyLength: varint (-1 = null), key
/// valueLength: varint (-1 = null), value
/// headerCount: varint, then each header: keyLength varint, key (UTF-8), valueLength varint (-1 = null), value
/// ```
public struct Record: Sendable, Equatable {
    public var attributes: Int8
    public var timestampDelta: Int64
    public var offsetDelta: Int32
    public var key: ByteBuffer?
    public var value: ByteBuffer?
    public var headers: [RecordHeader]
    /// baseOffset + offsetDelta.
    public var offset: Int64
    /// The effective timestamp: baseTimestamp + timestampDelta for CreateTime,
    /// the batch maxTimestamp for LogAppendTime.
    public var timestamp: Int64
}

/// Iterates the records of one uncompressed batch. Bounded: never reads past the batch, never yields
/// more than recordCount records, and reports a framing mismatch as `.invalidRecord` (as Kafka does).
///
/// ```swift
/// var reader = try RecordReader(batch: buffer, header: header)
/// while let record = try reader.next() { ... }
/// ```
public struct RecordReader {
    public let header: RecordBatchHeader
    private var body: ByteBuffer
    private var remaining: Int32

    /// `buffer` must contain the whole batch at `header.index`. A compressed batch is decoded
    /// first, into at most `maxDecompressedBytes` (else `.decompressedTooLarge`). Throws
    /// `.corruptMessage` for an incomplete batch, an unknown codec or a bad compressed stream.
    public init(batch buffer: ByteBuffer, header: RecordBatchHeader,
                maxDecompressedBytes: Int = RecordCompression.decompressedBytesMaxDefault) throws(RecordBatchError) {
        guard header.isComplete(in: buffer) else { throw .corruptMessage("batch truncated") }
        guard let codec = header.compression else { throw .corruptMessage("unknown compression type \(header.attributes & 0x7)") }
        guard header.recordCount >= 0 else { throw .invalidRecord("negative record count \(header.recordCount)") }
        self.header = header
        self.body = try RecordCompression.decompress(header.recordsSection(in: buffer), codec: codec, maxBytes: maxDecompressedBytes)
        self.remaining = header.recordCount
    }

    /// The next record, or nil after recordCount records. Throws `.invalidRecord` if the records
    /// do not exactly fill the batch.
    public mutating func next() throws(RecordBatchError) -> Record? {
        guard remaining > 0 else {
            if body.readableBytes != 0 {
                throw .invalidRecord("Incorrect declared batch size, \(body.readableBytes) bytes remain after \(header.recordCount) records")
            }
            return nil
        }
        remaining -= 1
        guard let length = Varint.readInt(from: &body), length >= 0, Int(length) <= body.readableBytes else {
            throw .invalidRecord("invalid record length")
        }
        var record = body.readSlice(length: Int(length))!
        guard let attributes: Int8 = record.readInteger(),
              let timestampDelta = Varint.readLong(from: &record),
              let offsetDelta = Varint.readInt(from: &record) else {
            throw .invalidRecord("truncated record")
        }
        let key = try Self.readNullableBytes(&record)
        let value = try Self.readNullableBytes(&record)
        guard let headerCount = Varint.readInt(from: &record), headerCount >= 0,
              Int(headerCount) <= record.readableBytes else {
            throw .invalidRecord("invalid header count")
        }
        var headers: [RecordHeader] = []
        headers.reserveCapacity(Int(headerCount))
        for _ in 0..<headerCount {
            guard var keyBytes = try Self.readNullableBytes(&record) else {
                throw .invalidRecord("null header key")
            }
            let headerKey = keyBytes.readString(length: keyBytes.readableBytes) ?? ""
            let headerValue = try Self.readNullableBytes(&record).map { Array($0.readableBytesView) }
            headers.append(RecordHeader(key: headerKey, value: headerValue))
        }
        guard record.readableBytes == 0 else {
            throw .invalidRecord("\(record.readableBytes) unread bytes at the end of a record")
        }
        let timestamp = header.timestampType == .logAppendTime
            ? header.maxTimestamp : header.baseTimestamp &+ timestampDelta
        return Record(attributes: attributes, timestampDelta: timestampDelta, offsetDelta: offsetDelta,
                      key: key, value: value, headers: headers,
                      offset: header.baseOffset &+ Int64(offsetDelta), timestamp: timestamp)
    }

    private static func readNullableBytes(_ buffer: inout ByteBuffer) throws(RecordBatchError) -> ByteBuffer? {
        guard let length = Varint.readInt(from: &buffer) else { throw .invalidRecord("truncated length") }
        if length < 0 {
            guard length == -1 else { throw .invalidRecord("negative length \(length)") }
            return nil
        }
        guard let slice = buffer.readSlice(length: Int(length)) else {
            throw .invalidRecord("length \(length) past the end of the record")
        }
        return slice
    }
}

extension RecordBatchHeader {
    /// The bytes after the 61-byte header, as stored (compressed or not). The batch must be complete in `buffer`.
    public func recordsSection(in buffer: ByteBuffer) -> ByteBuffer {
        precondition(isComplete(in: buffer), "batch not complete")
        return buffer.getSlice(at: index + RecordBatchHeader.sizeBytes, length: totalSize - RecordBatchHeader.sizeBytes)!
    }

    /// All records of this batch (which must be complete in `buffer`), decoded within `maxDecompressedBytes`.
    public func records(in buffer: ByteBuffer,
                        maxDecompressedBytes: Int = RecordCompression.decompressedBytesMaxDefault) throws(RecordBatchError) -> [Record] {
        var reader = try RecordReader(batch: buffer, header: self, maxDecompressedBytes: maxDecompressedBytes)
        var result: [Record] = []
        result.reserveCapacity(Int(max(0, min(recordCount, 1 << 16))))
        while let record = try reader.next() { result.append(record) }
        return result
    }
}

/// Parses the headers of every batch in `buffer`'s readable bytes without validating them
/// beyond framing (magic 2, complete). Useful for data that came from our own log.
public func parseBatchHeaders(_ buffer: ByteBuffer) throws(RecordBatchError) -> [RecordBatchHeader] {
    var result: [RecordBatchHeader] = []
    var index = buffer.readerIndex
    while index < buffer.writerIndex {
        let header = try RecordBatchHeader(parsing: buffer, at: index)
        guard header.isComplete(in: buffer) else { throw .corruptMessage("batch at index \(index) truncated") }
        result.append(header)
        index += header.totalSize
    }
    return result
}
