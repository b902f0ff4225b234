import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// Formatting a device on purpose (`silt admin format-wal`).
///
/// `WAL.open` formats only a blank device: both header slots (its first 8 KiB) all zero.
/// Anything else without a valid header — a filesystem, a partition table, fio's data, a WAL
/// whose headers were damaged — is refused, because formatting would destroy it. An operator
/// who knows the device holds nothing needed erases the header slots with `eraseHeaders`; the
/// node's next start then formats it with its own node id and capacity. Only the 8 KiB of
/// header slots are written: records left behind carry another format id and are never read.
extension WAL {
    /// What the header slots of a device or file hold.
    public enum Contents: Equatable, Sendable, CustomStringConvertible {
        /// Both header slots are zero (or the file is shorter than them): `open` formats it.
        case blank
        /// A Silt WAL this code reads (its newest valid header's node and capacity).
        case siltWAL(nodeId: Int64, capacityBytes: UInt64)
        /// A Silt WAL of another format version.
        case siltWALOfVersion(UInt32)
        /// Something else: `open` refuses it.
        case other

        public var description: String {
            switch self {
            case .blank: return "nothing (blank)"
            case let .siltWAL(nodeId, capacityBytes): return "the Silt WAL of node \(nodeId) (capacity \(capacityBytes) bytes)"
            case let .siltWALOfVersion(version): return "a Silt WAL of format version \(version)"
            case .other: return "something other than a Silt WAL"
            }
        }
    }

    /// Reads the header slots of `path` (opened read-only in spirit: nothing is written).
    public static func contents(path: String) throws -> Contents {
        let fd = silt_open_direct(path, 0)
        if fd < 0 { throw WALError.syscall(operation: "open(O_DIRECT)", path: path, errno: Errno(-fd)) }
        defer { Glibc.close(fd) }
        let slots = AlignedBuffer(count: Int(WALLayout.areaStartOffset))
        let n = try retryingSyscall("pread", path: path) {
            pread(fd, slots.bytes.baseAddress!, slots.bytes.count, 0)
        }
        let read = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(slots.bytes)[..<n])
        if read.allSatisfy({ $0 == 0 }) { return .blank }
        guard n == slots.bytes.count else { return .other }
        do {
            guard let h = try newestHeader(UnsafeRawBufferPointer(slots.bytes), path: path, logger: nil) else {
                return .other
            }
            return .siltWAL(nodeId: h.nodeId, capacityBytes: h.capacityBytes)
        } catch WALError.unsupportedFormatVersion(_, let version) {
            return .siltWALOfVersion(version)
        }
    }

    /// Zeroes both header slots of `path` (one aligned O_DIRECT write, then fdatasync), so the
    /// next `open` formats it. The caller has checked `contents(path:)`: this destroys a WAL.
    public static func eraseHeaders(path: String) throws {
        let fd = silt_open_direct(path, 0)
        if fd == -EINVAL { throw WALError.directIONotSupported(path: path) }
        if fd < 0 { throw WALError.syscall(operation: "open(O_DIRECT)", path: path, errno: Errno(-fd)) }
        defer { Glibc.close(fd) }
        let zeros = AlignedBuffer(count: Int(WALLayout.areaStartOffset))
        try pwriteFully(fd: fd, path: path, from: UnsafeRawBufferPointer(zeros.bytes), offset: 0)
        try retryingSyscall("fdatasync", path: path) { fdatasync(fd) }
        // Check after the write, as after any I/O: the device now reads as blank.
        guard try contents(path: path) == .blank else {
            throw WALError.syscall(operation: "erase (the header slots do not read back as zero)",
                                   path: path, errno: Errno(EIO))
        }
    }

    /// `silt admin format-wal`: makes `path` blank so the node's next start formats it.
    /// A blank device is left alone; anything that is not a Silt WAL is erased; a Silt WAL
    /// (of any version: it may hold acknowledged data not yet uploaded) only with `force`.
    /// Returns what was done, for the operator.
    public static func formatOnPurpose(path: String, force: Bool) throws -> String {
        let found = try contents(path: path)
        switch found {
        case .blank:
            return "\(path) is blank: the node formats it at its next start"
        case .siltWAL where !force, .siltWALOfVersion where !force:
            throw FormatRefusal(path: path, what: "\(found)")
        case .siltWAL, .siltWALOfVersion, .other:
            try eraseHeaders(path: path)
            return "\(path): header slots erased (it held \(found)); the node formats it at its next start"
        }
    }

    /// `formatOnPurpose` found a Silt WAL and was not forced.
    public struct FormatRefusal: Error, CustomStringConvertible, Sendable {
        public let path: String
        public let what: String
        public var description: String {
            "\(path) holds \(what); its records may not all be in object storage yet. Stop that node with SIGTERM "
                + "(its uploader empties the WAL) before erasing it, or add --force to erase it anyway"
        }
    }
}
