import CSupport

/// One frame as a reader sees it: a zero-copy view into the shared mapping.
///
/// `payload` stays valid (and unchanged) until the reader that produced it advances past
/// `endLSN`: the writer never overwrites bytes a reader has not released.
public struct LogRingFrame {
    /// LSN of the frame header.
    public let startLSN: UInt64
    /// LSN just past the frame (including tail padding).
    public let endLSN: UInt64
    public let streamId: UInt64
    public let baseOffset: Int64
    /// The stream epoch the broker appended in.
    public let streamEpoch: Int64
    public let count: UInt32
    public let flags: UInt16
    public let payload: UnsafeRawBufferPointer
}

/// The frames `peek` found between a reader's position and the write position.
public struct LogRingBatch {
    /// The reader's position when it peeked.
    public let startLSN: UInt64
    /// The position after the last frame (and any padding) in this batch: `advance(to:)` it
    /// once the frames are consumed. May exceed `startLSN` with `frames` empty (padding only).
    public let endLSN: UInt64
    /// Data frames in LSN order; padding frames are skipped.
    public let frames: [LogRingFrame]

    public var isEmpty: Bool { endLSN == startLSN }
}

/// A reader of a `LogRing`: index 0 is the WAL writer, index 1 the uploader.
///
/// One thread (and one process) per index at a time. The reader's position lives in shared
/// memory, so a restarted reader process continues where the old one released.
public struct LogRingReader: @unchecked Sendable {
    public let ring: LogRing
    public let index: Int

    init(ring: LogRing, index: Int) {
        self.ring = ring
        self.index = index
    }

    /// This reader's position: everything below it has been consumed.
    public var position: UInt64 { ring.readPosition(index) }

    /// Frames from `position` up to the write position, at most `maxBytes` of them (but always
    /// at least one frame when one is available, whatever its size). Verifies each frame's
    /// length and CRC32C; throws `.corruptFrame` at the first that fails.
    public func peek(maxBytes: Int = Int.max) throws -> LogRingBatch {
        try peek(from: silt_atomic_load_relaxed_u64(ring.readPositionWord(index)), maxBytes: maxBytes)  // our own value
    }

    /// Like `peek`, but from `start`, a frame boundary at or past this reader's position that an
    /// earlier `peek` returned: a reader with several batches in flight (the WAL writer, which
    /// advances only once a write is durable) looks past what it has not released yet.
    public func peek(from start: UInt64, maxBytes: Int) throws -> LogRingBatch {
        precondition(maxBytes > 0)
        precondition(start >= silt_atomic_load_relaxed_u64(ring.readPositionWord(index)), "peek before the reader position")
        let write = ring.writePosition  // acquire: the frames below it are complete
        let cap = ring.capacityBytes
        var position = start
        var taken = 0
        var frames: [LogRingFrame] = []
        while position < write {
            let offset = Int(position & ring.mask)
            let toEnd = cap - offset
            if toEnd < LogRing.frameHeaderBytes {
                // Too small for a header: skipped by rule, nothing was written there.
                guard position + UInt64(toEnd) <= write else {
                    throw RingError.corruptFrame(lsn: position, reason: "write position inside the end gap")
                }
                position += UInt64(toEnd)
                continue
            }
            let frame = UnsafeRawPointer(ring.data + offset)
            let length = Int(frame.load(fromByteOffset: LogRing.FrameOffset.length, as: UInt32.self))
            let kind = frame.load(fromByteOffset: LogRing.FrameOffset.kind, as: UInt8.self)
            let tailPad = Int(frame.load(fromByteOffset: LogRing.FrameOffset.tailPad, as: UInt8.self))
            guard length >= LogRing.frameHeaderBytes, length & 7 == 0, length <= toEnd,
                  position + UInt64(length) <= write, tailPad < 8 else {
                throw RingError.corruptFrame(lsn: position, reason: "bad length \(length) (tail pad \(tailPad), \(toEnd) to the end, write \(write))")
            }
            let payloadLength = length - LogRing.frameHeaderBytes - tailPad
            let storedCRC = frame.load(fromByteOffset: LogRing.FrameOffset.crc, as: UInt32.self)
            if kind == LogRing.kindPadding {
                guard length == toEnd, tailPad == 0,
                      LogRing.frameCRC(frame, payloadLength: 0) == storedCRC else {
                    throw RingError.corruptFrame(lsn: position, reason: "bad padding frame (length \(length), \(toEnd) to the end)")
                }
                position += UInt64(length)
                continue
            }
            guard kind == LogRing.kindData else {
                throw RingError.corruptFrame(lsn: position, reason: "unknown kind \(kind)")
            }
            guard payloadLength >= 0, payloadLength <= ring.maxPayloadBytes else {
                throw RingError.corruptFrame(lsn: position, reason: "payload length \(payloadLength)")
            }
            if !frames.isEmpty && taken + length > maxBytes { break }
            let crc = LogRing.frameCRC(frame, payloadLength: payloadLength)
            guard crc == storedCRC else {
                throw RingError.corruptFrame(lsn: position, reason: "CRC32C \(crc) != stored \(storedCRC)")
            }
            frames.append(LogRingFrame(
                startLSN: position, endLSN: position + UInt64(length),
                streamId: frame.load(fromByteOffset: LogRing.FrameOffset.streamId, as: UInt64.self),
                baseOffset: frame.load(fromByteOffset: LogRing.FrameOffset.baseOffset, as: Int64.self),
                streamEpoch: frame.load(fromByteOffset: LogRing.FrameOffset.streamEpoch, as: Int64.self),
                count: frame.load(fromByteOffset: LogRing.FrameOffset.count, as: UInt32.self),
                flags: frame.load(fromByteOffset: LogRing.FrameOffset.flags, as: UInt16.self),
                // Escapes the mapping: valid until this reader advances past it (see LogRingFrame).
                payload: UnsafeRawBufferPointer(start: frame + LogRing.frameHeaderBytes, count: payloadLength)))
            taken += length
            position += UInt64(length)
        }
        return LogRingBatch(startLSN: start, endLSN: position, frames: frames)
    }

    /// Releases everything below `lsn` (a frame boundary from a batch) to the writer, waking it
    /// if it waits for space.
    public func advance(to lsn: UInt64) {
        let word = ring.readPositionWord(index)
        let current = silt_atomic_load_relaxed_u64(word)
        precondition(lsn >= current, "reader \(index) moving back from \(current) to \(lsn)")
        precondition(lsn <= ring.writePosition, "reader \(index) advancing to \(lsn) past the write position")
        if lsn == current { return }
        // Release: our reads of the frames happen before the writer reuses their bytes.
        silt_atomic_store_release_u64(word, lsn)
        FutexWait.wake(word: ring.spaceFutex, waiters: ring.spaceWaiters)
    }

    /// For a reader that waits for data inside another wait (the WAL writer's io_uring wait,
    /// which returns on a write's completion or on a futex wake, whichever comes first):
    /// registers as a sleeper, so the writer bumps and wakes `word` after its next append, and
    /// returns the word with the value to wait on. Nil, unregistered, when data after `lsn` is
    /// already there. Every non-nil return is followed by one `endDataWait()`.
    public func beginDataWait(after lsn: UInt64) -> (word: UnsafeMutablePointer<UInt32>, expected: UInt32)? {
        _ = silt_atomic_fetch_add_u32(ring.dataWaiters, 1)
        silt_atomic_fence_seq_cst()
        let expected = silt_atomic_load_acquire_u32(ring.dataFutex)
        if ring.writePosition > lsn {
            endDataWait()
            return nil
        }
        return (ring.dataFutex, expected)
    }

    /// Ends a wait `beginDataWait` registered.
    public func endDataWait() {
        _ = silt_atomic_fetch_sub_u32(ring.dataWaiters, 1)
    }

    /// Blocks until the write position passes `lsn` or the timeout (nil: no limit) expires.
    /// Returns whether data after `lsn` is available. Sleeps on a futex; never spins.
    public func waitForData(after lsn: UInt64, timeout: Duration?) -> Bool {
        waitForData(after: lsn, timeout: timeout, or: { false })
    }

    /// The same, also returning when `other()` holds. Whoever makes `other()` true must call
    /// `wakeDataWaiters()` after it did (the reader then sees it; no wake-up is lost).
    public func waitForData(after lsn: UInt64, timeout: Duration?, or other: () -> Bool) -> Bool {
        let deadline = FutexWait.deadline(after: timeout)
        return FutexWait.until(word: ring.dataFutex, waiters: ring.dataWaiters, deadline: deadline) {
            ring.writePosition > lsn || other()
        }
    }

    /// Wakes readers sleeping in `waitForData` (every reader of the ring, in any process: each
    /// re-checks its condition and sleeps again if it does not hold).
    public func wakeDataWaiters() {
        FutexWait.wake(word: ring.dataFutex, waiters: ring.dataWaiters)
    }
}
