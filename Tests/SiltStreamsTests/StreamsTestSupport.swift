// Shared helpers: fake record batches, a counting/faulty store wrapper, an in-memory catalog.

import Foundation
import SiltObjectStore
@testable import SiltStreams

enum Batches {
    /// A record batch with a real v2 header shape (baseOffset, batchLength, lastOffsetDelta)
    /// holding `records` offsets, `size` bytes in all, the rest deterministic filler.
    static func make(baseOffset: Int64, records: Int, size: Int) -> [UInt8] {
        precondition(size >= 61)
        var b = [UInt8](repeating: 0, count: size)
        withUnsafeBytes(of: baseOffset.bigEndian) { b.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: Int32(size - 12).bigEndian) { b.replaceSubrange(8..<12, with: $0) }
        b[16] = 2
        withUnsafeBytes(of: Int32(records - 1).bigEndian) { b.replaceSubrange(23..<27, with: $0) }
        var x = UInt64(bitPattern: baseOffset) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(size)
        for i in 61..<size {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            b[i] = UInt8(truncatingIfNeeded: x >> 33)
        }
        return b
    }

    /// Frames of `stream` from `start`: each frame 1–3 batches of `records` offsets each.
    static func frames(start: Int64, count: Int, records: Int = 10, batchBytes: Int = 500) -> [(base: Int64, end: Int64, bytes: [UInt8])] {
        var out: [(Int64, Int64, [UInt8])] = []
        var next = start
        for i in 0..<count {
            let base = next
            var bytes: [UInt8] = []
            for _ in 0..<(1 + i % 3) {
                bytes += make(baseOffset: next, records: records, size: batchBytes + (i * 37) % 200)
                next += Int64(records)
            }
            out.append((base, next, bytes))
        }
        return out
    }
}

extension StreamSetObjectBuilder {
    func add(_ streamId: UInt64, _ frame: (base: Int64, end: Int64, bytes: [UInt8])) {
        frame.bytes.withUnsafeBytes { add(streamId: streamId, baseOffset: frame.base, endOffset: frame.end, payload: $0) }
    }
}

/// Counts requests by kind and can fail one kind of request.
final class CountingStore: ObjectStore, @unchecked Sendable {
    let inner: ObjectStore
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    var failUploadPart = false
    var description: String { "counting(\(inner.description))" }

    init(_ inner: ObjectStore) { self.inner = inner }

    func count(_ op: String) -> Int { lock.withLock { counts[op, default: 0] } }
    private func tick(_ op: String) { lock.withLock { counts[op, default: 0] += 1 } }

    func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String? {
        tick("put"); return try await inner.put(key, body, ifNoneMatch: ifNoneMatch)
    }
    func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8] {
        tick("get"); return try await inner.get(key, range: range)
    }
    func head(_ key: String) async throws -> ObjectInfo? { tick("head"); return try await inner.head(key) }
    func delete(_ key: String) async throws { tick("delete"); try await inner.delete(key) }
    func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError] {
        tick("deleteObjects"); return try await inner.deleteObjects(keys)
    }
    func list(prefix: String, delimiter: String?, continuationToken: String?, maxKeys: Int) async throws -> ListPage {
        try await inner.list(prefix: prefix, delimiter: delimiter, continuationToken: continuationToken, maxKeys: maxKeys)
    }
    func createMultipartUpload(_ key: String) async throws -> String { tick("create"); return try await inner.createMultipartUpload(key) }
    func uploadPart(_ key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String {
        tick("uploadPart")
        if failUploadPart && partNumber == 2 { throw ObjectStoreError.accessDenied("injected") }
        return try await inner.uploadPart(key, uploadId: uploadId, partNumber: partNumber, body: body)
    }
    func uploadPartCopy(_ key: String, uploadId: String, partNumber: Int, sourceKey: String,
                        sourceRange: ClosedRange<Int64>?) async throws -> String {
        tick("uploadPartCopy")
        return try await inner.uploadPartCopy(key, uploadId: uploadId, partNumber: partNumber, sourceKey: sourceKey, sourceRange: sourceRange)
    }
    func completeMultipartUpload(_ key: String, uploadId: String, parts: [CompletedPart]) async throws -> String? {
        tick("complete"); return try await inner.completeMultipartUpload(key, uploadId: uploadId, parts: parts)
    }
    func abortMultipartUpload(_ key: String, uploadId: String) async throws {
        tick("abort"); try await inner.abortMultipartUpload(key, uploadId: uploadId)
    }
}

/// The controller's object table, in memory.
actor FakeCatalog: ObjectCatalog {
    var objects: [UInt64: CatalogObject] = [:]
    var startOffsets: [UInt64: Int64] = [:]
    var nextId: UInt64 = 1000
    var commits = 0
    var failCommit = false
    let clusterId: String

    init(clusterId: String) { self.clusterId = clusterId }

    func add(_ id: UInt64, _ built: BuiltObject, at ms: Int64) {
        objects[id] = CatalogObject(objectId: id, key: ObjectKeys.object(clusterId: clusterId, objectId: id),
                                    size: Int64(built.bytes.count), kind: built.kind, ranges: built.ranges, committedAtMs: ms)
    }
    func setStart(_ streamId: UInt64, _ offset: Int64?) { startOffsets[streamId] = offset }
    func setFailCommit(_ fail: Bool) { failCommit = fail }

    func liveObjects() async throws -> [CatalogObject] { Array(objects.values) }
    func streamStartOffset(_ streamId: UInt64) async -> Int64? { startOffsets[streamId] }
    func prepareObjects(count: Int) async throws -> UInt64 {
        defer { nextId += UInt64(count) }
        return nextId
    }
    func commitCompaction(newObjects: [NewObject], compactedObjectIds: [UInt64]) async throws {
        if failCommit { throw CompactionError.inconsistent("injected commit failure") }
        for id in compactedObjectIds { precondition(objects.removeValue(forKey: id) != nil) }
        for o in newObjects {
            objects[o.objectId] = CatalogObject(objectId: o.objectId, key: ObjectKeys.object(clusterId: clusterId, objectId: o.objectId),
                                                size: o.size, kind: o.kind, ranges: o.ranges, committedAtMs: 0)
        }
        commits += 1
    }
}

func temporaryStore() throws -> (LocalObjectStore, String) {
    let dir = NSTemporaryDirectory() + "silt-streams-\(UUID().uuidString)"
    return (try LocalObjectStore(rootDirectory: dir), dir)
}
