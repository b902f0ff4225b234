// ObjectReader against a file:// store, and ObjectUploader's PUT / multipart paths.

import Logging
import SiltObjectStore
import XCTest
@testable import SiltStreams

final class ObjectReaderTests: XCTestCase {
    private var dir = ""
    override func tearDown() { if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) } }

    /// An SSO with streams 1 and 2 (40 frames each), uploaded as object 7.
    private func setUp(blockBytes: Int = 3000) async throws -> (CountingStore, String, BuiltObject, [UInt64: [(base: Int64, end: Int64, bytes: [UInt8])]]) {
        let (local, d) = try temporaryStore()
        dir = d
        let store = CountingStore(local)
        let frames: [UInt64: [(base: Int64, end: Int64, bytes: [UInt8])]] = [1: Batches.frames(start: 0, count: 40),
                                                                           2: Batches.frames(start: 1000, count: 40)]
        let b = StreamSetObjectBuilder(blockBytesTarget: blockBytes)
        for i in 0..<40 { b.add(2, frames[2]![i]); b.add(1, frames[1]![i]) }
        let obj = b.finish(splitBytes: .max).streamSet!
        let key = ObjectKeys.object(clusterId: "c", objectId: 7)
        _ = try await store.put(key, obj.bytes, ifNoneMatch: false)
        return (store, key, obj, frames)
    }

    /// Every batch of a stream with the offsets it holds, in order.
    private func batches(_ frames: [(base: Int64, end: Int64, bytes: [UInt8])]) throws -> [(first: Int64, end: Int64, bytes: [UInt8])] {
        var out: [(Int64, Int64, [UInt8])] = []
        for f in frames {
            let walked = try f.bytes.withUnsafeBytes { try RecordBatches.walk($0) }
            for (i, b) in walked.enumerated() {
                out.append((b.baseOffset, i + 1 < walked.count ? walked[i + 1].baseOffset : f.end, Array(f.bytes[b.range])))
            }
        }
        return out
    }

    func testEveryOffsetReadsTheBatchHoldingIt() async throws {
        let (store, key, obj, frames) = try await setUp()
        let reader = ObjectReader(store: store, cache: BlockCache(capacityBytes: 1 << 20), logger: Logger(label: "test"))
        for streamId: UInt64 in [1, 2] {
            let all = try batches(frames[streamId]!)
            let whole = all.flatMap(\.bytes)
            for (i, b) in all.enumerated() {
                for offset in [b.first, b.end - 1] {
                    let got = try await reader.read(objectId: 7, key: key, objectSize: Int64(obj.bytes.count), streamId: streamId,
                                                    from: offset, maxBytes: 1500)
                    XCTAssertEqual(Array(got.prefix(b.bytes.count)), b.bytes, "stream \(streamId) offset \(offset)")
                    XCTAssertLessThanOrEqual(got.count, 1500)
                    // Whole batches, contiguous with what follows in the stream.
                    let from = all[..<i].reduce(0) { $0 + $1.bytes.count }
                    XCTAssertEqual(got, Array(whole[from..<(from + got.count)]))
                }
            }
            // Reading everything from the start returns the stream byte for byte.
            let everything = try await reader.read(objectId: 7, key: key, objectSize: nil, streamId: streamId, from: 0, maxBytes: 1 << 20)
            XCTAssertEqual(everything, whole)
        }
        // At least one batch even when maxBytes is tiny; nothing past the end or for other streams.
        let one = try await reader.read(objectId: 7, key: key, objectSize: nil, streamId: 1, from: 0, maxBytes: 1)
        XCTAssertEqual(one, try batches(frames[1]!)[0].bytes)
        let past = try await reader.read(objectId: 7, key: key, objectSize: nil, streamId: 1, from: 10_000, maxBytes: 1 << 20)
        XCTAssertTrue(past.isEmpty)
        let none = try await reader.read(objectId: 7, key: key, objectSize: nil, streamId: 3, from: 0, maxBytes: 1 << 20)
        XCTAssertTrue(none.isEmpty)
    }

    func testIndexCachedBlocksCoalescedAndCached() async throws {
        let (store, key, obj, _) = try await setUp()
        let cache = BlockCache(capacityBytes: 1 << 20)
        let reader = ObjectReader(store: store, cache: cache, readaheadBlocks: 0, logger: Logger(label: "test"))
        let size = Int64(obj.bytes.count)
        let blocks = try ObjectIndex.parse(object: obj.bytes).blocks(streamId: 2, from: 0)
        XCTAssertGreaterThan(blocks.count, 4)
        // Index + all blocks of stream 2: one tail GET + one coalesced range GET.
        _ = try await reader.read(objectId: 7, key: key, objectSize: size, streamId: 2, from: 0, maxBytes: 1 << 20)
        XCTAssertEqual(store.count("get"), 2)
        XCTAssertEqual(reader.getRequests, 2)
        XCTAssertEqual(cache.count, blocks.count)
        // Again: from the cache, no GET at all.
        _ = try await reader.read(objectId: 7, key: key, objectSize: size, streamId: 2, from: 500, maxBytes: 1 << 20)
        XCTAssertEqual(store.count("get"), 2)
        XCTAssertGreaterThan(cache.hits, 0)
    }

    func testSequentialReadsPrefetchAhead() async throws {
        let (store, key, obj, _) = try await setUp()
        let cache = BlockCache(capacityBytes: 1 << 20)
        let reader = ObjectReader(store: store, cache: cache, readaheadBlocks: 2, logger: Logger(label: "test"))
        let blocks = Array(try ObjectIndex.parse(object: obj.bytes).blocks(streamId: 1, from: 0))
        let size = Int64(obj.bytes.count)
        // First read: no readahead (not known to be sequential yet).
        _ = try await reader.read(objectId: 7, key: key, objectSize: size, streamId: 1, from: 0, maxBytes: 1)
        await reader.waitForReadahead()
        XCTAssertEqual(cache.count, 1)
        // The next block: sequential, so blocks 2 and 3 are prefetched in one GET.
        _ = try await reader.read(objectId: 7, key: key, objectSize: size, streamId: 1, from: blocks[1].startOffset, maxBytes: 1)
        await reader.waitForReadahead()
        XCTAssertTrue(cache.contains(objectId: 7, position: blocks[2].position))
        XCTAssertTrue(cache.contains(objectId: 7, position: blocks[3].position))
        XCTAssertFalse(cache.contains(objectId: 7, position: blocks[4].position))
        let gets = store.count("get")
        XCTAssertEqual(gets, 4)  // tail, block 0, block 1, prefetch of 2...3
        // Reading them is served from the cache.
        _ = try await reader.read(objectId: 7, key: key, objectSize: size, streamId: 1, from: blocks[2].startOffset, maxBytes: 1)
        XCTAssertTrue(cache.contains(objectId: 7, position: blocks[2].position))
        // A random jump does not prefetch.
        _ = try await reader.read(objectId: 7, key: key, objectSize: size, streamId: 1, from: blocks[8].startOffset, maxBytes: 1)
        await reader.waitForReadahead()
        XCTAssertFalse(cache.contains(objectId: 7, position: blocks[9].position))
    }

    func testUploaderSinglePutAndMultipart() async throws {
        let (local, d) = try temporaryStore()
        dir = d
        let store = CountingStore(local)
        let small = [UInt8](repeating: 7, count: 1000)
        let s1 = try await ObjectUploader.upload(small, key: "a/small", store: store, partBytes: 5 << 20, parallelism: 2)
        XCTAssertEqual(s1, UploadStats(requests: 1, bytes: 1000, parts: 0))
        // Under two parts: still one PUT (a multipart upload would cost 4 requests).
        let medium = [UInt8](repeating: 9, count: (10 << 20) - 1)
        let s3 = try await ObjectUploader.upload(medium, key: "a/medium", store: store, partBytes: 5 << 20, parallelism: 2)
        XCTAssertEqual(s3, UploadStats(requests: 1, bytes: medium.count, parts: 0))
        // 12 MiB in 5 MiB parts: 2 parts, the last taking the 2 MiB remainder (no small tail part).
        let big = (0..<(12 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) }
        let s2 = try await ObjectUploader.upload(big, key: "a/big", store: store, partBytes: 5 << 20, parallelism: 2)
        XCTAssertEqual(s2, UploadStats(requests: 4, bytes: big.count, parts: 2))
        let got = try await store.get("a/big", range: nil)
        XCTAssertEqual(got, big)
        XCTAssertEqual(store.count("uploadPart"), 2)
        // A failing part aborts the upload and rethrows; nothing is left behind.
        store.failUploadPart = true
        do {
            _ = try await ObjectUploader.upload(big, key: "a/failed", store: store, partBytes: 5 << 20, parallelism: 3)
            XCTFail("expected a failure")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .accessDenied("injected"))
        }
        XCTAssertEqual(store.count("abort"), 1)
        let head = try await store.head("a/failed")
        XCTAssertNil(head)
    }
}
