#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging

/// Key of a partition log.
public struct PartitionKey: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)-\(partition)" }
}

/// All partition logs of one log directory, plus the flusher threads that make them durable.
public final class LogManager: @unchecked Sendable {
    public let config: StorageConfig
    let logger: Logger
    private let lock = NSLock()
    private var partitions: [PartitionKey: PartitionLog] = [:]
    private var listeners: [@Sendable (PartitionLog, Int64) -> Void] = []
    private var isShutDown = false
    private let flusher: Flusher

    /// Creates `config.logDir` if needed, then opens and recovers every `<topic>-<partition>` directory in it.
    public init(config: StorageConfig, logger: Logger) throws {
        config.validate()
        self.config = config
        self.logger = logger
        self.flusher = Flusher(threadCount: config.flusherThreadCount)
        do {
            try FileManager.default.createDirectory(atPath: config.logDir, withIntermediateDirectories: true)
        } catch {
            throw StorageError.io(errno: EIO, operation: "mkdir -p", path: config.logDir)
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: config.logDir)) ?? []
        for name in names.sorted() {
            var isDirectory: ObjCBool = false
            let path = config.logDir + "/" + name
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            if config.reservedDirectoryNames.contains(name) { continue }
            guard let key = Self.parseDirectoryName(name) else {
                logger.warning("ignoring unknown directory in log dir", metadata: ["path": "\(path)"])
                continue
            }
            let log = try PartitionLog.open(topic: key.topic, partition: key.partition, directory: path,
                                            config: config, logger: logger, create: false)
            attach(log)
            partitions[key] = log
        }
        flusher.start()
        logger.info("log manager started", metadata: ["logDir": "\(config.logDir)", "partitions": "\(partitions.count)"])
    }

    deinit { shutdown() }

    /// The partition log, if it exists.
    public func partitionLog(topic: String, partition: Int32) -> PartitionLog? {
        lock.withLock { partitions[PartitionKey(topic: topic, partition: partition)] }
    }

    /// Every open partition log.
    public func allPartitionLogs() -> [PartitionLog] {
        lock.withLock { Array(partitions.values) }
    }

    /// The partition log, created (empty, durable directory) if it does not exist.
    public func openOrCreate(topic: String, partition: Int32) throws -> PartitionLog {
        try Self.validate(topic: topic, partition: partition)
        let key = PartitionKey(topic: topic, partition: partition)
        lock.lock()
        defer { lock.unlock() }
        if isShutDown { throw StorageError.closed(topic: topic, partition: partition) }
        if let existing = partitions[key] { return existing }
        let log = try PartitionLog.open(topic: topic, partition: partition, directory: config.logDir + "/" + key.description,
                                        config: config, logger: logger, create: true)
        attach(log)
        partitions[key] = log
        return log
    }

    /// Removes every partition of `topic` from memory and disk. Waiting appends fail with `.closed`;
    /// later calls on the removed `PartitionLog` objects throw `.closed` (reads in flight finish
    /// safely: files are unlinked, descriptors close when the last reference goes).
    public func deletePartitions(topic: String) throws {
        let removed: [PartitionLog] = lock.withLock {
            let keys = partitions.keys.filter { $0.topic == topic }
            return keys.compactMap { partitions.removeValue(forKey: $0) }
        }
        for log in removed {
            log.close(reason: .closed(topic: log.topic, partition: log.partition))
            let names = (try? FileManager.default.contentsOfDirectory(atPath: log.directory)) ?? []
            for name in names {
                let path = log.directory + "/" + name
                if unlink(path) != 0 && errno != ENOENT { throw StorageError.io(errno: errno, operation: "unlink", path: path) }
            }
            if rmdir(log.directory) != 0 && errno != ENOENT {
                throw StorageError.io(errno: errno, operation: "rmdir", path: log.directory)
            }
            logger.info("deleted partition", metadata: ["partition": "\(log.topic)-\(log.partition)"])
        }
        if !removed.isEmpty { try Sys.syncDirectory(config.logDir, faults: config) }
    }

    /// External durability: fdatasyncs every partition's written segments (and directories
    /// after rolls) on the calling thread. Everything written before the call is on disk
    /// when it returns; the WAL may then be trimmed up to what was durable before the call.
    public func flushAll() {
        let all: [PartitionLog] = lock.withLock { Array(partitions.values) }
        for log in all { log.flush() }
    }

    /// External durability: starts writeback of what every partition wrote since the last
    /// call, without waiting (see `PartitionLog.startWriteback`).
    public func startWriteback() {
        let all: [PartitionLog] = lock.withLock { Array(partitions.values) }
        for log in all { log.startWriteback() }
    }

    /// Calls `listener` (on a storage thread) whenever any partition's high watermark advances.
    public func addPartitionLogHighWatermarkListener(_ listener: @escaping @Sendable (PartitionLog, Int64) -> Void) {
        lock.withLock { listeners.append(listener) }
    }

    /// Flushes everything (completing waiting appends), stops the flusher threads, closes every
    /// partition (later appends throw `.closed`). Idempotent.
    public func shutdown() {
        let all: [PartitionLog] = lock.withLock {
            if isShutDown { return [] }
            isShutDown = true
            return Array(partitions.values)
        }
        guard !all.isEmpty || flusher.isRunning else { return }
        flusher.stop()
        for log in all {
            log.flush()
            log.close(reason: .closed(topic: log.topic, partition: log.partition))
        }
        logger.info("log manager shut down", metadata: ["logDir": "\(config.logDir)"])
    }

    private func attach(_ log: PartitionLog) {
        let flusher = self.flusher
        log.scheduleFlush = { flusher.schedule($0) }
        log.onHighWatermarkAdvance = { [weak self] log, hw in
            guard let self else { return }
            let current = self.lock.withLock { self.listeners }
            for listener in current { listener(log, hw) }
        }
    }

    static func parseDirectoryName(_ name: String) -> PartitionKey? {
        guard let dash = name.lastIndex(of: "-") else { return nil }
        let topic = String(name[..<dash])
        guard let partition = Int32(name[name.index(after: dash)...]), partition >= 0,
              (try? validate(topic: topic, partition: partition)) != nil else { return nil }
        return PartitionKey(topic: topic, partition: partition)
    }

    /// Kafka's rule: 1-249 characters of [A-Za-z0-9._-], not "." or "..".
    static func validate(topic: String, partition: Int32) throws {
        guard partition >= 0 else { throw StorageError.invalidTopic("negative partition \(partition)") }
        guard !topic.isEmpty, topic.utf8.count <= 249, topic != ".", topic != ".." else {
            throw StorageError.invalidTopic("bad topic name length or name '\(topic)'")
        }
        for byte in topic.utf8 {
            let ok = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
            guard ok else { throw StorageError.invalidTopic("illegal character in topic name '\(topic)'") }
        }
    }
}

/// Flusher threads: a FIFO of dirty partitions (at most one entry per partition, so the queue is
/// bounded by the partition count). A partition is flushed by one thread at a time; appends that
/// arrive during its flush re-queue it for the next pass (group commit).
final class Flusher: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [PartitionLog] = []
    private var queueHead = 0
    private var stopping = false
    private var runningThreads = 0
    private let threadCount: Int

    init(threadCount: Int) {
        precondition(threadCount >= 1)
        self.threadCount = threadCount
    }

    var isRunning: Bool { condition.withLock { runningThreads > 0 } }

    func start() {
        condition.withLock { runningThreads = threadCount }
        for i in 0..<threadCount {
            let thread = Thread { [self] in self.run() }
            thread.name = "silt-flusher-\(i)"
            thread.start()
        }
    }

    func schedule(_ log: PartitionLog) {
        condition.lock()
        defer { condition.unlock() }
        if log.flushQueued { return }
        log.flushQueued = true
        if !log.flushing {
            queue.append(log)
            condition.signal()
        }
    }

    /// Drains the queue, then stops and waits for the threads to exit.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while runningThreads > 0 { condition.wait() }
        condition.unlock()
    }

    private func run() {
        condition.lock()
        while true {
            while queueHead == queue.count && !stopping { condition.wait() }
            if queueHead == queue.count {
                break
            }
            let log = queue[queueHead]
            queueHead += 1
            if queueHead == queue.count {
                queue.removeAll(keepingCapacity: true)
                queueHead = 0
            }
            log.flushQueued = false
            log.flushing = true
            condition.unlock()
            log.flush()
            condition.lock()
            log.flushing = false
            if log.flushQueued {
                queue.append(log)
                condition.signal()
            }
        }
        runningThreads -= 1
        condition.broadcast()
        condition.unlock()
    }
}
