import Foundation
import SiltObjectStore
import SiltRing
import XCTest
@testable import SiltWAL

/// A local store whose PUTs can be held back (to complete out of order) or made to fail (an
/// S3 outage). A held PUT sleeps (it never blocks a thread of the concurrency pool).
final class GatedStore: ObjectStore, @unchecked Sendable {
    let inner: LocalObjectStore
    private let lock = NSLock()
    private var heldSubstrings: Set<String> = []
    private var failingPuts = 0
    private(set) var puts: [String] = []
    init(root: String) throws { inner = try LocalObjectStore(rootDirectory: root) }

    /// PUTs of keys containing `part` wait until `release(part)`.
    func hold(_ part: String) { lock.lock(); heldSubstrings.insert(part); lock.unlock() }
    func release(_ part: String) { lock.lock(); heldSubstrings.remove(part); lock.unlock() }
    /// The next `n` PUTs fail with a timeout.
    func failNextPuts(_ n: Int) { lock.lock(); failingPuts = n; lock.unlock() }
    var putKeys: [String] { lock.lock(); defer { lock.unlock() }; return puts }

    private func isHeld(_ key: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return heldSubstrings.contains { key.contains($0) }
    }

    private func gate(_ key: String) throws {
        lock.lock(); defer { lock.unlock() }
        if failingPuts > 0 {
            failingPuts -= 1
            throw ObjectStoreError.timeout("injected")
        }
        puts.append(key)
    }

    var description: String { "gated " + inner.description }
    func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String? {
        while isHeld(key) { try await Task.sleep(nanoseconds: 2_000_000) }
        try gate(key)
        return try await inner.put(key, body, ifNoneMatch: ifNoneMatch)
    }
    func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8] { try await inner.get(key, range: range) }
    func head(_ key: String) async throws -> ObjectInfo? { try await inner.head(key) }
    func delete(_ key: String) async throws { try await inner.delete(key) }
    func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError] { try await inner.deleteObjects(keys) }
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

/// The S3 WAL: records are objects, durable in order, recovered by generation and checksum,
/// trimmed by deleting; an outage delays, never drops; the writer batches by window.
final class ObjectWALTests: XCTestCase {
    var dir: String!
    var store: GatedStore!
    let settings = ObjectWAL.Settings(batchIntervalMs: 0, maxBytesInBatch: 64 << 10, maxUnflushedBytes: 1 << 20,
                                      maxInflightUploadCount: 4, maxRecordPayloadBytes: 128 << 10)

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-objectwal-\(UUID())").path
        store = try GatedStore(root: dir)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func open(node: Int = 3, _ settings: ObjectWAL.Settings? = nil) throws -> (ObjectWAL, [RecoveredRecord]) {
        try ObjectWAL.open(store: store, clusterId: "c", nodeId: node, settings: settings ?? self.settings,
                           logger: WALTestSupport.logger)
    }

    func keys() throws -> [String] {
        try ObjectWAL.blocking { try await self.store.list(prefix: "silt-wal/c/3/", delimiter: nil, continuationToken: nil, maxKeys: 1000) }
            .objects.map(\.key)
    }

    /// What a record key starting at `lsn` contains.
    func startingAt(_ lsn: UInt64) -> String { "/r/" + ObjectWAL.pad(lsn, 20) + "-" }

    /// Reaps until the durable LSN reaches `lsn` (bounded).
    func waitDurable(_ wal: ObjectWAL, _ lsn: UInt64) throws {
        let deadline = Date().addingTimeInterval(10)
        while wal.durableLSN < lsn && Date() < deadline { _ = try wal.reap(wait: true) }
        XCTAssertEqual(wal.durableLSN, lsn)
    }

    func testRecordsAreDurableInOrderAndRecoveredAfterAReopen() throws {
        var (wal, recovered) = try open()
        XCTAssertEqual(recovered, [])
        XCTAssertEqual(wal.generation, 1)
        let payloads = (0..<3).map { WALTestSupport.payload(seed: UInt64($0), count: 1000 + $0) }
        // Record 0's PUT is held back: records 1 and 2 are stored first, yet nothing is durable.
        store.hold(startingAt(0))
        var lsn: UInt64 = 0
        for p in payloads {
            try p.withUnsafeBytes { _ = try wal.submit(payloads: [$0], startLSN: lsn, endLSN: lsn + UInt64(p.count) + 8) }
            lsn += UInt64(p.count) + 8
        }
        let until = Date().addingTimeInterval(5)
        while store.putKeys.filter({ $0.contains("/r/") }).count < 2 && Date() < until { Thread.sleep(forTimeInterval: 0.005) }
        XCTAssertNil(try wal.reap(wait: false))
        XCTAssertEqual(wal.durableLSN, 0, "a record stored ahead of an earlier one is not durable")
        store.release(startingAt(0))
        try waitDurable(wal, lsn)
        try wal.close()

        (wal, recovered) = try open()
        XCTAssertEqual(wal.generation, 2, "every open that writes bumps the generation")
        XCTAssertEqual(recovered.map(\.payload), payloads)
        XCTAssertEqual(recovered.map(\.startLSN), [0, 1008, 2017])
        XCTAssertEqual(wal.headLSN, lsn)
        XCTAssertEqual(wal.durableLSN, lsn)
        try wal.close()
    }

    func testTrimDeletesRecordsAndPersistsTheTrimPoint() throws {
        var (wal, _) = try open()
        var lsn: UInt64 = 0
        for i in 0..<4 {
            let p = WALTestSupport.payload(seed: UInt64(i), count: 500)
            try p.withUnsafeBytes { _ = try wal.submit(payloads: [$0], startLSN: lsn, endLSN: lsn + 500) }
            lsn += 500
        }
        try waitDurable(wal, lsn)
        XCTAssertThrowsError(try wal.trim(to: lsn + 1))
        XCTAssertEqual(try wal.trim(to: 1200), 1000, "trims whole records")
        XCTAssertEqual(wal.usedBytes, 1000)
        try wal.close()   // waits for the trim's deletes
        XCTAssertEqual(try keys().filter { $0.contains("/r/") }.count, 2)
        var recovered: [RecoveredRecord]
        (wal, recovered) = try open()
        XCTAssertEqual(recovered.map(\.startLSN), [1000, 1500])
        XCTAssertEqual(try wal.trim(to: lsn), lsn)
        try wal.close()
        (wal, recovered) = try open()
        XCTAssertEqual(recovered, [])
        XCTAssertEqual(wal.headLSN, lsn, "an empty log keeps its position (the head object holds it)")
        try wal.rebase(nextLSN: lsn + 4096)
        try wal.close()
        (wal, _) = try open()
        XCTAssertEqual(wal.headLSN, lsn + 4096)
        try wal.close()
    }

    func testRecoveryStopsAtAGapAndIgnoresStaleGenerationsAndCorruption() throws {
        var (wal, _) = try open()
        func write(_ wal: ObjectWAL, _ at: UInt64, _ n: Int) throws {
            let p = WALTestSupport.payload(seed: at, count: n)
            try p.withUnsafeBytes { _ = try wal.submit(payloads: [$0], startLSN: at, endLSN: at + UInt64(n)) }
        }
        try write(wal, 0, 100)
        try write(wal, 100, 100)
        try waitDurable(wal, 200)
        // A PUT that never completed, then a crash: record [200, 300) missing, [300, 400) stored.
        let lost = ObjectWAL.recordKey(startLSN: 200, endLSN: 300, generation: 1)
        store.hold(lost)
        let crashed = wal
        defer { try? crashed.close(); store.release(lost) }
        try write(wal, 200, 100)
        try write(wal, 300, 100)
        let until = Date().addingTimeInterval(5)
        while !wal.hasStoredRecords && Date() < until { Thread.sleep(forTimeInterval: 0.005) }   // [300, 400) stored
        // The process dies here (nothing closed); the held PUT is never let through.
        var recovered: [RecoveredRecord]
        (wal, recovered) = try open()
        XCTAssertEqual(recovered.map(\.startLSN), [0, 100], "the log ends at the first missing record")
        XCTAssertEqual(wal.generation, 2)
        XCTAssertFalse(try keys().contains { $0.contains(startingAt(300)) }, "the stray record is deleted")
        // The new generation continues at 200; had the stray one survived, a lower generation
        // after a higher one would still never be accepted.
        try write(wal, 200, 50)
        try waitDurable(wal, 250)
        try wal.close()
        let staleKey = "silt-wal/c/3/" + ObjectWAL.recordKey(startLSN: 250, endLSN: 260, generation: 1)
        let stale = ObjectWAL.encodeRecord(payloads: [], payloadBytes: 0, startLSN: 250, endLSN: 260, sequence: 3,
                                           formatId: 0, generation: 1)
        _ = try ObjectWAL.blocking { try await self.store.put(staleKey, stale, ifNoneMatch: false) }
        (wal, recovered) = try open()
        XCTAssertEqual(recovered.map(\.startLSN), [0, 100, 200])
        XCTAssertEqual(wal.generation, 3)
        // A record whose bytes were damaged ends the log there.
        try write(wal, 250, 100)
        try waitDurable(wal, 350)
        try wal.close()
        let damaged = try XCTUnwrap(try keys().first { $0.contains(startingAt(250)) })
        var body = try ObjectWAL.blocking { try await self.store.get(damaged, range: nil) }
        body[body.count - 1] ^= 0xFF
        _ = try ObjectWAL.blocking { try await self.store.put(damaged, body, ifNoneMatch: false) }
        (wal, recovered) = try open()
        XCTAssertEqual(recovered.map(\.startLSN), [0, 100, 200], "a record failing its CRC ends the log")
        try wal.close()
    }

    func testAnOutageDelaysAcknowledgementsAndLosesNothing() throws {
        let (wal, _) = try open()
        store.failNextPuts(3)
        let p = WALTestSupport.payload(seed: 9, count: 300)
        try p.withUnsafeBytes { _ = try wal.submit(payloads: [$0], startLSN: 0, endLSN: 300) }
        try waitDurable(wal, 300)
        XCTAssertEqual(wal.putRetries, 3)
        try wal.close()
        let (again, recovered) = try open()
        XCTAssertEqual(recovered.map(\.payload), [p])
        try again.close()
    }

    func testTheBoundIsBackPressureAndAnotherNodeReadsWithoutWriting() throws {
        let small = ObjectWAL.Settings(batchIntervalMs: 0, maxBytesInBatch: 64 << 10, maxUnflushedBytes: 256 << 10,
                                       maxInflightUploadCount: 4, maxRecordPayloadBytes: 128 << 10)
        let (wal, _) = try open(small)
        let p = [UInt8](repeating: 7, count: 100 << 10)
        try p.withUnsafeBytes { _ = try wal.submit(payloads: [$0], startLSN: 0, endLSN: 100 << 10) }
        try p.withUnsafeBytes { _ = try wal.submit(payloads: [$0], startLSN: 100 << 10, endLSN: 200 << 10) }
        XCTAssertThrowsError(try p.withUnsafeBytes { try wal.submit(payloads: [$0], startLSN: 200 << 10, endLSN: 300 << 10) }) {
            guard case WALError.full = $0 else { return XCTFail("\($0)") }
        }
        try waitDurable(wal, 200 << 10)
        let before = try keys()
        let scan = try ObjectWAL.blocking { try await ObjectWAL.read(store: self.store, clusterId: "c", nodeId: 3) }
        XCTAssertTrue(scan.exists)
        XCTAssertEqual(scan.records.count, 2)
        XCTAssertEqual(try keys(), before, "a read writes nothing")
        let other = try ObjectWAL.blocking { try await ObjectWAL.read(store: self.store, clusterId: "c", nodeId: 5) }
        XCTAssertFalse(other.exists, "a node that never opened an S3 WAL has none")
        try wal.close()
        // Node 3's head under node 4's prefix (a copied bucket, a misconfigured node) is refused.
        let head = try ObjectWAL.blocking { try await self.store.get("silt-wal/c/3/head", range: nil) }
        _ = try ObjectWAL.blocking { try await self.store.put("silt-wal/c/4/head", head, ifNoneMatch: false) }
        XCTAssertThrowsError(try open(node: 4)) {
            guard case WALError.nodeIdMismatch(_, 3, 4) = $0 else { return XCTFail("\($0)") }
        }
    }

    /// The WAL role's writer on an S3 WAL: the first record after a quiet spell goes at once,
    /// what arrives within the window goes as one object, a stop drains without waiting for the
    /// window, and the frames come back from the bucket byte for byte.
    func testTheWriterBatchesByWindowAndDrainsOnStop() throws {
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        func memfd(_ name: String) throws -> Int32 { let fd = try SharedMemory.createMemfd(name: name); fds.append(fd); return fd }
        let ring = try LogRing.create(fd: try memfd("ring"), capacityBytes: 1 << 20)
        let durable = try ControlRing.create(fd: try memfd("durable"), slotCount: 64)
        let trims = try ControlRing.create(fd: try memfd("trim"), slotCount: 8)
        let state = try WALState.create(fd: try memfd("state"), tailBytesMax: 1 << 20)
        // A window far longer than the test: only the byte bound, the first record and the stop submit.
        let windowed = ObjectWAL.Settings(batchIntervalMs: 60_000, maxBytesInBatch: 64 << 10, maxUnflushedBytes: 1 << 20,
                                          maxInflightUploadCount: 4, maxRecordPayloadBytes: 256 << 10)
        let (wal, recovered) = try open(windowed)
        let writer = WALWriter(wal: wal, ring: ring, durableNotices: durable, trimCommands: trims, state: state,
                               logger: WALTestSupport.logger)
        try writer.attach(recovered: recovered)
        let done = DispatchSemaphore(value: 0)
        Thread {
            do { try writer.run() } catch { XCTFail("WAL writer failed: \(error)") }
            done.signal()
        }.start()
        func append(_ i: Int, _ n: Int) throws -> [UInt8] {
            let payload = WALTestSupport.payload(seed: UInt64(i), count: n)
            _ = try payload.withUnsafeBytes {
                try ring.append(streamId: 1, streamEpoch: 2, baseOffset: Int64(i), count: 1, payload: $0, timeout: .seconds(5))
            }
            return payload
        }
        func waitDurable(_ lsn: UInt64) {
            let deadline = Date().addingTimeInterval(10)
            while state.durableLSN < lsn && Date() < deadline { Thread.sleep(forTimeInterval: 0.002) }
            XCTAssertEqual(state.durableLSN, lsn)
        }
        var sent = [try append(0, 500)]
        waitDurable(ring.writePosition)   // the first record of a quiet log: at once
        for i in 1...5 { sent.append(try append(i, 500)) }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertLessThan(state.durableLSN, ring.writePosition, "small records wait for the window")
        sent.append(try append(6, 70 << 10))   // past maxBytesInBatch: everything waiting goes now
        waitDurable(ring.writePosition)
        sent.append(try append(7, 300))
        writer.stop()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "a stop drains without waiting for the window")
        XCTAssertEqual(state.durableLSN, ring.writePosition)
        XCTAssertEqual(store.putKeys.filter { $0.contains("/r/") }.count, 3, "one object per window or byte bound")
        try wal.close()

        let (again, back) = try open(windowed)
        var frames: [[UInt8]] = []
        for r in back { frames += try r.payload.withUnsafeBytes { try WALFrameCodec.decode($0).map { Array($0.payload) } } }
        XCTAssertEqual(frames, sent)
        try again.close()
    }
}
