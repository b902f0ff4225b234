import Foundation
import Logging
import NIOCore
import SiltMetrics
import SiltRecords
import SiltRing
import SiltStorage

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
    /// Appends validated batches to `log` (stream `streamId`); the future completes once
    /// they are durable. Throws when nothing was appended.
    func append(_ log: any Partition, streamId: UInt64, records: ByteBuffer, batches: [RecordBatchHeader],
                logAppendTime: Bool, nowMs: Int64, eventLoop: EventLoop) throws -> (AppendInfo, EventLoopFuture<Void>)
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

/// Durability by the WAL writer process, through the shared-memory log buffer.
///
/// Tail reads: every append is remembered (stream, offsets, LSN) until the log buffer may
/// reuse its bytes, which is only after both the WAL and the uploader have passed them; the
/// uploader passes only after the object holding them is committed. So a fetch finds each
/// offset either here or, once committed, in object storage: never in neither for longer
/// than the metadata log takes to reach this broker.
public final class LogBufferWritePath: WritePath, @unchecked Sendable {
    /// Longest a produce waits for room in a full log buffer before it fails (back-pressure).
    public static let appendWaitMax: Duration = .seconds(30)

    struct Waiter {
        let endLSN: UInt64
        let log: any Partition
        let endOffset: Int64
        let promise: EventLoopPromise<Void>
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

    /// Counts tail fetches (`silt_fetch_tail_reads_total`).
    private let metrics: MetricsRegion

    public init(ring: LogRing, durableNotices: ControlRing, metrics: MetricsRegion = .local(), logger: Logger) {
        self.metrics = metrics
        self.ring = ring
        self.durableNotices = durableNotices
        self.logger = logger
        self.durableLSN = ring.readPosition(0)
    }

    /// Starts the durable-notice thread. It holds the path until its loop sees `stop()`
    /// (within one 100 ms wait for a notice), so the path may be released right after a stop.
    public func start() {
        let durable = Thread { self.durableLoop() }
        durable.name = "silt-durable"
        durable.start()
    }

    public func stop() {
        lock.withLock { stopped = true }
    }

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

    /// Appends under the partition lock with a non-blocking ring append. When the ring is
    /// full the caller waits for space with no lock held, then tries again, so the WAL and
    /// the uploader keep draining the buffer meanwhile.
    public func append(_ log: any Partition, streamId: UInt64, records: ByteBuffer, batches: [RecordBatchHeader],
                       logAppendTime: Bool, nowMs: Int64, eventLoop: EventLoop) throws -> (AppendInfo, EventLoopFuture<Void>) {
        let promise = eventLoop.makePromise(of: Void.self)
        let deadline = ContinuousClock.now + LogBufferWritePath.appendWaitMax
        let spaceNeeded = min(ring.capacityBytes / 2, records.readableBytes + 2 * LogRing.frameHeaderBytes)
        while true {
            if ring.freeBytes < spaceNeeded {
                let left = deadline - ContinuousClock.now
                if left > .zero { _ = ring.waitForSpace(bytes: spaceNeeded, timeout: min(left, .milliseconds(100))) }
            }
            do {
                let info = try log.append(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs) { bytes, info in
                    try self.publishLocked(log, streamId: streamId, bytes: bytes, info: info, promise: promise)
                }
                if info.duplicate { waitForDuplicate(log, info: info, promise: promise) }
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
    private func publishLocked(_ log: any Partition, streamId: UInt64, bytes: ByteBuffer, info: AppendInfo,
                               promise: EventLoopPromise<Void>) throws {
        try lock.withLock {
            let count = UInt32(clamping: info.lastOffset - info.baseOffset + 1)
            let appended: (startLSN: UInt64, endLSN: UInt64)? = try bytes.withUnsafeReadableBytes {
                (payload: UnsafeRawBufferPointer) throws -> (startLSN: UInt64, endLSN: UInt64)? in
                try ring.tryAppend(streamId: streamId, streamEpoch: log.streamEpoch, baseOffset: info.baseOffset, count: count,
                                  payload: payload)
            }
            guard let (startLSN, endLSN) = appended else { throw RingError.full }
            waiters.append(Waiter(endLSN: endLSN, log: log, endOffset: info.lastOffset + 1, promise: promise))
            let entry = TailEntry(baseOffset: info.baseOffset, endOffset: info.lastOffset + 1,
                                  payloadLSN: startLSN + UInt64(LogRing.frameHeaderBytes), payloadBytes: bytes.readableBytes)
            tails[streamId, default: []].append(entry)
            pruneLocked(streamId)
        }
    }

    /// A retry of a batch already in the log is answered once the original is durable. Its
    /// bytes are somewhere below the ring's current write position, so a waiter at that
    /// position (in LSN order with the others) completes no earlier than the original's.
    private func waitForDuplicate(_ log: any Partition, info: AppendInfo, promise: EventLoopPromise<Void>) {
        if log.highWatermark > info.lastOffset {
            promise.succeed(())
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
            promise.succeed(())
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
}
