import CSupport
import Foundation
import NIOCore
import SiltMetadata

/// A read-only reader of the metadata log's file layout before the Raft log, in
/// `<log.dir>/__cluster_metadata/`, for the migration to it:
///
/// ```
///  snapshot-<endOffset>.batch   a Kafka record batch, one record per MetadataRecord, offsets < endOffset
///  metadata-<baseOffset>.log    records baseOffset, baseOffset+1, ... each framed as
///      +----------------+----------------+------------------------------------------+
///      | length: u32 BE | crc32c: u32 BE | payload: JSON, or MetadataRecordSerde    |
///      +----------------+----------------+------------------------------------------+
/// ```
/// Releases before binary metadata records wrote every payload and snapshot value as JSON
/// (`MetadataRecord`'s Codable form, sorted keys); the release that introduced them writes
/// binary into the same layout (`MetadataLog`), so a payload is read by its first byte:
/// `{` is JSON, anything else a `MetadataRecordSerde` frame (whose first byte is 1).
///
/// The migration: `read` → write the records as a snapshot of the new log → `retire`.
public enum LegacyMetadataLog {
    public enum LegacyError: Error, CustomStringConvertible {
        case io(String, Int32)
        case corrupt(String)
        /// `retire` moved some files and not others (it was interrupted): the rest is not a
        /// whole log, so it is not read. Call `retire` again to finish.
        case partiallyRetired(String)
        public var description: String {
            switch self {
            case .io(let what, let err): return "legacy metadata log: \(what): \(String(cString: strerror(err)))"
            case .corrupt(let what): return "legacy metadata log: \(what)"
            case .partiallyRetired(let dir):
                return "legacy metadata log in \(dir) was partly moved into \(LegacyMetadataLog.retiredDirectoryName)/ "
                    + "by an interrupted migration; finish it (LegacyMetadataLog.retire) once the new log holds the migrated snapshot"
            }
        }
    }

    /// Where `retire` moves the legacy files, inside the log directory.
    public static let retiredDirectoryName = "legacy-json"
    static let recordBytesMax = 1 << 20

    /// The records that rebuild the image from the legacy files in `directory` (the newest
    /// snapshot's records, then the log's records after it) and the offset after the last
    /// one; nil if there are no legacy files. Read-only: a torn tail of the last segment (a
    /// crash mid-append, never acknowledged) ends the log, and any other damage throws.
    public static func read(directory dir: String) throws -> (records: [MetadataRecord], endOffset: Int64)? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return nil }
        let snapshots = names.compactMap { n in offset(of: n, prefix: "snapshot-", suffix: ".batch").map { ($0, n) } }
            .sorted { $0.0 > $1.0 }
        let segments = names.compactMap { n in offset(of: n, prefix: "metadata-", suffix: ".log").map { ($0, n) } }
            .sorted { $0.0 < $1.0 }
        if snapshots.isEmpty && segments.isEmpty { return nil }
        if names.contains(retiredDirectoryName) { throw LegacyError.partiallyRetired(dir) }

        // The newest snapshot that decodes (as MetadataLog.open chooses it).
        var records: [MetadataRecord] = []
        var snapshotEnd: Int64 = 0
        var snapshotError: String?
        for (end, name) in snapshots {
            guard let data = FileManager.default.contents(atPath: dir + "/" + name) else { continue }
            do {
                records = try decodeSnapshot([UInt8](data)).records
                snapshotEnd = end
                snapshotError = nil
                break
            } catch let e as MetadataRecordError where e.isFromNewerRelease {
                throw LegacyError.corrupt("snapshot \(name): \(e)")
            } catch {
                snapshotError = snapshotError ?? "snapshot \(name): \(error)"
            }
        }
        if let first = segments.first, first.0 > snapshotEnd {
            throw LegacyError.corrupt("segments start at \(first.0), after the snapshot end \(snapshotEnd)"
                                      + (snapshotError.map { " (\($0))" } ?? ""))
        }
        var next = segments.first?.0 ?? snapshotEnd
        for (i, (base, name)) in segments.enumerated() {
            guard base == next else { throw LegacyError.corrupt("segment \(name) starts at \(base), expected \(next)") }
            let path = dir + "/" + name
            guard let contents = FileManager.default.contents(atPath: path) else { throw LegacyError.io("read \(path)", errno) }
            let data = [UInt8](contents)
            var pos = 0
            while pos + 8 <= data.count {
                let len = Int(data.readBE32(pos))
                let crc = data.readBE32(pos + 4)
                guard len <= recordBytesMax, pos + 8 + len <= data.count else { break }
                let payload = data[(pos + 8)..<(pos + 8 + len)]
                let actual = payload.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, len) }
                guard actual == crc else { break }
                let record: MetadataRecord
                do {
                    record = try decodePayload(payload)
                } catch {
                    throw LegacyError.corrupt("record at offset \(next) (\(name), byte \(pos)) does not decode: \(error)")
                }
                if next >= snapshotEnd { records.append(record) }
                next += 1
                pos += 8 + len
            }
            if pos != data.count && i != segments.count - 1 {
                throw LegacyError.corrupt("segment \(name) is damaged at byte \(pos) and is not the last one")
            }
        }
        guard next >= snapshotEnd else {
            throw LegacyError.corrupt("the log ends at \(next), before the snapshot end \(snapshotEnd)")
        }
        return (records, next)
    }

    /// Moves the legacy files of `directory` into `legacy-json/` beside them (kept for an
    /// operator, never read again), then fsyncs both directories. Idempotent: after a crash
    /// in the middle, call it again.
    public static func retire(directory dir: String) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let legacy = names.filter(isLegacyFile).sorted()
        let target = dir + "/" + retiredDirectoryName
        if !legacy.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            } catch {
                throw LegacyError.io("create \(target): \(error)", EIO)
            }
            try syncDirectory(dir)
        }
        // Snapshots first: a partial retire then never looks like a shorter whole log.
        for name in legacy.sorted(by: { ($0.hasPrefix("snapshot-") ? 0 : 1, $0) < ($1.hasPrefix("snapshot-") ? 0 : 1, $1) }) {
            guard rename(dir + "/" + name, target + "/" + name) == 0 else { throw LegacyError.io("rename \(dir)/\(name)", errno) }
        }
        if !legacy.isEmpty {
            try syncDirectory(target)
            try syncDirectory(dir)
        }
    }

    /// A file of the legacy layout (a leftover snapshot temp file included).
    static func isLegacyFile(_ name: String) -> Bool {
        offset(of: name, prefix: "metadata-", suffix: ".log") != nil
            || offset(of: name, prefix: "snapshot-", suffix: ".batch") != nil
            || offset(of: name, prefix: "snapshot-", suffix: ".batch.tmp") != nil
    }

    /// One segment payload: JSON (first byte `{`, releases before binary records) or a
    /// `MetadataRecordSerde` frame.
    public static func decodePayload<C: Collection>(_ payload: C) throws -> MetadataRecord where C.Element == UInt8 {
        guard payload.first == UInt8(ascii: "{") else { return try MetadataRecordSerde.decode(Array(payload)) }
        return try JSONDecoder().decode(MetadataRecord.self, from: Data(payload))
    }

    /// A snapshot's records, each value JSON or binary; `legacyJSON` if any was JSON.
    public static func decodeSnapshot(_ bytes: [UInt8]) throws -> (records: [MetadataRecord], legacyJSON: Bool) {
        var legacyJSON = false
        let records = try MetadataRecordCodec.decode(ByteBuffer(bytes: bytes)) { value in
            if value.first == UInt8(ascii: "{") { legacyJSON = true }
            return try decodePayload(value)
        }
        return (records.map(\.record), legacyJSON)
    }

    static func offset(of name: String, prefix: String, suffix: String) -> Int64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        return Int64(name.dropFirst(prefix.count).dropLast(suffix.count))
    }

    private static func syncDirectory(_ dir: String) throws {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw LegacyError.io("open \(dir)", errno) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw LegacyError.io("fsync \(dir)", errno) }
    }
}
