/// What `Partition.append` assigned.
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
