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
    /// Whole batches from the batch holding `offset`, below the high watermark, served from
    /// memory when the path still has them; nil sends the reader to the segment files.
    func readTail(_ log: PartitionLog, streamId: UInt64, from offset: Int64, maxBytes: Int, minOneBatch: Bool) -> ByteBuffer?
    /// Drops what the path remembers of deleted streams.
    func forgetStreams(_ ids: [UInt64])
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

    public func readTail(_ log: PartitionLog, streamId: UInt64, from offset: Int64, maxBytes: Int, minOneBatch: Bool) -> ByteBuffer? { nil }

    public func forgetStreams(_ ids: [UInt64]) {}

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

    /// Where a recent append's bytes sit in the ring, for tail fetches.
    struct TailEntry {
        let baseOffset: Int64
        let endOffset: Int64
        let payloadLSN: UInt64
        let payloadBytes: Int
    }
    /// Recent appends kept per partition for tail fetches; older ones are read from files.
    static let tailEntriesMax = 1024

    private let ring: LogRing
    private let durableNotices: ControlRing
    private let trimCommands: ControlRing
    private let logs: LogManager
    private let logger: Logger
    private let trimIntervalMs: Int
    /// The WAL's fill level, for trimming early when it runs full (nil in tests without one).
    private let walState: WALState?
    /// Serializes appends to the ring (one writer) and the waiter queue, in LSN order.
    private let lock = NSLock()
    private var waiters: [Waiter] = []
    /// By stream id: ids are never reused, so a recreated topic never sees old entries.
    private var tails: [UInt64: [TailEntry]] = [:]
    private var waiterHead = 0
    private var durableLSN: UInt64
    private var stopped = false
    private var threads: [Thread] = []

    public init(ring: LogRing, durableNotices: ControlRing, trimCommands: ControlRing, logs: LogManager,
                trimIntervalMs: Int, walState: WALState? = nil, logger: Logger) {
        self.walState = walState
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

    /// Appends under the partition lock with a non-blocking ring append. When the ring is
    /// full the segment write is undone and the caller waits for space with no lock held,
    /// then tries again: the flusher (which needs the partition lock) and the durable-notice
    /// thread (which needs this path's lock) keep running, so the WAL can trim and drain.
    public func append(_ log: PartitionLog, streamId: UInt64, records: ByteBuffer, batches: [RecordBatchHeader],
                       logAppendTime: Bool, nowMs: Int64, eventLoop: EventLoop) throws -> (AppendInfo, EventLoopFuture<Void>) {
        let promise = eventLoop.makePromise(of: Void.self)
        let deadline = ContinuousClock.now + LogBufferWritePath.appendWaitMax
        let spaceNeeded = min(ring.capacityBytes / 2, records.readableBytes + 2 * LogRing.frameHeaderBytes)
        while true {
            if ring.freeBytes < spaceNeeded {
                // Known full: wait before writing the segment at all.
                let left = deadline - ContinuousClock.now
                if left > .zero { _ = ring.waitForSpace(bytes: spaceNeeded, timeout: min(left, .milliseconds(100))) }
            }
            do {
                let info = try log.append(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs) { bytes, info in
                    try self.publishLocked(log, streamId: streamId, bytes: bytes, info: info, promise: promise)
                }
                return (info, promise.futureResult)
            } catch RingError.full {
                let left = deadline - ContinuousClock.now
                guard left > .zero else {
                    promise.fail(RingError.full)
                    throw RingError.full
                }
                _ = ring.waitForSpace(bytes: spaceNeeded, timeout: min(left, .milliseconds(100)))
            } catch {
                promise.fail(error)
                throw error
            }
        }
    }

    /// Called under the partition lock: the ring append (never blocking) and the waiter.
    private func publishLocked(_ log: PartitionLog, streamId: UInt64, bytes: ByteBuffer, info: AppendInfo,
                               promise: EventLoopPromise<Void>) throws {
        try lock.withLock {
            let count = UInt32(clamping: info.lastOffset - info.baseOffset + 1)
            let appended: (startLSN: UInt64, endLSN: UInt64)? = try bytes.withUnsafeReadableBytes {
                (payload: UnsafeRawBufferPointer) throws -> (startLSN: UInt64, endLSN: UInt64)? in
                try ring.tryAppend(streamId: streamId, baseOffset: info.baseOffset, count: count, payload: payload)
            }
            guard let (startLSN, endLSN) = appended else { throw RingError.full }
            waiters.append(Waiter(endLSN: endLSN, log: log, endOffset: info.lastOffset + 1, promise: promise))
            let entry = TailEntry(baseOffset: info.baseOffset, endOffset: info.lastOffset + 1,
                                  payloadLSN: startLSN + UInt64(LogRing.frameHeaderBytes), payloadBytes: bytes.readableBytes)
            tails[streamId, default: []].append(entry)
            if tails[streamId]!.count > 2 * LogBufferWritePath.tailEntriesMax {
                tails[streamId]!.removeFirst(tails[streamId]!.count - LogBufferWritePath.tailEntriesMax)
            }
        }
    }

    public func forgetStreams(_ ids: [UInt64]) {
        lock.withLock { for id in ids { tails.removeValue(forKey: id) } }
    }

    /// Fetches answered from the log buffer, and bytes served that way (for tests and metrics).
    public var tailReads: (count: Int, bytes: Int) { lock.withLock { (tailReadCount, tailReadBytes) } }
    private var tailReadCount = 0
    private var tailReadBytes = 0

    public func readTail(_ log: PartitionLog, streamId: UInt64, from offset: Int64, maxBytes: Int, minOneBatch: Bool) -> ByteBuffer? {
        let hw = log.highWatermark
        // Pick the entries under the lock; copy the bytes outside it.
        let picked: [TailEntry] = lock.withLock {
            guard let entries = tails[streamId], let first = entries.first, first.baseOffset <= offset else {
                return []
            }
            var lo = 0
            var hi = entries.count
            while lo < hi {   // first entry ending after `offset`
                let mid = (lo + hi) / 2
                if entries[mid].endOffset <= offset { lo = mid + 1 } else { hi = mid }
            }
            var out: [TailEntry] = []
            var bytes = 0
            for e in entries[lo...] {
                guard e.endOffset <= hw else { break }
                if bytes + e.payloadBytes > maxBytes && !(out.isEmpty && minOneBatch) { break }
                out.append(e)
                bytes += e.payloadBytes
            }
            return out
        }
        guard let first = picked.first, first.baseOffset <= offset else { return nil }
        var buffer = ByteBufferAllocator().buffer(capacity: picked.reduce(0) { $0 + $1.payloadBytes })
        for e in picked {
            let ok = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: e.payloadBytes) { out in
                let target = UnsafeMutableRawBufferPointer(rebasing: out[0..<e.payloadBytes])
                return ring.copyIfStillPresent(startLSN: e.payloadLSN, endLSN: e.payloadLSN + UInt64(e.payloadBytes),
                                               into: target) ? e.payloadBytes : 0
            }
            if ok == 0 { break }   // overwritten meanwhile: serve what was copied, or fall back to files
        }
        guard buffer.readableBytes > 0 else { return nil }
        lock.withLock {
            tailReadCount += 1
            tailReadBytes += buffer.readableBytes
        }
        return buffer
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

    /// Segment writeback is started every `writebackIntervalMs`, so that it trickles to disk
    /// instead of arriving as one burst at the next fdatasync (a burst stalls the WAL's
    /// writes when both share a disk).
    static let writebackIntervalMs = 50

    /// Makes segment files durable and lets the WAL drop what they now hold.
    private func trimLoop() {
        var lastTrim: UInt64 = 0
        var nextFlush = ContinuousClock.now + .milliseconds(trimIntervalMs)
        while !lock.withLock({ stopped }) {
            Thread.sleep(forTimeInterval: Double(min(trimIntervalMs, LogBufferWritePath.writebackIntervalMs)) / 1000)
            logs.startWriteback()
            // Trim on schedule, or early once the WAL is half full (a small WAL at a high rate).
            var walHalfFull = false
            if let state = walState, state.capacityBytes > 0 { walHalfFull = state.usedBytes * 2 >= state.capacityBytes }
            guard ContinuousClock.now >= nextFlush || walHalfFull else { continue }
            nextFlush = ContinuousClock.now + .milliseconds(trimIntervalMs)
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
