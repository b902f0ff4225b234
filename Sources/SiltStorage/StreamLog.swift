import Foundation
import Logging
import NIOCore
import SiltRecords

/// A partition whose data lives in object storage: a stream.
///
/// ```
///  logStartOffset      committed end (objects)        highWatermark      logEndOffset
///        [=====================|~~~~~~~~~~~~~~~~~~~~~~~~~~~~|~~~~~~~~~~~~~~~~~)
///         read from objects     in the log buffer, durable   appended, waiting
///                               in the WAL, not yet uploaded for the WAL
/// ```
///
/// This class keeps only the offsets: `append` assigns them under the partition lock and
/// hands the batches to the log buffer (`publish`); the WAL's durable LSN moves the high
/// watermark; the uploader moves the committed end, which the broker learns from the
/// metadata log. No byte of partition data is written under log.dirs.
public final class StreamLog: Partition, @unchecked Sendable {
    public let topic: String
    public let partition: Int32
    public let streamId: UInt64
    /// The stream epoch this broker opened the stream in (the controller bumped it for this
    /// open). Every frame appended carries it to the WAL and the uploader, whose commits the
    /// controller accepts only in the stream's current epoch.
    public let streamEpoch: Int64
    let maxBatchBytes: Int
    private let lock = NSLock()
    private var start: Int64
    private var end: Int64
    private var hw: Int64
    private var closed = false
    private var released = false
    private var producers = ProducerStateTable()
    var onHighWatermarkAdvance: ((StreamLog, Int64) -> Void)?

    /// A stream whose objects hold `[startOffset, endOffset)`.
    public init(topic: String, partition: Int32, streamId: UInt64, streamEpoch: Int64, startOffset: Int64, endOffset: Int64,
                maxBatchBytes: Int) {
        precondition(startOffset <= endOffset, "stream starts after it ends")
        self.topic = topic
        self.partition = partition
        self.streamId = streamId
        self.streamEpoch = streamEpoch
        self.start = startOffset
        self.end = endOffset
        self.hw = endOffset
        self.maxBatchBytes = maxBatchBytes
    }

    public var logStartOffset: Int64 { lock.withLock { start } }
    public var logEndOffset: Int64 { lock.withLock { end } }
    public var highWatermark: Int64 { lock.withLock { hw } }

    public func append(_ records: ByteBuffer, batches: [RecordBatchHeader], logAppendTime: Bool, nowMs: Int64,
                       partitionLeaderEpoch: Int32, publish: (ByteBuffer, AppendInfo) throws -> Void) throws -> AppendInfo {
        precondition(!batches.isEmpty, "append of no batches")
        for batch in batches where batch.totalSize > maxBatchBytes {
            throw StorageError.batchTooLarge(sizeBytes: batch.totalSize, maxBytes: maxBatchBytes)
        }
        var buffer = records
        let logAppendTimeMs: Int64? = logAppendTime ? nowMs : nil
        lock.lock()
        defer { lock.unlock() }
        if released { throw StorageError.released(topic: topic, partition: partition) }
        if closed { throw StorageError.closed(topic: topic, partition: partition) }
        if let original = try producers.validate(batches) {
            return .duplicate(of: original, logAppendTime: logAppendTime, logStartOffset: start)
        }
        var offset = end
        var stored: [RecordBatchHeader] = []
        stored.reserveCapacity(batches.count)
        for batch in batches {
            let header = assignOffsets(&buffer, at: batch.index, baseOffset: offset,
                                       partitionLeaderEpoch: partitionLeaderEpoch, logAppendTimeMs: logAppendTimeMs)
            offset = header.nextOffset
            stored.append(header)
        }
        let info = AppendInfo(baseOffset: end, lastOffset: offset - 1, logAppendTimeMs: logAppendTimeMs ?? -1,
                              logStartOffset: start)
        try publish(buffer, info)
        end = offset
        producers.record(stored)
        return info
    }

    public func producerStateSnapshot() -> ProducerStateSnapshot {
        lock.withLock { ProducerStateSnapshot(offset: end, table: producers) }
    }

    public func loadProducerState(_ table: ProducerStateTable) { lock.withLock { producers = table } }

    @discardableResult
    public func expireProducers(nowMs: Int64, expirationMs: Int64) -> Int {
        lock.withLock { producers.expire(nowMs: nowMs, expirationMs: expirationMs) }
    }

    public func advanceHighWatermark(to offset: Int64) {
        let advanced: Bool = lock.withLock {
            guard offset > hw else { return false }
            precondition(offset <= end, "high watermark past the log end")
            hw = offset
            return true
        }
        if advanced { onHighWatermarkAdvance?(self, offset) }
    }

    /// Recovery: batches at `[logEndOffset, offset)` exist (committed in objects, or in the log
    /// buffer and durable), so the log ends there and all of it is readable.
    public func recover(endOffset offset: Int64) {
        let advanced: Bool = lock.withLock {
            guard offset > end else { return false }
            end = offset
            hw = offset
            return true
        }
        if advanced { onHighWatermarkAdvance?(self, offset) }
    }

    /// Moves the log start forward (the stream was trimmed: retention, DeleteRecords).
    public func trim(startOffset offset: Int64) {
        lock.withLock { start = max(start, min(offset, end)) }
    }



    func close() { lock.withLock { closed = true } }

    /// Stops taking appends because the partition moves to another broker; returns the log end
    /// offset, final from here on. Reads of what it holds go on until it is removed.
    public func release() -> Int64 {
        lock.withLock {
            released = true
            return end
        }
    }
}

/// The streams of a broker: one `StreamLog` per partition, nothing on disk.
public final class StreamLogManager: @unchecked Sendable {
    private let lock = NSLock()
    private var partitions: [PartitionKey: StreamLog] = [:]
    private var listeners: [@Sendable (any Partition, Int64) -> Void] = []
    private let maxBatchBytes: Int
    private let logger: Logger

    public init(maxBatchBytes: Int, logger: Logger) {
        self.maxBatchBytes = maxBatchBytes
        self.logger = logger
    }

    public func partition(topic: String, partition: Int32) -> StreamLog? {
        lock.withLock { partitions[PartitionKey(topic: topic, partition: partition)] }
    }

    public func allStreams() -> [StreamLog] { lock.withLock { Array(partitions.values) } }

    /// The stream's log in `streamEpoch`, created at its committed range if absent.
    public func openStream(topic: String, partition: Int32, streamId: UInt64, streamEpoch: Int64, streamStart: Int64,
                           streamEnd: Int64) throws -> StreamLog {
        try PartitionKey.validate(topic: topic, partition: partition)
        let key = PartitionKey(topic: topic, partition: partition)
        return lock.withLock {
            if let existing = partitions[key] { return existing }
            let log = StreamLog(topic: topic, partition: partition, streamId: streamId, streamEpoch: streamEpoch, startOffset: streamStart,
                                endOffset: streamEnd, maxBatchBytes: maxBatchBytes)
            log.onHighWatermarkAdvance = { [weak self] log, hw in
                guard let self else { return }
                for l in self.lock.withLock({ self.listeners }) { l(log, hw) }
            }
            partitions[key] = log
            return log
        }
    }

    /// Removes a released stream's log (its partition moved away) if it is still the open one.
    public func remove(_ log: StreamLog) {
        let removed: Bool = lock.withLock {
            let key = PartitionKey(topic: log.topic, partition: log.partition)
            guard partitions[key] === log else { return false }
            partitions.removeValue(forKey: key)
            return true
        }
        if removed { log.close() }
    }

    public func deletePartitions(topic: String) throws {
        let removed: [StreamLog] = lock.withLock {
            let keys = partitions.keys.filter { $0.topic == topic }
            return keys.compactMap { partitions.removeValue(forKey: $0) }
        }
        for log in removed { log.close() }
    }

    public func addHighWatermarkListener(_ listener: @escaping @Sendable (any Partition, Int64) -> Void) {
        lock.withLock { listeners.append(listener) }
    }

    public func shutdown() {
        for log in allStreams() { log.close() }
    }
}
