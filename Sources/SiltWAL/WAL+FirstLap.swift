import CSupport
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How a file WAL's first lap is prepared (`FirstLapPreparer`); `WALConfig.prepare`.
public struct WALPrepareBounds: Sendable, Equatable {
    /// How far ahead of the head holes are zeroed.
    public var lookaheadBytes: UInt64
    /// Left alone right after the head, so that a chunk being written rarely holds up the
    /// writer's next record.
    public var marginBytes: UInt64
    /// One zero write (then one fdatasync); a multiple of 4 KiB.
    public var chunkBytes: Int
    /// The zero writes' share of the disk: at most this many bytes a second (0: no limit). When
    /// records come faster, the head overtakes the preparer and part of the lap stays unwritten
    /// (those records pay the conversion as before); the disk never carries twice the WAL's rate.
    public var maxBytesPerS: UInt64

    public init(lookaheadBytes: UInt64 = 16 << 20, marginBytes: UInt64 = 1 << 20, chunkBytes: Int = 256 << 10,
                maxBytesPerS: UInt64 = 32 << 20) {
        self.lookaheadBytes = lookaheadBytes
        self.marginBytes = marginBytes
        self.chunkBytes = chunkBytes
        self.maxBytesPerS = maxBytesPerS
    }
}

/// Writes zeros into a file WAL's holes just ahead of the write head, on its own thread, so
/// that record writes land on written blocks.
///
/// Why: `WAL.open` extends a regular file with fallocate, which leaves *unwritten* extents.
/// When an O_DIRECT write into one completes, the filesystem converts the extent, and with
/// RWF_DSYNC that conversion must reach its journal before the write counts as durable. So on
/// the first lap through the file every record paid a journal commit of its own (the embedded
/// default and development nodes; a block device has no extents and never starts this).
/// Zeroing a chunk ahead of the head moves the conversion, and its commit (one fdatasync per
/// chunk), off the records' path.
///
/// ```
///  area start                head     head + marginBytes        head + lookaheadBytes
///  │ records ...  (written)   │ hole    │ zeroed by the preparer  │ holes, as fallocate left them │ capacity
///                                         └ claim: [start, end), the chunk being written now
/// ```
///
/// Invariants:
/// - The preparer writes zeros only where `lseek(SEEK_HOLE)` reports a hole (never a block
///   that holds data), and only at or beyond `head + marginBytes`, the head the writer
///   publishes in `willWrite` before it submits a record. A hole reads as zeros, so recovery
///   (which stops at the first block that is not a record) sees the same bytes before, during
///   and after a chunk.
/// - The writer never writes into the claimed chunk: `willWrite` waits until the claim is
///   released (at most one chunk's write and fdatasync). It only happens when the writer has
///   caught up with the preparer, that is when the disk is the limit anyway.
/// - The preparer looks at most `lookaheadBytes` ahead of the head, so it writes at most that
///   much before the first record, and never more than the writer will reach on this lap. Its
///   writes are paced to `maxBytesPerS`, so they never double the disk's load at high rates
///   (where each record's conversion is shared by many batches anyway).
/// - Its failure (an I/O error, a filesystem without SEEK_HOLE) ends it with a warning: records
///   still go to unwritten blocks, correctly, only with a journal commit each.
/// - It ends by itself once the file has no hole left (after the first lap); `stop()` ends it
///   before the WAL closes the descriptor.
final class FirstLapPreparer: @unchecked Sendable {
    typealias Bounds = WALPrepareBounds

    /// The longest the thread sleeps before it looks at the head again (the writer wakes it
    /// sooner, once the head reaches where it waits for).
    static let idleWaitMs = 100

    private let fd: Int32
    private let path: String
    private let areaStart: UInt64
    private let capacityBytes: UInt64
    private let bounds: Bounds
    private let logger: Logger
    private let cond = NSCondition()
    /// The writer's head, as published by `willWrite` (under `cond`).
    private var head: UInt64
    /// The chunk being zeroed (under `cond`).
    private var claim: Range<UInt64>?
    private var stopping = false
    private var running = true
    /// Bytes zeroed so far (under `cond`).
    private var zeroed: UInt64 = 0
    private var writerWaits = 0
    /// Fault point (tests only, like `WAL.faults`): each claim is held this long before its
    /// zeros are written, so that a writer surely runs into one (under `cond`; 0: off).
    private var claimHoldMs = 0
    /// What the waiting preparer waits for (under `cond`): the head at or past `wakeAtHead`,
    /// or, with `wakeOnWrap`, the head wrapping to the area start.
    private var wakeAtHead: UInt64 = .max
    private var wakeOnWrap = false

    /// Starts a preparer when the file has a hole in its area; nil otherwise (a file written
    /// once all through, or a filesystem that cannot tell).
    static func startIfNeeded(fd: Int32, path: String, capacityBytes: UInt64, head: UInt64,
                              bounds: Bounds, logger: Logger) -> FirstLapPreparer? {
        guard bounds.lookaheadBytes > 0, bounds.chunkBytes > 0,
              bounds.chunkBytes % Int(WALLayout.blockBytes) == 0 else { return nil }
        let hole = silt_seek_hole_data(fd, WALLayout.areaStartOffset, 1)
        guard hole >= 0, UInt64(hole) < capacityBytes else { return nil }
        let p = FirstLapPreparer(fd: fd, path: path, capacityBytes: capacityBytes, head: head,
                                 bounds: bounds, logger: logger)
        let t = Thread { p.run() }
        t.name = "silt-wal-prepare"
        t.start()
        return p
    }

    private init(fd: Int32, path: String, capacityBytes: UInt64, head: UInt64, bounds: Bounds, logger: Logger) {
        self.fd = fd
        self.path = path
        self.areaStart = WALLayout.areaStartOffset
        self.capacityBytes = capacityBytes
        self.head = head
        self.bounds = bounds
        self.logger = logger
    }

    /// Called by the writer before it submits a record at [offset, offset + bytes): waits while
    /// the chunk being zeroed overlaps it, then publishes the new head. Returns false once the
    /// preparer has ended (the writer may forget it).
    func willWrite(offset: UInt64, bytes: UInt64) -> Bool {
        cond.withLock {
            var waited = false
            while let c = claim, c.overlaps(offset..<(offset + bytes)) {
                waited = true
                cond.wait()
            }
            if waited { writerWaits += 1 }
            let wrapped = offset + bytes < head
            head = offset + bytes
            // Wake the preparer only when it waits for this (not once per record).
            if head >= wakeAtHead || (wrapped && wakeOnWrap) { cond.broadcast() }
            return running
        }
    }

    /// Bytes of zeros written so far.
    var zeroedBytes: UInt64 { cond.withLock { zeroed } }
    /// Records that waited for a chunk being zeroed where they go.
    var writerWaitCount: Int { cond.withLock { writerWaits } }
    /// The thread has not ended yet.
    var isRunning: Bool { cond.withLock { running } }
    /// Sets the claim-hold fault point (tests only).
    func holdEachClaim(ms: Int) { cond.withLock { claimHoldMs = ms } }

    /// Ends the thread (after the chunk in hand) and waits for it.
    func stop() {
        cond.withLock {
            stopping = true
            cond.broadcast()
            while running { cond.wait() }
        }
    }

    private func run() {
        defer { cond.withLock { running = false; claim = nil; cond.broadcast() } }
        let zeros = AlignedBuffer(count: bounds.chunkBytes)   // zero-filled (silt_aligned_alloc)
        let block = WALLayout.blockBytes
        var cursor: UInt64 = 0   // where the next look for a hole starts
        var wrapAwaitedBelow: UInt64?   // the end was reached with holes left: wait for the head to wrap
        while true {
            // Wait until the cursor is within the lookahead of the head (and, at the end of
            // the area, until the head wraps: below the cursor the lap before wrote the file).
            let h: UInt64? = cond.withLock {
                while !stopping {
                    if let w = wrapAwaitedBelow {
                        if head < w { wrapAwaitedBelow = nil; cursor = 0; continue }
                        wakeOnWrap = true
                    } else if cursor < head + bounds.lookaheadBytes {
                        break
                    } else {
                        wakeAtHead = cursor - bounds.lookaheadBytes + 1
                    }
                    _ = cond.wait(until: Date(timeIntervalSinceNow: Double(Self.idleWaitMs) / 1000))
                    wakeAtHead = .max
                    wakeOnWrap = false
                }
                return stopping ? nil : head
            }
            guard let h else { return }
            cursor = max(cursor, h + bounds.marginBytes)
            if cursor >= capacityBytes {
                // The end of the area: done for good once no hole is left anywhere.
                let any = silt_seek_hole_data(fd, areaStart, 1)
                if any < 0 || UInt64(any) >= capacityBytes {
                    logger.info("file WAL written through: every block is written", metadata: [
                        "path": "\(path)", "zeroedBytes": "\(zeroedBytes)"])
                    return
                }
                wrapAwaitedBelow = h
                continue
            }
            let hole = silt_seek_hole_data(fd, cursor, 1)
            guard hole >= 0 else { return fail("lseek(SEEK_HOLE)", Int32(-hole)) }
            guard UInt64(hole) < capacityBytes else { cursor = capacityBytes; continue }
            var dataAfter = silt_seek_hole_data(fd, UInt64(hole), 0)
            if dataAfter < 0 {
                guard dataAfter == -Int64(ENXIO) else { return fail("lseek(SEEK_DATA)", Int32(-dataAfter)) }
                dataAfter = Int64(capacityBytes)
            }
            let start = (UInt64(hole) + block - 1) / block * block
            let end = min(min(UInt64(dataAfter), capacityBytes), start + UInt64(bounds.chunkBytes)) / block * block
            guard end > start else { cursor = max(UInt64(dataAfter), start + block); continue }
            let holdMs: Int? = cond.withLock {
                guard !stopping, start >= head + bounds.marginBytes else { return nil }
                claim = start..<end
                return claimHoldMs
            }
            guard let holdMs else { continue }   // the head moved past: look again from it
            let chunkStartNs = silt_monotonic_ns()
            if holdMs > 0 { usleep(UInt32(holdMs) * 1000) }
            var done = 0
            let want = Int(end - start)
            var failure: Int32 = 0
            while done < want {
                let n = pwrite(fd, zeros.pointer, want - done, off_t(start) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                done += n
            }
            if failure == 0 && fdatasync(fd) != 0 { failure = errno }
            cond.withLock {
                claim = nil
                zeroed += UInt64(done)
                cond.broadcast()
            }
            if failure != 0 { return fail("pwrite/fdatasync of zeros", failure) }
            cursor = end
            // Pace to maxBytesPerS: this chunk's share of a second, less the time it took.
            if bounds.maxBytesPerS > 0 {
                let dueNs = UInt64(done) * 1_000_000_000 / bounds.maxBytesPerS
                let tookNs = silt_monotonic_ns() &- chunkStartNs
                if dueNs > tookNs {
                    cond.withLock { _ = cond.wait(until: Date(timeIntervalSinceNow: Double(dueNs - tookNs) / 1e9)) }
                }
            }
        }
    }

    private func fail(_ operation: String, _ code: Int32) {
        logger.warning("file WAL: zeroing ahead of the head stopped; records go to unwritten blocks (slower)",
                       metadata: ["path": "\(path)", "operation": "\(operation)",
                                  "error": "\(String(cString: strerror(code)))"])
    }
}
