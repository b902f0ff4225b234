// Compaction end to end on a file:// store with an in-memory catalog: every offset reads
// back identical through ObjectReader, object counts fall, deleted data is gone, and big
// sections are copied server-side.

import Logging
import SiltObjectStore
import XCTest
@testable import SiltStreams

final class CompactorTests: XCTestCase {
    typealias Batch = (first: Int64, end: Int64, bytes: [UInt8])
    private var dir = ""
    private let cluster = "c1"
    override func tearDown() { if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) } }

    /// Three SSOs (ids 1...3): stream 1 ~6 MiB in each, streams 2 and 3 small in each,
    /// stream 4 (deleted) in the first two, stream 5 in the first and last with its middle
    /// in a stream object (id 50). Stream 2 starts in the middle of SSO 2.
    private func populate() async throws -> (CountingStore, FakeCatalog, [UInt64: [Batch]]) {
        let (local, d) = try temporaryStore()
        dir = d
        let store = CountingStore(local)
        let catalog = FakeCatalog(clusterId: cluster)
        var next: [UInt64: Int64] = [:]
        var batches: [UInt64: [Batch]] = [:]
        func add(_ b: StreamSetObjectBuilder, _ stream: UInt64, count: Int, batchBytes: Int) throws {
            for f in Batches.frames(start: next[stream, default: 0], count: count, batchBytes: batchBytes) {
                b.add(stream, f)
                let walked = try f.bytes.withUnsafeBytes { try RecordBatches.walk($0) }
                for (i, w) in walked.enumerated() {
                    batches[stream, default: []].append((w.baseOffset, i + 1 < walked.count ? walked[i + 1].baseOffset : f.end,
                                                         Array(f.bytes[w.range])))
                }
                next[stream] = f.end
            }
        }
        for k in 0..<3 {
            let b = StreamSetObjectBuilder(blockBytesTarget: 256 << 10)
            try add(b, 1, count: 48, batchBytes: 64 << 10)
            try add(b, 2, count: 10, batchBytes: 300)
            try add(b, 3, count: 10, batchBytes: 900)
            if k < 2 { try add(b, 4, count: 5, batchBytes: 300) }
            if k != 1 { try add(b, 5, count: 10, batchBytes: 400) }
            let obj = b.finish(splitBytes: .max).streamSet!
            _ = try await store.put(ObjectKeys.object(clusterId: cluster, objectId: UInt64(k + 1)), obj.bytes, ifNoneMatch: false)
            await catalog.add(UInt64(k + 1), obj, at: Int64(k + 1))
            if k == 0 {  // stream 5's middle, committed as a stream object
                let so = StreamSetObjectBuilder(blockBytesTarget: 4096)
                try add(so, 5, count: 10, batchBytes: 400)
                let built = so.finish(splitBytes: 0).streamObjects[0]
                _ = try await store.put(ObjectKeys.object(clusterId: cluster, objectId: 50), built.bytes, ifNoneMatch: false)
                await catalog.add(50, built, at: 0)
            }
        }
        for s: UInt64 in [1, 3, 5] { await catalog.setStart(s, 0) }
        let stream2 = batches[2]!
        await catalog.setStart(2, stream2[stream2.count / 2].first + 3)  // inside a batch
        return (store, catalog, batches)
    }

    /// Reads every batch of every live stream through ObjectReader, via the catalog's objects.
    private func verifyReadBack(_ store: ObjectStore, _ catalog: FakeCatalog, _ batches: [UInt64: [Batch]],
                                deletedGone: Bool = true, file: StaticString = #filePath, line: UInt = #line) async throws {
        let objects = try await catalog.liveObjects()
        let reader = ObjectReader(store: store, cache: BlockCache(capacityBytes: 8 << 20), logger: Logger(label: "test"))
        for (stream, all) in batches {
            guard let start = await catalog.streamStartOffset(stream) else {
                if deletedGone { XCTAssertFalse(objects.contains { $0.ranges.contains { $0.streamId == stream } }, "deleted stream \(stream) still referenced", file: file, line: line) }
                continue
            }
            let live = all.filter { $0.end > start }
            for (i, b) in live.enumerated() {
                let offset = i == 0 ? start : b.first
                let holders = objects.filter { $0.ranges.contains { $0.streamId == stream && $0.startOffset <= offset && offset < $0.endOffset } }
                guard holders.count == 1, let o = holders.first else {
                    XCTFail("stream \(stream) offset \(offset) held by \(holders.count) objects (a hole or an overlap)", file: file, line: line)
                    return
                }
                let got = try await reader.read(objectId: o.objectId, key: o.key, objectSize: o.size, streamId: stream,
                                                from: offset, maxBytes: 1)
                XCTAssertEqual(got, b.bytes, "stream \(stream) offset \(offset)", file: file, line: line)
            }
        }
    }

    func testCompactStreamSetsThenMergeStreamObjects() async throws {
        let (store, catalog, batches) = try await populate()
        try await verifyReadBack(store, catalog, batches, deletedGone: false)

        // 16 MiB parts: the ~7 MiB stream set objects count as small.
        var config = CompactionConfig(partBytes: 16 << 20, parallelism: 2, streamObjectMaxBytes: 7 << 20, bandwidthBytesPerSecond: 0)
        let sso = try await Compactor(store: store, catalog: catalog, clusterId: cluster, config: config,
                                      logger: Logger(label: "test")).compactStreamSetObjects()
        XCTAssertEqual(sso.objectsBefore, 3)
        // Stream 1 (18 MiB, over the 8 MiB split size): 3 stream objects (7 MiB bound); stream 5
        // (not contiguous: object 50 holds its middle): 2; the small streams 2 and 3 share one
        // new stream set object.
        XCTAssertEqual(sso.objectsAfter, 6)
        var objects = try await catalog.liveObjects()
        XCTAssertEqual(objects.count, 7)
        let sets = objects.filter { $0.kind == .streamSet }
        XCTAssertEqual(sets.count, 1)
        XCTAssertEqual(sets.first.map { Set($0.ranges.map(\.streamId)) }, [2, 3])
        let commits = await catalog.commits
        XCTAssertEqual(commits, 1)
        XCTAssertGreaterThan(sso.bytesRead, 18 << 20)
        XCTAssertGreaterThan(sso.bytesWritten, 18 << 20)
        // Stream 2 lost its batches wholly below its start offset; stream 4 is gone.
        let start2 = await catalog.streamStartOffset(2)!
        let range2 = objects.flatMap(\.ranges).filter { $0.streamId == 2 }
        XCTAssertEqual(range2.count, 1)
        XCTAssertEqual(range2[0].startOffset, batches[2]!.last { $0.first <= start2 }!.first)
        for o in objects {
            let index = try ObjectIndex.parse(object: try await store.get(o.key, range: nil))
            XCTAssertEqual(index.ranges, o.ranges)
            XCTAssertFalse(index.ranges.contains { $0.streamId == 4 })
        }
        try await verifyReadBack(store, catalog, batches)

        config.streamObjectMaxBytes = 64 << 20
        let so = try await Compactor(store: store, catalog: catalog, clusterId: cluster, config: config,
                                     logger: Logger(label: "test")).compactStreamObjects()
        XCTAssertEqual(so.objectsBefore, 6)  // stream 1: 3 → 1, stream 5: 3 → 1
        XCTAssertEqual(so.objectsAfter, 2)
        objects = try await catalog.liveObjects()
        XCTAssertEqual(objects.count, 3)
        XCTAssertEqual(Set(objects.flatMap(\.ranges).map(\.streamId)), [1, 2, 3, 5])
        // The two ~7 MiB sections of stream 1 were copied server-side, the small rest uploaded.
        XCTAssertEqual(store.count("uploadPartCopy"), 2)
        XCTAssertGreaterThan(so.bytesCopiedServerSide, 10 << 20)
        XCTAssertLessThan(so.bytesWritten, 6 << 20)
        try await verifyReadBack(store, catalog, batches)

        // Nothing left to do: a second run changes nothing.
        let again = try await Compactor(store: store, catalog: catalog, clusterId: cluster, config: config,
                                        logger: Logger(label: "test")).compactStreamObjects()
        XCTAssertEqual(again.objectsBefore, 0)
    }

    func testFailedUploadDeletesWhatWasUploadedAndLeavesTheCatalog() async throws {
        let (store, catalog, batches) = try await populate()
        let before = try await catalog.liveObjects()
        store.failUploadPart = true  // stream 1's 18 MiB stream object goes multipart (8 MiB parts), and a part fails
        let config = CompactionConfig(partBytes: 8 << 20, parallelism: 1, streamObjectMaxBytes: 64 << 20, bandwidthBytesPerSecond: 0)
        do {
            _ = try await Compactor(store: store, catalog: catalog, clusterId: cluster, config: config,
                                    logger: Logger(label: "test")).compactStreamSetObjects()
            XCTFail("expected a failure")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .accessDenied("injected"))
        }
        let after = try await catalog.liveObjects()
        XCTAssertEqual(Set(after.map(\.objectId)), Set(before.map(\.objectId)))
        XCTAssertEqual(store.count("abort"), 1)
        XCTAssertEqual(store.count("deleteObjects"), 1)
        XCTAssertEqual(store.count("complete"), 0)
        for id: UInt64 in 1000..<1010 {
            let head = try await store.head(ObjectKeys.object(clusterId: cluster, objectId: id))
            XCTAssertNil(head)
        }
        try await verifyReadBack(store, catalog, batches, deletedGone: false)
    }

    /// A small section before a big one: the small part is topped up to 5 MiB from the big
    /// section, and the rest of the big section is still copied server-side.
    func testMergeTopsUpASmallPartBeforeCopying() async throws {
        let (local, d) = try temporaryStore()
        dir = d
        let store = CountingStore(local)
        let catalog = FakeCatalog(clusterId: cluster)
        await catalog.setStart(9, 0)
        var all: [Batch] = []
        var next: Int64 = 0
        for (i, count) in [8, 88].enumerated() {  // ~1 MiB, then ~11 MiB
            let b = StreamSetObjectBuilder(blockBytesTarget: 1 << 20)
            for f in Batches.frames(start: next, count: count, batchBytes: 64 << 10) {
                b.add(9, f)
                let walked = try f.bytes.withUnsafeBytes { try RecordBatches.walk($0) }
                for (j, w) in walked.enumerated() {
                    all.append((w.baseOffset, j + 1 < walked.count ? walked[j + 1].baseOffset : f.end, Array(f.bytes[w.range])))
                }
                next = f.end
            }
            let built = b.finish(splitBytes: 0).streamObjects[0]
            _ = try await store.put(ObjectKeys.object(clusterId: cluster, objectId: UInt64(i + 1)), built.bytes, ifNoneMatch: false)
            await catalog.add(UInt64(i + 1), built, at: 0)
        }
        let result = try await Compactor(store: store, catalog: catalog, clusterId: cluster,
                                         config: CompactionConfig(partBytes: 5 << 20, bandwidthBytesPerSecond: 0),
                                         logger: Logger(label: "test")).compactStreamObjects()
        XCTAssertEqual(result.objectsBefore, 2)
        XCTAssertEqual(store.count("uploadPartCopy"), 1)
        XCTAssertGreaterThan(result.bytesCopiedServerSide, 5 << 20)
        XCTAssertLessThan(result.bytesCopiedServerSide, 8 << 20)  // ~4 MiB of the big one went into part 1
        XCTAssertEqual(store.count("uploadPart"), 2)  // part 1 (topped up to 5 MiB) and index + footer
        try await verifyReadBack(store, catalog, [9: all])
    }

    func testTokenBucketThrottles() async throws {
        let bucket = TokenBucket(bytesPerSecond: 10 << 20)
        let clock = ContinuousClock()
        let elapsed = try await clock.measure {
            try await bucket.acquire(10 << 20)  // the burst
            try await bucket.acquire(3 << 20)   // ~0.3 s of debt
        }
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(250))
        XCTAssertLessThan(elapsed, .seconds(2))
        let unlimited = TokenBucket(bytesPerSecond: 0)
        let fast = try await clock.measure { try await unlimited.acquire(1 << 40) }
        XCTAssertLessThan(fast, .milliseconds(100))
    }
}
