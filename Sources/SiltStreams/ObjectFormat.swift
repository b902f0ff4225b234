// The on-S3 format of stream set objects and stream objects, and its parser.
//
// One format serves both kinds so that readers, the compactor and the janitor need one
// parser; a stream object is simply an object whose blocks all belong to one stream.

import CSupport

/// What an object holds: many streams (the WAL's upload unit) or one (compaction's output).
public enum ObjectKind: Int8, Sendable, Codable {
    case streamSet = 0
    case stream = 1
}

/// An object built in memory, ready to upload.
public struct BuiltObject: Sendable {
    public var bytes: [UInt8]
    /// One range per stream, sorted by streamId, covering exactly the offsets the object holds.
    public var ranges: [StreamRange]
    public var kind: ObjectKind
    /// Per range (same order as `ranges`): bytes and newest timestamp, for retention.
    public var stats: [RangeStats] = []
}

/// A malformed object (or a bug upstream): every parse failure is one of these, never a crash.
public enum ObjectFormatError: Error, Equatable, CustomStringConvertible {
    case truncated(String)
    case badMagic(String)
    case unsupportedVersion(UInt16)
    case crcMismatch(stored: UInt32, computed: UInt32)
    case indexOutOfBounds(String)
    case malformedIndex(String)
    case malformedBlock(String)

    public var description: String {
        switch self {
        case .truncated(let m): return "truncated object: \(m)"
        case .badMagic(let m): return "bad magic: \(m)"
        case .unsupportedVersion(let v): return "unsupported object format version \(v)"
        case .crcMismatch(let s, let c): return "index CRC32C mismatch: stored \(s), computed \(c)"
        case .indexOutOfBounds(let m): return "index out of bounds: \(m)"
        case .malformedIndex(let m): return "malformed index: \(m)"
        case .malformedBlock(let m): return "malformed data block: \(m)"
        }
    }
}

/// The index of an object: where each data block is and which offsets it holds.
///
/// Object layout (all integers little-endian):
///
///     +--------------+--------------+-----+-------------------------+--------------+
///     | data block 0 | data block 1 | ... | index block             | footer (26B) |
///     +--------------+--------------+-----+-------------------------+--------------+
///     0              ^position of block 1  ^indexPosition == dataBytes
///
/// A data block is the raw bytes of consecutive whole Kafka v2 record batches of ONE stream.
/// Blocks are sorted by (streamId, offset) and tile `[0, indexPosition)` with no gap;
/// blocks of one stream are contiguous in offsets (entry i+1 starts where entry i ends).
///
/// Index block: `indexSize / 40` entries of 40 bytes:
///
///     0         8           16          24         32     36           40
///     +---------+-----------+-----------+----------+------+------------+
///     | streamId| startOffset| endOffset | position | size | batchCount |
///     |  u64    |   i64     | i64 (excl)|   u64    | u32  |    u32     |
///     +---------+-----------+-----------+----------+------+------------+
///
/// Footer (26 bytes, the last bytes of the object):
///
///     0              8           12          16        18                 26
///     +--------------+-----------+-----------+---------+------------------+
///     | indexPosition| indexSize | indexCrc  | version | magic "SILTOBJ1" |
///     |     u64      |   u32     | u32 CRC32C|  u16=1  | 8 ASCII bytes    |
///     +--------------+-----------+-----------+---------+------------------+
public struct ObjectIndex: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var streamId: UInt64
        public var startOffset: Int64
        /// Exclusive.
        public var endOffset: Int64
        /// Byte position of the block in the object.
        public var position: Int64
        public var size: Int
        public var batchCount: Int

        public init(streamId: UInt64, startOffset: Int64, endOffset: Int64, position: Int64, size: Int, batchCount: Int) {
            self.streamId = streamId
            self.startOffset = startOffset
            self.endOffset = endOffset
            self.position = position
            self.size = size
            self.batchCount = batchCount
        }
    }

    public static let footerBytes = 26
    public static let entryBytes = 40
    public static let formatVersion: UInt16 = 1
    public static let magic: [UInt8] = Array("SILTOBJ1".utf8)

    public private(set) var entries: [Entry]
    /// One range per stream, sorted by streamId.
    public private(set) var ranges: [StreamRange]
    /// Bytes of data blocks, which is also the index's position.
    public private(set) var dataBytes: Int64

    /// Validated entries; see `parse` for the rules.
    init(validating entries: [Entry], dataBytes: Int64) throws {
        var ranges: [StreamRange] = []
        var expectedPosition: Int64 = 0
        for (i, e) in entries.enumerated() {
            guard e.startOffset >= 0, e.startOffset < e.endOffset else {
                throw ObjectFormatError.malformedIndex("entry \(i): empty or negative offsets [\(e.startOffset),\(e.endOffset))")
            }
            guard e.size > 0, e.batchCount > 0 else { throw ObjectFormatError.malformedIndex("entry \(i): empty block") }
            guard e.position == expectedPosition else {
                throw ObjectFormatError.malformedIndex("entry \(i): block at \(e.position), expected \(expectedPosition)")
            }
            expectedPosition += Int64(e.size)
            guard expectedPosition <= dataBytes else {
                throw ObjectFormatError.indexOutOfBounds("entry \(i): block ends at \(expectedPosition) past data end \(dataBytes)")
            }
            if let last = ranges.last, last.streamId == e.streamId {
                guard e.startOffset == last.endOffset else {
                    throw ObjectFormatError.malformedIndex(
                        "entry \(i): stream \(e.streamId) block starts at \(e.startOffset), previous ends at \(last.endOffset) (unsorted, gap or overlap)")
                }
                ranges[ranges.count - 1].endOffset = e.endOffset
            } else {
                if let last = ranges.last, last.streamId > e.streamId {
                    throw ObjectFormatError.malformedIndex("entry \(i): stream \(e.streamId) after stream \(last.streamId) (unsorted)")
                }
                ranges.append(StreamRange(streamId: e.streamId, startOffset: e.startOffset, endOffset: e.endOffset))
            }
        }
        guard expectedPosition == dataBytes else {
            throw ObjectFormatError.malformedIndex("blocks end at \(expectedPosition), index starts at \(dataBytes)")
        }
        self.entries = entries
        self.ranges = ranges
        self.dataBytes = dataBytes
    }

    /// Reads the footer from the last `footerBytes` of `tail` (any suffix of the object).
    public static func parseFooter(_ tail: [UInt8]) throws -> (indexPosition: Int64, indexSize: Int, indexCrc: UInt32) {
        guard tail.count >= footerBytes else {
            throw ObjectFormatError.truncated("\(tail.count) bytes, the footer needs \(footerBytes)")
        }
        let f = tail.count - footerBytes
        guard Array(tail[(f + 18)..<(f + 26)]) == magic else {
            throw ObjectFormatError.badMagic("expected SILTOBJ1, found \(tail[(f + 18)..<(f + 26)].map { String($0, radix: 16) })")
        }
        let version: UInt16 = LE.read(tail, at: f + 16)
        guard version == formatVersion else { throw ObjectFormatError.unsupportedVersion(version) }
        let position: UInt64 = LE.read(tail, at: f)
        let size: UInt32 = LE.read(tail, at: f + 8)
        guard position <= UInt64(Int64.max / 2) else { throw ObjectFormatError.indexOutOfBounds("index position \(position)") }
        guard Int(size) % entryBytes == 0 else {
            throw ObjectFormatError.malformedIndex("index size \(size) is not a multiple of \(entryBytes)")
        }
        return (Int64(position), Int(size), LE.read(tail, at: f + 12))
    }

    /// Parses and validates an index block: CRC, bounds (`objectSize` when known), entries
    /// tiling the data section in (streamId, offset) order, contiguous per stream.
    public static func parse(indexBytes: [UInt8], indexPosition: Int64, indexCrc: UInt32, objectSize: Int64? = nil) throws -> ObjectIndex {
        if let size = objectSize, indexPosition + Int64(indexBytes.count) + Int64(footerBytes) != size {
            throw ObjectFormatError.indexOutOfBounds(
                "index [\(indexPosition), +\(indexBytes.count)) + footer does not end the \(size)-byte object")
        }
        guard indexBytes.count % entryBytes == 0 else {
            throw ObjectFormatError.malformedIndex("index size \(indexBytes.count) is not a multiple of \(entryBytes)")
        }
        let crc = indexBytes.withUnsafeBytes { silt_crc32c(0, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }
        guard crc == indexCrc else { throw ObjectFormatError.crcMismatch(stored: indexCrc, computed: crc) }
        var entries: [Entry] = []
        entries.reserveCapacity(indexBytes.count / entryBytes)
        var p = 0
        while p < indexBytes.count {
            let position: UInt64 = LE.read(indexBytes, at: p + 24)
            guard position <= UInt64(Int64.max / 2) else { throw ObjectFormatError.indexOutOfBounds("block position \(position)") }
            let size: UInt32 = LE.read(indexBytes, at: p + 32)
            let count: UInt32 = LE.read(indexBytes, at: p + 36)
            entries.append(Entry(streamId: LE.read(indexBytes, at: p), startOffset: LE.read(indexBytes, at: p + 8),
                                 endOffset: LE.read(indexBytes, at: p + 16), position: Int64(position),
                                 size: Int(size), batchCount: Int(count)))
            p += entryBytes
        }
        return try ObjectIndex(validating: entries, dataBytes: indexPosition)
    }

    /// Parses the index of a whole object, or of a suffix of it (`tail`) that holds the index.
    /// Returns nil when `tail` is too short to hold the index (fetch more).
    public static func parse(tail: [UInt8], objectSize: Int64) throws -> ObjectIndex? {
        let footer = try parseFooter(tail)
        let tailStart = objectSize - Int64(tail.count)
        guard tailStart >= 0 else { throw ObjectFormatError.indexOutOfBounds("tail longer than the object") }
        guard footer.indexPosition + Int64(footer.indexSize) + Int64(footerBytes) == objectSize else {
            throw ObjectFormatError.indexOutOfBounds(
                "index [\(footer.indexPosition), +\(footer.indexSize)) + footer does not end the \(objectSize)-byte object")
        }
        guard footer.indexPosition >= tailStart else { return nil }
        let from = Int(footer.indexPosition - tailStart)
        return try parse(indexBytes: Array(tail[from..<(from + footer.indexSize)]), indexPosition: footer.indexPosition,
                         indexCrc: footer.indexCrc, objectSize: objectSize)
    }

    /// Parses the index of a whole object held in memory.
    public static func parse(object: [UInt8]) throws -> ObjectIndex {
        // Non-nil: the tail is the whole object, so it holds the index.
        try parse(tail: object, objectSize: Int64(object.count))!
    }

    /// The first block of `streamId` whose endOffset > `offset`, then the following blocks of that stream.
    public func blocks(streamId: UInt64, from offset: Int64) -> ArraySlice<Entry> {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let e = entries[mid]
            if e.streamId < streamId || (e.streamId == streamId && e.endOffset <= offset) { lo = mid + 1 } else { hi = mid }
        }
        guard lo < entries.count, entries[lo].streamId == streamId else { return [] }
        var end = lo
        while end < entries.count && entries[end].streamId == streamId { end += 1 }
        return entries[lo..<end]
    }

    /// The index block and footer that describe `entries` in an object whose data is `dataBytes` long.
    static func encodeIndexAndFooter(_ entries: [Entry], dataBytes: Int64) -> [UInt8] {
        var index: [UInt8] = []
        index.reserveCapacity(entries.count * entryBytes + footerBytes)
        for e in entries {
            precondition(e.size <= Int(UInt32.max) && e.batchCount <= Int(UInt32.max), "block too big for the format")
            LE.append(&index, e.streamId)
            LE.append(&index, e.startOffset)
            LE.append(&index, e.endOffset)
            LE.append(&index, UInt64(e.position))
            LE.append(&index, UInt32(e.size))
            LE.append(&index, UInt32(e.batchCount))
        }
        precondition(index.count <= Int(UInt32.max), "index too big for the format")
        let crc = index.withUnsafeBytes { silt_crc32c(0, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }
        let indexSize = index.count
        LE.append(&index, UInt64(dataBytes))
        LE.append(&index, UInt32(indexSize))
        LE.append(&index, crc)
        LE.append(&index, formatVersion)
        index += magic
        return index
    }
}

/// Little-endian integer encoding of the format.
enum LE {
    static func append<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Precondition: `at + size of T <= bytes.count` (callers check lengths first).
    static func read<T: FixedWidthInteger>(_ bytes: [UInt8], at: Int) -> T {
        precondition(at >= 0 && at + MemoryLayout<T>.size <= bytes.count)
        return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
    }
}

/// Walks the Kafka v2 record batch headers in a buffer (baseOffset: big-endian i64 at 0,
/// batchLength: big-endian i32 at 8, batch size = 12 + batchLength).
enum RecordBatches {
    static let headerBytes = 12

    /// The batches tiling `bytes`, as (baseOffset, byte range); throws when they don't tile it
    /// exactly or their base offsets are not strictly increasing.
    /// Byte position of maxTimestamp in a v2 batch header (after baseOffset, batchLength,
    /// partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta, baseTimestamp).
    static let maxTimestampPosition = 35

    /// The batch's maxTimestamp (the batch at `range`, already walked).
    static func maxTimestamp(_ bytes: UnsafeRawBufferPointer, batch range: Range<Int>) -> Int64 {
        precondition(range.count >= maxTimestampPosition + 8, "batch shorter than its header")
        return Int64(bigEndian: bytes.loadUnaligned(fromByteOffset: range.lowerBound + maxTimestampPosition, as: Int64.self))
    }

    static func walk(_ bytes: UnsafeRawBufferPointer) throws -> [(baseOffset: Int64, range: Range<Int>)] {
        var out: [(baseOffset: Int64, range: Range<Int>)] = []
        var p = 0
        while p < bytes.count {
            guard bytes.count - p >= headerBytes else {
                throw ObjectFormatError.malformedBlock("\(bytes.count - p) trailing bytes at \(p), a batch header needs \(headerBytes)")
            }
            let base = Int64(bigEndian: bytes.loadUnaligned(fromByteOffset: p, as: Int64.self))
            let length = Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: p + 8, as: Int32.self))
            guard length >= 0, Int(length) <= bytes.count - p - headerBytes else {
                throw ObjectFormatError.malformedBlock("batch at \(p) claims \(length) bytes, \(bytes.count - p - headerBytes) left")
            }
            if let last = out.last, base <= last.baseOffset {
                throw ObjectFormatError.malformedBlock("batch base offset \(base) after \(last.baseOffset)")
            }
            out.append((base, p..<(p + headerBytes + Int(length))))
            p += headerBytes + Int(length)
        }
        return out
    }

    /// `walk`, plus the checks of a block against its index entry.
    static func walk(block bytes: UnsafeRawBufferPointer, entry: ObjectIndex.Entry) throws -> [(baseOffset: Int64, range: Range<Int>)] {
        guard bytes.count == entry.size else {
            throw ObjectFormatError.malformedBlock("block at \(entry.position) has \(bytes.count) bytes, index says \(entry.size)")
        }
        let batches = try walk(bytes)
        // The first batch may start after the block's startOffset: the log cleaner removes
        // batches and leaves gaps, while blocks keep tiling the stream's offsets.
        guard batches.count == entry.batchCount, let first = batches.first, first.baseOffset >= entry.startOffset,
              let last = batches.last, last.baseOffset < entry.endOffset else {
            throw ObjectFormatError.malformedBlock("block at \(entry.position) does not match its index entry \(entry)")
        }
        return batches
    }

    /// The offset of the last record of the batch at `range` in `bytes`: base + lastOffsetDelta
    /// (big-endian i32 at 23). A buffer too short to hold that field (never a real batch)
    /// counts as ending at its base.
    static func lastOffset(of batch: (baseOffset: Int64, range: Range<Int>), in bytes: UnsafeRawBufferPointer) -> Int64 {
        guard batch.range.count >= 27 else { return batch.baseOffset }
        let delta = Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: batch.range.lowerBound + 23, as: Int32.self))
        return batch.baseOffset + Int64(max(0, delta))
    }

    /// Index of the first batch whose last offset is >= `offset` (Kafka's fetch semantics: an
    /// offset inside a batch the log cleaner removed reads from the next batch), or
    /// `batches.count` when every batch ends before it.
    static func indexOfFirstBatch(endingAtOrAfter offset: Int64, in batches: [(baseOffset: Int64, range: Range<Int>)],
                                  bytes: UnsafeRawBufferPointer) -> Int {
        var i = indexOfBatch(containing: offset, in: batches)
        while i < batches.count && lastOffset(of: batches[i], in: bytes) < offset { i += 1 }
        return i
    }

    /// Index of the batch holding `offset` (the last one whose base <= offset), or 0 when all start after it.
    static func indexOfBatch(containing offset: Int64, in batches: [(baseOffset: Int64, range: Range<Int>)]) -> Int {
        var lo = 0, hi = batches.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if batches[mid].baseOffset <= offset { lo = mid + 1 } else { hi = mid }
        }
        return max(0, lo - 1)
    }
}
