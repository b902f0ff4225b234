import NIOCore

/// Encodes one record batch (magic 2) with a correct CRC, uncompressed or with `compression`.
/// For tests across the project and for the broker's own control/metadata records.
///
/// ```swift
/// var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
/// builder.append(key: Array("k".utf8), value: Array("v".utf8), timestamp: 1_700_000_000_000)
/// let batch: ByteBuffer = builder.build()
/// ```
public struct RecordBatchBuilder {
    public var baseOffset: Int64
    public var partitionLeaderEpoch: Int32
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var isTransactional: Bool
    public var isControl: Bool
    public var timestampType: TimestampType
    /// Timestamp of the batch; defaults to the first record's timestamp.
    public var baseTimestamp: Int64?
    /// The codec of the records section (attributes bits 0-2), and its level (nil: the codec's default).
    public var compression: CompressionType = .none
    public var compressionLevel: Int32?

    private var records: ByteBuffer
    private var count: Int32 = 0
    private var maxTimestamp: Int64 = -1
    private var firstTimestamp: Int64?

    public init(baseOffset: Int64 = 0, partitionLeaderEpoch: Int32 = -1, producerId: Int64 = -1,
                producerEpoch: Int16 = -1, baseSequence: Int32 = -1, isTransactional: Bool = false,
                isControl: Bool = false, timestampType: TimestampType = .createTime, baseTimestamp: Int64? = nil) {
        self.baseOffset = baseOffset
        self.partitionLeaderEpoch = partitionLeaderEpoch
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.isTransactional = isTransactional
        self.isControl = isControl
        self.timestampType = timestampType
        self.baseTimestamp = baseTimestamp
        self.records = ByteBufferAllocator().buffer(capacity: 256)
    }

    public var recordCount: Int32 { count }

    /// Appends a record with offsetDelta = number of records so far.
    public mutating func append(key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = [], timestamp: Int64) {
        if firstTimestamp == nil { firstTimestamp = timestamp }
        let base = baseTimestamp ?? firstTimestamp!
        var body = ByteBufferAllocator().buffer(capacity: 32 + (key?.count ?? 0) + (value?.count ?? 0))
        body.writeInteger(Int8(0))
        Varint.write(timestamp - base, to: &body)
        Varint.write(Int64(count), to: &body)
        Self.writeNullable(key, to: &body)
        Self.writeNullable(value, to: &body)
        Varint.write(Int64(headers.count), to: &body)
        for header in headers {
            Self.writeNullable(Array(header.key.utf8), to: &body)
            Self.writeNullable(header.value, to: &body)
        }
        Varint.write(Int64(body.readableBytes), to: &records)
        records.writeBuffer(&body)
        count += 1
        maxTimestamp = Swift.max(maxTimestamp, timestamp)
    }

    /// Convenience for string keys and values.
    public mutating func append(key: String?, value: String?, headers: [RecordHeader] = [], timestamp: Int64) {
        append(key: key.map { Array($0.utf8) }, value: value.map { Array($0.utf8) }, headers: headers, timestamp: timestamp)
    }

    /// The encoded batch.
    public func build() -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.sizeBytes + records.readableBytes)
        build(into: &out)
        return out
    }

    /// Appends the encoded batch to `out`.
    public func build(into out: inout ByteBuffer) {
        var attributes: Int16 = 0
        if timestampType == .logAppendTime { attributes |= 0x8 }
        if isTransactional { attributes |= 0x10 }
        if isControl { attributes |= 0x20 }
        let base = baseTimestamp ?? firstTimestamp ?? -1
        let header = RecordBatchHeader(baseOffset: baseOffset, batchLength: 0, partitionLeaderEpoch: partitionLeaderEpoch, magic: 2,
                                       crc: 0, attributes: attributes, lastOffsetDelta: count - 1, baseTimestamp: base,
                                       maxTimestamp: count == 0 ? base : maxTimestamp, producerId: producerId,
                                       producerEpoch: producerEpoch, baseSequence: baseSequence, recordCount: count)
        header.write(records: records, codec: compression, level: compressionLevel, into: &out)
    }

    private static func writeNullable(_ bytes: [UInt8]?, to buffer: inout ByteBuffer) {
        guard let bytes else {
            Varint.write(-1, to: &buffer)
            return
        }
        Varint.write(Int64(bytes.count), to: &buffer)
        buffer.writeBytes(bytes)
    }
}
