import XCTest
@testable import SiltStreams

final class StreamSetObjectBuilderTests: XCTestCase {
    /// An add appends to its stream's bytes in place: while they have room, adding more never
    /// moves them, whatever other streams do meanwhile. (A copy of the stream's value out of
    /// the builder's dictionary made every add copy-on-write the stream's whole bytes: building
    /// an object was O(n^2) and took ~90 % of the uploader's CPU.) The object still holds every
    /// frame of both streams.
    func testAddAppendsInPlaceWithoutCopyingTheStream() throws {
        let b = StreamSetObjectBuilder(blockBytesTarget: 1 << 20)
        let seven = Batches.frames(start: 0, count: 300, records: 10, batchBytes: 500)
        let eight = Batches.frames(start: 1000, count: 300, records: 5, batchBytes: 300)
        var used = 0, roomyAdds = 0, moves = 0
        for (f7, f8) in zip(seven, eight) {
            let before = b.storage(of: 7)
            b.add(7, f7)
            used += f7.bytes.count
            let after = try XCTUnwrap(b.storage(of: 7))
            if let before, used <= before.capacity {
                roomyAdds += 1
                if after.base != before.base { moves += 1 }
            }
            b.add(8, f8)   // another stream's add (and its dictionary insert) in between
        }
        XCTAssertGreaterThan(roomyAdds, 200, "most adds fit the room the bytes already had")
        XCTAssertEqual(moves, 0, "an add that fits must not copy the stream's bytes")
        let built = try XCTUnwrap(b.finish(splitBytes: .max).streamSet)
        XCTAssertEqual(built.ranges.map(\.streamId), [7, 8])
        XCTAssertEqual(built.stats.map(\.bytes), [Int64(used), Int64(eight.reduce(0) { $0 + $1.bytes.count })])
        XCTAssertNil(b.storage(of: 7), "finish empties the builder")
    }
}
