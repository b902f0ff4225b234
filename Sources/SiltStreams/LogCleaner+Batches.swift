// The record-level half of the log cleaner: reads the keys of a Kafka v2 record batch
// straight from its bytes and rewrites a batch with only some of its records, keeping
// baseOffset and lastOffsetDelta (so offsets never move) with a new CRC.

import SiltRecords

/// One record batch of a stream as the cleaner sees it: its bytes, and its records when it is
/// uncompressed and not a control batch (the only batches the cleaner can filter).
struct CleanerBatch {
    /// The batch's bytes (12-byte log overhead + batchLength).
    var bytes: ArraySlice<UInt8>
    var baseOffset: Int64
    /// baseOffset + lastOffsetDelta.
    var lastOffset: Int64
    var maxTimestamp: Int64
    var recordCount: Int
    var attributes: Int16
    /// nil: compressed or a control batch, kept whole.
    var records: [CleanerRecord]?

    var isCompressed: Bool { attributes & 0x7 != 0 }
    var isLogAppendTime: Bool { attributes & 0x8 != 0 }
}

/// One record of an uncompressed batch: where its bytes are, its offset, its key.
struct CleanerRecord {
    /// The whole record (length varint included), relative to the batch's first byte.
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
    /// must never rewrite (and so re-sign) a batch that was already damaged.
    static func parse(_ bytes: ArraySlice<UInt8>) throws -> CleanerBatch {
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
                                     records: nil)
            let isControl = attributes & 0x20 != 0
            guard !batch.isCompressed, !isControl else { return batch }
            var reader = RawReader(buf: buf, position: headerBytes)
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
                    key = bytes[(bytes.startIndex + reader.position)..<(bytes.startIndex + reader.position + Int(keyLength))]
                    reader.position += Int(keyLength)
                }
                let valueLength = try reader.varint()
                guard reader.position <= end else { throw ObjectFormatError.malformedBlock("batch at offset \(base): truncated record") }
                records.append(CleanerRecord(range: start..<end, offset: base + offsetDelta, timestampDelta: timestampDelta,
                                             key: key, isTombstone: valueLength < 0))
                reader.position = end
            }
            guard reader.position == buf.count else {
                throw ObjectFormatError.malformedBlock("batch at offset \(base): \(buf.count - reader.position) bytes after \(recordCount) records")
            }
            batch.records = records
            return batch
        }
    }

    /// The batch with only `keep` of its records (a subsequence of `batch.records`, not empty):
    /// the same baseOffset, lastOffsetDelta, baseTimestamp, producer fields and attributes, a
    /// new recordCount, batchLength and maxTimestamp (CreateTime: the kept records' newest;
    /// LogAppendTime: unchanged, it is every record's timestamp), and a new CRC.
    static func rewrite(_ batch: CleanerBatch, keeping keep: [CleanerRecord]) -> [UInt8] {
        precondition(!keep.isEmpty && keep.count <= batch.recordCount)
        let src = Array(batch.bytes)
        var out = Array(src[0..<headerBytes])
        for r in keep { out += src[r.range] }
        func put<T: FixedWidthInteger>(_ v: T, at: Int) {
            withUnsafeBytes(of: v.bigEndian) { out.replaceSubrange(at..<(at + MemoryLayout<T>.size), with: $0) }
        }
        put(Int32(out.count - 12), at: 8)
        put(Int32(keep.count), at: 57)
        if !batch.isLogAppendTime {
            let baseTimestamp = src.withUnsafeBytes { Int64(bigEndian: $0.loadUnaligned(fromByteOffset: 27, as: Int64.self)) }
            put(keep.map { baseTimestamp &+ $0.timestampDelta }.max()!, at: 35)
        }
        let crc = out.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[21...])) }
        put(crc, at: 17)
        return out
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
