import Foundation

/// Fault points a test sets on a whole node through its environment (the ones a unit test sets
/// on one `WAL` are the instance's, `WAL.faults`). Read once per process; a WAL opened with one
/// set logs a warning naming it. Documented in docs/node.md ("Fault points").
extension WALFaults {
    /// `SILT_FAULT_WAL_WRITE_DELAY_MS`: every WAL write waits this long before it is submitted,
    /// as on a device that takes that long per write (the writer thread sleeps; group commit
    /// still gathers what arrives meanwhile). Unset or 0: off. At most `writeDelayMsMax`.
    static let writeDelayMs: Int = {
        guard let text = ProcessInfo.processInfo.environment[writeDelayVariable], let ms = Int(text), ms > 0 else {
            return 0
        }
        return min(ms, writeDelayMsMax)
    }()

    static let writeDelayVariable = "SILT_FAULT_WAL_WRITE_DELAY_MS"
    /// Bound on the delay: a test's slow device, never a hung one.
    static let writeDelayMsMax = 10_000

    /// Called by `WAL.submit` before each write: a no-op unless the fault point is on.
    @inline(__always) static func beforeWrite() {
        if writeDelayMs > 0 { usleep(useconds_t(writeDelayMs) * 1000) }
    }
}
