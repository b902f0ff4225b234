import SiltMetadata
import SiltStreams

/// A topic's log cleaner settings, as the node's configuration resolves them (topic
/// override, then dynamic broker configs, then the static server config).
public struct TopicCleanerSettings: Sendable, Equatable {
    /// The effective `cleanup.policy` contains `compact`.
    public var compact: Bool
    /// `delete.retention.ms`.
    public var deleteRetentionMs: Int64
    /// `min.cleanable.dirty.ratio`.
    public var minCleanableDirtyRatio: Double
    /// `min.compaction.lag.ms`.
    public var minCompactionLagMs: Int64
    /// `max.compaction.lag.ms`.
    public var maxCompactionLagMs: Int64

    public init(compact: Bool, deleteRetentionMs: Int64, minCleanableDirtyRatio: Double, minCompactionLagMs: Int64,
                maxCompactionLagMs: Int64 = .max) {
        self.compact = compact
        self.deleteRetentionMs = deleteRetentionMs
        self.minCleanableDirtyRatio = minCleanableDirtyRatio
        self.minCompactionLagMs = minCompactionLagMs
        self.maxCompactionLagMs = maxCompactionLagMs
    }
}

extension CompactionLoop {
    /// Every stream of a topic whose effective cleanup.policy contains `compact`, with the
    /// topic's cleaner settings, in stream id order.
    public static func cleanableStreams(image: MetadataImage, settings: (TopicInfo) -> TopicCleanerSettings) -> [CleanableStream] {
        var out: [CleanableStream] = []
        for topic in image.topicsByName.values {
            let s = settings(topic)
            guard s.compact else { continue }
            for id in topic.streamIds where image.streamStates[id] != nil {
                out.append(CleanableStream(streamId: id, deleteRetentionMs: s.deleteRetentionMs,
                                           minCleanableDirtyRatio: s.minCleanableDirtyRatio, minCompactionLagMs: s.minCompactionLagMs,
                                           maxCompactionLagMs: s.maxCompactionLagMs))
            }
        }
        return out.sorted { $0.streamId < $1.streamId }
    }
}
