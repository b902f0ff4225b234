import SiltController
import SiltConfig
import SiltMetadata
import SiltUploader

/// The uploader's settings, read from the node's configuration.
extension UploaderConfig {
    init(_ config: ServerConfig) {
        self.init(storage: config.objectStorage)
        cleanerEnabled = ConfigKeyDef.parseBool(config.value("log.cleaner.enable").value ?? "true") ?? true
        cleanerBackoffMs = Int64(config.value("log.cleaner.backoff.ms").value ?? "") ?? 15_000
        cleanerStreamBytesMax = Int64(config.value("log.cleaner.stream.max.bytes").value ?? "") ?? 128 << 20
    }
}

extension TopicCleanerSettings {
    /// `topic`'s cleaner settings in `image`: topic override, then dynamic broker configs,
    /// then the static server config.
    init(config: ServerConfig, image: MetadataImage, topic: TopicInfo) {
        let resolver = TopicConfigResolver(config: config, image: image)
        self.init(compact: ConfigKeyDef.parseList(resolver.value("cleanup.policy", topic: topic)).contains("compact"),
                  deleteRetentionMs: Int64(resolver.value("delete.retention.ms", topic: topic)) ?? 86_400_000,
                  minCleanableDirtyRatio: Double(resolver.value("min.cleanable.dirty.ratio", topic: topic)) ?? 0.5,
                  minCompactionLagMs: Int64(resolver.value("min.compaction.lag.ms", topic: topic)) ?? 0,
                  maxCompactionLagMs: Int64(resolver.value("max.compaction.lag.ms", topic: topic)) ?? .max)
    }
}
