#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSupport
import Foundation
import Logging
import NIOCore
import SiltRecords

/// The durable log of one partition: a list of segment files, the active (last) one appended to.
///
/// ```
///  logStartOffset            highWatermark        logEndOffset
///        |  segment 0 | segment 1 | active segment   |
///        [=========================|~~~~~~~~~~~~~~~~~)
///         fdatasync'ed: readable    written, waiting for the flusher
/// ```
///
/// Offsets: `append` assigns contiguous offsets under the partition lock and writes the batches
/// with pwrite before returning; the flusher thread later fdatasyncs every segment written since
/// its last pass (one fsync for all appends waiting, i.e. group commit), then advances the high
/// watermark and calls each append's `onDurable`. Consumers only ever see data below the high
/// watermark. Reads pread outside the lock: bytes below the high watermark never change.
///
/// Back of the envelope: an append is one memcpy of the request (copy-on-write for the offset
/// rewrite) plus one pwrite into the page cache (~GB/s); the fsync (~50 µs NVMe with PLP,
/// ~1-10 ms consumer SSD) is paid once per flusher pass per partition, not per append.
///
/// Failure: a failed pwrite is rolled back (ftruncate to the previous size) and the append throws;
/// offsets are not advanced and the partition stays writable. A failed fdatasync (or a failed
/// rollback) takes the partition `offline`: every waiting and later append fails with
/// `StorageError.offline`, the high watermark stays at the last successful fsync, reads below
/// it still work, and recovery on the next open rebuilds the log from what is really on disk.
public final class PartitionLog: @unchecked Sendable {
    public let topic: String
    public let partition: Int32
    /// `<logDir>/<topic>-<partition>`.
    public let directory: String
    let config: StorageConfig
    let logger: Logger
    /// Called (outside the lock) after appends, to queue this partition for the flusher.
    var scheduleFlush: ((PartitionLog) -> Void)?
    /// Called on the flusher thread after the high watermark advanced (manager-level listeners).
    var onHighWatermarkAdvance: ((PartitionLog, Int64) -> Void)?

    let lock = NSLock()
    // Guarded by `lock`.
    var segments: [Segment]
    var logStartOffsetStorage: Int64
    var logEndOffsetStorage: Int64
    var highWatermarkStorage: Int64
    /// The segment and byte position that the high watermark corresponds to.
    var highWatermarkSegment: Segment
    var highWatermarkPositionBytes: Int
    var waiters: [(endOffset: Int64, callback: @Sendable (Result<Void, Error>) -> Void)] = []
    /// External durability: where each appended-but-not-yet-durable run of offsets ends.
    var pendingEnds: [(endOffset: Int64, segment: Segment, positionBytes: Int)] = []
    var dirtySegments: [Segment] = []
    var needsDirectorySync = false
    var failure: StorageError?
    var listeners: [UInt64: @Sendable (Int64) -> Void] = [:]
    var nextListenerId: UInt64 = 0
    /// Idempotent producers of this partition (see `ProducerStateTable`).
    var producers = ProducerStateTable()

    // Guarded by the flusher's lock.
    var flushQueued = false
    var flushing = false

    init(topic: String, partition: Int32, directory: String, config: StorageConfig, logger: Logger,
         segments: [Segment], logStartOffset: Int64) {
        precondition(!segments.isEmpty, "a partition always has an active segment")
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.config = config
        self.logger = logger
        self.segments = segments
        let active = segments[segments.count - 1]
        self.logStartOffsetStorage = logStartOffset
        self.logEndOffsetStorage = active.nextOffset
        self.highWatermarkStorage = active.nextOffset
        self.highWatermarkSegment = active
        self.highWatermarkPositionBytes = active.sizeBytes
    }

    public var logStartOffset: Int64 { lock.withLock { logStartOffsetStorage } }
    /// The next offset to assign.
    public var logEndOffset: Int64 { lock.withLock { logEndOffsetStorage } }
    /// The durable end: everything below is fdatasync'ed; consumers see only this far.
    public var highWatermark: Int64 { lock.withLock { highWatermarkStorage } }
    /// Number of segment files (for tests and metrics).
    public var segmentCount: Int { lock.withLock { segments.count } }
    /// Base offsets of the segment files, oldest first.
    public var segmentBaseOffsets: [Int64] { lock.withLock { segments.map(\.baseOffset) } }
    /// nil while healthy; the reason appends are refused otherwise.
    public var failureReason: StorageError? { lock.withLock { failure } }

    /// Calls `listener` (on a storage thread, outside any lock) with the new high watermark each time it
    /// advances. Keep it short and non-blocking: e.g. wake long-poll fetches. Returns a token for removal.
    @discardableResult
    public func addHighWatermarkListener(_ listener: @escaping @Sendable (Int64) -> Void) -> UInt64 {
        lock.withLock {
            nextListenerId += 1
            listeners[nextListenerId] = listener
            return nextListenerId
        }
    }

    public func removeHighWatermarkListener(_ token: UInt64) {
        lock.withLock { _ = listeners.removeValue(forKey: token) }
    }

    /// Assigns offsets to every batch of `records` (validated by `validateProducedRecords`, whose headers
    /// are `batches`, in order, covering all readable bytes), writes them to the active segment and
    /// returns what was assigned. `onDurable` is called exactly once, from a storage thread, after
    /// an fdatasync covering the bytes (success), or with the error that made the partition
    /// offline or closed it. If `append` throws, nothing was appended and `onDurable` is never called.
    ///
    /// With `logAppendTime`, the batches get the LogAppendTime bit and maxTimestamp = `nowMs`
    /// (see `assignOffsets`). Appends to one partition are serialized; offsets are contiguous.
    public func append(_ records: ByteBuffer, batches: [RecordBatchHeader], logAppendTime: Bool, nowMs: Int64,
                       partitionLeaderEpoch: Int32 = 0,
                       onDurable: @escaping @Sendable (Result<Void, Error>) -> Void) throws -> AppendInfo {
        precondition(!config.externalDurability, "append(onDurable:) in external-durability mode")
        return try appendLocked(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs,
                                partitionLeaderEpoch: partitionLeaderEpoch, publish: { _, _ in }, onDurable: onDurable)
    }

    /// External durability (the WAL path): assigns offsets and writes the batches like
    /// `append`, then, still under the partition lock so that publication order is offset
    /// order, hands the stored bytes to `publish` (which appends them to the log buffer).
    /// If `publish` throws, the write is undone and nothing was appended. The high
    /// watermark moves only when the caller reports durability with `advanceHighWatermark`.
    public func append(_ records: ByteBuffer, batches: [RecordBatchHeader], logAppendTime: Bool, nowMs: Int64,
                       partitionLeaderEpoch: Int32 = 0,
                       publish: (ByteBuffer, AppendInfo) throws -> Void) throws -> AppendInfo {
        precondition(config.externalDurability, "append(publish:) needs external-durability mode")
        return try appendLocked(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs,
                                partitionLeaderEpoch: partitionLeaderEpoch, publish: publish, onDurable: nil)
    }

    /// Writes batches that already carry their offsets (WAL replay after a crash). The first
    /// must start at the log end offset. Returns the new log end offset.
    @discardableResult
    public func appendRecovered(_ records: ByteBuffer) throws -> Int64 {
        let batches = try parseBatchHeaders(records)
        precondition(!batches.isEmpty, "appendRecovered of no batches")
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw failure }
        guard batches[0].baseOffset == logEndOffsetStorage else {
            throw StorageError.corrupt(path: directory, positionBytes: 0,
                                       reason: "WAL replay at offset \(batches[0].baseOffset) but the log ends at \(logEndOffsetStorage)")
        }
        var active = segments[segments.count - 1]
        if active.sizeBytes > 0 && active.sizeBytes + records.readableBytes > config.segmentBytes {
            active = try rollLocked()
        }
        let startBytes = active.sizeBytes
        do {
            try Sys.pwriteAll(active.fd, active.path, records, at: startBytes, faults: config)
        } catch {
            rollBackWriteLocked(active, toBytes: startBytes, cause: error)
            throw error
        }
        active.sizeBytes = startBytes + records.readableBytes
        var offset = logEndOffsetStorage
        for header in batches {
            precondition(header.baseOffset == offset, "WAL replay batches must be contiguous")
            active.noteBatch(header, at: startBytes + (header.index - records.readerIndex),
                             indexIntervalBytes: config.indexIntervalBytes)
            offset = header.nextOffset
        }
        logEndOffsetStorage = offset
        if dirtySegments.last !== active { dirtySegments.append(active) }
        pendingEnds.append((offset, active, active.sizeBytes))
        return offset
    }

    /// External durability: everything below `offset` is durable; readers may see it.
    public func advanceHighWatermark(to offset: Int64) {
        lock.lock()
        guard offset > highWatermarkStorage else { lock.unlock(); return }
        precondition(offset <= logEndOffsetStorage, "high watermark past the log end")
        var advanced = false
        while let first = pendingEnds.first, first.endOffset <= offset {
            pendingEnds.removeFirst()
            highWatermarkStorage = first.endOffset
            highWatermarkSegment = first.segment
            highWatermarkPositionBytes = first.positionBytes
            advanced = true
        }
        let hw = highWatermarkStorage
        let notify = advanced ? Array(listeners.values) : []
        lock.unlock()
        if advanced {
            for listener in notify { listener(hw) }
            onHighWatermarkAdvance?(self, hw)
        }
    }

    private func appendLocked(_ records: ByteBuffer, batches: [RecordBatchHeader], logAppendTime: Bool, nowMs: Int64,
                              partitionLeaderEpoch: Int32,
                              publish: (ByteBuffer, AppendInfo) throws -> Void,
                              onDurable: (@Sendable (Result<Void, Error>) -> Void)?) throws -> AppendInfo {
        precondition(!batches.isEmpty, "append of no batches")
        var expectedIndex = records.readerIndex
        for batch in batches {
            precondition(batch.index == expectedIndex, "batches must cover the records in order")
            precondition(batch.magic == 2 && batch.batchLength >= RecordBatchHeader.minBatchLength)
            guard batch.totalSize <= config.maxBatchBytes else {
                throw StorageError.batchTooLarge(sizeBytes: batch.totalSize, maxBytes: config.maxBatchBytes)
            }
            expectedIndex += batch.totalSize
        }
        precondition(expectedIndex == records.writerIndex, "batches must cover all readable bytes")

        var buffer = records
        let logAppendTimeMs: Int64? = logAppendTime ? nowMs : nil
        let info: AppendInfo
        // Runs after the partition lock is released (inner scopes unwind first).
        var flushForDuplicate = false
        defer { if flushForDuplicate { scheduleFlush?(self) } }
        do {
            lock.lock()
            defer { lock.unlock() }
            if let failure { throw failure }
            if let original = try producers.validate(batches) {
                // A retry: answered once the original is durable, with its offsets.
                if let onDurable {
                    waiters.append((endOffset: original.lastOffset + 1, callback: onDurable))
                    flushForDuplicate = true
                }
                return .duplicate(of: original, logAppendTime: logAppendTime, logStartOffset: logStartOffsetStorage)
            }
            var active = segments[segments.count - 1]
            if active.sizeBytes > 0 && active.sizeBytes + buffer.readableBytes > config.segmentBytes {
                active = try rollLocked()
            }
            let baseOffset = logEndOffsetStorage
            var offset = baseOffset
            var assigned: [RecordBatchHeader] = []
            assigned.reserveCapacity(batches.count)
            for batch in batches {
                let header = assignOffsets(&buffer, at: batch.index, baseOffset: offset,
                                           partitionLeaderEpoch: partitionLeaderEpoch, logAppendTimeMs: logAppendTimeMs)
                assert(header.isCRCValid(in: buffer), "CRC broken by offset assignment")
                offset = header.nextOffset
                assigned.append(header)
            }
            let startBytes = active.sizeBytes
            do {
                try Sys.pwriteAll(active.fd, active.path, buffer, at: startBytes, faults: config)
            } catch {
                rollBackWriteLocked(active, toBytes: startBytes, cause: error)
                throw error
            }
            info = AppendInfo(baseOffset: baseOffset, lastOffset: offset - 1,
                              logAppendTimeMs: logAppendTimeMs ?? -1, logStartOffset: logStartOffsetStorage)
            do {
                try publish(buffer, info)
            } catch {
                // Not a storage failure (the log buffer is full, say): undo quietly.
                rollBackWriteLocked(active, toBytes: startBytes, cause: error, quiet: true)
                throw error
            }
            active.sizeBytes = startBytes + buffer.readableBytes
            for header in assigned {
                let position = startBytes + (header.index - buffer.readerIndex)
                active.noteBatch(header, at: position, indexIntervalBytes: config.indexIntervalBytes)
            }
            assert(active.nextOffset == offset)
            logEndOffsetStorage = offset
            producers.record(assigned)
            if let onDurable {
                waiters.append((endOffset: offset, callback: onDurable))
            } else {
                pendingEnds.append((offset, active, active.sizeBytes))
            }
            if dirtySegments.last !== active { dirtySegments.append(active) }
        }
        if onDurable != nil { scheduleFlush?(self) }
        return info
    }

    /// Creates a new active segment at the log end offset. The directory fsync is left to the
    /// flusher, which does it before acknowledging anything written to the new segment.
    private func rollLocked() throws -> Segment {
        let baseOffset = logEndOffsetStorage
        let path = directory + "/" + Segment.fileName(baseOffset: baseOffset)
        let fd = try Sys.openFile(path, O_RDWR | O_CREAT | O_EXCL)
        let segment = Segment(baseOffset: baseOffset, path: path, fd: fd, sizeBytes: 0)
        segments.append(segment)
        needsDirectorySync = true
        logger.debug("rolled segment", metadata: ["partition": "\(topic)-\(partition)", "baseOffset": "\(baseOffset)"])
        return segment
    }

    /// Undoes a partial write. If even that fails the file content is unknown: go offline.
    private func rollBackWriteLocked(_ segment: Segment, toBytes size: Int, cause: Error, quiet: Bool = false) {
        do {
            try Sys.truncate(segment.fd, segment.path, toBytes: size)
            if !quiet {
                logger.error("append failed, rolled back", metadata: ["partition": "\(topic)-\(partition)", "error": "\(cause)"])
            }
        } catch {
            logger.critical("append failed and rollback failed; partition offline",
                            metadata: ["partition": "\(topic)-\(partition)", "error": "\(error)"])
            failure = .offline(topic: topic, partition: partition, cause: "\(error)")
        }
    }

    /// One group commit: fdatasync every segment written since the last pass (and the directory
    /// after a roll), then advance the high watermark and complete the covered appends.
    /// Called by one flusher thread at a time per partition (and by shutdown).
    func flush() {
        lock.lock()
        if let failure {
            let failed = waiters
            waiters = []
            lock.unlock()
            for waiter in failed { waiter.callback(.failure(failure)) }
            return
        }
        let target = logEndOffsetStorage
        let toSync = dirtySegments
        let syncDirectory = needsDirectorySync
        dirtySegments = []
        needsDirectorySync = false
        let targetSegment = segments[segments.count - 1]
        let targetPositionBytes = targetSegment.sizeBytes
        let hasWaiters = !waiters.isEmpty
        lock.unlock()

        if toSync.isEmpty && !syncDirectory && !hasWaiters { return }
        var syncError: StorageError? = nil
        do {
            if syncDirectory { try Sys.syncDirectory(directory, faults: config) }
            for segment in toSync { try Sys.datasync(segment.fd, segment.path, faults: config) }
        } catch {
            syncError = error
        }

        lock.lock()
        var completed: [(endOffset: Int64, callback: @Sendable (Result<Void, Error>) -> Void)] = []
        var advancedTo: Int64? = nil
        var notify: [@Sendable (Int64) -> Void] = []
        let result: Result<Void, Error>
        if let syncError {
            let offline = StorageError.offline(topic: topic, partition: partition, cause: "\(syncError)")
            if failure == nil { failure = offline }
            completed = waiters
            waiters = []
            result = .failure(failure!)
            logger.critical("fdatasync failed; partition offline",
                            metadata: ["partition": "\(topic)-\(partition)", "error": "\(syncError)"])
        } else {
            result = .success(())
            if target > highWatermarkStorage && failure == nil && !config.externalDurability {
                highWatermarkStorage = target
                highWatermarkSegment = targetSegment
                highWatermarkPositionBytes = targetPositionBytes
                advancedTo = target
                notify = Array(listeners.values)
            }
            var count = 0
            while count < waiters.count && waiters[count].endOffset <= highWatermarkStorage { count += 1 }
            completed = Array(waiters[0..<count])
            waiters.removeFirst(count)
        }
        lock.unlock()

        for waiter in completed { waiter.callback(result) }
        if let advancedTo {
            for listener in notify { listener(advancedTo) }
            onHighWatermarkAdvance?(self, advancedTo)
        }
    }

    /// Starts (does not wait for) writeback of everything written since the last call, so
    /// that the next fdatasync finds little to do. No cache flush is issued.
    func startWriteback() {
        lock.lock()
        var ranges: [(Segment, Int, Int)] = []
        for segment in dirtySegments where segment.sizeBytes > segment.writebackStartedBytes {
            ranges.append((segment, segment.writebackStartedBytes, segment.sizeBytes - segment.writebackStartedBytes))
            segment.writebackStartedBytes = segment.sizeBytes
        }
        lock.unlock()
        for (segment, offset, bytes) in ranges {
            let e = silt_start_writeback(segment.fd, Int64(offset), Int64(bytes))
            if e != 0 {
                logger.debug("sync_file_range failed", metadata: ["path": "\(segment.path)", "errno": "\(e)"])
            }
        }
    }

    /// Stops the partition: later appends throw `reason`, waiting appends fail with it.
    func close(reason: StorageError) {
        lock.lock()
        if failure == nil { failure = reason }
        let failed = waiters
        waiters = []
        lock.unlock()
        for waiter in failed { waiter.callback(.failure(reason)) }
    }
}
