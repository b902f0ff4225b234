// Range stats (bytes, newest timestamp) that the builder records for retention.

import XCTest
@testable import SiltStreams

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
}
