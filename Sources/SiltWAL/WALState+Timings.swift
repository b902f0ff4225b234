import CSupport

/// Stage times of the WAL's recent writes, for the broker's latency breakdown (issue 15): the
/// WAL writer records when it picked each write's frames up from the log buffer, submitted it
/// and reaped its completion (`silt_monotonic_ns`, one clock for the node's processes); the
/// broker's durable thread looks up the write that carried a produce's batch when its durable
/// notice arrives and observes the stages (`silt_produce_wal_pickup_seconds` ...).
///
/// ```
///  WALState header page:
///  +1024  slots[64], 48 bytes each: startLSN │ endLSN │ pickupNs │ submitNs │ completeNs │ pad
///         slot = write number & 63; one writer (the WAL thread), readers in the broker
/// ```
/// Cost: five stores per write in the WAL process; the broker scans at most 64 slots per
/// completed produce batch, no locks, no allocation. A reader checks `endLSN` again after
/// reading a slot, so a slot the writer reused meanwhile yields nothing rather than a wrong
/// time; a write that left the table (64 writes later) yields nothing too.
extension WALState {
    static let timingsOffset = 1024
    public static let timingSlots = 64
    static let timingSlotBytes = 48

    /// One write's stage times (monotonic ns).
    public struct WriteTimes: Equatable, Sendable {
        public var pickupNs: UInt64
        public var submitNs: UInt64
        public var completeNs: UInt64
    }

    private func timingWord(_ slot: Int, _ field: Int) -> UnsafeMutablePointer<UInt64> {
        precondition(Self.timingsOffset + Self.timingSlots * Self.timingSlotBytes <= WALState.headerBytes)
        return (base + Self.timingsOffset + (slot & (Self.timingSlots - 1)) * Self.timingSlotBytes + field * 8)
            .assumingMemoryBound(to: UInt64.self)
    }

    /// WAL writer: write number `write` covering [startLSN, endLSN) was submitted.
    public func recordSubmitted(write: Int, startLSN: UInt64, endLSN: UInt64, pickupNs: UInt64, submitNs: UInt64) {
        silt_atomic_store_release_u64(timingWord(write, 1), 0)   // invalid while it is rewritten
        silt_atomic_store_release_u64(timingWord(write, 0), startLSN)
        silt_atomic_store_release_u64(timingWord(write, 2), pickupNs)
        silt_atomic_store_release_u64(timingWord(write, 3), submitNs)
        silt_atomic_store_release_u64(timingWord(write, 4), 0)
        silt_atomic_store_release_u64(timingWord(write, 1), endLSN)
    }

    /// WAL writer: write number `write` completed (before its durable notice is pushed).
    public func recordCompleted(write: Int, completeNs: UInt64) {
        silt_atomic_store_release_u64(timingWord(write, 4), completeNs)
    }

    /// The end LSN write number `write` covers (0 while its slot is being rewritten).
    public func recordedEndLSN(write: Int) -> UInt64 { silt_atomic_load_acquire_u64(timingWord(write, 1)) }

    /// Broker: the stage times of the completed write holding the byte just below `lsn`, or
    /// nil when it is no longer (or not yet completely) in the table.
    public func writeTimes(coveringEnd lsn: UInt64) -> WriteTimes? {
        for slot in 0..<Self.timingSlots {
            let end = silt_atomic_load_acquire_u64(timingWord(slot, 1))
            let start = silt_atomic_load_acquire_u64(timingWord(slot, 0))
            guard end != 0, start < lsn, lsn <= end else { continue }
            let times = WriteTimes(pickupNs: silt_atomic_load_acquire_u64(timingWord(slot, 2)),
                                   submitNs: silt_atomic_load_acquire_u64(timingWord(slot, 3)),
                                   completeNs: silt_atomic_load_acquire_u64(timingWord(slot, 4)))
            guard silt_atomic_load_acquire_u64(timingWord(slot, 1)) == end, times.completeNs != 0 else { return nil }
            return times
        }
        return nil
    }
}
