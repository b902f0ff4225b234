import Dispatch
import Foundation
import Logging
import SiltConfig
import SiltMetadata
import SiltStreams

/// Time- and size-based retention (cleanup.policy contains `delete`), enforced by the
/// controller every `log.retention.check.interval.ms` through the stream-trim path.
///
/// Retention works on whole object ranges, as Kafka works on whole segments: a stream's
/// live ranges are considered oldest first, and the start offset moves to the end of the
/// last range that expired. A range expires when
///  - time: its newest record timestamp is older than `now - retention.ms` (-1: never);
///  - size: dropping it still leaves at least `retention.bytes` in the stream (-1: never).
///
/// ```
///  start                                                          committed end
///    [ range 1 (old) | range 2 (old) | range 3 (recent) | range 4 ]
///                                    ^ new start: trimStream
/// ```
///
/// A trim is one metadata record: brokers learn it from the log (`StreamLog.trim`, so
/// ListOffsets and Fetch honour it), objects whose ranges are all below the new start
/// become dead, and the `ObjectJanitor` deletes them after `s3.object.deletion.delay.ms`.
/// Data not yet uploaded (in the log buffer) is never trimmed by retention.
public final class RetentionEnforcer: @unchecked Sendable {
    public static let checkIntervalKey = "log.retention.check.interval.ms"

    let controller: MetadataController
    let config: ServerConfig
    let intervalMs: Int64
    let logger: Logger
    let nowMs: @Sendable () -> Int64
    private let lock = NSLock()
    private var task: Task<Void, Never>?

    public init(controller: MetadataController, config: ServerConfig, intervalMs: Int64, logger: Logger,
                nowMs: @escaping @Sendable () -> Int64 = { MetadataController.wallClockMs() }) {
        precondition(intervalMs >= 1)
        self.controller = controller
        self.config = config
        self.intervalMs = intervalMs
        self.logger = logger
        self.nowMs = nowMs
    }

    /// An enforcer with the node's `log.retention.check.interval.ms`.
    public convenience init(controller: MetadataController, config: ServerConfig, logger: Logger) {
        let interval = config.value(RetentionEnforcer.checkIntervalKey).value.flatMap { Int64($0) } ?? 300_000
        self.init(controller: controller, config: config, intervalMs: interval, logger: logger)
    }

    /// Starts the background loop (a pass after one interval, then one every interval).
    public func start() {
        lock.withLock {
            precondition(task == nil, "retention enforcer started twice")
            task = Task { [self] in
                logger.info("retention enforcer started", metadata: ["intervalMs": "\(intervalMs)"])
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: UInt64(intervalMs) * 1_000_000)
                    if Task.isCancelled { break }
                    runOnce()
                }
            }
        }
    }

    /// Stops the loop (a pass in flight finishes; it only writes metadata records).
    public func stop() {
        lock.withLock {
            task?.cancel()
            task = nil
        }
    }

    /// One pass over every stream of every topic; returns the trims made (stream → new start).
    @discardableResult
    public func runOnce() -> [UInt64: Int64] {
        // Leader-only work: every controller runs the timer, only the active one trims.
        guard controller.isActive else { return [:] }
        let image = controller.image
        let now = nowMs()
        let resolver = TopicConfigResolver(config: config, image: image)
        var trims: [UInt64: Int64] = [:]
        for topic in image.topicsByName.values.sorted(by: { $0.name < $1.name }) {
            let policy = ConfigKeyDef.parseList(resolver.value("cleanup.policy", topic: topic))
            guard policy.contains("delete") else { continue }
            let retentionMs = Int64(resolver.value("retention.ms", topic: topic)) ?? -1
            let retentionBytes = Int64(resolver.value("retention.bytes", topic: topic)) ?? -1
            guard retentionMs >= 0 || retentionBytes >= 0 else { continue }
            for streamId in topic.streamIds {
                guard let target = RetentionEnforcer.retentionStart(image: image, streamId: streamId, retentionMs: retentionMs,
                                                                    retentionBytes: retentionBytes, nowMs: now) else { continue }
                do {
                    let start = try controller.trimStream(streamId: streamId, startOffset: target)
                    trims[streamId] = start
                    logger.info("retention trimmed a stream", metadata: [
                        "topic": "\(topic.name)", "stream": "\(streamId)", "startOffset": "\(start)"])
                } catch {
                    // The topic may have been deleted meanwhile; the next pass sees the new image.
                    logger.warning("retention trim failed", metadata: ["stream": "\(streamId)", "error": "\(error)"])
                }
            }
        }
        return trims
    }

    /// The start offset retention wants for a stream, or nil when nothing expired.
    public static func retentionStart(image: MetadataImage, streamId: UInt64, retentionMs: Int64, retentionBytes: Int64,
                                      nowMs: Int64) -> Int64? {
        guard let state = image.streamStates[streamId], let refs = image.streamObjects[streamId] else { return nil }
        var ranges: [(endOffset: Int64, stats: RangeStats)] = []
        for ref in refs {
            guard let object = image.object(id: ref.objectId), let stats = object.stats(streamId: streamId) else {
                preconditionFailure("stream \(streamId) indexes object \(ref.objectId), which does not hold it")
            }
            ranges.append((ref.endOffset, stats))
        }
        var remainingBytes = ranges.reduce(Int64(0)) { $0 + $1.stats.bytes }
        var newStart: Int64?
        for r in ranges {
            let expiredByTime = retentionMs >= 0 && r.stats.maxTimestampMs < nowMs - retentionMs
            let expiredBySize = retentionBytes >= 0 && remainingBytes - r.stats.bytes >= retentionBytes
            guard expiredByTime || expiredBySize else { break }
            remainingBytes -= r.stats.bytes
            newStart = r.endOffset
        }
        guard let newStart, newStart > state.startOffset else { return nil }
        return newStart
    }
}
