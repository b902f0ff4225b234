import CSupport
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension WAL {
    /// Group commit: copies `payloads` (everything waiting) into one aligned record covering
    /// [startLSN, endLSN) and submits it as ONE io_uring O_DIRECT write, made durable per
    /// `config.durability`. Returns at once; `reap` reports when it (and all before it) is durable.
    ///
    /// - Precondition for success: `startLSN == headLSN`, `endLSN - startLSN >= total payload`
    ///   (the LSN span may exceed the payload: the producer skips padding), `endLSN > startLSN`.
    /// - Throws `.full` when the record would overrun the trim point (nothing is written; trim
    ///   and retry), `.inFlightLimitReached` when `maxInFlightWrites` are in flight (reap and
    ///   retry), `.recordTooLarge` (split), `.lsnDiscontinuity`.
    @discardableResult
    public func submit(payloads: [UnsafeRawBufferPointer], startLSN: UInt64, endLSN: UInt64) throws -> WriteTicket {
        try checkUsable()
        var payloadBytes = 0
        for p in payloads { payloadBytes += p.count }
        try SubmitChecks.check(payloadBytes: payloadBytes, maxPayloadBytes: config.maxRecordPayloadBytes,
                               startLSN: startLSN, endLSN: endLSN, nextLSN: nextLSN,
                               inFlight: inFlight.count, inFlightLimit: config.maxInFlightWrites)
        WALFaults.beforeWrite()
        let recordBytes = WALLayout.recordBytes(payloadBytes: payloadBytes)
        let offset = try placement(recordBytes: recordBytes)
        if let p = preparer, !p.willWrite(offset: offset, bytes: recordBytes) { preparer = nil }
        let sequence = nextSequence

        // Encode into an aligned buffer the kernel will read until the completion is reaped.
        let buffer = bufferPool.popLast()
            ?? AlignedBuffer(count: Int(WALLayout.recordBytes(payloadBytes: config.maxRecordPayloadBytes)))
        let header = WALRecordHeader(startLSN: startLSN, endLSN: endLSN, sequence: sequence,
                                     formatId: self.header.formatId, generation: generation,
                                     payloadBytes: UInt32(payloadBytes), recordBytes: UInt32(recordBytes))
        let base = buffer.pointer
        header.encodeFields(at: base)
        var cursor = WALLayout.recordHeaderBytes
        for p in payloads where p.count > 0 {
            (base + cursor).copyMemory(from: p.baseAddress!, byteCount: p.count)
            cursor += p.count
        }
        (base + cursor).initializeMemory(as: UInt8.self, repeating: 0, count: Int(recordBytes) - cursor)
        base.storeLE(WALRecordHeader.computeCRC(base, payloadBytes: payloadBytes), at: 4)

        // Assert on the write side: the image decodes to what we meant, in bounds, aligned, and
        // (debug builds) its CRC verifies.
        precondition(WALRecordHeader.decodeFields(base) == header)
        precondition(offset >= WALLayout.areaStartOffset && offset % WALLayout.blockBytes == 0
                     && offset + recordBytes <= capacityBytes)
        assert(WALRecordHeader.computeCRC(base, payloadBytes: payloadBytes) == WALRecordHeader.storedCRC(base))

        let ticket = WriteTicket(sequence: sequence, startLSN: startLSN, endLSN: endLSN,
                                 deviceOffset: offset, recordBytes: recordBytes)
        // Safe: `buffer` is retained by `inFlight[sequence]` until every CQE of this record is reaped.
        let write = ring.unsafeGetSQE()
        silt_uring_prep_write(write, fd, base, UInt32(recordBytes), offset, sequence << 1)
        var pending = 1
        switch config.durability {
        case .dsyncWrite:
            silt_uring_sqe_set_dsync(write)
        case .linkedFdatasync:
            silt_uring_sqe_set_link(write)
            silt_uring_prep_fdatasync(ring.unsafeGetSQE(), fd, (sequence << 1) | 1)
            pending = 2
        }
        inFlight[sequence] = InFlightWrite(ticket: ticket, buffer: buffer, pendingCompletions: pending, completed: false)
        outstandingCompletions += pending
        do {
            try ring.submit()
        } catch let error as WALError {
            failure = error  // the SQEs' fate is unknown: stop here
            throw error
        }
        live.append(LiveRecord(offset: offset, recordBytes: recordBytes, startLSN: startLSN,
                               endLSN: endLSN, sequence: sequence))
        headOffset = offset + recordBytes
        nextLSN = endLSN
        nextSequence = sequence + 1
        bytesWritten += recordBytes
        writes += 1
        if config.durability == .linkedFdatasync { fsyncs += 1 }
        return ticket
    }

    /// Convenience: one payload.
    @discardableResult
    public func submit(payload: UnsafeRawBufferPointer, startLSN: UInt64, endLSN: UInt64) throws -> WriteTicket {
        try submit(payloads: [payload], startLSN: startLSN, endLSN: endLSN)
    }

    /// Convenience: one payload from an array (LSN span = payload size when `endLSN` is nil).
    @discardableResult
    public func submit(bytes: [UInt8], startLSN: UInt64, endLSN: UInt64? = nil) throws -> WriteTicket {
        try bytes.withUnsafeBytes {
            try submit(payloads: [$0], startLSN: startLSN, endLSN: endLSN ?? startLSN + UInt64(bytes.count))
        }
    }

    /// Where a record of `recordBytes` goes: at the head, or at the area start when it does not
    /// fit before the end of the area. Throws `.full` if it would overrun the trim point.
    func placement(recordBytes n: UInt64) throws -> UInt64 {
        let a = WALLayout.areaStartOffset, cap = capacityBytes
        let h = headOffset, t = trimOffset
        if live.isEmpty {
            precondition(h == t)
            if h + n <= cap { return h }
            precondition(a + n <= t, "area too small for a wrap from an empty log")
            return a
        }
        if h > t {
            // Live span [t, h): free are [h, cap) and [a, t).
            if h + n <= cap { return h }
            if a + n <= t { return a }
        } else if h + n <= t {
            // Wrapped: live span [t, cap) + [a, h); free is [h, t). (h == t: full circle.)
            return h
        }
        throw WALError.full(neededBytes: n, freeBytes: freeBytes)
    }

    /// Processes completions. With `wait`, blocks until at least one arrives (when any write is
    /// in flight), then takes every completion that is ready. Returns the new durable LSN when
    /// it advanced, nil otherwise. Durability advances only contiguously: a record counts once
    /// its own write (and sync) completed and every earlier record is durable.
    /// A failed or short write throws `.writeFailed` and fails the WAL (reopen to recover).
    public func reap(wait: Bool) throws -> UInt64? {
        try checkUsable()
        let before = durableLSN
        var processed = 0
        if !parkedCompletions.isEmpty, faults.parkedSequences.isEmpty {
            let released = parkedCompletions
            parkedCompletions.removeAll()
            for c in released { try handle(c) }
            processed += released.count
        }
        // Bounded: at most two CQEs per in-flight write are outstanding, and one futex wait.
        for _ in 0..<(2 * config.maxInFlightWrites + 2) {
            let owed = outstandingCompletions > 0 || ring.futexWaitArmed
            let mayWait = wait && processed == 0 && owed
            guard owed, let c = try ring.nextCompletion(wait: mayWait) else { break }
            if c.userData == IORing.futexWaitTag {   // woken (or the word had moved): stop waiting
                ring.futexWaitArmed = false
                processed += 1
                continue
            }
            outstandingCompletions -= 1
            processed += 1
            if faults.parkedSequences.contains(c.userData >> 1) {
                parkedCompletions.append(c)
                continue
            }
            try handle(c)
        }
        return durableLSN > before ? durableLSN : nil
    }

    /// Like `reap(wait: true)` with writes in flight, but also returns (with nil when no write
    /// completed) once the shared futex `word` no longer holds `expected`: the WAL writer waits
    /// for a completion or for new data in the log buffer, whichever comes first, so data that
    /// arrives while a write is in flight is submitted at once instead of after it. Without
    /// kernel support for io_uring futex waits it is `reap(wait: true)`. A wait armed here
    /// stays armed until a `reap` sees it end (`dataWaitArmed`).
    public func reap(orWakeOf word: UnsafeMutablePointer<UInt32>, expected: UInt32) throws -> UInt64? {
        try checkUsable()
        if ring.supportsFutexWait && !ring.futexWaitArmed { try ring.armFutexWait(word: word, expected: expected) }
        return try reap(wait: true)
    }

    /// A futex wait from `reap(orWakeOf:expected:)` has not ended yet.
    public var dataWaitArmed: Bool { ring.futexWaitArmed }
    /// `reap(orWakeOf:expected:)` can wait for a wake (the kernel has io_uring futex waits).
    public var canWaitForWake: Bool { ring.supportsFutexWait }

    /// Test hook: lets parked completions be processed by the next `reap`.
    func releaseParkedCompletions() {
        faults.parkedSequences.removeAll()
    }

    private func handle(_ c: IORing.Completion) throws {
        let sequence = c.userData >> 1
        let isSync = c.userData & 1 == 1
        guard var w = inFlight[sequence], !w.completed else {
            preconditionFailure("completion for unknown or finished record \(sequence)")
        }
        let expected = isSync ? 0 : Int32(w.ticket.recordBytes)
        guard c.result == expected else {
            let error = WALError.writeFailed(sequence: sequence, errno: c.result < 0 ? Errno(-c.result) : nil,
                                             writtenBytes: max(c.result, 0))
            failure = error
            logger.error("WAL write failed", metadata: ["path": "\(path)", "error": "\(error)"])
            throw error
        }
        w.pendingCompletions -= 1
        precondition(w.pendingCompletions >= 0)
        if w.pendingCompletions == 0 { w.completed = true }
        inFlight[sequence] = w
        advanceDurable()
    }

    private func advanceDurable() {
        while let w = inFlight[durableSequence], w.completed {
            precondition(w.ticket.startLSN == durableLSN, "durable LSN must advance contiguously")
            durableLSN = w.ticket.endLSN
            inFlight[durableSequence] = nil
            bufferPool.append(w.buffer)
            durableSequence += 1
        }
    }

    /// Moves the trim point to the last record boundary at or below `lsn` (pass an endLSN that
    /// `reap` returned), persisting it in the next header slot (O_DIRECT write + fdatasync)
    /// before the space is reused. Returns the trim LSN now in force.
    @discardableResult
    public func trim(to lsn: UInt64) throws -> UInt64 {
        try checkUsable()
        guard lsn <= durableLSN else { throw WALError.trimBeyondDurable(lsn: lsn, durableLSN: durableLSN) }
        var drop = 0
        while drop < live.count, live[drop].endLSN <= lsn { drop += 1 }
        guard drop > 0 else { return header.trimLSN }
        var h = header
        if drop < live.count {
            let first = live[drop]
            precondition(first.startLSN == live[drop - 1].endLSN)
            (h.trimOffset, h.trimLSN, h.trimSequence) = (first.offset, first.startLSN, first.sequence)
        } else {
            (h.trimOffset, h.trimLSN, h.trimSequence) = (headOffset, nextLSN, nextSequence)
        }
        precondition(h.trimSequence <= durableSequence)
        try writeHeader(h)  // durable before any of the freed space can be overwritten
        live.removeFirst(drop)
        return header.trimLSN
    }

    /// Moves an empty log (nothing live, nothing in flight) to start at `lsn`, e.g. when the
    /// producer's LSN stream restarted. Persisted like a trim.
    public func rebase(nextLSN lsn: UInt64) throws {
        try checkUsable()
        guard live.isEmpty, inFlight.isEmpty else {
            throw WALError.invalidConfiguration("rebase needs an empty log (\(live.count) live records)")
        }
        var h = header
        (h.trimOffset, h.trimLSN, h.trimSequence) = (headOffset, lsn, nextSequence)
        try writeHeader(h)
        nextLSN = lsn
        durableLSN = lsn
    }
}
