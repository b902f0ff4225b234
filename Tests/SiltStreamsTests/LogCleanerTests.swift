// The log cleaner on a file:// store with an in-memory catalog: the latest record per key
// stays at its offset, expired tombstones go, other streams of a shared object are carried
// byte for byte, compressed batches are cleaned inside and re-encoded with their codec, and
// every offset reads back as Kafka would
// serve it (an offset in a removed batch reads from the next batch).

import Logging
import NIOCore
import SiltObjectStore
import SiltRecords
import XCTest
@testable import SiltStreams

final class LogCleanerTests: XCTestCase {
    private var dir = ""
    private let cluster = "c1"
    private let now: Int64 = 1_800_000_000_000
    override func tearDown() { if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) } }

    /// A real v2 batch at `base`: (key, value) records, all at `timestamp`.
    static func batch(_ base: Int64, _ records: [(String?, String?)], timestamp: Int64, compression: CompressionType = .none) -> [UInt8] {
        var b = RecordBatchBuilder(baseOffset: base, baseTimestamp: timestamp)
        b.compression = compression
        for (k, v) in records { b.append(key: k, value: v, timestamp: timestamp) }
        let buf = b.build()
        return Array(buf.readableBytesView)
    }

    struct Read { var offset: Int64; var key: String?; var value: String? }

    /// Every record of `streamId` through ObjectReader over the catalog's objects, with the
    /// batch headers seen, reading batch after batch from offset `from`.
    func readAll(_ store: ObjectStore, _ catalog: FakeCatalog, _ streamId: UInt64,
                 from: Int64 = 0) async throws -> (records: [Read], headers: [RecordBatchHeader]) {
        let reader = ObjectReader(store: store, cache: BlockCache(capacityBytes: 1 << 20), readaheadBlocks: 0, logger: Logger(label: "t"))
        let objects = try await catalog.liveObjects().filter { $0.ranges.contains { $0.streamId == streamId } }
            .sorted { $0.ranges.first { $0.streamId == streamId }!.startOffset < $1.ranges.first { $0.streamId == streamId }!.startOffset }
        var records: [Read] = []
        var headers: [RecordBatchHeader] = []
        var next = from
        for o in objects {
            while true {
                let bytes = try await reader.read(objectId: o.objectId, key: o.key, objectSize: o.size, streamId: streamId,
                                                  from: next, maxBytes: 1)
                if bytes.isEmpty { break }
                var buf = ByteBuffer(bytes: bytes)
                let hs = try parseBatchHeaders(buf)
                XCTAssertEqual(hs.count, 1, "maxBytes 1: one batch per read")
                let h = hs[0]
                XCTAssertTrue(h.isCRCValid(in: buf), "batch at \(h.baseOffset) has a valid CRC")
                XCTAssertGreaterThanOrEqual(h.lastOffset, next, "never a batch wholly before the fetch offset")
                headers.append(h)
                for r in try h.records(in: buf) where r.offset >= next {
                    records.append(Read(offset: r.offset, key: r.key.map { String(buffer: $0) }, value: r.value.map { String(buffer: $0) }))
                }
                buf.clear()
                next = h.nextOffset
            }
        }
        return (records, headers)
    }

    /// One stream set object (id 1) holding compacted stream 1 (`batches`) and stream 2 (3
    /// fake batches, another partition's data), plus a stream object (id 2) continuing stream 1.
    func populate(_ first: [[UInt8]], _ second: [[UInt8]]) async throws -> (CountingStore, FakeCatalog, BuiltObject) {
        let (local, d) = try temporaryStore()
        dir = d
        let store = CountingStore(local)
        let catalog = FakeCatalog(clusterId: cluster)
        func frames(_ batches: [[UInt8]]) throws -> [(base: Int64, end: Int64, bytes: [UInt8])] {
            try batches.map { b in
                let h = try RecordBatchHeader(parsing: ByteBuffer(bytes: b), at: 0)
                return (h.baseOffset, h.nextOffset, b)
            }
        }
        let sso = StreamSetObjectBuilder(blockBytesTarget: 200)
        for f in try frames(first) { sso.add(1, f) }
        for f in Batches.frames(start: 0, count: 3) { sso.add(2, f) }
        let set = sso.finish(splitBytes: .max).streamSet!
        _ = try await store.put(ObjectKeys.object(clusterId: cluster, objectId: 1), set.bytes, ifNoneMatch: false)
        await catalog.add(1, set, at: 1)
        let so = StreamSetObjectBuilder(blockBytesTarget: 200)
        for f in try frames(second) { so.add(1, f) }
        let streamObject = so.finish(splitBytes: 0).streamObjects[0]
        _ = try await store.put(ObjectKeys.object(clusterId: cluster, objectId: 2), streamObject.bytes, ifNoneMatch: false)
        await catalog.add(2, streamObject, at: 2)
        await catalog.setStart(1, 0)
        await catalog.setStart(2, 0)
        return (store, catalog, set)
    }

    func cleaner(_ store: ObjectStore, _ catalog: FakeCatalog, streamBytesMax: Int64 = 1 << 20) -> LogCleaner {
        LogCleaner(store: store, catalog: catalog, clusterId: cluster,
                   config: LogCleanerConfig(blockBytes: 300, streamBytesMax: streamBytesMax), logger: Logger(label: "t"))
    }

    func testKeepsTheLatestValuePerKeyAtItsOffset() async throws {
        let old = now - 10_000
        let first = [Self.batch(0, [("a", "a0"), ("b", "b0"), ("c", "c0")], timestamp: old),
                     Self.batch(3, [("a", "a1"), ("a", "a2")], timestamp: old),
                     Self.batch(5, [("b", "b1"), ("d", "d0")], timestamp: old)]
        let second = [Self.batch(7, [("a", "a3"), ("c", "c1")], timestamp: old),
                      Self.batch(9, [("a", "a4")], timestamp: old)]
        let (store, catalog, set) = try await populate(first, second)
        let before = try await readAll(store, catalog, 1)
        XCTAssertEqual(before.records.count, 10)

        let result = try await cleaner(store, catalog).clean(CleanableStream(streamId: 1, deleteRetentionMs: 1000), nowMs: now)
        XCTAssertEqual(result?.recordsBefore, 10)
        XCTAssertEqual(result?.recordsAfter, 4)
        XCTAssertEqual(result?.batchesDropped, 2, "the batches at 0 and 3 hold only superseded records")
        XCTAssertEqual(result?.objectsBefore, 2)
        XCTAssertEqual(result?.objectsAfter, 2, "one stream object for stream 1, one stream set object carrying stream 2")

        let after = try await readAll(store, catalog, 1)
        XCTAssertEqual(after.records.map(\.offset), [5, 6, 8, 9], "offsets never move")
        XCTAssertEqual(after.records.map(\.key), ["b", "d", "c", "a"])
        XCTAssertEqual(after.records.map(\.value), ["b1", "d0", "c1", "a4"])
        // Surviving batches keep baseOffset and lastOffsetDelta; a shrunk batch gets a new record count.
        XCTAssertEqual(after.headers.map(\.baseOffset), [5, 7, 9])
        XCTAssertEqual(after.headers.map(\.lastOffsetDelta), [1, 1, 0])
        XCTAssertEqual(after.headers.map(\.recordCount), [2, 1, 1])

        // The catalog: the same ranges per stream as before, the old objects gone.
        let live = try await catalog.liveObjects()
        XCTAssertFalse(live.contains { $0.objectId == 1 || $0.objectId == 2 })
        XCTAssertEqual(live.flatMap(\.ranges).filter { $0.streamId == 1 }, [StreamRange(streamId: 1, startOffset: 0, endOffset: 10)])
        let carried = try XCTUnwrap(live.first { $0.ranges.contains { $0.streamId == 2 } })
        XCTAssertEqual(carried.kind, .streamSet)
        XCTAssertEqual(carried.ranges, set.ranges.filter { $0.streamId == 2 })
        // Stream 2's bytes are unchanged.
        let oldIndex = try ObjectIndex.parse(object: set.bytes)
        let newBytes = try await store.get(carried.key, range: nil)
        let newIndex = try ObjectIndex.parse(object: newBytes)
        func data(_ bytes: [UInt8], _ index: ObjectIndex) -> [UInt8] {
            index.entries.filter { $0.streamId == 2 }.flatMap { bytes[Int($0.position)..<(Int($0.position) + $0.size)] }
        }
        XCTAssertEqual(data(newBytes, newIndex), data(set.bytes, oldIndex))

        // Nothing new since: not dirty, nothing to do.
        let c = cleaner(store, catalog)
        _ = try await c.clean(CleanableStream(streamId: 1, deleteRetentionMs: 1000), nowMs: now)
        let again = try await c.clean(CleanableStream(streamId: 1, deleteRetentionMs: 1000), nowMs: now)
        XCTAssertNil(again)
    }

    func testEveryOffsetInAGapReadsTheNextBatch() async throws {
        let old = now - 10_000
        let first = [Self.batch(0, [("a", "1"), ("b", "1")], timestamp: old),
                     Self.batch(2, [("x", "1"), ("a", "2")], timestamp: old),
                     Self.batch(4, [("a", "3"), ("b", "2")], timestamp: old)]   // superseded whole: a gap at 4..<6
        let second = [Self.batch(6, [("b", "3")], timestamp: old),
                      Self.batch(7, [("a", "4")], timestamp: old),
                      Self.batch(8, [("z", "1")], timestamp: old)]
        let (store, catalog, _) = try await populate(first, second)
        _ = try await cleaner(store, catalog).clean(CleanableStream(streamId: 1, deleteRetentionMs: 1000), nowMs: now)
        // Survivors: x@2, b@6, a@7, z@8. Batch 2 keeps lastOffsetDelta 1, so a fetch at 3 gets
        // it (and skips its records below 3); at 4 and 5, inside the removed batch, the next one.
        let expectedFirst: [Int64: Int64] = [0: 2, 1: 2, 2: 2, 3: 6, 4: 6, 5: 6, 6: 6, 7: 7, 8: 8]
        for offset in Int64(0)...8 {
            let got = try await readAll(store, catalog, 1, from: offset)
            XCTAssertEqual(got.records.first?.offset, expectedFirst[offset], "fetch at \(offset)")
            XCTAssertEqual(got.records.map(\.offset).filter { $0 >= offset }, [2, 6, 7, 8].filter { $0 >= offset })
        }
        let tail = try await readAll(store, catalog, 1, from: 9)
        XCTAssertTrue(tail.records.isEmpty)

        // The compactor merges the cleaned stream object (gaps inside) with a newer one.
        let next = StreamSetObjectBuilder(blockBytesTarget: 200)
        Self.batch(9, [("y", "1"), ("y", "2")], timestamp: now).withUnsafeBytes {
            next.add(streamId: 1, baseOffset: 9, endOffset: 11, payload: $0)
        }
        let newer = next.finish(splitBytes: 0).streamObjects[0]
        _ = try await store.put(ObjectKeys.object(clusterId: cluster, objectId: 3), newer.bytes, ifNoneMatch: false)
        await catalog.add(3, newer, at: 3)
        let merged = try await Compactor(store: store, catalog: catalog, clusterId: cluster, config: CompactionConfig(),
                                         logger: Logger(label: "t")).compactStreamObjects()
        XCTAssertEqual(merged.objectsBefore, 2)
        let afterMerge = try await readAll(store, catalog, 1)
        XCTAssertEqual(afterMerge.records.map(\.offset), [2, 6, 7, 8, 9, 10])
        let fromGap = try await readAll(store, catalog, 1, from: 4)
        XCTAssertEqual(fromGap.records.first?.offset, 6)
    }

    func testTombstonesGoAfterDeleteRetention() async throws {
        let retention: Int64 = 60_000
        let expired = now - retention - 1
        let recent = now - retention + 5_000
        let first = [Self.batch(0, [("a", "1"), ("b", "1"), ("c", "1")], timestamp: expired),
                     Self.batch(3, [("a", nil)], timestamp: expired),          // expired tombstone: goes
                     Self.batch(4, [("b", nil)], timestamp: recent)]           // recent tombstone: stays
        let second = [Self.batch(5, [("c", "2")], timestamp: recent)]
        let (store, catalog, _) = try await populate(first, second)
        let c = cleaner(store, catalog)
        let r = try await c.clean(CleanableStream(streamId: 1, deleteRetentionMs: retention), nowMs: now)
        XCTAssertEqual(r?.tombstonesDropped, 1)
        var got = try await readAll(store, catalog, 1)
        XCTAssertEqual(got.records.map(\.offset), [4, 5])
        XCTAssertEqual(got.records.map(\.key), ["b", "c"])
        XCTAssertEqual(got.records.map(\.value), [nil, "2"])
        // Nothing new: not dirty until the kept tombstone is due.
        let early = try await c.clean(CleanableStream(streamId: 1, deleteRetentionMs: retention), nowMs: now + 1_000)
        XCTAssertNil(early)
        // Then it expires too, with no new data; the stream's last record always stays.
        let due = try await c.clean(CleanableStream(streamId: 1, deleteRetentionMs: retention), nowMs: now + retention)
        XCTAssertEqual(due?.tombstonesDropped, 1)
        got = try await readAll(store, catalog, 1)
        XCTAssertEqual(got.records.map(\.offset), [5])
    }

    func testTombstoneKeptForeverWhenDeleteRetentionIsHuge() async throws {
        // delete.retention.ms = Long.MAX ("forever"): the due time saturates, nothing traps.
        let first = [Self.batch(0, [("a", "1")], timestamp: now - 10), Self.batch(1, [("a", nil)], timestamp: now - 10)]
        let second = [Self.batch(2, [("b", "1")], timestamp: now - 10)]
        let (store, catalog, _) = try await populate(first, second)
        let c = cleaner(store, catalog)
        let r = try await c.clean(CleanableStream(streamId: 1, deleteRetentionMs: .max), nowMs: now)
        XCTAssertEqual(r?.tombstonesDropped, 0)
        let got = try await readAll(store, catalog, 1)
        XCTAssertEqual(got.records.map(\.offset), [1, 2])
        XCTAssertEqual(got.records.map(\.value), [nil, "1"])
    }

    /// With each codec: a compressed batch loses the records that are not their key's latest,
    /// keeps its offsets, and is written again with its own codec.
    func testCompressedBatchesAreCleanedInside() async throws {
        let old = now - 10_000
        for codec in [CompressionType.gzip, .snappy, .lz4, .zstd] {
            let first = [Self.batch(0, [("a", "1"), ("b", "1")], timestamp: old),
                         Self.batch(2, [("a", "c1"), ("b", "c2"), ("c", "c3")], timestamp: old, compression: codec)]
            let second = [Self.batch(5, [("a", "2")], timestamp: old)]
            let (store, catalog, _) = try await populate(first, second)
            let r = try await cleaner(store, catalog).clean(CleanableStream(streamId: 1, deleteRetentionMs: 1000), nowMs: now)
            XCTAssertEqual(r?.compressedBatchesDecoded, 1, "\(codec)")
            XCTAssertEqual(r?.compressedBatchesKept, 0, "\(codec)")
            let got = try await readAll(store, catalog, 1)
            XCTAssertEqual(got.records.map(\.offset), [3, 4, 5], "\(codec)")
            XCTAssertEqual(got.records.map(\.value), ["c2", "c3", "2"], "\(codec)")
            let rewritten = try XCTUnwrap(got.headers.first { $0.baseOffset == 2 }, "\(codec)")
            XCTAssertEqual(rewritten.compression, codec)
            XCTAssertEqual(rewritten.recordCount, 2)
            XCTAssertEqual(rewritten.lastOffset, 4, "offsets never move")
        }
    }

    /// A compressed batch whose records would take the clean past its decode budget
    /// (`streamBytesMax` of decoded records) is kept whole, byte for byte; the rest is cleaned.
    func testACompressedBatchPastTheDecodeBudgetIsKeptWhole() async throws {
        let old = now - 10_000
        let big = String(repeating: "x", count: 20_000)   // inflates to 40 KB, compresses to a few hundred bytes
        let compressed = Self.batch(2, [("a", big), ("a", big)], timestamp: old, compression: .zstd)
        let first = [Self.batch(0, [("a", "1"), ("b", "1")], timestamp: old), compressed]
        let second = [Self.batch(4, [("a", "2")], timestamp: old)]
        let (store, catalog, _) = try await populate(first, second)
        let r = try await cleaner(store, catalog, streamBytesMax: 8_000).clean(CleanableStream(streamId: 1, deleteRetentionMs: 1000), nowMs: now)
        XCTAssertEqual(r?.compressedBatchesKept, 1)
        XCTAssertEqual(r?.compressedBatchesDecoded, 0)
        let live = try await catalog.liveObjects()
        let so = try XCTUnwrap(live.first { $0.ranges.contains { $0.streamId == 1 } })
        let bytes = try await store.get(so.key, range: nil)
        XCTAssertNotNil(bytes.firstRange(of: compressed), "the compressed batch is kept unchanged")
        let got = try await readAll(store, catalog, 1)
        XCTAssertEqual(got.records.map(\.offset), [1, 2, 3, 4], "a@0 goes; the kept batch's records stay")
    }

    func testYoungBatchesWaitForTheCompactionLag() async throws {
        let first = [Self.batch(0, [("a", "1")], timestamp: now - 10_000), Self.batch(1, [("a", "2")], timestamp: now - 10_000)]
        let second = [Self.batch(2, [("a", "3")], timestamp: now - 100), Self.batch(3, [("a", "4")], timestamp: now - 100)]
        let (store, catalog, _) = try await populate(first, second)
        _ = try await cleaner(store, catalog).clean(
            CleanableStream(streamId: 1, deleteRetentionMs: 1000, minCompactionLagMs: 5_000), nowMs: now)
        let got = try await readAll(store, catalog, 1)
        // a@0 goes (a@1 is newer and cleanable); a@1 stays (its successors are not cleanable yet).
        XCTAssertEqual(got.records.map(\.offset), [1, 2, 3])
    }

    /// KIP-354: records past the last clean that are too few for min.cleanable.dirty.ratio
    /// are cleaned anyway once their object was committed max.compaction.lag.ms ago.
    func testMaxCompactionLagCleansWhateverTheRatio() async throws {
        let first = [Self.batch(0, [("a", "1"), ("b", "1")], timestamp: now), Self.batch(2, [("a", "2")], timestamp: now)]
        let (store, catalog, _) = try await populate(first, [Self.batch(3, [("b", "2")], timestamp: now)])
        let c = cleaner(store, catalog)
        let lagMs: Int64 = 5_000
        func stream(_ maxLagMs: Int64 = .max) -> CleanableStream {
            CleanableStream(streamId: 1, deleteRetentionMs: 86_400_000, minCleanableDirtyRatio: 0.99, maxCompactionLagMs: maxLagMs)
        }
        let firstClean = try await c.clean(stream(lagMs), nowMs: now)   // never cleaned: dirty
        XCTAssertEqual(firstClean?.recordsAfter, 2)
        // One more record for "a", uploaded at `now`: 1 dirty of 3, far below the ratio.
        let so = StreamSetObjectBuilder(blockBytesTarget: 200)
        let more = Self.batch(4, [("a", "3")], timestamp: now)
        so.add(1, (base: 4, end: 5, bytes: more))
        let built = so.finish(splitBytes: 0).streamObjects[0]
        _ = try await store.put(ObjectKeys.object(clusterId: cluster, objectId: 10), built.bytes, ifNoneMatch: false)
        await catalog.add(10, built, at: now)
        let early = try await c.clean(stream(lagMs), nowMs: now + lagMs - 1)
        XCTAssertNil(early, "not dirty enough, and not yet max.compaction.lag.ms old")
        let noLag = try await c.clean(stream(), nowMs: now + 3_600_000)
        XCTAssertNil(noLag, "without max.compaction.lag.ms the ratio alone decides")
        let due = try await c.clean(stream(lagMs), nowMs: now + lagMs)
        XCTAssertNotNil(due, "max.compaction.lag.ms reached: cleaned whatever the ratio")
        let got = try await readAll(store, catalog, 1)
        XCTAssertEqual(got.records.map(\.offset), [3, 4])
        XCTAssertEqual(got.records.map(\.value), ["2", "3"])
    }

    func testAStreamOverTheCapIsSkipped() async throws {
        let first = [Self.batch(0, [("a", "1")], timestamp: now), Self.batch(1, [("a", "2")], timestamp: now)]
        let (store, catalog, _) = try await populate(first, [Self.batch(2, [("a", "3")], timestamp: now)])
        let r = try await cleaner(store, catalog, streamBytesMax: 100).clean(CleanableStream(streamId: 1, deleteRetentionMs: 0), nowMs: now)
        XCTAssertNil(r)
        let live = try await catalog.liveObjects()
        XCTAssertEqual(Set(live.map(\.objectId)), [1, 2], "nothing replaced")
    }
}
