import Foundation
import Logging
import NIOCore
import SiltRecords
import SiltRing
import SiltStorage

/// How produced batches become durable.
///
/// - `.localFsync`: the partition log fdatasyncs its own segments (group commit) before an
///   acknowledgement. Used when the broker runs without a WAL (unit tests, tools).
/// - `.logBuffer`: the broker appends each stored batch to the shared-memory log buffer;
///   the WAL writer process persists it and reports the durable LSN back; acks and the high
///   watermark follow that LSN. Segment files are fdatasync'ed lazily, before each WAL trim.
///
/// ```
///  produce ─▶ PartitionLog.append ──pwrite──▶ segment (page cache)
///                  │ (under the partition lock, so buffer order = offset order)
///                  └──▶ LogRing.append ─▶ [ log buffer ] ─▶ wal ─io_uring─▶ device
///  ack ◀── waiter(endLSN) ◀── durable LSN ◀───────────────────────────────────┘
///  every trimInterval: LogManager.flushAll() (fdatasync) ─▶ trim(durable LSN before it) ─▶ wal
/// ```
public protocol WritePath: AnyObject, Sendable {
    /// Appends validated batches to `log` (stream `streamId`); the future completes once
    /// they are durable. Throws when nothing was appended.
    func append(_ log: PartitionLog, streamId: UInt64, records: ByteBuffer, batches: [RecordBatchHeader],
                logAppendTime: Bool, nowMs: Int64, eventLoop: EventLoop) throws -> (AppendInfo, EventLoopFuture<Void>)
    func stop()
}


/// Durability by the partition log's own fdatasync.
public final class LocalFsyncWritePath: WritePath, @unchecked Sendable {
    public init() {}

    public func append(_ log: PartitionLog, streamId: UInt64, records: ByteBuffer, batches: [RecordBatchHeader],
                       logAppendTime: Bool, nowMs: Int64, eventLoop: EventLoop) throws -> (AppendInfo, EventLoopFuture<Void>) {
        let promise = eventLoop.makePromise(of: Void.self)
        let info = try log.append(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs) {
            promise.completeWith($0)
        }
        return (info, promise.futureResult)
    }

    public func stop() {}
}

/// Durability by the WAL writer process, through the shared-memory log buffer.
public final class LogBufferWritePath: WritePath, @unchecked Sendable {
    /// Longest a produce waits for room in a full log buffer before it fails (back-pressure).
    public static let appendWaitMax: Duration = .seconds(30)

    struct Waiter {
        let endLSN: UInt64
        let log: PartitionLog
        let endOffset: Int64
        let promise: EventLoopPromise<Void>
    }

    private let ring: LogRing
    private let durableNotices: ControlRing
    private let trimCommands: ControlRing
    private let logs: LogManager
    private let logger: Logger
    private let trimIntervalMs: Int
    /// Serializes appends to the ring (one writer) and the waiter queue, in LSN order.
    private let lock = NSLock()
    private var waiters: [Waiter] = []
    private var waiterHead = 0
    private var durableLSN: UInt64
    private var stopped = false
    private var threads: [Thread] = []

    public init(ring: LogRing, durableNotices: ControlRing, trimCommands: ControlRing, logs: LogManager,
                trimIntervalMs: Int, logger: Logger) {
        self.ring = ring
        self.durableNotices = durableNotices
        self.trimCommands = trimCommands
        self.logs = logs
        self.trimIntervalMs = trimIntervalMs
        self.logger = logger
        self.durableLSN = ring.readPosition(0)
    }

    /// Starts the durable-notice and trim threads.
    public func start() {
        let durable = Thread { [unowned self] in self.durableLoop() }
        durable.name = "silt-durable"
        let trim = Thread { [unowned self] in self.trimLoop() }
        trim.name = "silt-trim"
        threads = [durable, trim]
        for t in threads { t.start() }
    }

    public func stop() {
        lock.withLock { stopped = true }
    }

    /// The LSN below which the WAL has everything.
    public var durablePosition: UInt64 { lock.withLock { durableLSN } }

    public func append(_ log: PartitionLog, streamId: UInt64, records: ByteBuffer, batches: [RecordBatchHeader],
                       logAppendTime: Bool, nowMs: Int64, eventLoop: EventLoop) throws -> (AppendInfo, EventLoopFuture<Void>) {
        let promise = eventLoop.makePromise(of: Void.self)
        let info = try log.append(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs) { bytes, info in
            try self.lock.withLock {
                let count = UInt32(clamping: info.lastOffset - info.baseOffset + 1)
                let (_, endLSN) = try bytes.withUnsafeReadableBytes { payload in
                    try ring.append(streamId: streamId, baseOffset: info.baseOffset, count: count, payload: payload,
                                    timeout: LogBufferWritePath.appendWaitMax)
                }
                waiters.append(Waiter(endLSN: endLSN, log: log, endOffset: info.lastOffset + 1, promise: promise))
            }
        }
        return (info, promise.futureResult)
    }

    /// Blocks until the WAL has made everything appended so far durable, or the timeout.
    public func waitUntilDurable(timeout: Duration) -> Bool {
        let target = ring.writePosition
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if ring.readPosition(0) >= target { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return ring.readPosition(0) >= target
    }

    /// Completes waiters as the WAL reports durable LSNs. The WAL's read position in the ring
    /// is also its durable position (it advances only after a write completes), so a lost
    /// notice costs at most one poll interval.
    private func durableLoop() {
        while !lock.withLock({ stopped }) {
            var lsn = ring.readPosition(0)
            if let message = durableNotices.pop(timeout: .milliseconds(100)), message.kind == ControlMessage.kindDurable {
                lsn = max(lsn, message.value)
            }
            complete(upTo: lsn)
        }
    }

    private func complete(upTo lsn: UInt64) {
        let done: [Waiter] = lock.withLock {
            guard lsn > durableLSN else { return [] }
            durableLSN = lsn
            var end = waiterHead
            while end < waiters.count && waiters[end].endLSN <= lsn { end += 1 }
            let slice = Array(waiters[waiterHead..<end])
            waiterHead = end
            if waiterHead > 4096 && waiterHead * 2 > waiters.count {
                waiters.removeFirst(waiterHead)
                waiterHead = 0
            }
            return slice
        }
        for w in done {
            w.log.advanceHighWatermark(to: w.endOffset)
            w.promise.succeed(())
        }
    }

    /// Makes segment files durable and lets the WAL drop what they now hold.
    private func trimLoop() {
        var lastTrim: UInt64 = 0
        while !lock.withLock({ stopped }) {
            Thread.sleep(forTimeInterval: Double(trimIntervalMs) / 1000)
            let target = durablePosition
            guard target > lastTrim else { continue }
            // Every batch below `target` was written to its segment before it entered the
            // ring, so after this flush the segments hold it all.
            logs.flushAll()
            if trimCommands.push(ControlMessage(kind: ControlMessage.kindTrim, value: target), timeout: .seconds(1)) {
                lastTrim = target
            }
        }
    }
}
