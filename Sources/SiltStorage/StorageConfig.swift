/// Configuration of the local log storage. Names follow Kafka's keys where one exists.
public struct StorageConfig: Sendable {
    /// `log.dirs` (one directory today).
    public var logDir: String
    /// Directories in `logDir` that belong to other components (the metadata log, the WAL)
    /// and are neither partitions nor unknown.
    public var reservedDirectoryNames: Set<String> = ["__cluster_metadata", "producer-state"]
    /// When true, a write-ahead log owns durability: appends are acknowledged by the WAL,
    /// the high watermark moves only through `PartitionLog.advanceHighWatermark(to:)`, and
    /// segment files are fdatasync'ed lazily by `LogManager.flushAll()` (before a WAL trim).
    public var externalDurability: Bool = false
    /// `log.segment.bytes`: an append rolls to a new segment when the active one is non-empty and
    /// the append would take it past this size. Kafka default 1 GiB.
    public var segmentBytes: Int = 1 << 30
    /// `log.index.interval.bytes`: one in-memory sparse index entry per this many bytes of batches.
    /// Memory: 24 bytes per entry, so 1 GiB of log costs 6 MiB of index at 4 KiB.
    public var indexIntervalBytes: Int = 4096
    /// Upper bound on one batch, enforced on append and trusted on recovery (a larger batchLength on
    /// disk is a torn write). Must be at least the broker's max.message.bytes.
    public var maxBatchBytes: Int = 64 << 20
    /// Read buffer used when scanning segments on open (recovery) and for lookups.
    public var recoveryReadBufferBytes: Int = 1 << 20
    /// Flusher threads shared by all partitions. Each dirty partition is fdatasync'ed by one thread
    /// at a time; more threads overlap fsyncs of different partitions.
    public var flusherThreadCount: Int = 1
    /// Tests only: return an errno to make that call fail. nil in production.
    public var faultInjector: (@Sendable (StorageFaultPoint, _ path: String) -> Int32?)?

    public init(logDir: String, segmentBytes: Int = 1 << 30) {
        self.logDir = logDir
        self.segmentBytes = segmentBytes
    }

    func validate() {
        precondition(!logDir.isEmpty, "logDir empty")
        precondition(segmentBytes >= 1024, "segmentBytes too small")
        precondition(indexIntervalBytes >= 1, "indexIntervalBytes must be positive")
        precondition(maxBatchBytes >= 61, "maxBatchBytes too small")
        precondition(recoveryReadBufferBytes >= 4096, "recoveryReadBufferBytes too small")
        precondition(flusherThreadCount >= 1 && flusherThreadCount <= 64, "flusherThreadCount out of range")
    }
}

/// What `PartitionLog.append` assigned.
public struct AppendInfo: Sendable, Equatable {
    /// Offset of the first record of the first batch.
    public var baseOffset: Int64
    /// Offset of the last record of the last batch.
    public var lastOffset: Int64
    /// The LogAppendTime written into the batches, or -1 for CreateTime.
    public var logAppendTimeMs: Int64
    public var logStartOffset: Int64
    /// True when the append was a retry of an idempotent producer's batch that is already in
    /// the log: nothing was appended and the offsets are the original ones (see `ProducerStateTable`).
    public var duplicate: Bool

    public init(baseOffset: Int64, lastOffset: Int64, logAppendTimeMs: Int64, logStartOffset: Int64, duplicate: Bool = false) {
        self.baseOffset = baseOffset
        self.lastOffset = lastOffset
        self.logAppendTimeMs = logAppendTimeMs
        self.logStartOffset = logStartOffset
        self.duplicate = duplicate
    }
}
