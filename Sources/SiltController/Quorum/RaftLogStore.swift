import CSupport
import Foundation
import SiltRaft

/// The Raft log of `__cluster_metadata` on local disk: what `RaftCore` asks the driver to
/// make durable, in `<log.dir>/__cluster_metadata-0/` (KRaft's directory name).
///
/// ```
///  quorum-state                                 epoch, voted-for, leader (JSON; temp + fsync + rename)
///  <endOffset:20>-<epoch:10>.checkpoint         a snapshot: the state machine's bytes, offsets < endOffset
///  <baseOffset:20>.log                          batches from baseOffset on, each framed as:
///      +--------------+--------------+-----------------+-------------+-----------+------------------+----------------------+
///      | length u32BE | crc32c u32BE | baseOffset i64BE| epoch i32BE | flags u8  | recordCount u32BE| (len u32BE, bytes)*  |
///      +--------------+--------------+-----------------+-------------+-----------+------------------+----------------------+
///      length counts the bytes after the crc; the crc covers those bytes; flags bit 0 = control batch
/// ```
///
/// Invariants: batches are contiguous in offset across segments; a new segment starts only
/// after a snapshot (at the log end offset then, once the old one is synced), and a segment
/// is deleted once a snapshot covers all of it. `append` writes without syncing; durability
/// is the group commit: `syncHandle()` (under the caller's lock) names the active segment
/// and how far the log then reached, and one fdatasync of that handle, outside any lock,
/// makes every append up to there durable. On open, a frame that fails
/// its CRC at the very end of the last segment is a torn write and is cut (it was never
/// acknowledged); a bad frame followed by a good one is corruption, and opening fails
/// rather than cut acknowledged data.
public final class RaftLogStore {
    public struct StoreError: Error, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
        static func io(_ what: String, _ err: Int32 = errno) -> StoreError {
            StoreError("metadata log: \(what): \(String(cString: strerror(err)))")
        }
    }

    /// A frame's bytes after the length and crc, at most (a batch is at most a proposal).
    static let frameBytesMax = 64 << 20
    static let headerBytes = 8
    static let quorumStateName = "quorum-state"

    public let directory: String
    private struct Segment {
        var baseOffset: Int64
        var path: String
        var fd: Int32
        var sizeBytes: Int64
    }
    private var segments: [Segment] = []
    /// Where each batch of the last segment starts (byte position), by base offset, for truncation.
    private var positions: [(baseOffset: Int64, position: Int64)] = []
    private(set) public var endOffset: Int64 = 0

    /// Opens (creating) the store and returns what it holds for `RaftCore`.
    public static func open(directory: String) throws -> (RaftLogStore, RaftPersisted) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = RaftLogStore(directory: directory)
        let persisted = try store.load()
        return (store, persisted)
    }

    private init(directory: String) { self.directory = directory }

    deinit { for s in segments { close(s.fd) } }

    // MARK: Loading

    private func load() throws -> RaftPersisted {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        let quorum = try readQuorumState()
        // The newest snapshot that reads back whole (it was renamed into place after an fsync).
        var snapshot: RaftSnapshot?
        for (id, name) in names.compactMap({ n in RaftLogStore.snapshotId(of: n).map { ($0, n) } })
            .sorted(by: { $0.0.endOffset > $1.0.endOffset }) {
            if let data = FileManager.default.contents(atPath: directory + "/" + name),
               let bytes = RaftLogStore.unframeSnapshot([UInt8](data)) {
                snapshot = RaftSnapshot(id: id, bytes: bytes)
                break
            }
        }
        let snapshotEnd = snapshot?.id.endOffset ?? 0
        let segmentNames = names.compactMap { n in RaftLogStore.segmentBase(of: n).map { ($0, n) } }.sorted { $0.0 < $1.0 }
        var batches: [RaftBatch] = []
        var next: Int64? = nil
        for (i, (base, name)) in segmentNames.enumerated() {
            let path = directory + "/" + name
            let isLast = i == segmentNames.count - 1
            let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw StoreError.io("open \(path)") }
            let data = try RaftLogStore.readAll(fd: fd, path: path)
            var pos = 0
            var segPositions: [(Int64, Int64)] = []
            while pos < data.count {
                guard let (batch, length) = RaftLogStore.decodeFrame(data, at: pos) else {
                    // Torn only if nothing valid follows: a crash cut the last write short.
                    if !isLast || RaftLogStore.anyValidFrame(data, after: pos) {
                        close(fd)
                        throw StoreError("metadata log: \(path) is damaged at byte \(pos) and valid data follows; "
                            + "refusing to start rather than cut acknowledged records")
                    }
                    break
                }
                if let n = next, batch.baseOffset != n {
                    close(fd)
                    throw StoreError("metadata log: \(path) has a batch at offset \(batch.baseOffset), expected \(n)")
                }
                segPositions.append((batch.baseOffset, Int64(pos)))
                next = batch.endOffset
                if batch.endOffset > snapshotEnd {
                    precondition(batch.baseOffset >= snapshotEnd, "a snapshot ends inside a batch")
                    batches.append(batch)
                }
                pos += length
            }
            if pos != data.count {
                guard ftruncate(fd, off_t(pos)) == 0, fdatasync(fd) == 0 else { throw StoreError.io("truncate \(path)") }
            }
            segments.append(Segment(baseOffset: base, path: path, fd: fd, sizeBytes: Int64(pos)))
            if isLast { positions = segPositions }
        }
        if let first = batches.first, first.baseOffset != snapshotEnd {
            throw StoreError("metadata log: the log resumes at \(first.baseOffset) but the snapshot ends at \(snapshotEnd)")
        }
        endOffset = batches.last?.endOffset ?? snapshotEnd
        if segments.isEmpty || (segments.last!.baseOffset > endOffset) { try startSegment(at: endOffset) }
        return RaftPersisted(quorum: quorum, snapshot: snapshot, batches: batches)
    }

    // MARK: Writing

    /// Writes batches at the log end (not yet durable).
    public func append(_ batches: [RaftBatch]) throws {
        guard !batches.isEmpty else { return }
        var frame: [UInt8] = []
        var at = segments[segments.count - 1].sizeBytes
        var newPositions: [(Int64, Int64)] = []
        var expected = endOffset
        for b in batches {
            precondition(b.baseOffset == expected, "append at \(b.baseOffset), log ends at \(expected)")
            newPositions.append((b.baseOffset, at + Int64(frame.count)))
            RaftLogStore.encodeFrame(b, into: &frame)
            expected = b.endOffset
        }
        let seg = segments[segments.count - 1]
        try RaftLogStore.writeAll(fd: seg.fd, bytes: frame, at: seg.sizeBytes, path: seg.path)
        at += Int64(frame.count)
        segments[segments.count - 1].sizeBytes = at
        positions += newPositions
        endOffset = expected
    }

    /// Makes every earlier append durable (in tests and at a clean stop; the driver syncs
    /// through `syncHandle` so that appends go on while the disk works).
    public func sync() throws {
        let seg = segments[segments.count - 1]
        guard fdatasync(seg.fd) == 0 else { throw StoreError.io("fdatasync \(seg.path)") }
    }

    /// A handle on the active segment (a dup: the caller closes it) and the log end it
    /// covers. fdatasync on it makes the log durable up to `endOffset`: earlier segments
    /// were synced when they stopped being active.
    public func syncHandle() throws -> (fd: Int32, endOffset: Int64) {
        let fd = dup(segments[segments.count - 1].fd)
        guard fd >= 0 else { throw StoreError.io("dup \(segments[segments.count - 1].path)") }
        return (fd, endOffset)
    }

    /// Cuts the log to end at `offset` (a batch boundary in the last segment or below it).
    public func truncate(toOffset offset: Int64) throws {
        guard offset < endOffset else { return }
        // Segments wholly above the cut go.
        while segments.count > 1, segments[segments.count - 1].baseOffset > offset {
            let s = segments.removeLast()
            close(s.fd)
            unlink(s.path)
            positions = []
        }
        if positions.isEmpty {
            // The last segment's positions were dropped: re-read it to find the cut.
            let seg = segments[segments.count - 1]
            let data = try RaftLogStore.readAll(fd: seg.fd, path: seg.path)
            var pos = 0
            while pos < data.count, let (b, len) = RaftLogStore.decodeFrame(data, at: pos) {
                positions.append((b.baseOffset, Int64(pos)))
                pos += len
            }
        }
        var cut = segments[segments.count - 1].sizeBytes
        if let i = positions.firstIndex(where: { $0.baseOffset >= offset }) {
            precondition(positions[i].baseOffset == offset, "truncation at \(offset) is not a batch boundary")
            cut = positions[i].position
            positions.removeSubrange(i...)
        }
        let seg = segments[segments.count - 1]
        guard ftruncate(seg.fd, off_t(cut)) == 0, fdatasync(seg.fd) == 0 else { throw StoreError.io("truncate \(seg.path)") }
        segments[segments.count - 1].sizeBytes = cut
        endOffset = offset
    }

    /// Writes a snapshot durably (temp file, fsync, rename, directory fsync), then deletes
    /// the snapshots and segments it makes redundant.
    public func writeSnapshot(_ snapshot: RaftSnapshot) throws {
        try RaftLogStore.writeSnapshotFile(snapshot, directory: directory)
        try adoptSnapshot(snapshot.id)
    }

    /// The slow half of `writeSnapshot`, which touches no state of the store: the driver
    /// runs it outside its lock, then `adoptSnapshot` under it.
    public static func writeSnapshotFile(_ snapshot: RaftSnapshot, directory: String) throws {
        let path = directory + "/" + snapshotName(snapshot.id)
        try writeFileDurably(path: path, bytes: frameSnapshot(snapshot.bytes), directory: directory)
    }

    /// The snapshot `id` is durable in its file: drop what it covers.
    public func adoptSnapshot(_ id: SnapshotId) throws {
        try dropBelow(id)
    }

    /// A follower installed `snapshot` from the leader: it replaces the whole log.
    public func installSnapshot(_ snapshot: RaftSnapshot) throws {
        let path = directory + "/" + RaftLogStore.snapshotName(snapshot.id)
        try RaftLogStore.writeFileDurably(path: path, bytes: RaftLogStore.frameSnapshot(snapshot.bytes), directory: directory)
        for s in segments { close(s.fd); unlink(s.path) }
        segments = []
        positions = []
        endOffset = snapshot.id.endOffset
        try startSegment(at: endOffset)
        try dropBelow(snapshot.id)
    }

    private func dropBelow(_ id: SnapshotId) throws {
        // Start a fresh segment at the log end, so whole segments can go. The old one is
        // synced first: a sync handle taken from now on covers only the new one.
        let last = segments[segments.count - 1]
        if last.baseOffset < endOffset && last.sizeBytes > 0 {
            guard fdatasync(last.fd) == 0 else { throw StoreError.io("fdatasync \(last.path)") }
            try startSegment(at: endOffset)
        }
        while segments.count > 1, segments[1].baseOffset <= id.endOffset {
            let s = segments.removeFirst()
            close(s.fd)
            unlink(s.path)
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            if let other = RaftLogStore.snapshotId(of: name), other.endOffset < id.endOffset {
                unlink(directory + "/" + name)
            }
        }
        try RaftLogStore.syncDirectory(directory)
    }

    private func startSegment(at offset: Int64) throws {
        let path = directory + "/" + RaftLogStore.segmentName(offset)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError.io("open \(path)") }
        segments.append(Segment(baseOffset: offset, path: path, fd: fd, sizeBytes: 0))
        positions = []
        try RaftLogStore.syncDirectory(directory)
    }

    // MARK: Quorum state

    private struct QuorumStateFile: Codable {
        var leaderEpoch: Int32
        var votedId: Int32
        var leaderId: Int32
    }

    /// Makes the quorum state durable; returns only once it is.
    public func persist(_ state: QuorumState) throws {
        let file = QuorumStateFile(leaderEpoch: state.epoch, votedId: state.votedFor ?? -1, leaderId: state.leaderId ?? -1)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try RaftLogStore.writeFileDurably(path: directory + "/" + RaftLogStore.quorumStateName,
                                          bytes: [UInt8](try encoder.encode(file)), directory: directory)
    }

    private func readQuorumState() throws -> QuorumState {
        let path = directory + "/" + RaftLogStore.quorumStateName
        guard let data = FileManager.default.contents(atPath: path) else {
            return QuorumState(epoch: 0, votedFor: nil, leaderId: nil)
        }
        do {
            let f = try JSONDecoder().decode(QuorumStateFile.self, from: data)
            return QuorumState(epoch: f.leaderEpoch, votedFor: f.votedId < 0 ? nil : f.votedId,
                               leaderId: f.leaderId < 0 ? nil : f.leaderId)
        } catch {
            // Written by rename after an fsync: a damaged file is not a crash artefact.
            throw StoreError("metadata log: \(path) cannot be read (\(error)); it holds this voter's vote and must not be guessed")
        }
    }

    // MARK: Framing

    static func encodeFrame(_ b: RaftBatch, into out: inout [UInt8]) {
        var body: [UInt8] = []
        body.reserveCapacity(17 + b.records.reduce(0) { $0 + 4 + $1.count })
        body.appendBE(UInt64(bitPattern: b.baseOffset))
        body.appendBE(UInt32(bitPattern: b.epoch))
        body.append(b.isControl ? 1 : 0)
        body.appendBE(UInt32(b.records.count))
        for r in b.records {
            body.appendBE(UInt32(r.count))
            body.append(contentsOf: r)
        }
        precondition(body.count <= frameBytesMax, "metadata batch of \(body.count) bytes")
        out.appendBE(UInt32(body.count))
        out.appendBE(body.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, body.count) })
        out.append(contentsOf: body)
    }

    /// The batch at `pos` and its frame length, or nil if the frame is short or fails its CRC.
    static func decodeFrame(_ data: [UInt8], at pos: Int) -> (RaftBatch, Int)? {
        guard pos + headerBytes <= data.count else { return nil }
        let len = Int(data.readBE32(pos))
        guard len >= 17, len <= frameBytesMax, pos + headerBytes + len <= data.count else { return nil }
        let crc = data.readBE32(pos + 4)
        let start = pos + headerBytes
        let actual = data.withUnsafeBytes { silt_crc32c(0, $0.baseAddress! + start, len) }
        guard actual == crc else { return nil }
        var p = start
        let base = Int64(bitPattern: data.readBE64(p)); p += 8
        let epoch = Int32(bitPattern: data.readBE32(p)); p += 4
        let flags = data[p]; p += 1
        let count = Int(data.readBE32(p)); p += 4
        var records: [[UInt8]] = []
        records.reserveCapacity(min(count, len / 4))
        for _ in 0..<count {
            // A CRC-valid frame that does not parse is a bug in the writer, not a torn write.
            precondition(p + 4 <= start + len, "metadata log frame at \(pos) is malformed")
            let rlen = Int(data.readBE32(p)); p += 4
            precondition(p + rlen <= start + len, "metadata log frame at \(pos) is malformed")
            records.append(Array(data[p..<(p + rlen)])); p += rlen
        }
        return (RaftBatch(baseOffset: base, epoch: epoch, isControl: flags & 1 != 0, records: records), headerBytes + len)
    }

    static func anyValidFrame(_ data: [UInt8], after pos: Int) -> Bool {
        var p = pos + 1
        while p + headerBytes <= data.count {
            if decodeFrame(data, at: p) != nil { return true }
            p += 1
        }
        return false
    }

    /// A snapshot file: length u32BE | crc32c u32BE | bytes.
    static func frameSnapshot(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        out.appendBE(UInt32(bytes.count))
        out.appendBE(bytes.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, bytes.count) })
        out.append(contentsOf: bytes)
        return out
    }

    static func unframeSnapshot(_ data: [UInt8]) -> [UInt8]? {
        guard data.count >= 8, Int(data.readBE32(0)) == data.count - 8 else { return nil }
        let body = Array(data[8...])
        let crc = body.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, body.count) }
        return crc == data.readBE32(4) ? body : nil
    }

    // MARK: Names and files

    static func segmentName(_ base: Int64) -> String { String(format: "%020lld.log", base) }
    static func snapshotName(_ id: SnapshotId) -> String { String(format: "%020lld-%010d.checkpoint", id.endOffset, id.epoch) }

    static func segmentBase(of name: String) -> Int64? {
        guard name.hasSuffix(".log"), name.count == 24 else { return nil }
        return Int64(name.prefix(20))
    }

    static func snapshotId(of name: String) -> SnapshotId? {
        guard name.hasSuffix(".checkpoint"), name.count == 20 + 1 + 10 + 11 else { return nil }
        guard let end = Int64(name.prefix(20)), let epoch = Int32(name.dropFirst(21).prefix(10)) else { return nil }
        return SnapshotId(endOffset: end, epoch: epoch)
    }

    static func writeFileDurably(path: String, bytes: [UInt8], directory: String) throws {
        let tmp = path + ".tmp"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError.io("open \(tmp)") }
        do {
            try writeAll(fd: fd, bytes: bytes, at: 0, path: tmp)
            guard fsync(fd) == 0 else { throw StoreError.io("fsync \(tmp)") }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw StoreError.io("rename \(tmp)") }
        try syncDirectory(directory)
    }

    static func syncDirectory(_ directory: String) throws {
        let dfd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw StoreError.io("open \(directory)") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw StoreError.io("fsync \(directory)") }
    }

    static func writeAll(fd: Int32, bytes: [UInt8], at offset: Int64, path: String) throws {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + written, bytes.count - written, off_t(offset) + off_t(written))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.io("write \(path)")
            }
            written += n
        }
    }

    static func readAll(fd: Int32, path: String) throws -> [UInt8] {
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
            if n < 0 { if errno == EINTR { continue }; throw StoreError.io("read \(path)") }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            offset += off_t(n)
        }
    }
}

extension Array where Element == UInt8 {
    mutating func appendBE(_ v: UInt32) {
        append(UInt8(truncatingIfNeeded: v >> 24)); append(UInt8(truncatingIfNeeded: v >> 16))
        append(UInt8(truncatingIfNeeded: v >> 8)); append(UInt8(truncatingIfNeeded: v))
    }
    mutating func appendBE(_ v: UInt64) {
        appendBE(UInt32(truncatingIfNeeded: v >> 32)); appendBE(UInt32(truncatingIfNeeded: v))
    }
    func readBE32(_ i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }
    func readBE64(_ i: Int) -> UInt64 { UInt64(readBE32(i)) << 32 | UInt64(readBE32(i + 4)) }
}
