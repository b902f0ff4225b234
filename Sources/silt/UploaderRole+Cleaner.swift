import Foundation
import SiltConfig
import SiltController
import SiltMetadata
import SiltStreams

/// The log cleaner's settings and inputs, as the uploader role reads them.
extension UploaderRole {
    /// `log.cleaner.enable`.
    var cleanerEnabled: Bool { ConfigKeyDef.parseBool(config.value("log.cleaner.enable").value ?? "true") ?? true }

    /// `log.cleaner.backoff.ms`: the pause between passes.
    var cleanerBackoffMs: Int64 { Int64(config.value("log.cleaner.backoff.ms").value ?? "") ?? 15_000 }

    func logCleanerConfig() -> LogCleanerConfig {
        let storage = config.objectStorage
        return LogCleanerConfig(blockBytes: storage.objectBlockBytes, partBytes: storage.objectPartBytes,
                                parallelism: storage.uploadParallelism,
                                bandwidthBytesPerSecond: Int64(storage.networkBaselineBytesPerSecond),
                                streamBytesMax: Int64(config.value("log.cleaner.stream.max.bytes").value ?? "") ?? 128 << 20)
    }

    /// Every stream of a topic whose effective cleanup.policy contains `compact`, with the
    /// topic's cleaner settings, in stream id order.
    static func cleanableStreams(image: MetadataImage, config: ServerConfig) -> [CleanableStream] {
        // Topic override, then dynamic broker configs, then the static server config.
        let resolver = TopicConfigResolver(config: config, image: image)
        var out: [CleanableStream] = []
        for topic in image.topicsByName.values {
            let policy = ConfigKeyDef.parseList(resolver.value("cleanup.policy", topic: topic))
            guard policy.contains("compact") else { continue }
            let retention = Int64(resolver.value("delete.retention.ms", topic: topic)) ?? 86_400_000
            let ratio = Double(resolver.value("min.cleanable.dirty.ratio", topic: topic)) ?? 0.5
            let lag = Int64(resolver.value("min.compaction.lag.ms", topic: topic)) ?? 0
            for id in topic.streamIds where image.streamStates[id] != nil {
                out.append(CleanableStream(streamId: id, deleteRetentionMs: retention, minCleanableDirtyRatio: ratio,
                                           minCompactionLagMs: lag))
            }
        }
        return out.sorted { $0.streamId < $1.streamId }
    }
}
