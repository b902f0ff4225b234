import Foundation
import Logging
import SiltConfig
import SiltController
import SiltStorage

/// Keeps the idempotent producers' state of every partition across restarts: "snapshotted
/// with the partition".
///
/// - A snapshot per partition (`<log.dirs>/producer-state/<streamId>.snapshot`, the state as
///   of offset X) is written every `snapshotIntervalMs` for partitions whose state changed,
///   and for all at a clean stop.
/// - At start, before the broker listens, each partition loads its snapshot and replays the
///   batch headers from X to the log end (from the log start without a snapshot, or when
///   the snapshot lies beyond the log end: its batches were lost in a crash before they
///   became durable, so its state must not be trusted).
/// - Producers idle for `producer.id.expiration.ms` are forgotten, as in Kafka.
///
/// Stream ids are never reused, so a snapshot can never be taken for a recreated topic's data.
public final class ProducerStateKeeper: @unchecked Sendable {
    /// How often changed partitions are snapshotted and idle producers expired. A crash
    /// replays at most this much of each partition's log on the next start.
    public static let snapshotIntervalMs: Int64 = 30_000
    static let directoryName = "producer-state"

    let broker: Broker
    let directory: String
    let expirationMs: Int64
    let logger: Logger
    private let lock = NSLock()
    /// One snapshot pass at a time (the thread's and the final one at stop).
    private let passLock = NSLock()
    /// The last snapshot written per stream, to skip partitions that did not change.
    private var written: [UInt64: ProducerStateSnapshot] = [:]
    private var stopped = false
    /// Batches the last `recover` replayed from the log (the snapshots covered the rest).
    public private(set) var replayedBatches = 0
    private var thread: Thread?
    private let wake = NSCondition()

    public init(broker: Broker, config: ServerConfig, logger: Logger) {
        self.broker = broker
        self.directory = config.logDirs[0] + "/" + ProducerStateKeeper.directoryName
        let key = "producer.id.expiration.ms"
        self.expirationMs = Int64(config.explicit[key] ?? ServerConfig.keyDef(key)!.defaultValue!)!
        self.logger = logger
    }

    func path(streamId: UInt64) -> String { "\(directory)/\(streamId).snapshot" }

    /// Every partition the metadata names, with its stream id.
    private func partitions() -> [(log: any Partition, streamId: UInt64)] {
        let image = broker.metadata.image
        var out: [(any Partition, UInt64)] = []
        for topic in image.topicsByName.values {
            for p in 0..<topic.partitionCount {
                if let log = broker.logs.partition(topic: topic.name, partition: p) { out.append((log, topic.streamIds[Int(p)])) }
            }
        }
        return out
    }

    // MARK: Recovery

    /// Loads every partition's producer state. Blocks (reads may go to object storage);
    /// call it before the broker listens, so that no produce meets a half-loaded state.
    public func recover(timeout: Duration = .seconds(600)) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await self.recoverAll() } catch { box.error = error }
            done.signal()
        }
        guard done.wait(timeout: .now() + .milliseconds(Int(timeout.components.seconds * 1000))) == .success else {
            throw RecoveryError(description: "producer state recovery did not finish within \(timeout)")
        }
        if let error = box.error { throw error }
    }

    private final class ResultBox: @unchecked Sendable { var error: Error? }

    private func recoverAll() async throws {
        var producers = 0
        var replayedBatches = 0
        for (log, streamId) in partitions() {
            let (table, batches) = try await recover(log, streamId: streamId)
            producers += table.count
            replayedBatches += batches
        }
        self.replayedBatches = replayedBatches
        logger.info("producer state recovered", metadata: ["producers": "\(producers)", "replayedBatches": "\(replayedBatches)"])
    }

    /// One partition: snapshot plus replay; returns the state loaded and the batches replayed.
    func recover(_ log: any Partition, streamId: UInt64) async throws -> (ProducerStateTable, Int) {
        var table = ProducerStateTable()
        var from = log.logStartOffset
        let end = log.logEndOffset
        if let snapshot = ProducerStateSnapshot.read(from: path(streamId: streamId)) {
            if snapshot.offset <= end {
                table = snapshot.table
                from = max(snapshot.offset, from)
                lock.withLock { written[streamId] = snapshot }
            } else {
                logger.warning("producer state snapshot lies beyond the log end; replaying the whole log", metadata: [
                    "partition": "\(log.topic)-\(log.partition)", "snapshotOffset": "\(snapshot.offset)", "logEnd": "\(end)"])
                from = log.logStartOffset
            }
        }
        var batches = 0
        if from < end {
            try await broker.scanPartition(topic: log.topic, partition: log.partition, from: from, to: end) { header, _ in
                table.record([header])
                batches += 1
            }
        }
        table.expire(nowMs: Broker.nowMs(), expirationMs: expirationMs)
        log.loadProducerState(table)
        return (table, batches)
    }

    // MARK: Snapshots and expiry

    /// Expires idle producers and writes the snapshot of every partition whose state changed
    /// since its last snapshot; removes snapshots of deleted partitions.
    public func snapshotAll() {
        passLock.lock()
        defer { passLock.unlock() }
        let now = Broker.nowMs()
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            logger.error("cannot create the producer state directory", metadata: ["path": "\(directory)", "error": "\(error)"])
            return
        }
        var live = Set<UInt64>()
        for (log, streamId) in partitions() {
            live.insert(streamId)
            log.expireProducers(nowMs: now, expirationMs: expirationMs)
            let snapshot = log.producerStateSnapshot()
            if lock.withLock({ written[streamId] == snapshot }) { continue }
            // Written even without producers: the offset bounds the replay at the next start.
            do {
                try snapshot.write(to: path(streamId: streamId))
                lock.withLock { written[streamId] = snapshot }
            } catch {
                logger.error("producer state snapshot failed", metadata: [
                    "partition": "\(log.topic)-\(log.partition)", "error": "\(error)"])
            }
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in files where name.hasSuffix(".snapshot") {
            guard let id = UInt64(name.dropLast(".snapshot".count)), !live.contains(id) else { continue }
            try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")
            lock.withLock { _ = written.removeValue(forKey: id) }
        }
    }

    /// Starts the periodic snapshot-and-expire thread, and has every partition the broker
    /// opens from now on (a move to it, a new topic) load its state before it is served.
    public func start() {
        broker.setPartitionLoader { [self] log in _ = try await recover(log, streamId: log.streamId) }
        let t = Thread { [self] in
            while true {
                wake.lock()
                if !lock.withLock({ stopped }) {
                    _ = wake.wait(until: Date().addingTimeInterval(Double(ProducerStateKeeper.snapshotIntervalMs) / 1000))
                }
                wake.unlock()
                if lock.withLock({ stopped }) { return }
                snapshotAll()
            }
        }
        t.name = "silt-producer-state"
        thread = t
        t.start()
    }

    /// Stops the thread (it finishes a pass in progress). The caller takes the final
    /// snapshot once appends have stopped and everything is durable.
    public func stop() {
        lock.withLock { stopped = true }
        wake.lock()
        wake.broadcast()
        wake.unlock()
    }
}
