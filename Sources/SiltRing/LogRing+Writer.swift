import CSupport

extension LogRing {
    /// Appends one frame, waiting up to `timeout` (nil: no limit) for the readers to free space.
    ///
    /// Returns the frame's LSN range: `startLSN` is where its header starts (after any padding
    /// this append had to insert), `endLSN` the position after it (the new write position).
    /// The frame becomes visible to readers with one release store of the write position after
    /// all its bytes are written, so a crash in the middle leaves nothing visible.
    ///
    /// Throws `.payloadTooLarge` for payloads over `maxPayloadBytes` and `.full` when the
    /// slowest reader has not made room within the timeout. Never overwrites unread data.
    /// Single writer: calls must not overlap.
    public func append(streamId: UInt64, streamEpoch: Int64, baseOffset: Int64, count: UInt32, flags: UInt16 = 0,
                       payload: UnsafeRawBufferPointer,
                       timeout: Duration?) throws -> (startLSN: UInt64, endLSN: UInt64) {
        let deadline = FutexWait.deadline(after: timeout)
        guard let r = try append(streamId: streamId, streamEpoch: streamEpoch, baseOffset: baseOffset, count: count, flags: flags,
                                 payload: payload, wait: true, deadline: deadline) else {
            throw RingError.full
        }
        return r
    }

    /// Appends one frame if there is room now; returns nil (and writes nothing) when full.
    /// Throws `.payloadTooLarge` like `append`.
    public func tryAppend(streamId: UInt64, streamEpoch: Int64, baseOffset: Int64, count: UInt32, flags: UInt16 = 0,
                          payload: UnsafeRawBufferPointer) throws -> (startLSN: UInt64, endLSN: UInt64)? {
        try append(streamId: streamId, streamEpoch: streamEpoch, baseOffset: baseOffset, count: count, flags: flags,
                   payload: payload, wait: false, deadline: nil)
    }

    /// Blocks until at least `bytes` of space is free (including any padding an append of that
    /// size would need is NOT accounted; use for coarse flow control), or the timeout passes.
    public func waitForSpace(bytes: Int, timeout: Duration?) -> Bool {
        precondition(bytes >= 0 && bytes <= capacityBytes)
        let deadline = FutexWait.deadline(after: timeout)
        return FutexWait.until(word: spaceFutex, waiters: spaceWaiters, deadline: deadline) {
            freeBytes >= bytes
        }
    }

    private func append(streamId: UInt64, streamEpoch: Int64, baseOffset: Int64, count: UInt32, flags: UInt16,
                        payload: UnsafeRawBufferPointer, wait: Bool,
                        deadline: ContinuousClock.Instant?) throws -> (startLSN: UInt64, endLSN: UInt64)? {
        let payloadLength = payload.count
        guard payloadLength <= maxPayloadBytes else {
            throw RingError.payloadTooLarge(bytes: payloadLength, max: maxPayloadBytes)
        }
        let need = LogRing.align8(LogRing.frameHeaderBytes + payloadLength)
        // Only this writer stores the write position: a relaxed load of our own value.
        let w = silt_atomic_load_relaxed_u64(writePositionWord)
        let offset = Int(w & mask)
        let toEnd = capacityBytes - offset
        let skip = toEnd < need ? toEnd : 0
        let total = UInt64(skip + need)
        let cap = UInt64(capacityBytes)

        // Space: (w + total) - min(read) <= capacity. Acquire on the readers' positions: their
        // reads of the bytes we are about to overwrite happen before.
        if w + total - cachedMinReadPosition > cap {
            cachedMinReadPosition = minReadPosition
            if w + total - cachedMinReadPosition > cap {
                guard wait else { return nil }
                let ok = FutexWait.until(word: spaceFutex, waiters: spaceWaiters, deadline: deadline) {
                    cachedMinReadPosition = minReadPosition
                    return w + total - cachedMinReadPosition <= cap
                }
                guard ok else { return nil }
            }
        }

        // Claim the bytes before touching them (copyIfStillPresent checks this after copying).
        let end = w + total
        if end > silt_atomic_load_relaxed_u64(reservedPositionWord) {
            silt_atomic_store_relaxed_u64(reservedPositionWord, end)
            silt_atomic_fence_release()
        }

        if skip >= LogRing.frameHeaderBytes {
            LogRing.writeHeader(at: data + offset, length: skip, kind: LogRing.kindPadding, tailPad: 0,
                                flags: 0, count: 0, streamId: 0, streamEpoch: 0, baseOffset: 0, payloadLength: 0)
        }
        let start = w + UInt64(skip)
        let frame = data + Int(start & mask)
        assert(Int(start & mask) + need <= capacityBytes, "a frame never wraps")
        if payloadLength > 0 {
            // The one copy on the way in.
            (frame + LogRing.frameHeaderBytes).copyMemory(from: payload.baseAddress!, byteCount: payloadLength)
        }
        let tailPad = need - LogRing.frameHeaderBytes - payloadLength
        if tailPad > 0 {
            (frame + LogRing.frameHeaderBytes + payloadLength).initializeMemory(as: UInt8.self, repeating: 0, count: tailPad)
        }
        LogRing.writeHeader(at: frame, length: need, kind: LogRing.kindData, tailPad: tailPad, flags: flags,
                            count: count, streamId: streamId, streamEpoch: streamEpoch, baseOffset: baseOffset,
                            payloadLength: payloadLength)
        // Assert before publishing what every reader will check after reading.
        assert(LogRing.frameCRC(frame, payloadLength: payloadLength) == frame.load(as: UInt32.self))

        // Publish: the release store orders every byte above before the new position.
        lastPublishedNs = silt_monotonic_ns()
        silt_atomic_store_release_u64(writePositionWord, end)
        FutexWait.wake(word: dataFutex, waiters: dataWaiters)
        return (start, end)
    }

    @inline(__always)
    static func writeHeader(at frame: UnsafeMutableRawPointer, length: Int, kind: UInt8, tailPad: Int,
                            flags: UInt16, count: UInt32, streamId: UInt64, streamEpoch: Int64, baseOffset: Int64,
                            payloadLength: Int) {
        frame.storeBytes(of: UInt32(length), toByteOffset: FrameOffset.length, as: UInt32.self)
        frame.storeBytes(of: kind, toByteOffset: FrameOffset.kind, as: UInt8.self)
        frame.storeBytes(of: UInt8(tailPad), toByteOffset: FrameOffset.tailPad, as: UInt8.self)
        frame.storeBytes(of: flags, toByteOffset: FrameOffset.flags, as: UInt16.self)
        frame.storeBytes(of: count, toByteOffset: FrameOffset.count, as: UInt32.self)
        frame.storeBytes(of: streamId, toByteOffset: FrameOffset.streamId, as: UInt64.self)
        frame.storeBytes(of: baseOffset, toByteOffset: FrameOffset.baseOffset, as: Int64.self)
        frame.storeBytes(of: streamEpoch, toByteOffset: FrameOffset.streamEpoch, as: Int64.self)
        let crc = frameCRC(UnsafeRawPointer(frame), payloadLength: payloadLength)
        frame.storeBytes(of: crc, toByteOffset: FrameOffset.crc, as: UInt32.self)
    }

    /// Copies the bytes of LSNs `startLSN..<endLSN` out of the ring into `buffer` and reports
    /// whether they are the bytes that were written there (a third party, e.g. the broker
    /// serving a tail fetch, not one of the two readers, which hold their data in place).
    ///
    /// Returns false when the range is not yet committed, or when the writer overwrote (or may
    /// have been overwriting) any of it: data at LSN `L` is intact while
    /// `reservedPosition <= L + capacityBytes`, checked again after the copy (seqlock style).
    /// On false the content of `buffer` is unspecified.
    public func copyIfStillPresent(startLSN: UInt64, endLSN: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        precondition(startLSN <= endLSN, "startLSN \(startLSN) > endLSN \(endLSN)")
        let length = Int(endLSN - startLSN)
        precondition(length <= capacityBytes && length <= buffer.count, "range of \(length) bytes does not fit")
        let cap = UInt64(capacityBytes)
        guard endLSN <= writePosition else { return false }
        guard reservedPosition <= startLSN + cap else { return false }
        if length > 0 {
            let offset = Int(startLSN & mask)
            let first = min(length, capacityBytes - offset)
            buffer.baseAddress!.copyMemory(from: data + offset, byteCount: first)
            if first < length {
                (buffer.baseAddress! + first).copyMemory(from: data, byteCount: length - first)
            }
        }
        // Order the copy before the re-check of how far the writer has claimed.
        silt_atomic_fence_acquire()
        return silt_atomic_load_relaxed_u64(reservedPositionWord) <= startLSN + cap
    }
}
