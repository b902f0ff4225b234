#if canImport(Glibc)
import Glibc
#endif

/// An errno value, typed (the way swift-system's `Errno` is).
public struct Errno: Error, Equatable, Hashable, CustomStringConvertible, Sendable {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    public var description: String {
        guard let text = strerror(rawValue) else { return "errno \(rawValue)" }
        return "\(String(cString: text)) (errno \(rawValue))"
    }

    public static let interrupted = Errno(EINTR)
    public static let invalidArgument = Errno(EINVAL)
    public static let again = Errno(EAGAIN)
    public static let timedOut = Errno(ETIME)
    public static let canceled = Errno(ECANCELED)
}

/// Everything the WAL throws. Operating errors only: broken invariants are preconditions.
public enum WALError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A system call failed (`operation` names it, `path` the device).
    case syscall(operation: String, path: String, errno: Errno)
    /// The filesystem holding `path` refuses O_DIRECT (tmpfs, some FUSE/overlay mounts).
    /// The WAL never falls back to buffered I/O: its durability argument depends on O_DIRECT.
    case directIONotSupported(path: String)
    /// `path` is neither a block device nor a regular file.
    case unsupportedFileType(path: String)
    /// The block device at `path` is smaller than the configured capacity.
    case deviceTooSmall(path: String, deviceBytes: UInt64, capacityBytes: UInt64)
    /// The configuration is unusable (capacity not 4 KiB aligned, too small for a record, ...).
    case invalidConfiguration(String)
    /// A valid header names another capacity than the one configured.
    case capacityMismatch(path: String, onDisk: UInt64, configured: UInt64)
    /// A valid header names another node id than the one configured.
    case nodeIdMismatch(path: String, onDisk: Int64, configured: Int64)
    /// A valid header has a format version this code does not understand.
    case unsupportedFormatVersion(path: String, version: UInt32)
    /// Neither header slot is valid but the device is not blank: it may hold a WAL whose
    /// headers were damaged, or something else entirely. Refused unless the caller opens with
    /// `FormatPolicy.formatIfNoValidHeader`.
    case headersCorrupt(path: String)
    /// Writing the record would overrun the trim point: the caller must back-pressure and
    /// `trim` before submitting again. Nothing was written.
    case full(neededBytes: UInt64, freeBytes: UInt64)
    /// `maxInFlightWrites` writes are already in flight; `reap` first.
    case inFlightLimitReached(limit: Int)
    /// The payload exceeds `maxRecordPayloadBytes` (callers split).
    case recordTooLarge(payloadBytes: Int, maxPayloadBytes: Int)
    /// The record's LSN range does not continue the log (`expectedStartLSN`) or is malformed.
    case lsnDiscontinuity(expectedStartLSN: UInt64, startLSN: UInt64, endLSN: UInt64)
    /// `trim(to:)` asked to trim past the durable LSN.
    case trimBeyondDurable(lsn: UInt64, durableLSN: UInt64)
    /// A write (or its linked fdatasync) failed or was short. The WAL is now failed: every
    /// later call throws this again, the process must reopen (recover) the WAL.
    case writeFailed(sequence: UInt64, errno: Errno?, writtenBytes: Int32)
    /// The WAL was closed, or failed earlier (`cause`).
    case unusable(cause: String)
    /// The device ends at `headLSN` with valid records, but the log buffer says everything
    /// below `durableLSN` was made durable: the device lost data (`WALWriter.attach`).
    case behindLogBuffer(path: String, headLSN: UInt64, durableLSN: UInt64)

    /// The WAL cannot be used as configured (path, device, capacity, node id, format): starting
    /// again changes nothing until the configuration or the device does. The other errors are
    /// failures of a usable WAL.
    public var isConfigurationError: Bool {
        switch self {
        case .directIONotSupported, .unsupportedFileType, .deviceTooSmall, .invalidConfiguration, .capacityMismatch,
             .nodeIdMismatch, .unsupportedFormatVersion, .headersCorrupt:
            return true
        case .syscall, .full, .inFlightLimitReached, .recordTooLarge, .lsnDiscontinuity, .trimBeyondDurable, .writeFailed,
             .unusable, .behindLogBuffer:
            return false
        }
    }

    public var description: String {
        switch self {
        case let .syscall(op, path, errno): return "\(op) on \(path) failed: \(errno)"
        case let .directIONotSupported(path):
            return "O_DIRECT is not supported for \(path) (tmpfs? use a real filesystem or a block device)"
        case let .unsupportedFileType(path): return "\(path) is neither a block device nor a regular file"
        case let .deviceTooSmall(path, dev, cap):
            return "block device \(path) has \(dev) bytes, capacity \(cap) configured"
        case let .invalidConfiguration(why): return "invalid WAL configuration: \(why)"
        case let .capacityMismatch(path, disk, conf):
            return "WAL \(path) was formatted with capacity \(disk), configured \(conf)"
        case let .nodeIdMismatch(path, disk, conf):
            return "WAL \(path) belongs to node \(disk), this is node \(conf)"
        case let .unsupportedFormatVersion(path, v):
            return "WAL \(path) has format version \(v); this Silt reads and writes version \(WALLayout.formatVersion)"
                + (v < WALLayout.formatVersion
                   ? " (version 1 frames carry no stream epoch). Start the Silt that wrote it once and stop it with SIGTERM "
                     + "so that its uploader empties the WAL, then format it: `silt admin format-wal --path \(path) --force`"
                   : "")
        case let .headersCorrupt(path):
            return "\(path) holds something other than a Silt WAL (no valid WAL header, and its first 8 KiB are not zero: "
                + "a filesystem, fio's data, or a WAL whose headers were damaged); refusing to format it. If nothing on it "
                + "is needed, format it on purpose with `silt admin format-wal --path \(path)`, then start the node again"
        case let .full(needed, free): return "WAL full: need \(needed) bytes, \(free) free"
        case let .inFlightLimitReached(limit): return "WAL has \(limit) writes in flight"
        case let .recordTooLarge(bytes, max): return "WAL record payload \(bytes) bytes exceeds \(max)"
        case let .lsnDiscontinuity(expected, start, end):
            return "WAL record [\(start), \(end)) does not continue the log at \(expected)"
        case let .trimBeyondDurable(lsn, durable): return "trim to \(lsn) beyond durable LSN \(durable)"
        case let .writeFailed(seq, errno, written):
            return "WAL write of record \(seq) failed: \(errno.map { "\($0)" } ?? "short write of \(written) bytes")"
        case let .unusable(cause): return "WAL unusable: \(cause)"
        case let .behindLogBuffer(path, head, durable):
            return "the WAL \(path) ends at LSN \(head) but the log buffer says \(durable) is durable: the device lost data"
        }
    }
}

/// Runs a system call that returns -1 and sets errno, retrying EINTR (bounded).
/// EBADF and EFAULT are programmer errors (a closed descriptor, a bad pointer): preconditions.
@discardableResult
func retryingSyscall<T: BinaryInteger>(_ operation: String, path: String, _ body: () -> T) throws -> T {
    for _ in 0..<syscallRetriesMax {
        let rc = body()
        if rc != -1 { return rc }
        let e = errno
        if e == EINTR { continue }
        precondition(e != EBADF && e != EFAULT, "\(operation) on \(path): programmer error errno \(e)")
        throw WALError.syscall(operation: operation, path: path, errno: Errno(e))
    }
    throw WALError.syscall(operation: operation, path: path, errno: .interrupted)
}

/// Runs a C helper that returns -errno on failure (liburing style), retrying -EINTR (bounded).
@discardableResult
func retryingNegErrno(_ operation: String, path: String, _ body: () -> Int32) throws -> Int32 {
    for _ in 0..<syscallRetriesMax {
        let rc = body()
        if rc >= 0 { return rc }
        if rc == -EINTR { continue }
        precondition(rc != -EBADF && rc != -EFAULT, "\(operation) on \(path): programmer error errno \(-rc)")
        throw WALError.syscall(operation: operation, path: path, errno: Errno(-rc))
    }
    throw WALError.syscall(operation: operation, path: path, errno: .interrupted)
}

/// Bound on EINTR retries of one system call.
let syscallRetriesMax = 64
