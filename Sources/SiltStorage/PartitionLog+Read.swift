import Foundation
import NIOCore
import SiltRecords

extension PartitionLog {
    /// Reads whole batches, starting with the batch that CONTAINS `offset` (a fetch from the middle of a
    /// batch gets the whole batch, as in Kafka), up to `maxBytes`, never past the high watermark.
    /// With `minOneBatch` the first batch is returned even if it is larger than `maxBytes`; without
    /// it such a read returns an empty buffer. A read never crosses a segment boundary (like Kafka),
    /// so it may return less than `maxBytes` although more data exists; fetch again from the next offset.
    /// `offset == highWatermark` returns an empty buffer.
    ///
    /// Throws `.offsetOutOfRange` when `offset < logStartOffset` or `offset > highWatermark`.
    public func read(from offset: Int64, maxBytes: Int, minOneBatch: Bool) throws -> ByteBuffer {
        precondition(maxBytes >= 0, "negative maxBytes")
        lock.lock()
        let start = logStartOffsetStorage
        let hw = highWatermarkStorage
        guard offset >= start, offset <= hw else {
            lock.unlock()
            throw StorageError.offsetOutOfRange(offset: offset, logStartOffset: start, highWatermark: hw)
        }
        if offset == hw {
            lock.unlock()
            return ByteBuffer()
        }
        guard let segment = segmentContainingLocked(offset) else {
            lock.unlock()
            throw StorageError.offsetOutOfRange(offset: offset, logStartOffset: start, highWatermark: hw)
        }
        let limitBytes = limitLocked(segment)
        let scanFromBytes = segment.lookupStart(offset: offset)
        lock.unlock()

        // Find the batch containing `offset` (bytes below the high watermark are immutable).
        var scanner = BatchScanner(segment: segment, from: scanFromBytes, limitBytes: limitBytes,
                                   chunkBytes: config.indexIntervalBytes + 2 * RecordBatchHeader.sizeBytes,
                                   maxBatchBytes: config.maxBatchBytes)
        var first: ScannedBatch? = nil
        while first == nil {
            switch try scanner.next(loadBody: false, verifyCRC: false) {
            case .batch(let batch) where batch.header.lastOffset >= offset:
                first = batch
            case .batch:
                continue
            case .end:
                throw StorageError.corrupt(path: segment.path, positionBytes: scanner.positionBytes,
                                           reason: "offset \(offset) below the high watermark \(hw) not found")
            case .torn(let position, let reason):
                throw StorageError.corrupt(path: segment.path, positionBytes: position, reason: reason)
            }
        }
        let firstBatch = first!
        let firstSize = firstBatch.header.totalSize
        let readBytes: Int
        if firstSize > maxBytes {
            guard minOneBatch else { return ByteBuffer() }
            readBytes = firstSize
        } else {
            readBytes = min(maxBytes, limitBytes - firstBatch.positionBytes)
        }
        var buffer = try Sys.preadBytes(segment.fd, segment.path, count: readBytes, at: firstBatch.positionBytes)
        guard buffer.readableBytes == readBytes else {
            throw StorageError.corrupt(path: segment.path, positionBytes: firstBatch.positionBytes,
                                       reason: "file shorter than the index says")
        }
        // Keep whole batches only; check what we read (the other side of the I/O).
        var end = 0
        while buffer.writerIndex - end >= RecordBatchHeader.sizeBytes {
            let header: RecordBatchHeader
            do {
                header = try RecordBatchHeader(parsing: buffer, at: end)
            } catch {
                throw StorageError.corrupt(path: segment.path, positionBytes: firstBatch.positionBytes + end, reason: "\(error)")
            }
            guard header.batchLength >= RecordBatchHeader.minBatchLength else {
                throw StorageError.corrupt(path: segment.path, positionBytes: firstBatch.positionBytes + end,
                                           reason: "batchLength \(header.batchLength)")
            }
            if end + header.totalSize > buffer.writerIndex { break }
            if end == 0 {
                precondition(header.baseOffset == firstBatch.header.baseOffset && header.lastOffset >= offset,
                             "read returned a batch that does not contain the requested offset")
            }
            end += header.totalSize
        }
        precondition(end >= firstSize, "first batch lost")
        buffer.moveWriterIndex(to: end)
        return buffer
    }

    /// The first offset whose record timestamp is >= `timestampMs`, with that timestamp, among the
    /// records below the high watermark; nil if none (ListOffsets then answers -1 / the log end).
    ///
    /// Precise for uncompressed CreateTime batches (records are walked). Batch-granular otherwise:
    /// for a compressed batch whose maxTimestamp >= target this returns (baseOffset, maxTimestamp)
    /// since we never decompress (Kafka would return the exact record inside it; ours is the same
    /// or an earlier offset, so a consumer seeking there misses nothing). For LogAppendTime batches
    /// every record has the batch maxTimestamp, so (baseOffset, maxTimestamp) is exact.
    public func offsetForTimestamp(_ timestampMs: Int64) -> (offset: Int64, timestamp: Int64)? {
        lock.lock()
        let hw = highWatermarkStorage
        let snapshot = segments
        let hwSegment = highWatermarkSegment
        lock.unlock()
        do {
            for segment in snapshot {
                if segment.baseOffset >= hw && segment !== hwSegment { break }
                lock.lock()
                let limitBytes = limitLocked(segment)
                var ranges: [(from: Int, to: Int)] = []
                if segment.maxTimestampMs >= timestampMs {
                    for (i, entry) in segment.index.enumerated() where entry.maxTimestampMs >= timestampMs {
                        let to = i + 1 < segment.index.count ? segment.index[i + 1].positionBytes : limitBytes
                        if entry.positionBytes < limitBytes { ranges.append((entry.positionBytes, min(to, limitBytes))) }
                    }
                }
                lock.unlock()
                for range in ranges {
                    var scanner = BatchScanner(segment: segment, from: range.from, limitBytes: range.to,
                                               chunkBytes: config.recoveryReadBufferBytes, maxBatchBytes: config.maxBatchBytes)
                    scan: while true {
                        switch try scanner.next(loadBody: true, verifyCRC: false) {
                        case .batch(let batch):
                            let header = batch.header
                            guard header.maxTimestamp >= timestampMs, header.baseOffset < hw else { continue }
                            if header.isCompressed || header.timestampType == .logAppendTime {
                                return (header.baseOffset, header.maxTimestamp)
                            }
                            var reader = try RecordReader(batch: batch.bytes!, header: header)
                            while let record = try reader.next() {
                                if record.timestamp >= timestampMs && record.offset < hw {
                                    return (record.offset, record.timestamp)
                                }
                            }
                        case .end, .torn:
                            break scan
                        }
                    }
                }
                if segment === hwSegment { break }
            }
        } catch {
            logger.error("offsetForTimestamp failed", metadata: ["partition": "\(topic)-\(partition)", "error": "\(error)"])
        }
        return nil
    }

    /// The segment holding `offset` (the last one whose base offset is <= offset).
    func segmentContainingLocked(_ offset: Int64) -> Segment? {
        var lo = 0
        var hi = segments.count - 1
        var found: Segment? = nil
        while lo <= hi {
            let mid = (lo + hi) / 2
            if segments[mid].baseOffset <= offset {
                found = segments[mid]
                lo = mid + 1
            } else {
                hi = mid - 1
            }
        }
        return found
    }

    /// How far readers may read in `segment`: its end, or the high watermark position in the
    /// high-watermark segment.
    func limitLocked(_ segment: Segment) -> Int {
        segment === highWatermarkSegment ? highWatermarkPositionBytes : segment.sizeBytes
    }
}
