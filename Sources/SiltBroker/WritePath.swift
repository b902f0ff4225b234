import CSupport
import Foundation
import Logging
import NIOCore
import SiltMetrics
import SiltRecords
import SiltRing
import SiltStorage
import SiltWAL

/// How produced batches become durable. `LogBufferWritePath`: the broker appends each batch
/// to the shared-memory log buffer; the WAL writer process persists it and reports the
/// durable LSN back; acks and the high watermark follow that LSN. The uploader builds
/// objects from the same buffer, commits them through the controller and then trims the
/// WAL; nothing goes to local files.
///
/// ```
///  produce ─▶ StreamLog.append (offsets, under the partition lock)
///                  └──▶ LogRing.append ─▶ [ log buffer ] ─┬▶ wal ─io_uring─▶ device
///  ack ◀── waiter(endLSN) ◀── durable LSN ◀───────────────┘
///                                         └──────────────▶ uploader ─▶ objects ─▶ commit ─▶ trim WAL
/// ```
public protocol WritePath: AnyObject, Sendable {
    /// Appends validated batches to `log` (stream `streamId`). The returned future completes
    /// once the batches are appended (offsets assigned) and carries a second future that
    /// completes once they are durable; it fails when nothing was appended. It never blocks
    /// the calling thread (an event loop): an append that must wait for room is parked.
    func append(_ log: any Partition, streamId: UInt64, records: ByteBuffer, batches: [RecordBatchHeader],
                logAppendTime: Bool, nowMs: Int64, eventLoop: EventLoop) -> EventLoopFuture<Appended>
    /// Whole batches from the batch holding `offset`, below the high watermark, served from
    /// memory when the path still has them; nil sends the reader elsewhere (object storage).
    func readTail(_ log: any Partition, streamId: UInt64, from offset: Int64, maxBytes: Int, minOneBatch: Bool) -> ByteBuffer?
    /// Drops what the path remembers of deleted streams.
    func forgetStreams(_ ids: [UInt64])
    /// Asks the uploader to upload everything appended so far now, not at its next interval.
    func requestUpload()
    /// Asks the uploader to upload what it holds of stream `streamId` now, on its own.
    func requestUpload(streamId: UInt64)
    func stop()
}

/// An append that took place: where its batches landed, and when they are durable.
public struct Appended: Sendable {
    public let info: AppendInfo
    /// Completes once durable, with the time the durable notice arrived (`silt_monotonic_ns`;
    /// 0 when no notice was needed: a duplicate of a durable batch).
    public let durable: EventLoopFuture<UInt64>
    /// When the append became visible in the log buffer (`silt_monotonic_ns`, `LogRing.lastPublishedNs`),
    /// for the latency breakdown: the end of the append stage, the start of the WAL pickup.
    public var appendedNs: UInt64 = 0
}

/// Durability by the WAL writer process, through the shared-memory log buffer.
///
/// Tail reads: every append is remembered (stream, offsets, LSN) until the log buffer may
/// reuse its bytes, which is only after both the WAL and the uploader have passed them; the
/// uploader passes only after the object holding them is committed. So a fetch finds each
/// offset either here or, once committed, in object storage: never in neither for longer
/// than the metadata log takes to reach this broker.
public final class LogBufferWritePath: WritePath, @unchecked Sendable {
    /// Longest a produce waits for room in a full log buffer before it fails (back-pressure).
    public static let appendWaitMaxMsDefault = 30_000
    /// Most appends parked at once for room in the log buffer; beyond it an append fails at
    /// once as a timed-out one would (each connection holds at most `inFlightMax` requests,
    /// so this is reached only with thousands of producers behind a stalled WAL).
    public static let appendsParkedMax = 65_536

    /// An append waiting for room in the log buffer. Parked appends run in arrival order, on
    /// the space-waiter thread, each still under its partition lock (`attempt`).
    struct ParkedAppend {
        let deadline: ContinuousClock.Instant
        let spaceNeeded: Int
        let attempt: () throws -> Appended
        let promise: EventLoopPromise<Appended>
    }

    struct Waiter {
        let endLSN: UInt64
        let log: any Partition
        let endOffset: Int64
        let promise: EventLoopPromise<UInt64>
        /// When the batch went into the log buffer (`silt_monotonic_ns`; 0: a duplicate's wait).
        var appendedNs: UInt64 = 0
    }

    /// Where an append's bytes sit in the ring, for tail fetches.
    struct TailEntry {
        let baseOffset: Int64
        let endOffset: Int64
        let payloadLSN: UInt64
        let payloadBytes: Int
    }

    private let ring: LogRing
    private let durableNotices: ControlRing
    private let logger: Logger
    /// Serializes appends to the ring (one writer) and the waiter queue, in LSN order.
    private let lock = NSLock()
    private var waiters: [Waiter] = []
    /// By stream id: ids are never reused, so a recreated topic never sees old entries.
    /// Each list is in offset (and LSN) order; `tailHeads` marks the first live entry.
    private var tails: [UInt64: [TailEntry]] = [:]
    private var tailHeads: [UInt64: Int] = [:]
    private var waiterHead = 0
    private var durableLSN: UInt64
    private var stopped = false

    /// This path's bound on waiting for room (`appendWaitMaxMsDefault` unless a test asks less).
    public let appendWaitMaxMs: Int
    /// Appends waiting for room, oldest first, from `parkedHead`. An append leaves the queue
    /// only after it ran (or failed), so a new append that finds the queue empty cannot
    /// overtake one parked before it: requests of one connection are appended in order.
    /// Its own lock, taken with no other lock held (the partition lock and `lock` nest inside
    /// an attempt, never around this one).
    private let parkLock = NSCondition()
    private var parked: [ParkedAppend] = []
    private var parkedHead = 0
    private var parkStopped = false
    /// The space-waiter thread runs (`start()`); until then `stop()` fails parked appends itself.
    private var spaceLoopStarted = false

    /// Counts tail fetches (`silt_fetch_tail_reads_total`) and holds the WAL stages of the
    /// latency breakdown (`silt_produce_wal_pickup_seconds` ...).
    private let metrics: MetricsRegion
    /// The WAL writer's stage times of its recent writes (`WALState+Timings`); nil: not observed.
    private let walTimings: WALState?

    public init(ring: LogRing, durableNotices: ControlRing, metrics: MetricsRegion = .local(), walTimings: WALState? = nil,
                logger: Logger, appendWaitMaxMs: Int = LogBufferWritePath.appendWaitMaxMsDefault) {
        precondition(appendWaitMaxMs > 0)
        self.appendWaitMaxMs = appendWaitMaxMs
        self.metrics = metrics
        self.walTimings = walTimings
        self.ring = ring
        self.durableNotices = durableNotices
        self.logger = logger
        self.durableLSN = ring.readPosition(0)
    }

    /// Starts the durable-notice thread and the space-waiter thread. Each holds the path until
    /// its loop sees `stop()` (within one 100 ms wait), so the path may be released right
    /// after a stop.
    public func start() {
        let durable = Thread { self.durableLoop() }
        durable.name = "silt-durable"
        durable.start()
        parkLock.withLock { spaceLoopStarted = true }
        let space = Thread { self.spaceLoop() }
        space.name = "silt-log-space"
        space.start()
    }

    /// Stops both threads; appends still parked fail as timed out.
    public func stop() {
        lock.withLock { stopped = true }
        let unserved: [ParkedAppend] = parkLock.withLock {
            parkStopped = true
            parkLock.broadcast()
            guard !spaceLoopStarted else { return [] }   // its loop fails them as it ends
            return takeParkedLocked()
        }
        for p in unserved { p.promise.fail(RingError.full) }
    }

    private func takeParkedLocked() -> [ParkedAppend] {
        let rest = Array(parked[parkedHead...])
        parked.removeAll()
        parkedHead = 0
        return rest
    }

    /// Appends parked for room in the log buffer now (for tests and metrics).
    public var parkedCount: Int { parkLock.withLock { parked.count - parkedHead } }

    /// The LSN below which the WAL has everything.
    public var durablePosition: UInt64 { lock.withLock { durableLSN } }

    /// Below this LSN the writer has reused the ring's bytes. Bytes the two readers have
    /// passed stay valid (and are served from memory) until then; `copyIfStillPresent`
    /// catches a reuse that races with a copy.
    private var reclaimedBelow: UInt64 {
        let written = ring.writePosition
        let capacity = UInt64(ring.capacityBytes)
        return written > capacity ? written - capacity : 0
    }

    public func requestUpload() { ring.requestUpload(through: ring.writePosition) }

    public func requestUpload(streamId: UInt64) {
        if !ring.requestStreamUpload(streamId) { requestUpload() }   // every slot taken: a whole round
    }

    /// Re-learns what an earlier incarnation of the broker left in the log buffer (everything
    /// the uploader has not committed yet): tail entries, and per stream the end offset the
    /// buffer holds. Only frames `isLive` accepts (in the stream's current epoch) count;
    /// the uploader drops the others, so they are never read.
    public func recoverTail(isLive: (_ streamId: UInt64, _ streamEpoch: Int64) -> Bool) throws -> [UInt64: Int64] {
        var ends: [UInt64: Int64] = [:]
        let reader = ring.reader(1)
        var position = reader.position
        let end = ring.writePosition
        try lock.withLock {
            while position < end {
                let batch = try reader.peek(from: position, maxBytes: 4 << 20)
                if batch.isEmpty { break }
                for f in batch.frames where isLive(f.streamId, f.streamEpoch) {
                    let entry = TailEntry(baseOffset: f.baseOffset, endOffset: f.baseOffset + Int64(f.count),
                                          payloadLSN: f.startLSN + UInt64(LogRing.frameHeaderBytes),
                                          payloadBytes: f.payload.count)
                    if let last = tails[f.streamId]?.last, last.endOffset > entry.baseOffset {
                        continue   // replayed twice: keep the first
                    }
                    tails[f.streamId, default: []].append(entry)
                    ends[f.streamId] = entry.endOffset
                }
                position = batch.endLSN
            }
        }
        return ends
    }

    /// Appends under the partition lock with a non-blocking ring append, on the calling
    /// thread when nothing is parked and the ring has room. Otherwise the append is parked
    /// (the caller's event loop goes on serving its other connections) and runs on the
    /// space-waiter thread once the WAL and the uploader have freed room, in arrival order;
    /// after `appendWaitMaxMs` it fails with `RingError.full` (REQUEST_TIMED_OUT).
    public func append(_ log: any Partition, streamId: UInt64, records: ByteBuffer, batches: [RecordBatchHeader],
                       logAppendTime: Bool, nowMs: Int64, eventLoop: EventLoop) -> EventLoopFuture<Appended> {
        let attempt = { () throws -> Appended in
            let promise = eventLoop.makePromise(of: UInt64.self)
            do {
                var publishedNs: UInt64 = 0
                let info = try log.append(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs) { bytes, info in
                    publishedNs = try self.publishLocked(log, streamId: streamId, bytes: bytes, info: info, promise: promise)
                }
                if info.duplicate { self.waitForDuplicate(log, info: info, promise: promise) }
                return Appended(info: info, durable: promise.futureResult,
                                appendedNs: publishedNs != 0 ? publishedNs : silt_monotonic_ns())
            } catch {
                promise.fail(error)   // never handed out; completed so that no promise leaks
                throw error
            }
        }
        if parkedCount == 0 {
            do {
                return eventLoop.makeSucceededFuture(try attempt())
            } catch RingError.full {
                // parked below
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
        }
        let spaceNeeded = min(ring.capacityBytes / 2, records.readableBytes + 2 * LogRing.frameHeaderBytes)
        let promise = eventLoop.makePromise(of: Appended.self)
        let entry = ParkedAppend(deadline: ContinuousClock.now + .milliseconds(appendWaitMaxMs),
                                 spaceNeeded: spaceNeeded, attempt: attempt, promise: promise)
        let refused: Bool = parkLock.withLock {
            guard !parkStopped, parked.count - parkedHead < LogBufferWritePath.appendsParkedMax else { return true }
            parked.append(entry)
            parkLock.broadcast()
            return false
        }
        if refused { promise.fail(RingError.full) }
        return promise.futureResult
    }

    /// The space-waiter thread: runs parked appends in order as room frees, fails those whose
    /// bound passed. It waits on the ring's space futex (at most 100 ms at a time, to notice
    /// deadlines and `stop()`), never on an event loop.
    private func spaceLoop() {
        while true {
            let next: ParkedAppend? = parkLock.withLock {
                while parked.count == parkedHead && !parkStopped { parkLock.wait() }
                return parkStopped ? nil : parked[parkedHead]
            }
            guard let head = next else { break }
            let left = head.deadline - ContinuousClock.now
            guard left > .zero else {
                popParked()
                head.promise.fail(RingError.full)
                continue
            }
            let free = ring.freeBytes
            if free < head.spaceNeeded {
                _ = ring.waitForSpace(bytes: head.spaceNeeded, timeout: min(left, .milliseconds(100)))
                continue
            }
            do {
                let appended = try head.attempt()
                popParked()
                head.promise.succeed(appended)
            } catch RingError.full {
                // Room enough in bytes but not at the write position (a wrap's padding): wait
                // for the readers to free more than there is now.
                let more = min(ring.capacityBytes, free + 1)
                _ = ring.waitForSpace(bytes: more, timeout: min(left, .milliseconds(100)))
            } catch {
                popParked()
                head.promise.fail(error)
            }
        }
        // Stopped: nothing parked will run.
        let left: [ParkedAppend] = parkLock.withLock { takeParkedLocked() }
        for p in left { p.promise.fail(RingError.full) }
    }

    private func popParked() {
        parkLock.withLock {
            precondition(parkedHead < parked.count, "popped an append that was not parked")
            parkedHead += 1
            if parkedHead == parked.count {
                parked.removeAll(keepingCapacity: true)
                parkedHead = 0
            } else if parkedHead > 1024 && parkedHead * 2 > parked.count {
                parked.removeFirst(parkedHead)   // a queue that never empties sheds its head
                parkedHead = 0
            }
        }
    }

    /// Called under the partition lock: the ring append (never blocking) and the waiter.
    /// Returns when the bytes became visible to the WAL writer (`LogRing.lastPublishedNs`).
    private func publishLocked(_ log: any Partition, streamId: UInt64, bytes: ByteBuffer, info: AppendInfo,
                               promise: EventLoopPromise<UInt64>) throws -> UInt64 {
        try lock.withLock {
            let count = UInt32(clamping: info.lastOffset - info.baseOffset + 1)
            let appended: (startLSN: UInt64, endLSN: UInt64)? = try bytes.withUnsafeReadableBytes {
                (payload: UnsafeRawBufferPointer) throws -> (startLSN: UInt64, endLSN: UInt64)? in
                try ring.tryAppend(streamId: streamId, streamEpoch: log.streamEpoch, baseOffset: info.baseOffset, count: count,
                                  payload: payload)
            }
            guard let (startLSN, endLSN) = appended else { throw RingError.full }
            let publishedNs = ring.lastPublishedNs
            waiters.append(Waiter(endLSN: endLSN, log: log, endOffset: info.lastOffset + 1, promise: promise,
                                  appendedNs: publishedNs))
            let entry = TailEntry(baseOffset: info.baseOffset, endOffset: info.lastOffset + 1,
                                  payloadLSN: startLSN + UInt64(LogRing.frameHeaderBytes), payloadBytes: bytes.readableBytes)
            tails[streamId, default: []].append(entry)
            pruneLocked(streamId)
            return publishedNs
        }
    }

    /// A retry of a batch already in the log is answered once the original is durable. Its
    /// bytes are somewhere below the ring's current write position, so a waiter at that
    /// position (in LSN order with the others) completes no earlier than the original's.
    private func waitForDuplicate(_ log: any Partition, info: AppendInfo, promise: EventLoopPromise<UInt64>) {
        if log.highWatermark > info.lastOffset {
            promise.succeed(0)
            return
        }
        let durableAlready: Bool = lock.withLock {
            let target = ring.writePosition
            if durableLSN >= target { return true }   // no later notice would wake the waiter
            waiters.append(Waiter(endLSN: target, log: log, endOffset: info.lastOffset + 1, promise: promise))
            return false
        }
        if durableAlready {
            log.advanceHighWatermark(to: info.lastOffset + 1)
            promise.succeed(0)
        }
    }

    /// Drops entries whose bytes the ring has reused (committed to objects long before: the
    /// uploader frees space only after the commit).
    private func pruneLocked(_ streamId: UInt64) {
        guard let entries = tails[streamId] else { return }
        let floor = reclaimedBelow
        var head = tailHeads[streamId] ?? 0
        while head < entries.count && entries[head].payloadLSN < floor { head += 1 }
        if head > 1024 && head * 2 > entries.count {
            tails[streamId]!.removeFirst(head)
            head = 0
        }
        tailHeads[streamId] = head
    }

    public func forgetStreams(_ ids: [UInt64]) {
        lock.withLock {
            for id in ids {
                tails.removeValue(forKey: id)
                tailHeads.removeValue(forKey: id)
            }
        }
    }

    /// Fetches answered from the log buffer, and bytes served that way (for tests and metrics).
    public var tailReads: (count: Int, bytes: Int) { lock.withLock { (tailReadCount, tailReadBytes) } }
    private var tailReadCount = 0
    private var tailReadBytes = 0

    public func readTail(_ log: any Partition, streamId: UInt64, from offset: Int64, maxBytes: Int, minOneBatch: Bool) -> ByteBuffer? {
        let hw = log.highWatermark
        // Pick the entries under the lock; copy the bytes outside it.
        let picked: [TailEntry] = lock.withLock {
            pruneLocked(streamId)
            guard let entries = tails[streamId] else { return [] }
            let head = tailHeads[streamId] ?? 0
            guard head < entries.count, entries[head].baseOffset <= offset else { return [] }
            var lo = head
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
            if ok == 0 { break }   // reused meanwhile: serve what was copied, or send the reader to objects
        }
        guard buffer.readableBytes > 0 else { return nil }
        lock.withLock {
            tailReadCount += 1
            tailReadBytes += buffer.readableBytes
        }
        metrics.add(.fetchTailReads)
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
            complete(upTo: lsn, noticeNs: silt_monotonic_ns())
        }
    }

    private func complete(upTo lsn: UInt64, noticeNs: UInt64) {
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
            observeWALStages(w, noticeNs: noticeNs)
            w.promise.succeed(noticeNs)
        }
    }

    /// The latency breakdown's stages between the log buffer and the durable notice, for the
    /// WAL write that carried `waiter`'s batch (nothing when its times left the table).
    private func observeWALStages(_ waiter: Waiter, noticeNs: UInt64) {
        guard waiter.appendedNs != 0, let t = walTimings?.writeTimes(coveringEnd: waiter.endLSN) else { return }
        metrics.observe(.produceWALPickup, fromNs: waiter.appendedNs, toNs: t.pickupNs)
        metrics.observe(.produceWALSubmit, fromNs: t.pickupNs, toNs: t.submitNs)
        metrics.observe(.produceDevice, fromNs: t.submitNs, toNs: t.completeNs)
        metrics.observe(.produceDurableNotice, fromNs: t.completeNs, toNs: noticeNs)
    }
}
