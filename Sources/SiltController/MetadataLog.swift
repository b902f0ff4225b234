import CSupport
import Foundation
import Logging
import NIOCore
import SiltMetadata

/// The metadata log on local disk, in `<log.dir>/__cluster_metadata/`: segments of records
/// plus snapshots, the shape the Raft issue replicates.
///
/// ```
///  snapshot-<endOffset>.batch      the image as records (a Kafka record batch), offsets < endOffset
///  metadata-<baseOffset>.log       records baseOffset, baseOffset+1, ... framed as:
///      +----------------+----------------+------------------------------------+
///      | length: u32 BE | crc32c: u32 BE | payload: MetadataRecordSerde bytes |
///      +----------------+----------------+------------------------------------+
/// ```
/// Releases before binary metadata records wrote JSON payloads (and JSON values in
/// snapshots); those still read (`LegacyMetadataLog.decodePayload`: a JSON payload starts
/// with `{`, a binary one with its frame version 1), and new records are binary, so a
/// segment may hold both. The Raft log replaces this file layout; `LegacyMetadataLog` reads
/// it for the migration.
/// A record is durable (fdatasync) before `append` returns. On open, the newest valid
/// snapshot is loaded and the segments replayed after it; a torn or corrupt tail (a crash
/// mid-append) is truncated at the last whole record, because nothing past it was ever
/// acknowledged. A whole record (its CRC matches) that does not decode stops the open with
/// its offset and type: it is never truncated. After a snapshot, a new segment starts at its end offset and older
/// segments and snapshots are deleted.
public final class MetadataLog {
    public enum LogError: Error, CustomStringConvertible {
        case io(String, Int32)
        case corrupt(String)
        public var description: String {
            switch self {
            case .io(let what, let err): return "metadata log: \(what): \(String(cString: strerror(err)))"
            case .corrupt(let what): return "metadata log: \(what)"
            }
        }
    }

    /// What `open` found.
    public struct Contents {
        /// The newest snapshot's records and end offset (0 and [] without a snapshot).
        public var snapshotRecords: [MetadataRecord]
        public var snapshotEndOffset: Int64
        /// The snapshot's bytes as stored (served to followers).
        public var snapshotBytes: [UInt8]
        /// Records after the snapshot; the first has offset `snapshotEndOffset`.
        public var records: [MetadataRecord]
    }

    static let recordBytesMax = 1 << 20
    private var fd: Int32
    private var size: Int64
    private(set) var activePath: String
    public let directory: String
    let logger: Logger

    static func segmentName(_ base: Int64) -> String { String(format: "metadata-%020lld.log", base) }
    static func snapshotName(_ end: Int64) -> String { String(format: "snapshot-%020lld.batch", end) }

    private static func offset(of name: String, prefix: String, suffix: String) -> Int64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        return Int64(name.dropFirst(prefix.count).dropLast(suffix.count))
    }

    /// Opens (creating if needed) the log in `dir`.
    public static func open(directory dir: String, logger: Logger) throws -> (MetadataLog, Contents) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        var contents = Contents(snapshotRecords: [], snapshotEndOffset: 0, snapshotBytes: [], records: [])

        // The newest snapshot that decodes; a damaged one is skipped (older segments remain until a good one exists).
        let snapshots = names.compactMap { n in offset(of: n, prefix: "snapshot-", suffix: ".batch").map { ($0, n) } }
            .sorted { $0.0 > $1.0 }
        for (end, name) in snapshots {
            guard let data = FileManager.default.contents(atPath: dir + "/" + name) else { continue }
            do {
                let (records, legacyJSON) = try LegacyMetadataLog.decodeSnapshot([UInt8](data))
                contents.snapshotRecords = records
                contents.snapshotEndOffset = end
                // Followers get the binary form, whatever an older release stored.
                contents.snapshotBytes = legacyJSON ? MetadataSnapshot.encode(records) : [UInt8](data)
                break
            } catch let e as MetadataRecordError where e.isFromNewerRelease {
                throw LogError.corrupt("snapshot \(name): \(e)")
            } catch {
                logger.warning("ignoring damaged metadata snapshot", metadata: ["file": "\(name)", "error": "\(error)"])
            }
        }

        var segments = names.compactMap { n in offset(of: n, prefix: "metadata-", suffix: ".log").map { ($0, n) } }
            .sorted { $0.0 < $1.0 }
        if segments.isEmpty { segments = [(contents.snapshotEndOffset, segmentName(contents.snapshotEndOffset))] }
        guard segments[0].0 <= contents.snapshotEndOffset else {
            throw LogError.corrupt("segments start at \(segments[0].0), after the snapshot end \(contents.snapshotEndOffset)")
        }
        var next: Int64 = segments[0].0
        var lastFd: Int32 = -1
        var lastSize: Int64 = 0
        var lastPath = ""
        for (i, (base, name)) in segments.enumerated() {
            let path = dir + "/" + name
            guard base == next || (i == 0) else {
                throw LogError.corrupt("segment \(name) starts at \(base), expected \(next)")
            }
            let isLast = i == segments.count - 1
            let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw LogError.io("open \(path)", errno) }
            let data = try readAll(fd: fd, path: path)
            var pos = 0
            var offset = base
            while pos + 8 <= data.count {
                let len = Int(data.loadBigEndianUInt32(at: pos))
                let crc = data.loadBigEndianUInt32(at: pos + 4)
                guard len <= recordBytesMax, pos + 8 + len <= data.count else { break }
                let payload = data[(pos + 8)..<(pos + 8 + len)]
                let actual = payload.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, len) }
                guard actual == crc else { break }
                let record: MetadataRecord
                do {
                    record = try LegacyMetadataLog.decodePayload(payload)
                } catch {
                    throw LogError.corrupt("record at offset \(offset) (\(name), byte \(pos)) does not decode: \(error)")
                }
                if offset >= contents.snapshotEndOffset { contents.records.append(record) }
                offset += 1
                pos += 8 + len
            }
            if pos != data.count {
                guard isLast else {
                    throw LogError.corrupt("segment \(name) is damaged at byte \(pos) and is not the last one")
                }
                logger.warning("metadata log has a torn tail; truncating", metadata: [
                    "path": "\(path)", "validBytes": "\(pos)", "fileBytes": "\(data.count)"])
                guard ftruncate(fd, off_t(pos)) == 0, fdatasync(fd) == 0 else { throw LogError.io("truncate \(path)", errno) }
            }
            next = offset
            if isLast {
                lastFd = fd
                lastSize = Int64(pos)
                lastPath = path
            } else {
                close(fd)
            }
        }
        guard next >= contents.snapshotEndOffset else {
            throw LogError.corrupt("the log ends at \(next), before the snapshot end \(contents.snapshotEndOffset)")
        }
        let log = MetadataLog(fd: lastFd, size: lastSize, path: lastPath, directory: dir, logger: logger)
        return (log, contents)
    }

    private init(fd: Int32, size: Int64, path: String, directory: String, logger: Logger) {
        self.fd = fd; self.size = size; self.activePath = path; self.directory = directory; self.logger = logger
    }

    deinit { close(fd) }

    /// Appends records durably, all or nothing: on failure the file is cut back. Returns the bytes written.
    @discardableResult
    public func append(_ records: [MetadataRecord]) throws -> Int {
        var frame = [UInt8]()
        for r in records {
            let payload = MetadataRecordSerde.encode(r)
            precondition(payload.count <= MetadataLog.recordBytesMax, "metadata record too large")
            let crc = payload.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, payload.count) }
            frame.appendBigEndian(UInt32(payload.count))
            frame.appendBigEndian(crc)
            frame.append(contentsOf: payload)
        }
        try MetadataLog.writeAll(fd: fd, bytes: frame, at: size, path: activePath) { _ = ftruncate(self.fd, off_t(self.size)) }
        guard fdatasync(fd) == 0 else {
            let err = errno
            _ = ftruncate(fd, off_t(size))
            throw LogError.io("fdatasync \(activePath)", err)
        }
        size += Int64(frame.count)
        return frame.count
    }

    /// Writes a snapshot ending at `endOffset` (atomically: temp file, fsync, rename), starts
    /// a new segment there, and deletes the segments and snapshots it replaces. Returns the
    /// snapshot's bytes.
    @discardableResult
    public func snapshot(_ records: [MetadataRecord], endOffset: Int64) throws -> [UInt8] {
        let bytes = MetadataSnapshot.encode(records)
        let path = directory + "/" + MetadataLog.snapshotName(endOffset)
        let tmp = path + ".tmp"
        let tfd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard tfd >= 0 else { throw LogError.io("open \(tmp)", errno) }
        do {
            try MetadataLog.writeAll(fd: tfd, bytes: bytes, at: 0, path: tmp) {}
            guard fsync(tfd) == 0 else { throw LogError.io("fsync \(tmp)", errno) }
        } catch {
            close(tfd)
            unlink(tmp)
            throw error
        }
        close(tfd)
        guard rename(tmp, path) == 0 else { throw LogError.io("rename \(tmp)", errno) }
        // The new segment, then the directory entry for both.
        let segPath = directory + "/" + MetadataLog.segmentName(endOffset)
        let nfd = Glibc.open(segPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard nfd >= 0 else { throw LogError.io("open \(segPath)", errno) }
        try syncDirectory()
        let oldPath = activePath
        close(fd)
        fd = nfd
        size = 0
        activePath = segPath
        // Older segments and snapshots are now redundant.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let full = directory + "/" + name
            if let base = MetadataLog.offset(of: name, prefix: "metadata-", suffix: ".log"), base < endOffset {
                unlink(full)
            } else if let end = MetadataLog.offset(of: name, prefix: "snapshot-", suffix: ".batch"), end < endOffset {
                unlink(full)
            }
        }
        try syncDirectory()
        logger.info("metadata snapshot written", metadata: ["endOffset": "\(endOffset)", "records": "\(records.count)",
                                                            "replaced": "\(oldPath)"])
        return bytes
    }

    private func syncDirectory() throws {
        let dfd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw LogError.io("open \(directory)", errno) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw LogError.io("fsync \(directory)", errno) }
    }

    private static func writeAll(fd: Int32, bytes: [UInt8], at offset: Int64, path: String, onError: () -> Void) throws {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + written, bytes.count - written, off_t(offset) + off_t(written))
            }
            if n < 0 {
                if errno == EINTR { continue }
                let err = errno
                onError()
                throw LogError.io("write \(path)", err)
            }
            written += n
        }
    }

    private static func readAll(fd: Int32, path: String) throws -> [UInt8] {
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
            if n < 0 { if errno == EINTR { continue }; throw LogError.io("read \(path)", errno) }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            offset += off_t(n)
        }
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian(_ v: UInt32) {
        append(UInt8(truncatingIfNeeded: v >> 24)); append(UInt8(truncatingIfNeeded: v >> 16))
        append(UInt8(truncatingIfNeeded: v >> 8)); append(UInt8(truncatingIfNeeded: v))
    }
    func loadBigEndianUInt32(at i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }
}
