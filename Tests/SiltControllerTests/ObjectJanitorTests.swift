import Foundation
import Logging
@testable import SiltController
import SiltObjectStore
import XCTest

/// A local store whose deletes can be made to fail (a flaky S3).
final class FlakyStore: ObjectStore, @unchecked Sendable {
    let inner: LocalObjectStore
    private let lock = NSLock()
    private var _failDeletes = false
    /// Keys whose delete reports an error (per-key, as DeleteObjects does).
    private var _refusedKeys: Set<String> = []
    var failDeletes: Bool { get { lock.withLock { _failDeletes } } set { lock.withLock { _failDeletes = newValue } } }
    var refusedKeys: Set<String> { get { lock.withLock { _refusedKeys } } set { lock.withLock { _refusedKeys = newValue } } }
    init(root: String) throws { inner = try LocalObjectStore(rootDirectory: root) }

    var description: String { "flaky " + inner.description }
    func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String? {
        try await inner.put(key, body, ifNoneMatch: ifNoneMatch)
    }
    func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8] { try await inner.get(key, range: range) }
    func head(_ key: String) async throws -> ObjectInfo? { try await inner.head(key) }
    func delete(_ key: String) async throws { try await inner.delete(key) }
    func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError] {
        if failDeletes { throw ObjectStoreError.timeout("injected") }
        let refused = refusedKeys
        var errors = try await inner.deleteObjects(keys.filter { !refused.contains($0) })
        for k in keys where refused.contains(k) { errors[k] = .accessDenied("injected") }
        return errors
    }
    func list(prefix: String, delimiter: String?, continuationToken: String?, maxKeys: Int) async throws -> ListPage {
        try await inner.list(prefix: prefix, delimiter: delimiter, continuationToken: continuationToken, maxKeys: maxKeys)
    }
    func createMultipartUpload(_ key: String) async throws -> String { try await inner.createMultipartUpload(key) }
    func uploadPart(_ key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String {
        try await inner.uploadPart(key, uploadId: uploadId, partNumber: partNumber, body: body)
    }
    func uploadPartCopy(_ key: String, uploadId: String, partNumber: Int, sourceKey: String,
                        sourceRange: ClosedRange<Int64>?) async throws -> String {
        try await inner.uploadPartCopy(key, uploadId: uploadId, partNumber: partNumber, sourceKey: sourceKey, sourceRange: sourceRange)
    }
    func completeMultipartUpload(_ key: String, uploadId: String, parts: [CompletedPart]) async throws -> String? {
        try await inner.completeMultipartUpload(key, uploadId: uploadId, parts: parts)
    }
    func abortMultipartUpload(_ key: String, uploadId: String) async throws {
        try await inner.abortMultipartUpload(key, uploadId: uploadId)
    }
}

final class ObjectJanitorTests: XCTestCase {
    var dir: String!
    let clusterId = "janitor-test"

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-janitor-\(UUID())").path
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func key(_ id: UInt64) -> String { ObjectKeys.object(clusterId: clusterId, objectId: id) }

    func exists(_ store: ObjectStore, _ id: UInt64) async throws -> Bool { try await store.head(key(id)) != nil }

    typealias Obj = MetadataController.CommitObject
    typealias Range = MetadataController.CommitRange

    /// Topic "t" (stream 1); objects 1 and 2 committed, 3 compacts them, 4 prepared with a
    /// short TTL and never committed. Every key exists in the store.
    func setUpBucket(_ store: ObjectStore, ttlMs: Int64) async throws -> MetadataController {
        let c = try MetadataController(directory: dir + "/meta", logger: Logger(label: "test")) { _ in }
        try c.createTopic(name: "t", partitions: 1, configs: [:], validateOnly: false)
        let epoch = try c.openUploader(nodeId: 1).nodeEpoch
        let first = try c.prepareObjects(nodeId: 1, nodeEpoch: epoch, count: 3, ttlMs: 3_600_000)
        XCTAssertEqual(first, 1)
        let orphan = try c.prepareObjects(nodeId: 1, nodeEpoch: epoch, count: 1, ttlMs: ttlMs)
        XCTAssertEqual(orphan, 4)
        for id: UInt64 in 1...4 { _ = try await store.put(key(id), [UInt8](repeating: UInt8(id), count: 16), ifNoneMatch: false) }
        try c.commitObjects(nodeId: 1, nodeEpoch: epoch, objects: [
            Obj(objectId: 1, size: 16, kind: .streamSet, ranges: [Range(streamId: 1, streamEpoch: 0, startOffset: 0, endOffset: 10)]),
            Obj(objectId: 2, size: 16, kind: .streamSet, ranges: [Range(streamId: 1, streamEpoch: 0, startOffset: 10, endOffset: 20)]),
        ], compactedObjectIds: [])
        try c.commitObjects(nodeId: 1, nodeEpoch: epoch, objects: [
            Obj(objectId: 3, size: 16, kind: .stream, ranges: [Range(streamId: 1, streamEpoch: 0, startOffset: 0, endOffset: 20)]),
        ], compactedObjectIds: [1, 2])
        try c.awaitCommitted()
        return c
    }

    func testPassDeletesDeadAndExpiredKeysAndKeepsLiveOnes() async throws {
        let store = try LocalObjectStore(rootDirectory: dir + "/bucket")
        let clock = TestClock(MetadataController.wallClockMs())   // not later than the prepare
        let c = try await setUpBucket(store, ttlMs: 1000)
        let janitor = ObjectJanitor(controller: c, store: store, clusterId: clusterId, intervalMs: 100, deletionDelayMs: 0,
                                    logger: Logger(label: "test"), nowMs: { clock.now })
        // Before the TTL: the compacted objects go, the prepared one is still in time.
        var pass = await janitor.runOnce()
        XCTAssertEqual(pass, .init(destroyed: [1, 2], failed: []))
        for (id, present) in [(UInt64(1), false), (2, false), (3, true), (4, true)] {
            let found = try await exists(store, id)
            XCTAssertEqual(found, present, "object \(id)")
        }
        // After the TTL: the never-committed object goes too.
        clock.advance(10_000)
        pass = await janitor.runOnce()
        XCTAssertEqual(pass, .init(destroyed: [4], failed: []))
        let orphanLeft = try await exists(store, 4)
        let liveLeft = try await exists(store, 3)
        XCTAssertFalse(orphanLeft)
        XCTAssertTrue(liveLeft, "a committed object stays")
        let img = c.image
        XCTAssertTrue(img.objectsAwaitingDeletion.isEmpty)
        XCTAssertTrue(img.preparedObjects.isEmpty)
        XCTAssertEqual(img.committedObjects.map(\.objectId), [3])
        pass = await janitor.runOnce()
        XCTAssertEqual(pass, .init(destroyed: [], failed: []))
    }

    func testAbsentKeysCountAsDeleted() async throws {
        let store = try LocalObjectStore(rootDirectory: dir + "/bucket")
        let c = try await setUpBucket(store, ttlMs: 1000)
        try await store.delete(key(1))   // e.g. a previous pass deleted it but crashed before its record
        let janitor = ObjectJanitor(controller: c, store: store, clusterId: clusterId, intervalMs: 100, deletionDelayMs: 0,
                                    logger: Logger(label: "test"))
        let pass = await janitor.runOnce()
        XCTAssertEqual(pass.destroyed, [1, 2])
    }

    func testS3FailuresKeepMetadataAndAreRetried() async throws {
        let store = try FlakyStore(root: dir + "/bucket")
        let c = try await setUpBucket(store, ttlMs: 1000)
        let janitor = ObjectJanitor(controller: c, store: store, clusterId: clusterId, intervalMs: 100, deletionDelayMs: 0,
                                    logger: Logger(label: "test"))
        store.failDeletes = true
        var pass = await janitor.runOnce()
        XCTAssertEqual(pass, .init(destroyed: [], failed: [1, 2]))
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [1, 2], "nothing leaves the log while S3 fails")
        store.failDeletes = false
        store.refusedKeys = [key(2)]
        pass = await janitor.runOnce()
        XCTAssertEqual(pass, .init(destroyed: [1], failed: [2]))
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [2])
        let twoLeft = try await exists(store, 2)
        XCTAssertTrue(twoLeft)
        store.refusedKeys = []
        pass = await janitor.runOnce()
        XCTAssertEqual(pass, .init(destroyed: [2], failed: []))
        XCTAssertTrue(c.image.objectsAwaitingDeletion.isEmpty)
    }

    func testDeadObjectsWaitForTheDeletionDelay() async throws {
        let store = try LocalObjectStore(rootDirectory: dir + "/bucket")
        let c = try await setUpBucket(store, ttlMs: 3_600_000)
        let clock = TestClock(MetadataController.wallClockMs())
        let janitor = ObjectJanitor(controller: c, store: store, clusterId: clusterId, intervalMs: 100, deletionDelayMs: 5_000,
                                    logger: Logger(label: "test"), nowMs: { clock.now })
        var pass = await janitor.runOnce()
        XCTAssertEqual(pass.destroyed, [], "a reader may still be inside a just-compacted object")
        clock.advance(5_000)
        pass = await janitor.runOnce()
        XCTAssertEqual(pass.destroyed, [1, 2])
    }

    func testBackgroundLoopRunsAndStops() async throws {
        let store = try LocalObjectStore(rootDirectory: dir + "/bucket")
        let c = try await setUpBucket(store, ttlMs: 1000)
        let janitor = ObjectJanitor(controller: c, store: store, clusterId: clusterId, intervalMs: 20, deletionDelayMs: 0,
                                    logger: Logger(label: "test"))
        janitor.start()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !c.image.objectsAwaitingDeletion.isEmpty { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertTrue(janitor.stop())
        XCTAssertTrue(c.image.objectsAwaitingDeletion.isEmpty)
        let gone = try await exists(store, 1)
        XCTAssertFalse(gone)
    }
}

final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(_ start: Int64) { value = start }
    var now: Int64 { lock.withLock { value } }
    func advance(_ ms: Int64) { lock.withLock { value += ms } }
}
