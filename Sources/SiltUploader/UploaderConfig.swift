import SiltConfig
import SiltStreams

/// The uploader role's settings: the node's stream storage settings (`s3.*`, AutoMQ's names)
/// and the log cleaner's. The executable fills it from the node's configuration; this module
/// never reads configuration itself.
public struct UploaderConfig: Sendable {
    /// Uploads, object layout, compaction periods, bandwidth, prepared-id TTL.
    public var storage: ObjectStorageConfig
    /// `log.cleaner.enable`.
    public var cleanerEnabled: Bool = true
    /// `log.cleaner.backoff.ms`: the pause between log cleaner passes.
    public var cleanerBackoffMs: Int64 = 15_000
    /// `log.cleaner.stream.max.bytes`: the most one stream's cleaning holds in memory.
    public var cleanerStreamBytesMax: Int64 = 128 << 20

    public init(storage: ObjectStorageConfig) {
        self.storage = storage
    }

    /// Stream set compaction holds its input (and its output) in memory: 4 uploads' worth,
    /// at least 64 MiB, at most 256 MiB. Stream set objects of at least half this are left
    /// as they are (big enough), so large uploads are never rewritten.
    public var compactionBytesMax: Int {
        min(max(4 * storage.uploadThresholdBytes, 64 << 20), 256 << 20)
    }

    /// The compactor's settings.
    public var compaction: CompactionConfig {
        var c = CompactionConfig(blockBytes: storage.objectBlockBytes, partBytes: storage.objectPartBytes,
                                 parallelism: storage.uploadParallelism,
                                 bandwidthBytesPerSecond: Int64(storage.networkBaselineBytesPerSecond),
                                 streamSetBytesMax: Int64(compactionBytesMax))
        c.streamSplitBytes = Int64(storage.streamObjectSplitBytes)
        return c
    }

    /// The log cleaner's settings.
    public var logCleaner: LogCleanerConfig {
        LogCleanerConfig(blockBytes: storage.objectBlockBytes, partBytes: storage.objectPartBytes,
                         parallelism: storage.uploadParallelism,
                         bandwidthBytesPerSecond: Int64(storage.networkBaselineBytesPerSecond), streamBytesMax: cleanerStreamBytesMax)
    }
}
