// Range stats (bytes, newest timestamp) that the builder records for retention.

import Foundation
import Logging
import SiltObjectStore
import XCTest
@testable import SiltStreams

/// A catalog that keeps the stats of what is committed, as the metadata image does.
private actor StatsCatalog: ObjectCatalog {
    var objects: [UInt64: CatalogObject] = [:]
    var nextId: UInt64 = 100
    let clusterId = "c"

    func add(_ id: UInt64, _ o: BuiltObject, store: ObjectStore) async throws {
        let key = ObjectKeys.object(clusterId: clusterId, objectId: id)
        _ = try await store.put(key, o.bytes, ifNoneMatch: false)
        objects[id] = CatalogObject(objectId: id, key: key, size: Int64(o.bytes.count), kind: o.kind, ranges: o.ranges,
                                    committedAtMs: Int64(id), stats: o.stats)
    }
    func liveObjects() async throws -> [CatalogObject] { Array(objects.values) }
    func streamStartOffset(_ streamId: UInt64) async -> Int64? { 0 }
    func prepareObjects(count: Int) async throws -> UInt64 {
        defer { nextId += UInt64(count) }
        return nextId
    }
    func commitCompaction(newObjects: [NewObject], compactedObjectIds: [UInt64]) async throws {
        for id in compactedObjectIds { objects[id] = nil }
        for o in newObjects {
            objects[o.objectId] = CatalogObject(objectId: o.objectId, key: ObjectKeys.object(clusterId: clusterId, objectId: o.objectId),
                                                size: o.size, kind: o.kind, ranges: o.ranges, committedAtMs: 0, stats: o.stats)
        }
    }
}

final class RangeStatsTests: XCTestCase {
    /// One batch of 10 offsets at `base` whose header says maxTimestamp = `ts`.
    private func batch(_ base: Int64, ts: Int64, size: Int = 300) -> (base: Int64, end: Int64, bytes: [UInt8]) {
        var b = Batches.make(baseOffset: base, records: 10, size: size)
        withUnsafeBytes(of: ts.bigEndian) { b.replaceSubrange(35..<43, with: $0) }
        return (base, base + 10, b)
    }

    func testBuilderRecordsBytesAndNewestTimestampPerRange() throws {
        let b = StreamSetObjectBuilder(blockBytesTarget: 1000)
        b.add(5, batch(0, ts: 1_000))
        b.add(2, batch(40, ts: 7_000, size: 400))
        b.add(5, batch(10, ts: 3_000))   // newest of stream 5
        b.add(5, batch(20, ts: 2_000))   // older than the one before it: max, not last
        let (set, streams) = b.finish(splitBytes: Int.max)
        XCTAssertTrue(streams.isEmpty)
        let obj = try XCTUnwrap(set)
        XCTAssertEqual(obj.ranges.map(\.streamId), [2, 5])
        XCTAssertEqual(obj.stats, [RangeStats(bytes: 400, maxTimestampMs: 7_000), RangeStats(bytes: 900, maxTimestampMs: 3_000)])
        // The bytes are exactly the stream's blocks in the object.
        let index = try ObjectIndex.parse(object: obj.bytes)
        for (range, stats) in zip(obj.ranges, obj.stats) {
            XCTAssertEqual(Int64(index.entries.filter { $0.streamId == range.streamId }.reduce(0) { $0 + $1.size }), stats.bytes)
        }
    }

    func testSplitStreamObjectsCarryTheirOwnStats() throws {
        let b = StreamSetObjectBuilder(blockBytesTarget: 1000)
        b.add(1, batch(0, ts: 50, size: 2000))
        b.add(9, batch(0, ts: 60))
        let (set, streams) = b.finish(splitBytes: 1000)
        XCTAssertEqual(streams.count, 1)
        XCTAssertEqual(streams[0].ranges.map(\.streamId), [1])
        XCTAssertEqual(streams[0].stats, [RangeStats(bytes: 2000, maxTimestampMs: 50)])
        XCTAssertEqual(set?.stats, [RangeStats(bytes: 300, maxTimestampMs: 60)])
    }

    /// Compaction's outputs carry the stats: rewritten stream set objects through the
    /// builder, merged stream objects as the sum of bytes and the newest timestamp.
    func testCompactionCarriesStats() async throws {
        let (store, dir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = StatsCatalog()
        let first = StreamSetObjectBuilder(blockBytesTarget: 1 << 20)
        first.add(1, batch(0, ts: 100))
        first.add(1, batch(10, ts: 200))
        first.add(2, batch(0, ts: 50))
        try await catalog.add(1, first.finish(splitBytes: Int.max).streamSet!, store: store)
        let second = StreamSetObjectBuilder(blockBytesTarget: 1 << 20)
        second.add(1, batch(20, ts: 300))
        second.add(2, batch(10, ts: 40))
        try await catalog.add(2, second.finish(splitBytes: Int.max).streamSet!, store: store)
        for (id, base, ts) in [(3, Int64(0), Int64(10)), (4, 10, 20)] as [(UInt64, Int64, Int64)] {
            let b = StreamSetObjectBuilder(blockBytesTarget: 1 << 20)
            b.add(3, batch(base, ts: ts, size: 500))
            try await catalog.add(id, b.finish(splitBytes: 0).streamObjects[0], store: store)
        }
        let compactor = Compactor(store: store, catalog: catalog, clusterId: "c",
                                  config: CompactionConfig(partBytes: 5 << 20, parallelism: 1, bandwidthBytesPerSecond: 0),
                                  logger: Logger(label: "test"))

        let sso = try await compactor.compactStreamSetObjects()
        XCTAssertEqual(sso.objectsBefore, 2)
        var live = try await catalog.liveObjects()
        let set = try XCTUnwrap(live.first { $0.kind == .streamSet })
        XCTAssertEqual(set.ranges.map(\.streamId), [1, 2])
        XCTAssertEqual(set.stats, [RangeStats(bytes: 900, maxTimestampMs: 300), RangeStats(bytes: 600, maxTimestampMs: 50)])

        let so = try await compactor.compactStreamObjects()
        XCTAssertEqual(so.objectsAfter, 1)
        live = try await catalog.liveObjects()
        let merged = try XCTUnwrap(live.first { $0.kind == .stream })
        XCTAssertEqual(merged.ranges, [StreamRange(streamId: 3, startOffset: 0, endOffset: 20)])
        XCTAssertEqual(merged.stats, [RangeStats(bytes: 1000, maxTimestampMs: 20)])
    }
}
