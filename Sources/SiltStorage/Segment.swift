#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import SiltRecords

/// One entry of a segment's in-memory sparse index.
struct IndexEntry: Equatable {
    /// baseOffset of the batch at `positionBytes`.
    var offset: Int64
    var positionBytes: Int
    /// Largest batch maxTimestamp from this entry's batch up to (not including) the next entry's.
    var maxTimestampMs: Int64
}

/// One `<20-digit baseOffset>.log` file holding batches exactly as Kafka stores them.
///
/// The file descriptor lives as long as the object: readers and the flusher take a strong
/// reference under the partition lock and use the fd outside it, so a concurrent delete (which
/// only unlinks) can never make them use a closed or reused descriptor.
final class Segment {
    let baseOffset: Int64
    let path: String
    let fd: Int32

    // Guarded by the owning PartitionLog's lock.
    var sizeBytes: Int
    var nextOffset: Int64
    var maxTimestampMs: Int64 = -1
    /// Bytes whose writeback has been started (`PartitionLog.startWriteback`).
    var writebackStartedBytes = 0
    var index: [IndexEntry] = []
    private var bytesSinceIndexEntry = 0

    init(baseOffset: Int64, path: String, fd: Int32, sizeBytes: Int) {
        precondition(baseOffset >= 0 && fd >= 0 && sizeBytes >= 0)
        self.baseOffset = baseOffset
        self.path = path
        self.fd = fd
        self.sizeBytes = sizeBytes
        self.writebackStartedBytes = sizeBytes
        self.nextOffset = baseOffset
    }

    deinit { close(fd) }

    static func fileName(baseOffset: Int64) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".log"
    }

    /// The base offset encoded in a segment file name, or nil for other files.
    static func baseOffset(fileName: String) -> Int64? {
        guard fileName.hasSuffix(".log") else { return nil }
        let stem = fileName.dropLast(4)
        guard stem.count == 20, stem.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int64(stem)
    }

    /// Records a batch that now lives at `positionBytes` (already written or recovered).
    func noteBatch(_ header: RecordBatchHeader, at positionBytes: Int, indexIntervalBytes: Int) {
        precondition(positionBytes >= 0 && positionBytes + header.totalSize <= sizeBytes, "batch beyond the segment end")
        precondition(index.isEmpty || header.baseOffset >= nextOffset, "batch offsets go backwards")
        if index.isEmpty || bytesSinceIndexEntry >= indexIntervalBytes {
            index.append(IndexEntry(offset: header.baseOffset, positionBytes: positionBytes,
                                    maxTimestampMs: header.maxTimestamp))
            bytesSinceIndexEntry = 0
        } else {
            index[index.count - 1].maxTimestampMs = max(index[index.count - 1].maxTimestampMs, header.maxTimestamp)
        }
        bytesSinceIndexEntry += header.totalSize
        maxTimestampMs = max(maxTimestampMs, header.maxTimestamp)
        nextOffset = header.nextOffset
    }

    /// Position of the index entry to start scanning from for `offset` (0 if none precedes it).
    func lookupStart(offset: Int64) -> Int {
        var lo = 0
        var hi = index.count - 1
        var best = 0
        while lo <= hi {
            let mid = (lo + hi) / 2
            if index[mid].offset <= offset {
                best = index[mid].positionBytes
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        return best
    }
}

/// One batch found by `BatchScanner`.
struct ScannedBatch {
    var positionBytes: Int
    /// Parsed header; `index` is relative to `bytes` (0) when `bytes` is set.
    var header: RecordBatchHeader
    /// The whole batch, when the scan loaded bodies.
    var bytes: ByteBuffer?
}

/// Walks the batches of a segment file with buffered preads (`chunkBytes` at a time), bounded by
/// `limitBytes`. Used for recovery (with CRC checks) and for offset/timestamp lookups.
struct BatchScanner {
    enum Step {
        case batch(ScannedBatch)
        case end
        /// The bytes at `positionBytes` are not a valid batch (torn write, bad CRC, bad length).
        case torn(positionBytes: Int, reason: String)
    }

    let fd: Int32
    let path: String
    let limitBytes: Int
    let chunkBytes: Int
    let maxBatchBytes: Int
    private(set) var positionBytes: Int
    private var buffer: ByteBuffer
    private var bufferStart: Int

    init(segment: Segment, from positionBytes: Int, limitBytes: Int, chunkBytes: Int, maxBatchBytes: Int) {
        precondition(positionBytes >= 0 && positionBytes <= limitBytes)
        self.fd = segment.fd
        self.path = segment.path
        self.positionBytes = positionBytes
        self.limitBytes = limitBytes
        self.chunkBytes = chunkBytes
        self.maxBatchBytes = maxBatchBytes
        self.buffer = ByteBuffer()
        self.bufferStart = positionBytes
    }

    /// Makes [positionBytes, positionBytes + count) available in `buffer`; false if the file is shorter.
    private mutating func ensure(_ count: Int) throws(StorageError) -> Bool {
        if positionBytes >= bufferStart && positionBytes + count <= bufferStart + buffer.writerIndex {
            return true
        }
        let want = min(max(chunkBytes, count), limitBytes - positionBytes)
        guard want >= count else { return false }
        buffer = try Sys.preadBytes(fd, path, count: want, at: positionBytes)
        bufferStart = positionBytes
        return buffer.readableBytes >= count
    }

    mutating func next(loadBody: Bool, verifyCRC: Bool) throws(StorageError) -> Step {
        if positionBytes >= limitBytes { return .end }
        guard try ensure(RecordBatchHeader.sizeBytes) else {
            return .torn(positionBytes: positionBytes, reason: "truncated batch header")
        }
        let at = positionBytes - bufferStart
        let header: RecordBatchHeader
        do {
            header = try RecordBatchHeader(parsing: buffer, at: at)
        } catch {
            return .torn(positionBytes: positionBytes, reason: "\(error)")
        }
        guard header.batchLength >= RecordBatchHeader.minBatchLength, header.totalSize <= maxBatchBytes else {
            return .torn(positionBytes: positionBytes, reason: "impossible batchLength \(header.batchLength)")
        }
        guard header.lastOffsetDelta >= -1, header.baseOffset >= 0 else {
            return .torn(positionBytes: positionBytes, reason: "impossible offsets \(header.baseOffset)+\(header.lastOffsetDelta)")
        }
        let total = header.totalSize
        var scanned = ScannedBatch(positionBytes: positionBytes, header: header, bytes: nil)
        if loadBody || verifyCRC {
            guard try ensure(total) else {
                return .torn(positionBytes: positionBytes, reason: "batch of \(total) bytes truncated")
            }
            let bytes = buffer.getSlice(at: positionBytes - bufferStart, length: total)!
            scanned.header.index = 0
            if verifyCRC && !scanned.header.isCRCValid(in: bytes) {
                return .torn(positionBytes: positionBytes, reason: "CRC32C mismatch")
            }
            if loadBody { scanned.bytes = bytes }
        } else if positionBytes + total > limitBytes {
            return .torn(positionBytes: positionBytes, reason: "batch of \(total) bytes truncated")
        }
        positionBytes += total
        return .batch(scanned)
    }
}
