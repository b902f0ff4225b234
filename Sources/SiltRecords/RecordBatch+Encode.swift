import NIOCore

extension RecordBatchHeader {
    /// Appends to `out` a batch with this header's fields and `records` (an uncompressed records
    /// section holding `recordCount` records) encoded with `codec` at `level`. The written batch
    /// gets its own batchLength, codec bits (attributes bits 0-2) and CRC; every other field is
    /// this header's. Returns the header as written, `index` set to where it starts in `out`.
    ///
    /// The one place batches are encoded: the builder, a topic's `compression.type` on produce,
    /// and the log cleaner's rewritten batches.
    @discardableResult
    public func write(records: ByteBuffer, codec: CompressionType, level: Int32? = nil, into out: inout ByteBuffer) -> RecordBatchHeader {
        let body = RecordCompression.compress(records, codec: codec, level: level)
        var header = self
        header.index = out.writerIndex
        header.magic = 2
        header.attributes = (attributes & ~0x7) | Int16(codec.rawValue)
        header.batchLength = Int32(RecordBatchHeader.sizeBytes - RecordBatchHeader.logOverheadBytes + body.readableBytes)
        out.reserveCapacity(minimumWritableBytes: RecordBatchHeader.sizeBytes + body.readableBytes)
        out.writeInteger(header.baseOffset)
        out.writeInteger(header.batchLength)
        out.writeInteger(header.partitionLeaderEpoch)
        out.writeInteger(header.magic)
        out.writeInteger(UInt32(0)) // crc, set below
        out.writeInteger(header.attributes)
        out.writeInteger(header.lastOffsetDelta)
        out.writeInteger(header.baseTimestamp)
        out.writeInteger(header.maxTimestamp)
        out.writeInteger(header.producerId)
        out.writeInteger(header.producerEpoch)
        out.writeInteger(header.baseSequence)
        out.writeInteger(header.recordCount)
        var bytes = body
        out.writeBuffer(&bytes)
        header.crc = header.computeCRC(in: out)
        out.setInteger(header.crc, at: header.index + RecordBatchHeader.crcOffset)
        return header
    }

    /// This complete batch of `buffer` with its records encoded with `codec` instead (decoded
    /// within `maxDecompressedBytes` first): what a topic's `compression.type` does on produce.
    public func recompressed(in buffer: ByteBuffer, to codec: CompressionType, level: Int32? = nil,
                             maxDecompressedBytes: Int) throws(RecordBatchError) -> ByteBuffer {
        guard let from = compression else { throw .corruptMessage("unknown compression type \(attributes & 0x7)") }
        let records = try RecordCompression.decompress(recordsSection(in: buffer), codec: from, maxBytes: maxDecompressedBytes)
        var out = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.sizeBytes + records.readableBytes)
        write(records: records, codec: codec, level: level, into: &out)
        return out
    }
}

/// A topic's `compression.type` applied to a validated produce (Kafka's LogValidator): every
/// batch whose codec is not `codec` is decoded (within `maxMessageBytes`) and encoded with
/// `codec` at `level`; batches already in `codec` are copied unchanged. Returns the new
/// records and their headers (with `index` into them). As Kafka does after recompressing,
/// each batch's new size is checked against `maxMessageBytes` (→ messageTooLarge).
public func recompressProducedRecords(_ records: ByteBuffer, headers: [RecordBatchHeader], to codec: CompressionType,
                                      level: Int32?, maxMessageBytes: Int) throws(RecordBatchError) -> (ByteBuffer, [RecordBatchHeader]) {
    var out = ByteBufferAllocator().buffer(capacity: records.readableBytes)
    var outHeaders: [RecordBatchHeader] = []
    for header in headers {
        var batch = header.compression == codec
            ? records.getSlice(at: header.index, length: header.totalSize)!
            : try header.recompressed(in: records, to: codec, level: level, maxDecompressedBytes: maxMessageBytes)
        guard batch.readableBytes <= maxMessageBytes else {
            throw .messageTooLarge(sizeBytes: batch.readableBytes, maxBytes: maxMessageBytes)
        }
        let index = out.writerIndex
        out.writeBuffer(&batch)
        outHeaders.append(try RecordBatchHeader(parsing: out, at: index))
    }
    return (out, outHeaders)
}
