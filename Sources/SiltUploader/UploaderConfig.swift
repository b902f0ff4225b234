import SiltStreams

/// The uploader role's settings: uploads, compaction and the log cleaner. The executable
/// fills it from the node's configuration (`s3.*` and `log.cleaner.*` keys); this module
/// never reads configuration itself.
public struct UploaderConfig: Sendable {
    /// Bytes waiting in the log buffer that trigger an upload (`s3.wal.upload.threshold`).
    public var uploadThresholdBytes: Int
    /// Longest wait before pending bytes are uploaded (`s3.wal.upload.interval.ms`).
    public var uploadIntervalMs: Int
    public var objectBlockBytes: Int
    public var objectPartBytes: Int
    /// A stream with more than this in one upload gets a stream object of its own.
    public var streamObjectSplitBytes: Int
    public var streamSetCompactionIntervalMs: Int
    public var streamObjectCompactionIntervalMs: Int
    /// Bandwidth budget of compaction and the log cleaner.
    public var networkBaselineBytesPerSecond: Int
    public var uploadParallelism: Int
    /// How long prepared object ids stay valid (`PrepareS3Object`'s ttl).
    public var prepareTTLMs: Int64
    /// `log.cleaner.enable`.
    public var cleanerEnabled: Bool = true
    /// `log.cleaner.backoff.ms`: the pause between log cleaner passes.
    public var cleanerBackoffMs: Int64 = 15_000
    /// `log.cleaner.stream.max.bytes`: the most one stream's cleaning holds in memory.
    public var cleanerStreamBytesMax: Int64 = 128 << 20

    public init(uploadThresholdBytes: Int, uploadIntervalMs: Int, objectBlockBytes: Int, objectPartBytes: Int,
                streamObjectSplitBytes: Int, streamSetCompactionIntervalMs: Int, streamObjectCompactionIntervalMs: Int,
                networkBaselineBytesPerSecond: Int, uploadParallelism: Int, prepareTTLMs: Int64) {
        self.uploadThresholdBytes = uploadThresholdBytes
        self.uploadIntervalMs = uploadIntervalMs
        self.objectBlockBytes = objectBlockBytes
        self.objectPartBytes = objectPartBytes
        self.streamObjectSplitBytes = streamObjectSplitBytes
        self.streamSetCompactionIntervalMs = streamSetCompactionIntervalMs
        self.streamObjectCompactionIntervalMs = streamObjectCompactionIntervalMs
        self.networkBaselineBytesPerSecond = networkBaselineBytesPerSecond
        self.uploadParallelism = uploadParallelism
        self.prepareTTLMs = prepareTTLMs
    }

    /// Stream set compaction holds its input (and its output) in memory: 4 uploads' worth,
    /// at least 64 MiB, at most 256 MiB. Stream set objects of at least half this are left
    /// as they are (big enough), so large uploads are never rewritten.
    public var compactionBytesMax: Int {
        min(max(4 * uploadThresholdBytes, 64 << 20), 256 << 20)
    }

    /// The compactor's settings.
    public var compaction: CompactionConfig {
        var c = CompactionConfig(blockBytes: objectBlockBytes, partBytes: objectPartBytes, parallelism: uploadParallelism,
                                 bandwidthBytesPerSecond: Int64(networkBaselineBytesPerSecond),
                                 streamSetBytesMax: Int64(compactionBytesMax))
        c.streamSplitBytes = Int64(streamObjectSplitBytes)
        return c
    }

    /// The log cleaner's settings.
    public var logCleaner: LogCleanerConfig {
        LogCleanerConfig(blockBytes: objectBlockBytes, partBytes: objectPartBytes, parallelism: uploadParallelism,
                         bandwidthBytesPerSecond: Int64(networkBaselineBytesPerSecond), streamBytesMax: cleanerStreamBytesMax)
    }
}
