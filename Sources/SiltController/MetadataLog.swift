import CSupport
import Foundation
import Logging

/// The append-only metadata log on local disk: `<log.dir>/__cluster_metadata-0/metadata.log`.
///
/// ```
/// +----------------+----------------+---------------------------+
/// | length: u32 BE | crc32c: u32 BE | payload: JSON record      |
/// +----------------+----------------+---------------------------+
/// ```
/// `crc32c` covers the payload. A record is durable (fdatasync) before `append` returns.
/// On open the file is replayed; a torn or corrupt tail (a crash mid-append) is truncated
/// at the last whole record, because nothing past it was ever acknowledged.
public final class MetadataLog {
    public enum LogError: Error, CustomStringConvertible {
        case io(String, Int32)
        public var description: String {
            switch self {
            case .io(let what, let err): return "metadata log: \(what): \(String(cString: strerror(err)))"
            }
        }
    }

    static let recordBytesMax = 1 << 20
    private let fd: Int32
    private var size: Int64
    public let path: String

    /// Opens (creating if needed) the log in `dir` and returns it with the records it holds.
    public static func open(directory dir: String, logger: Logger) throws -> (MetadataLog, [MetadataRecord]) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/metadata.log"
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogError.io("open \(path)", errno) }
        let data = try readAll(fd: fd, path: path)
        var records: [MetadataRecord] = []
        var pos = 0
        let decoder = JSONDecoder()
        while pos + 8 <= data.count {
            let len = Int(data.loadBigEndianUInt32(at: pos))
            let crc = data.loadBigEndianUInt32(at: pos + 4)
            guard len <= recordBytesMax, pos + 8 + len <= data.count else { break }
            let payload = data[(pos + 8)..<(pos + 8 + len)]
            let actual = payload.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, len) }
            guard actual == crc, let record = try? decoder.decode(MetadataRecord.self, from: Data(payload)) else { break }
            records.append(record)
            pos += 8 + len
        }
        if pos != data.count {
            logger.warning("metadata log has a torn tail; truncating", metadata: [
                "path": "\(path)", "validBytes": "\(pos)", "fileBytes": "\(data.count)"])
            guard ftruncate(fd, off_t(pos)) == 0, fdatasync(fd) == 0 else { throw LogError.io("truncate \(path)", errno) }
        }
        let log = MetadataLog(fd: fd, size: Int64(pos), path: path)
        return (log, records)
    }

    private init(fd: Int32, size: Int64, path: String) {
        self.fd = fd; self.size = size; self.path = path
    }

    deinit { close(fd) }

    /// Appends records durably, all or nothing: on failure the file is cut back.
    public func append(_ records: [MetadataRecord]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var frame = [UInt8]()
        for r in records {
            let payload = [UInt8](try encoder.encode(r))
            precondition(payload.count <= MetadataLog.recordBytesMax, "metadata record too large")
            let crc = payload.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, payload.count) }
            frame.appendBigEndian(UInt32(payload.count))
            frame.appendBigEndian(crc)
            frame.append(contentsOf: payload)
        }
        var written = 0
        while written < frame.count {
            let n = frame.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + written, frame.count - written, off_t(size) + off_t(written))
            }
            if n < 0 {
                if errno == EINTR { continue }
                let err = errno
                _ = ftruncate(fd, off_t(size))
                throw LogError.io("write \(path)", err)
            }
            written += n
        }
        guard fdatasync(fd) == 0 else {
            let err = errno
            _ = ftruncate(fd, off_t(size))
            throw LogError.io("fdatasync \(path)", err)
        }
        size += Int64(frame.count)
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
