// The record-level half of the log cleaner: reads the keys of a Kafka v2 record batch
// (decoding a compressed batch's records first) and rewrites a batch with only some of its
// records, keeping baseOffset and lastOffsetDelta (so offsets never move), re-encoded with the
// batch's own codec, with a new CRC.

import NIOCore
import SiltRecords

/// One record batch of a stream as the cleaner sees it: its bytes, and its records when the
/// cleaner can filter them (not a control batch, and a compressed batch decoded within the
/// cleaner's budget).
struct CleanerBatch {
    /// The batch's bytes (12-byte log overhead + batchLength).
    var bytes: ArraySlice<UInt8>
    var baseOffset: Int64
    /// baseOffset + lastOffsetDelta.
    var lastOffset: Int64
    var maxTimestamp: Int64
    var recordCount: Int
    var attributes: Int16
    /// The uncompressed records section (after the 61-byte header): a slice of `bytes`, or the
    /// decoded records of a compressed batch. Record ranges and keys point into it.
    var recordBytes: ArraySlice<UInt8>
    /// nil: a control batch, or a compressed batch that was not decoded; kept whole.
    var records: [CleanerRecord]?

    var codec: CompressionType { CompressionType(rawValue: Int8(attributes & 0x7)) ?? .none }
    var isCompressed: Bool { attributes & 0x7 != 0 }
    var isLogAppendTime: Bool { attributes & 0x8 != 0 }
}

/// One record: where its bytes are in the batch's `recordBytes`, its offset, its key.
struct CleanerRecord {
    /// The whole record (length varint included), as indices of the batch's `recordBytes`.
    var range: Range<Int>
    var offset: Int64
    var timestampDelta: Int64
    var key: ArraySlice<UInt8>?
    /// A null value: a tombstone.
    var isTombstone: Bool
}

enum CleanerBatches {
    static let headerBytes = 61

    /// Parses the batch in `bytes` (exactly one whole batch) and checks its CRC: the cleaner
    /// must never rewrite (and so re-sign) a batch that was already damaged. A compressed batch
    /// is decoded when its records fit `decodeBytesMax` (the caller's remaining budget); else,
    /// or when its stream does not decode, it is returned without records (kept whole).
    static func parse(_ bytes: ArraySlice<UInt8>, decodeBytesMax: Int) throws -> CleanerBatch {
        try bytes.withUnsafeBytes { buf -> CleanerBatch in
            guard buf.count >= headerBytes, buf[16] == 2 else {
                throw ObjectFormatError.malformedBlock("a \(buf.count)-byte batch is not a magic-2 record batch")
            }
            func be<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T { T(bigEndian: buf.loadUnaligned(fromByteOffset: at, as: T.self)) }
            let base = be(0, Int64.self)
            let stored = be(17, UInt32.self)
            let computed = crc32c(UnsafeRawBufferPointer(rebasing: buf[21...]))
            guard stored == computed else {
                throw ObjectFormatError.malformedBlock("batch at offset \(base): CRC32C \(stored) stored, \(computed) computed")
            }
            let attributes = be(21, Int16.self)
            let recordCount = Int(be(57, Int32.self))
            var batch = CleanerBatch(bytes: bytes, baseOffset: base, lastOffset: base + Int64(be(23, Int32.self)),
                                     maxTimestamp: be(35, Int64.self), recordCount: recordCount, attributes: attributes,
                                     recordBytes: bytes[(bytes.startIndex + headerBytes)...], records: nil)
            let isControl = attributes & 0x20 != 0
            guard !isControl else { return batch }
            if batch.isCompressed {
                guard let codec = CompressionType(rawValue: Int8(attributes & 0x7)),
                      let decoded = try? RecordCompression.decompress(ByteBuffer(bytes: buf[headerBytes...]), codec: codec,
                                                                      maxBytes: max(0, decodeBytesMax)) else { return batch }
                batch.recordBytes = Array(decoded.readableBytesView)[...]
            }
            batch.records = try batch.recordBytes.withUnsafeBytes { try records(of: batch, in: $0) }
            return batch
        }
    }

    /// The records of `batch`, read from `buf` (its uncompressed records section).
    private static func records(of batch: CleanerBatch, in buf: UnsafeRawBufferPointer) throws -> [CleanerRecord] {
        let (base, recordCount, origin) = (batch.baseOffset, batch.recordCount, batch.recordBytes.startIndex)
        var reader = RawReader(buf: buf, position: 0)
        var records: [CleanerRecord] = []
        records.reserveCapacity(max(0, min(recordCount, 1 << 16)))
        for _ in 0..<max(0, recordCount) {
            let start = reader.position
            let length = try reader.varint()
            guard length >= 0, reader.position + Int(length) <= buf.count else {
                throw ObjectFormatError.malformedBlock("batch at offset \(base): record length \(length) past the batch")
            }
            let end = reader.position + Int(length)
            reader.position += 1   // attributes
            let timestampDelta = try reader.varint()
            let offsetDelta = try reader.varint()
            let keyLength = try reader.varint()
            var key: ArraySlice<UInt8>?
            if keyLength >= 0 {
                guard reader.position + Int(keyLength) <= end else {
                    throw ObjectFormatError.malformedBlock("batch at offset \(base): key past its record")
                }
                key = batch.recordBytes[(origin + reader.position)..<(origin + reader.position + Int(keyLength))]
                reader.position += Int(keyLength)
            }
            let valueLength = try reader.varint()
            guard reader.position <= end else { throw ObjectFormatError.malformedBlock("batch at offset \(base): truncated record") }
            records.append(CleanerRecord(range: (origin + start)..<(origin + end), offset: base + offsetDelta,
                                         timestampDelta: timestampDelta,
                                         key: key, isTombstone: valueLength < 0))
            reader.position = end
        }
        guard reader.position == buf.count else {
            throw ObjectFormatError.malformedBlock("batch at offset \(base): \(buf.count - reader.position) bytes after \(recordCount) records")
        }
        return records
    }

    /// The batch with only `keep` of its records (a subsequence of `batch.records`, not empty),
    /// encoded with the batch's codec: the same baseOffset, lastOffsetDelta, baseTimestamp,
    /// producer fields and attributes, a new recordCount, batchLength and maxTimestamp
    /// (CreateTime: the kept records' newest; LogAppendTime: unchanged, it is every record's
    /// timestamp), and a new CRC.
    static func rewrite(_ batch: CleanerBatch, keeping keep: [CleanerRecord]) -> [UInt8] {
        precondition(!keep.isEmpty && keep.count <= batch.recordCount)
        guard var header = try? RecordBatchHeader(parsing: ByteBuffer(bytes: batch.bytes.prefix(headerBytes)), at: 0) else {
            preconditionFailure("rewrite: a batch that parsed no longer does")
        }
        var records = ByteBufferAllocator().buffer(capacity: keep.reduce(0) { $0 + $1.range.count })
        for r in keep { records.writeBytes(batch.recordBytes[r.range]) }
        header.recordCount = Int32(keep.count)
        if !batch.isLogAppendTime { header.maxTimestamp = keep.map { header.baseTimestamp &+ $0.timestampDelta }.max()! }
        var out = ByteBufferAllocator().buffer(capacity: headerBytes + records.readableBytes)
        header.write(records: records, codec: batch.codec, into: &out)
        return Array(out.readableBytesView)
    }
}

/// Kafka's zigzag varints over raw bytes, bounds-checked.
private struct RawReader {
    let buf: UnsafeRawBufferPointer
    var position: Int

    mutating func varint() throws -> Int64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < buf.count, shift < 64 else { throw ObjectFormatError.malformedBlock("bad varint at \(position)") }
            let byte = buf[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
        }
        return Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }
}
