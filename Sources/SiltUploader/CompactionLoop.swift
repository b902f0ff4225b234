import Foundation
import Logging
import NIOCore
import SiltMetadata
import SiltMetrics
import SiltObjectStore
import SiltStreams

/// The uploader's background work on committed objects: stream set compaction and stream
/// object compaction, each on its own period, and the log cleaner every
/// `log.cleaner.backoff.ms`. One loop, so the cleaner never races the compactor. It rewrites
/// only the objects this node may compact (`MetadataCatalog.liveObjects()`).
public final class CompactionLoop: @unchecked Sendable {
    /// A topic's log cleaner settings in an image, as the node's configuration resolves them.
    public typealias TopicCleanerSettingsResolver = @Sendable (MetadataImage, TopicInfo) -> TopicCleanerSettings

    public let catalog: MetadataCatalog
    let cache: MetadataFollower
    let config: UploaderConfig
    let topicCleanerSettings: TopicCleanerSettingsResolver
    let metrics: MetricsRegion
    let logger: Logger
    let compactor: Compactor
    let cleaner: LogCleaner

    public init(store: ObjectStore, control: ControllerUploaderControl, cache: MetadataFollower, clusterId: String,
                loop: EventLoop, config: UploaderConfig, topicCleanerSettings: @escaping TopicCleanerSettingsResolver,
                metrics: MetricsRegion, logger: Logger) {
        self.catalog = MetadataCatalog(cache: cache, control: control, clusterId: clusterId, loop: loop)
        self.cache = cache
        self.config = config
        self.topicCleanerSettings = topicCleanerSettings
        self.metrics = metrics
        self.logger = logger
        self.compactor = Compactor(store: store, catalog: catalog, clusterId: clusterId, config: config.compaction, logger: logger)
        self.cleaner = LogCleaner(store: store, catalog: catalog, clusterId: clusterId, config: config.logCleaner, logger: logger)
    }

    /// Runs until `shouldStop` turns true or the task is cancelled. A failed pass is logged
    /// and retried the next period.
    public func run(shouldStop: @escaping @Sendable () -> Bool) async {
        var nextClean = ContinuousClock.now + .milliseconds(config.cleanerBackoffMs)
        var nextStreamSet = ContinuousClock.now + .milliseconds(config.storage.streamSetCompactionIntervalMs)
        var nextStream = ContinuousClock.now + .milliseconds(config.storage.streamObjectCompactionIntervalMs)
        while !Task.isCancelled && !shouldStop() {
            try? await Task.sleep(for: .milliseconds(200))
            let now = ContinuousClock.now
            let cleanDue = config.cleanerEnabled && now >= nextClean
            guard now >= nextStreamSet || now >= nextStream || cleanDue else { continue }
            do {
                try await catalog.catchUp()
                metrics.set(.objectsCommitted, UInt64(cache.image.committedObjects.count))
                if now >= nextStreamSet {
                    nextStreamSet = now + .milliseconds(config.storage.streamSetCompactionIntervalMs)
                    // Several rounds while there is work: each round's input is bounded.
                    for _ in 0..<16 where !shouldStop() {
                        let r = try await compactor.compactStreamSetObjects()
                        record(r, kind: .streamSet)
                        if r.objectsBefore == 0 { break }
                        try await catalog.catchUp()
                    }
                }
                if now >= nextStream {
                    nextStream = now + .milliseconds(config.storage.streamObjectCompactionIntervalMs)
                    try await catalog.catchUp()
                    let r = try await compactor.compactStreamObjects()
                    record(r, kind: .stream)
                }
                if cleanDue {
                    // Log compaction (cleanup.policy=compact): same loop, so it never races the compactor.
                    try await catalog.catchUp()
                    let image = cache.image
                    let settings = topicCleanerSettings
                    let streams = CompactionLoop.cleanableStreams(image: image) { settings(image, $0) }
                    _ = await cleaner.cleanDirtyStreams(streams, nowMs: CompactionLoop.wallClockMs(),
                                                        beforeEach: { try await self.catalog.catchUp() })
                    nextClean = ContinuousClock.now + .milliseconds(config.cleanerBackoffMs)
                }
            } catch {
                logger.warning("compaction failed; next period retries", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Milliseconds since the epoch, as the metadata log stamps commits.
    static func wallClockMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    private func record(_ r: CompactionResult, kind: ObjectKind) {
        guard r.objectsBefore > 0 else { return }
        metrics.add(kind == .streamSet ? .compactionsStreamSet : .compactionsStream)
        metrics.add(.compactionBytesRead, UInt64(r.bytesRead))
        metrics.add(.compactionBytesWritten, UInt64(r.bytesWritten))
        metrics.add(.compactionBytesCopied, UInt64(r.bytesCopiedServerSide))
        logger.info("compaction", metadata: ["kind": "\(kind)", "objectsBefore": "\(r.objectsBefore)",
                                              "objectsAfter": "\(r.objectsAfter)", "bytesRead": "\(r.bytesRead)",
                                              "bytesWritten": "\(r.bytesWritten)", "bytesCopied": "\(r.bytesCopiedServerSide)"])
    }
}
