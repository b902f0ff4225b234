#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore
import SiltRecords

/// A partition's producer state as of an offset, in a file under log.dirs, so that a
/// restarted broker replays only the batches after `offset` instead of the whole log.
///
/// ```
///  offset  size  field
///       0     4  magic "SPS1"
///       4     4  crc   (CRC-32C of the JSON body)
///       8     …  JSON  {"offset": X, "producers": [ProducerEntry, ...]}
/// ```
/// Written to a temporary file, fdatasync'ed, renamed over the old one, directory fsync'ed:
/// a crash leaves the old snapshot or the new one, never half of one. The CRC is checked
/// when read back; a bad file is ignored (the caller replays the whole log instead).
public struct ProducerStateSnapshot: Codable, Equatable, Sendable {
    static let magic: [UInt8] = Array("SPS1".utf8)
    static let headerBytes = 8

    /// The state covers every batch below this offset.
    public var offset: Int64
    public var producers: [ProducerEntry]

    public init(offset: Int64, table: ProducerStateTable) {
        self.offset = offset
        // Sorted so that equal states give equal files.
        self.producers = table.producers.values.sorted { $0.producerId < $1.producerId }
    }

    public var table: ProducerStateTable { ProducerStateTable(entries: producers) }

    public func encode() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = [UInt8](try! encoder.encode(self))
        var out = ProducerStateSnapshot.magic
        let crc = crc32c(body)
        out += [UInt8(crc >> 24), UInt8((crc >> 16) & 0xff), UInt8((crc >> 8) & 0xff), UInt8(crc & 0xff)]
        out += body
        return out
    }

    /// Nil when the bytes are not a whole, intact snapshot.
    public static func decode(_ bytes: [UInt8]) -> ProducerStateSnapshot? {
        guard bytes.count > headerBytes, Array(bytes[0..<4]) == magic else { return nil }
        let crc = bytes[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let body = Array(bytes[headerBytes...])
        guard crc32c(body) == crc,
              let snapshot = try? JSONDecoder().decode(ProducerStateSnapshot.self, from: Data(body)),
              snapshot.offset >= 0,
              snapshot.producers.allSatisfy({ !$0.batches.isEmpty && $0.batches.count <= ProducerStateTable.batchesRetained })
        else { return nil }
        return snapshot
    }

    /// Writes the snapshot durably to `path` (atomically replacing an older one).
    public func write(to path: String) throws(StorageError) {
        let bytes = encode()
        let tmp = path + ".tmp"
        let fd = try Sys.openFile(tmp, O_WRONLY | O_CREAT | O_TRUNC)
        defer { close(fd) }
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try Sys.pwriteAll(fd, tmp, buffer, at: 0)
        try Sys.datasync(fd, tmp)
        _ = try Sys.check(Int(rename(tmp, path)), "rename", tmp)
        try Sys.syncDirectory((path as NSString).deletingLastPathComponent)
        assert(ProducerStateSnapshot.read(from: path) == self, "snapshot does not read back")
    }

    /// The snapshot at `path`, or nil when there is none or it is damaged.
    public static func read(from path: String) -> ProducerStateSnapshot? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return decode([UInt8](data))
    }
}
