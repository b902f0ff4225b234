import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The `file://` object store: each key is a file under `rootDirectory` (a key's '/' makes
/// subdirectories), with S3's semantics and error cases.
///
/// Durability: a put writes a temporary file in the staging directory, fsyncs it, then
/// renames it over the target (or links it, for `ifNoneMatch`, so an existing object makes
/// the put fail with `preconditionFailed` atomically) and fsyncs the target's directory.
/// Multipart parts are staged under `<root>/.silt-staging/uploads/<uploadId>/`.
/// Limitation of a file system: a key cannot also be a "directory" of other keys ("a" and "a/b").
/// ETags are the hex MD5 of the content (also for completed multipart objects).
public final class LocalObjectStore: ObjectStore, @unchecked Sendable {
    public let description: String
    private let root: String
    private let staging: String
    private static let stagingName = ".silt-staging"

    public init(rootDirectory: String) throws {
        var r = rootDirectory
        if r.hasPrefix("file://") { r = String(r.dropFirst("file://".count)) }
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        guard !r.isEmpty else { throw ObjectStoreError.invalidArgument("empty root directory") }
        self.root = r
        self.staging = r + "/" + Self.stagingName
        self.description = "file://\(r)"
        try Self.mkdirs(staging + "/uploads")
    }

    // MARK: - Operations

    public func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String? {
        let path = try pathFor(key)
        try Self.mkdirs(Self.parent(path))
        try writeAtomically(path, body, exclusive: ifNoneMatch, key: key)
        return SigV4.hex(SigV4.md5(body))
    }

    public func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8] {
        let path = try pathFor(key)
        guard let range else {
            guard let data = Self.readFile(path) else { throw ObjectStoreError.noSuchKey("no such key: \(key)") }
            return data
        }
        // Only the range is read (a block of a large object must not cost the whole object).
        guard let data = try Self.readRange(path, range, key: key) else {
            throw ObjectStoreError.noSuchKey("no such key: \(key)")
        }
        return data
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        let path = try pathFor(key)
        guard let data = Self.readFile(path) else { return nil }
        return ObjectInfo(key: key, size: Int64(data.count), etag: SigV4.hex(SigV4.md5(data)))
    }

    public func delete(_ key: String) async throws {
        let path = try pathFor(key)
        if unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR {
            throw ObjectStoreError.transport("unlink \(key): \(String(cString: strerror(errno)))")
        }
    }

    public func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError] {
        var errors: [String: ObjectStoreError] = [:]
        for k in keys {
            do { try await delete(k) } catch let e as ObjectStoreError { errors[k] = e }
        }
        return errors
    }

    public func list(prefix: String, delimiter: String?, continuationToken: String?, maxKeys: Int) async throws -> ListPage {
        precondition(maxKeys > 0 && maxKeys <= 1000, "maxKeys must be 1...1000")
        var keys: [String] = []
        Self.walk(root, relative: "", into: &keys)
        keys = keys.filter { $0.hasPrefix(prefix) }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        // Entries: objects and, with a delimiter, rolled-up common prefixes, in key order.
        var entries: [(key: String, isPrefix: Bool)] = []
        for k in keys {
            if let d = delimiter, !d.isEmpty, let r = k.dropFirst(prefix.count).range(of: d) {
                let cp = String(k[..<r.upperBound])
                if entries.last?.key != cp { entries.append((cp, true)) }
            } else {
                entries.append((k, false))
            }
        }
        let after = continuationToken.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        if let after { entries = entries.filter { Array(after.utf8).lexicographicallyPrecedes(Array($0.key.utf8)) } }
        let page = entries.prefix(maxKeys)
        var objects: [ObjectInfo] = []
        var prefixes: [String] = []
        for e in page {
            if e.isPrefix { prefixes.append(e.key); continue }
            var st = stat()
            guard stat(root + "/" + e.key, &st) == 0 else { continue }
            objects.append(ObjectInfo(key: e.key, size: Int64(st.st_size), etag: nil))
        }
        let next = entries.count > maxKeys ? Data(page.last!.key.utf8).base64EncodedString() : nil
        return ListPage(objects: objects, commonPrefixes: prefixes, nextContinuationToken: next)
    }

    public func createMultipartUpload(_ key: String) async throws -> String {
        _ = try pathFor(key)
        let id = UUID().uuidString.lowercased()
        let dir = uploadDir(id)
        try Self.mkdirs(dir)
        try writeAtomically(dir + "/key", Array(key.utf8), exclusive: false, key: key)
        return id
    }

    public func uploadPart(_ key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String {
        precondition(partNumber >= 1 && partNumber <= 10_000)
        let dir = try checkUpload(key, uploadId)
        try writeAtomically(dir + "/" + Self.partName(partNumber), body, exclusive: false, key: key)
        return SigV4.hex(SigV4.md5(body))
    }

    public func uploadPartCopy(_ key: String, uploadId: String, partNumber: Int, sourceKey: String,
                               sourceRange: ClosedRange<Int64>?) async throws -> String {
        let data = try await get(sourceKey, range: nil)
        let body = try sourceRange.map { try Self.slice(data, $0, key: sourceKey, exact: true) } ?? data
        return try await uploadPart(key, uploadId: uploadId, partNumber: partNumber, body: body)
    }

    public func completeMultipartUpload(_ key: String, uploadId: String, parts: [CompletedPart]) async throws -> String? {
        let dir = try checkUpload(key, uploadId)
        guard !parts.isEmpty else { throw ObjectStoreError.invalidArgument("no parts") }
        var body: [UInt8] = []
        var last = 0
        for (i, p) in parts.enumerated() {
            guard p.partNumber > last else { throw ObjectStoreError.invalidPart("parts not in ascending order") }
            last = p.partNumber
            guard let data = Self.readFile(dir + "/" + Self.partName(p.partNumber)),
                  SigV4.hex(SigV4.md5(data)) == (S3XML.unquote(p.etag) ?? "") else {
                throw ObjectStoreError.invalidPart("part \(p.partNumber) missing or ETag mismatch")
            }
            if i < parts.count - 1 && Int64(data.count) < multipartMinimumPartBytes {
                throw ObjectStoreError.entityTooSmall("part \(p.partNumber) is \(data.count) bytes")
            }
            body += data
        }
        let etag = try await put(key, body, ifNoneMatch: false)
        Self.removeTree(dir)
        return etag
    }

    public func abortMultipartUpload(_ key: String, uploadId: String) async throws {
        let dir = try checkUpload(key, uploadId)
        Self.removeTree(dir)
    }

    // MARK: - Helpers

    private func uploadDir(_ id: String) -> String { staging + "/uploads/" + id }

    private func checkUpload(_ key: String, _ id: String) throws -> String {
        guard !id.isEmpty, !id.contains("/"), id != ".", id != ".." else {
            throw ObjectStoreError.noSuchUpload("no such upload: \(id)")
        }
        let dir = uploadDir(id)
        guard let k = Self.readFile(dir + "/key"), String(decoding: k, as: UTF8.self) == key else {
            throw ObjectStoreError.noSuchUpload("no such upload: \(id) for \(key)")
        }
        return dir
    }

    private static func partName(_ n: Int) -> String { String(format: "part-%05d", n) }

    /// The file of `key`; rejects keys a file system cannot hold faithfully.
    private func pathFor(_ key: String) throws -> String {
        guard !key.isEmpty, key.utf8.count <= 1024, !key.hasPrefix("/"), !key.contains("\0") else {
            throw ObjectStoreError.invalidArgument("unsupported key for file:// store: \(key)")
        }
        for c in key.split(separator: "/", omittingEmptySubsequences: false) {
            if c.isEmpty || c == "." || c == ".." || c.utf8.count > 255 {
                throw ObjectStoreError.invalidArgument("unsupported key for file:// store: \(key)")
            }
        }
        if key == Self.stagingName || key.hasPrefix(Self.stagingName + "/") {
            throw ObjectStoreError.invalidArgument("reserved key: \(key)")
        }
        return root + "/" + key
    }

    private static func slice(_ data: [UInt8], _ range: ClosedRange<Int64>, key: String, exact: Bool = false) throws -> [UInt8] {
        guard range.lowerBound >= 0, range.lowerBound < Int64(data.count) else {
            throw ObjectStoreError.invalidRange("range \(range) outside \(data.count)-byte object \(key)")
        }
        if exact && range.upperBound >= Int64(data.count) {
            throw ObjectStoreError.invalidRange("range \(range) outside \(data.count)-byte object \(key)")
        }
        let end = Int(min(range.upperBound + 1, Int64(data.count)))
        return Array(data[Int(range.lowerBound)..<end])
    }

    /// temp file + fsync + rename (or link when `exclusive`) + directory fsync.
    private func writeAtomically(_ path: String, _ body: [UInt8], exclusive: Bool, key: String) throws {
        let tmp = staging + "/tmp-" + UUID().uuidString
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.ioError("create", key) }
        var ok = true
        body.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 { if errno == EINTR { continue }; ok = false; return }
                off += n
            }
        }
        if !ok || fsync(fd) != 0 {
            let e = Self.ioError("write", key)
            close(fd); unlink(tmp)
            throw e
        }
        close(fd)
        if exclusive {
            if link(tmp, path) != 0 {
                let err = errno
                unlink(tmp)
                if err == EEXIST { throw ObjectStoreError.preconditionFailed("object exists: \(key)") }
                throw ObjectStoreError.transport("link \(key): \(String(cString: strerror(err)))")
            }
            unlink(tmp)
        } else if rename(tmp, path) != 0 {
            let e = Self.ioError("rename", key)
            unlink(tmp)
            throw e
        }
        Self.fsyncDir(Self.parent(path))
    }

    private static func ioError(_ op: String, _ key: String) -> ObjectStoreError {
        .transport("\(op) \(key): \(String(cString: strerror(errno)))")
    }

    private static func parent(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return "." }
        return i == path.startIndex ? "/" : String(path[..<i])
    }

    private static func fsyncDir(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    private static func mkdirs(_ dir: String) throws {
        var st = stat()
        if stat(dir, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw ObjectStoreError.invalidArgument("not a directory (a key is in the way): \(dir)")
            }
            return
        }
        try mkdirs(parent(dir))
        if mkdir(dir, 0o755) != 0 && errno != EEXIST {
            throw ObjectStoreError.transport("mkdir \(dir): \(String(cString: strerror(errno)))")
        }
    }

    /// The whole file, or nil when absent (or a directory).
    /// The bytes of `range` (S3's rules: the start must be inside the object, the end is
    /// clamped to it), or nil when the file does not exist.
    private static func readRange(_ path: String, _ range: ClosedRange<Int64>, key: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        let size = Int64(st.st_size)
        guard range.lowerBound >= 0, range.lowerBound < size else {
            throw ObjectStoreError.invalidRange("range \(range) outside \(size)-byte object \(key)")
        }
        let count = Int(min(range.upperBound + 1, size) - range.lowerBound)
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        let ok: Bool = out.withUnsafeMutableBytes { buf in
            while done < count {
                let n = pread(fd, buf.baseAddress! + done, count - done, off_t(range.lowerBound) + off_t(done))
                if n < 0 { if errno == EINTR { continue }; return false }
                if n == 0 { break }
                done += n
            }
            return true
        }
        guard ok else { throw ioError("read", key) }
        if done < count { out.removeLast(count - done) }
        return out
    }

    private static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var off = 0
        let ok: Bool = out.withUnsafeMutableBytes { buf in
            while off < buf.count {
                let n = read(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 { if errno == EINTR { continue }; return false }
                if n == 0 { break }
                off += n
            }
            return true
        }
        guard ok else { return nil }
        if off < out.count { out.removeLast(out.count - off) }
        return out
    }

    private static func walk(_ dir: String, relative: String, into keys: inout [String]) {
        guard let d = opendir(dir) else { return }
        defer { closedir(d) }
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name == "." || name == ".." || (relative.isEmpty && name == stagingName) { continue }
            let full = dir + "/" + name
            let rel = relative.isEmpty ? name : relative + "/" + name
            var st = stat()
            guard lstat(full, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                walk(full, relative: rel, into: &keys)
            } else if (st.st_mode & S_IFMT) == S_IFREG {
                keys.append(rel)
            }
        }
    }

    private static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR, let d = opendir(path) {
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafePointer(to: e.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(d)
            for n in names { removeTree(path + "/" + n) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
