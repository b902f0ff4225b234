import NIOCore
import SiltConfig
import SiltMetadata

/// `max.compaction.lag.ms` (KIP-354) on stream storage.
///
/// The log cleaner only sees records that are in objects; until the uploader uploads them
/// (every `s3.wal.upload.interval.ms`, 60 s by default, or sooner when the log buffer fills)
/// they are what Kafka's active segment is: not cleanable. Kafka rolls a segment whose first
/// record is older than the topic's `max.compaction.lag.ms`, so that it can be cleaned; here
/// the broker asks the uploader to upload the stream (that stream only) within the lag, and
/// the cleaner cleans committed records it has seen dirty for that long whatever the dirty
/// ratio (`LogCleaner.isDirty`). A record is cleaned within about the lag plus one
/// `log.cleaner.backoff.ms`.
///
/// ```
///  produce to a compacted topic ──append──▶ log buffer
///        └─ lag < upload interval? ──▶ one timer per stream (max(lag, floor)) ──▶ requestUpload(streamId)
/// ```
///
/// Bounds: one timer per stream at a time (a set of stream ids), and no stream is uploaded
/// more than once per `compactionLagUploadMinMs` on its topic's behalf, however small its lag:
/// each upload is an object PUT and a controller commit.
extension Broker {
    /// The shortest interval between uploads a topic's `max.compaction.lag.ms` may cause.
    static let compactionLagUploadMinMs: Int64 = 1_000

    /// The topic's `max.compaction.lag.ms` when it is compacted and the lag is shorter than
    /// the regular uploads' interval; nil when the regular uploads come soon enough.
    func compactionUploadLagMs(_ topic: TopicInfo, image: MetadataImage) -> Int64? {
        guard let lagMs = Int64(topicConfig(topic, "max.compaction.lag.ms", image: image)),
              lagMs < Int64(config.objectStorage.uploadIntervalMs),
              ConfigKeyDef.parseList(topicConfig(topic, "cleanup.policy", image: image)).contains("compact") else { return nil }
        return lagMs
    }

    /// Asks for `streamId`'s upload `lagMs` from now (at least `compactionLagUploadMinMs`),
    /// unless a request is already pending: the records appended meanwhile go with it. Never
    /// blocks the event loop: a scheduled task.
    func uploadWithinCompactionLag(streamId: UInt64, lagMs: Int64, on loop: EventLoop) {
        let first = compactionLagUploads.withLockedValue { $0.insert(streamId).inserted }
        guard first else { return }
        loop.scheduleTask(in: .milliseconds(max(lagMs, Broker.compactionLagUploadMinMs))) {
            // Cleared before the request: an append after this point schedules the next one.
            self.compactionLagUploads.withLockedValue { _ = $0.remove(streamId) }
            self.writePath.requestUpload(streamId: streamId)
        }
    }
}
