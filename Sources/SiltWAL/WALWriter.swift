import CSupport
import Foundation
import Logging
import SiltRing

/// The WAL role's logic: persists the log buffer (reader 0 of the `LogRing`) into a
/// `WriteAheadLog` (the io_uring `WAL`, or the `ObjectWAL` in S3 WAL mode), group-committing
/// whatever is waiting into one record with several writes in flight, and reports the durable
/// LSN back (the durable-notice ring, `WALState`). Its reader position in the ring is advanced
/// only after a write is durable, so a crash of the process loses nothing that was acknowledged
/// and re-writes nothing that was not. Trim commands from the uploader free WAL space; a full
/// WAL stops submitting until one arrives (back-pressure: the ring fills and producers slow
/// down), it never drops data.
///
/// ```
///  [ log buffer ] ─reader 0─▶ submit (one record per group commit) ─io_uring / PUT─▶ device / S3
///        ▲                                                    │ reap (durable)
///        └── advance reader 0 ◀── durable LSN ──▶ durable ring, WALState
///  trim ring (uploader) ──▶ wal.trim(to:)
/// ```
///
/// A log with a batch window (`WriteAheadLog.batching`, S3 WAL mode) is submitted to once the
/// window passed or enough bytes wait; meanwhile the writer sleeps on the ring's data futex,
/// woken by new data, by a stored record (`ObjectWAL.onStored`), or by the window's end.
///
/// The `silt role wal` process runs one on a thread; the broker's unit tests run one in
/// process on a temp file.
public final class WALWriter: @unchecked Sendable {
    public let wal: WriteAheadLog
    let ring: LogRing
    let reader: LogRingReader
    let durableNotices: ControlRing
    let trimCommands: ControlRing
    let state: WALState
    let logger: Logger
    private let lock = NSLock()
    private var stopRequested = false
    /// Room kept in each record for the WAL frame headers of the frames a peek returns.
    static let frameHeadroomBytes = 64 << 10
    /// Longest sleep before the trim ring is looked at again.
    static let idleWaitMs = 50

    public init(wal: WriteAheadLog, ring: LogRing, durableNotices: ControlRing, trimCommands: ControlRing, state: WALState,
                logger: Logger) {
        precondition(wal.maxRecordPayloadBytes > WALWriter.frameHeadroomBytes,
                     "a WAL record must hold more than the frame-header headroom")
        self.wal = wal
        self.ring = ring
        self.reader = ring.reader(0)
        self.durableNotices = durableNotices
        self.trimCommands = trimCommands
        self.state = state
        self.logger = logger
        if let objects = wal as? ObjectWAL {
            let reader = self.reader
            objects.onStored = { reader.wakeDataWaiters() }
        }
    }

    /// Lines the ring's LSNs up with the device's, then hands the valid tail the WAL recovered
    /// (`recovered`, from `WAL.open`) to the broker and the uploader through `state`.
    public func attach(recovered: [RecoveredRecord]) throws {
        let ringIsFresh = ring.writePosition == 0 && ring.readPosition(0) == 0 && ring.readPosition(1) == 0
        if ringIsFresh {
            ring.initializePositions(to: wal.headLSN)
        } else if wal.headLSN > reader.position {
            // Written and durable, but the writer died before it moved its cursor.
            reader.advance(to: wal.headLSN)
        } else if wal.headLSN < reader.position {
            guard recovered.isEmpty else { throw WALError.behindLogBuffer(path: wal.location, headLSN: wal.headLSN,
                                                                          durableLSN: reader.position) }
            try wal.rebase(nextLSN: reader.position)
        }
        var tail: [UInt8] = []
        for r in recovered { tail += r.payload }
        state.publishRecovery(startLSN: recovered.first?.startLSN ?? wal.headLSN, endLSN: wal.headLSN, frames: tail)
        state.storeUsage(usedBytes: wal.usedBytes, capacityBytes: wal.capacityBytes)
        logger.info("WAL ready", metadata: ["recoveredBytes": "\(tail.count)", "position": "\(reader.position)"])
    }

    /// Asks `run` to return once everything appended to the log buffer so far is durable (or
    /// the WAL is full and cannot take it).
    public func stop() { lock.withLock { stopRequested = true } }

    private var isStopping: Bool { lock.withLock { stopRequested } }

    /// The write loop, until `stop()`. Throws when the WAL fails (a failed write leaves it
    /// unusable: the process must reopen and recover it).
    public func run() throws {
        var submitted = reader.position
        var walFull = false
        var lastSubmitAt = ContinuousClock.now - .seconds(3600)
        let batching = wal.batching
        let storedSignal: () -> Bool = (wal as? ObjectWAL).map { objects in { objects.hasStoredRecords } } ?? { false }
        // Writes submitted and completed, numbering the stage-time slots (`WALState+Timings`).
        var writesSubmitted = 0, writesCompleted = 0
        // Registered as a sleeper on the log buffer's data word while a wait for it is armed
        // in io_uring (`beginDataWait`, `WAL.reap(orWakeOf:expected:)`).
        var dataWaitRegistered = false
        defer { if dataWaitRegistered { reader.endDataWait() } }
        func trim(_ m: ControlMessage) throws {
            guard m.kind == ControlMessage.kindTrim else { return }
            let trimmed = try wal.trim(to: min(m.value, wal.durableLSN))
            walFull = false
            state.storeUsage(usedBytes: wal.usedBytes, capacityBytes: wal.capacityBytes)
            logger.trace("WAL trimmed", metadata: ["trimLSN": "\(trimmed)"])
        }
        func publish(_ durable: UInt64) {
            let completeNs = silt_monotonic_ns()
            while writesCompleted < writesSubmitted && state.recordedEndLSN(write: writesCompleted) <= durable {
                state.recordCompleted(write: writesCompleted, completeNs: completeNs)
                writesCompleted += 1
            }
            reader.advance(to: durable)
            state.storeDurable(durable)
            state.storeUsage(usedBytes: wal.usedBytes, capacityBytes: wal.capacityBytes)
            _ = durableNotices.tryPush(ControlMessage(kind: ControlMessage.kindDurable, value: durable))
        }
        /// When what waits may be submitted: now, or at the end of the batch window.
        func windowEnd(waiting: UInt64) -> ContinuousClock.Instant? {
            guard let batching, waiting < UInt64(batching.bytes), !isStopping else { return nil }
            let end = lastSubmitAt + .milliseconds(batching.intervalMs)
            return end > .now ? end : nil
        }
        while true {
            while let m = trimCommands.tryPop() { try trim(m) }
            // Submit everything waiting, one record per group commit, while writes may be added.
            while wal.canSubmit && !walFull {
                let waiting = ring.writePosition - submitted
                if waiting == 0 || windowEnd(waiting: waiting) != nil { break }
                let batch = try reader.peek(from: submitted, maxBytes: wal.maxRecordPayloadBytes - WALWriter.frameHeadroomBytes)
                if batch.isEmpty { break }
                let pickupNs = silt_monotonic_ns()
                do {
                    try submit(batch)
                    submitted = batch.endLSN
                    lastSubmitAt = .now
                    state.recordSubmitted(write: writesSubmitted, startLSN: batch.startLSN, endLSN: batch.endLSN,
                                          pickupNs: pickupNs, submitNs: silt_monotonic_ns())
                    writesSubmitted += 1
                } catch WALError.full {
                    walFull = true   // back-pressure: wait for a trim; the ring fills, producers slow down
                    logger.debug("WAL full; waiting for a trim")
                }
            }
            if batching != nil {
                // Windowed: never block in reap, so that a window ending or new data is seen too.
                if let durable = try wal.reap(wait: false) { publish(durable) }
                let observed = ring.writePosition
                let waiting = observed - submitted
                if isStopping && wal.inFlightWrites == 0 && (waiting == 0 || walFull) { return }
                var sleepUntil = ContinuousClock.now + .milliseconds(Self.idleWaitMs)
                if waiting > 0 && !walFull && wal.canSubmit, let end = windowEnd(waiting: waiting) {
                    sleepUntil = min(sleepUntil, end)
                }
                _ = reader.waitForData(after: observed, timeout: max(.zero, sleepUntil - .now), or: storedSignal)
            } else if wal.inFlightWrites > 0 {
                // Wait for a completion, or (room for another write) for new data too: data
                // arriving while a write is in flight goes out at once, not after that write.
                var durable: UInt64?
                if let device = wal as? WAL, !dataWaitRegistered, device.canSubmit, !walFull, !isStopping,
                   device.canWaitForWake {
                    guard let wait = reader.beginDataWait(after: submitted) else { continue }   // data: submit it
                    dataWaitRegistered = true
                    durable = try device.reap(orWakeOf: wait.word, expected: wait.expected)
                } else {
                    durable = try wal.reap(wait: true)
                }
                if dataWaitRegistered && !((wal as? WAL)?.dataWaitArmed ?? false) {
                    reader.endDataWait()
                    dataWaitRegistered = false
                }
                if let durable { publish(durable) }
            } else if isStopping {
                if reader.position == ring.writePosition || walFull { return }
            } else if walFull {
                if let m = trimCommands.pop(timeout: .milliseconds(Self.idleWaitMs)) { try trim(m) }
            } else {
                _ = reader.waitForData(after: submitted, timeout: .milliseconds(Self.idleWaitMs))
            }
        }
    }

    /// One record: a WAL frame header before each ring frame's payload.
    private func submit(_ batch: LogRingBatch) throws {
        var headers = [UInt8](repeating: 0, count: batch.frames.count * WALFrameCodec.headerBytes)
        var parts: [UnsafeRawBufferPointer] = []
        parts.reserveCapacity(batch.frames.count * 2)
        try headers.withUnsafeMutableBytes { h in
            for (i, f) in batch.frames.enumerated() {
                let slot = UnsafeMutableRawBufferPointer(rebasing: h[(i * WALFrameCodec.headerBytes)..<((i + 1) * WALFrameCodec.headerBytes)])
                WALFrameCodec.encodeHeader(streamId: f.streamId, streamEpoch: f.streamEpoch, baseOffset: f.baseOffset,
                                           count: f.count, payloadLength: f.payload.count, into: slot)
                parts.append(UnsafeRawBufferPointer(slot))
                parts.append(f.payload)
            }
            // The payload pointers are used only until submit returns: it copies them.
            _ = try wal.submit(payloads: parts, startLSN: batch.startLSN, endLSN: batch.endLSN)
        }
    }
}
