import Foundation
import NIOCore
import SiltController
import SiltRecords
import SiltStorage

/// Reading a partition from inside the broker: the group coordinator loading
/// `__consumer_offsets`, producer-state recovery. Whole batches, wherever they are now: the
/// log buffer, local segment files, or object storage. Never call these on an event loop:
/// object reads wait on S3.
extension Broker {
    /// Why an internal read of a partition failed.
    public enum PartitionReadError: Error, CustomStringConvertible {
        case unknownPartition(topic: String, partition: Int32)
        /// The offsets below the high watermark did not become readable in time (the
        /// metadata log naming their object did not arrive, or object storage is down).
        case unavailable(topic: String, partition: Int32, offset: Int64)

        public var description: String {
            switch self {
            case .unknownPartition(let t, let p): return "partition \(t)-\(p) does not exist"
            case .unavailable(let t, let p, let o): return "partition \(t)-\(p): offset \(o) is not readable yet"
            }
        }
    }

    /// Whole batches of a partition from the batch holding `offset` (or the next one, where
    /// compaction left a gap), at least one batch and about `maxBytes`; empty at or past the
    /// high watermark, or when the data is committed but this broker's metadata does not name
    /// its object yet.
    func readBatches(topic: String, partition: Int32, from offset: Int64, maxBytes: Int) async throws -> ByteBuffer {
        let image = metadata.image
        guard let info = image.topic(named: topic), partition >= 0, partition < info.partitionCount,
              let log = logs.partition(topic: topic, partition: partition) else {
            throw PartitionReadError.unknownPartition(topic: topic, partition: partition)
        }
        guard offset < log.highWatermark else { return ByteBuffer() }
        let streamId = info.streamIds[Int(partition)]
        if let tail = writePath.readTail(log, streamId: streamId, from: offset, maxBytes: maxBytes, minOneBatch: true) {
            return tail
        }
        guard let objectReader else { return ByteBuffer() }
        return try await objectReader.read(streamId: streamId, from: offset, maxBytes: maxBytes, minOneBatch: true,
                                           image: image)
    }

    /// Calls `body` with each batch of a partition whose last offset is at or past `from`,
    /// up to the high watermark as it is when the scan starts (or `end`, if lower). Returns
    /// the offset after the last batch seen (at least `from`). Waits up to `patience` for
    /// offsets that are committed but not yet readable here.
    @discardableResult
    func scanPartition(topic: String, partition: Int32, from: Int64, to end: Int64? = nil,
                       chunkBytes: Int = 1 << 20, patience: Duration = .seconds(30),
                       _ body: (RecordBatchHeader, ByteBuffer) throws -> Void) async throws -> Int64 {
        guard let log = logs.partition(topic: topic, partition: partition) else {
            throw PartitionReadError.unknownPartition(topic: topic, partition: partition)
        }
        let stop = min(end ?? .max, log.highWatermark)
        var offset = max(from, log.logStartOffset)
        var stalledSince: ContinuousClock.Instant?
        while offset < stop {
            var buffer = try await readBatches(topic: topic, partition: partition, from: offset, maxBytes: chunkBytes)
            var progressed = false
            while buffer.readableBytes >= RecordBatchHeader.logOverheadBytes {
                let header = try RecordBatchHeader(parsing: buffer, at: buffer.readerIndex)
                guard header.isComplete(in: buffer) else { break }
                let batch = buffer.readSlice(length: header.totalSize)!
                guard header.lastOffset >= offset else { continue }
                if header.baseOffset >= stop { break }
                var local = header
                local.index = 0
                try body(local, batch)
                offset = header.nextOffset
                progressed = true
            }
            if progressed {
                stalledSince = nil
                continue
            }
            // Below the start after a trim: jump to the new start.
            if log.logStartOffset > offset {
                offset = log.logStartOffset
                continue
            }
            let now = ContinuousClock.now
            if let since = stalledSince, now - since > patience {
                throw PartitionReadError.unavailable(topic: topic, partition: partition, offset: offset)
            }
            stalledSince = stalledSince ?? now
            try await Task.sleep(for: .milliseconds(50))
        }
        return offset
    }
}
