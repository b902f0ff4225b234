import NIOCore
import SiltRecords

/// What the broker needs of a partition's log, whichever way it is stored:
/// `PartitionLog` (segment files under log.dirs, used without a WAL) or `StreamLog` (a
/// stream on object storage: offsets and the high watermark live here, the bytes live in
/// the log buffer until the uploader has committed them to objects).
public protocol Partition: AnyObject, Sendable {
    var topic: String { get }
    var partition: Int32 { get }
    var logStartOffset: Int64 { get }
    /// The next offset to assign.
    var logEndOffset: Int64 { get }
    /// Consumers see offsets below this.
    var highWatermark: Int64 { get }

    /// Assigns offsets to `records` (validated batches `batches`) under the partition lock and
    /// hands the stored bytes to `publish` still under it, so that publication order is offset
    /// order. If `publish` throws, nothing was appended.
    func append(_ records: ByteBuffer, batches: [RecordBatchHeader], logAppendTime: Bool, nowMs: Int64,
                partitionLeaderEpoch: Int32, publish: (ByteBuffer, AppendInfo) throws -> Void) throws -> AppendInfo
    /// Everything below `offset` is durable; readers may see it.
    func advanceHighWatermark(to offset: Int64)
    /// Whole batches from local files (see `PartitionLog.read`), or nil when the partition keeps
    /// no data locally and the caller reads from the log buffer or object storage.
    func readLocal(from offset: Int64, maxBytes: Int, minOneBatch: Bool) throws -> ByteBuffer?
    func offsetForTimestamp(_ timestampMs: Int64) -> (offset: Int64, timestamp: Int64)?

    // Idempotent producers (ProducerState.swift). `append` checks and updates this state under
    // the partition lock; a retry of a batch already written returns `AppendInfo.duplicate`.

    /// A copy of the producer state with the log end offset it covers (for a snapshot).
    func producerStateSnapshot() -> ProducerStateSnapshot
    /// Recovery: replaces the producer state, before the partition takes appends.
    func loadProducerState(_ table: ProducerStateTable)
    /// Forgets producers idle for `expirationMs` (`producer.id.expiration.ms`); returns how many.
    @discardableResult
    func expireProducers(nowMs: Int64, expirationMs: Int64) -> Int
}

extension AppendInfo {
    /// The answer to a retry: the offsets of the batch already written.
    static func duplicate(of batch: ProducerBatch, logAppendTime: Bool, logStartOffset: Int64) -> AppendInfo {
        AppendInfo(baseOffset: batch.firstOffset, lastOffset: batch.lastOffset,
                   logAppendTimeMs: logAppendTime ? batch.timestampMs : -1, logStartOffset: logStartOffset, duplicate: true)
    }
}

extension Partition {
    public func append(_ records: ByteBuffer, batches: [RecordBatchHeader], logAppendTime: Bool, nowMs: Int64,
                       publish: (ByteBuffer, AppendInfo) throws -> Void) throws -> AppendInfo {
        try append(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs, partitionLeaderEpoch: 0,
                   publish: publish)
    }
}

/// The partitions of a broker.
public protocol PartitionStore: AnyObject, Sendable {
    func partition(topic: String, partition: Int32) -> (any Partition)?
    func allPartitions() -> [any Partition]
    /// The partition, created if absent. `streamStart`/`streamEnd`: the stream's committed
    /// range in object storage (ignored by stores that keep data locally).
    func openOrCreate(topic: String, partition: Int32, streamStart: Int64, streamEnd: Int64) throws -> any Partition
    func deletePartitions(topic: String) throws
    func addHighWatermarkListener(_ listener: @escaping @Sendable (any Partition, Int64) -> Void)
    /// Makes everything appended so far durable where the store itself is responsible for that.
    func flushAll()
    func shutdown()
}

extension PartitionLog: Partition {
    public func readLocal(from offset: Int64, maxBytes: Int, minOneBatch: Bool) throws -> ByteBuffer? {
        try read(from: offset, maxBytes: maxBytes, minOneBatch: minOneBatch)
    }

    public func producerStateSnapshot() -> ProducerStateSnapshot {
        lock.withLock { ProducerStateSnapshot(offset: logEndOffsetStorage, table: producers) }
    }

    public func loadProducerState(_ table: ProducerStateTable) { lock.withLock { producers = table } }

    @discardableResult
    public func expireProducers(nowMs: Int64, expirationMs: Int64) -> Int {
        lock.withLock { producers.expire(nowMs: nowMs, expirationMs: expirationMs) }
    }
}

extension LogManager: PartitionStore {
    public func partition(topic: String, partition: Int32) -> (any Partition)? {
        partitionLog(topic: topic, partition: partition)
    }

    public func allPartitions() -> [any Partition] { allPartitionLogs() }

    public func openOrCreate(topic: String, partition: Int32, streamStart: Int64, streamEnd: Int64) throws -> any Partition {
        try openOrCreate(topic: topic, partition: partition)
    }

    public func addHighWatermarkListener(_ listener: @escaping @Sendable (any Partition, Int64) -> Void) {
        addPartitionLogHighWatermarkListener { log, hw in listener(log, hw) }
    }
}
