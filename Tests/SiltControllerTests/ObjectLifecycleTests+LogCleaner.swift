import SiltMetadata
import SiltStreams
@testable import SiltController
import XCTest

/// The log cleaner's commit: one stream's data rewritten into a stream object (with gaps
/// inside, same range), the other streams of the replaced stream set object carried in a
/// new stream set object, all in one compaction commit.
extension ObjectLifecycleTests {
    func testLogCleanerSwapKeepsOtherStreamsAndRanges() throws {
        let (c, epoch) = try setUpTwoObjects()   // 1: s1 0..<10 + s2 0..<5; 2: s1 10..<20
        // Leaving out stream 2 would lose its data: refused.
        assertRefused(c, code: 42, contains: "Stream 2") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 3, size: 1, kind: .stream, ranges: [self.r(1, 0, 20)])], compactedObjectIds: [1, 2], nowMs: self.now)
        }
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 3, size: 90, kind: .stream, ranges: [r(1, 0, 20)]),
            Obj(objectId: 4, size: 40, kind: .streamSet, ranges: [r(2, 0, 5)]),
        ], compactedObjectIds: [1, 2], nowMs: now)
        XCTAssertEqual(c.image.objectRanges(streamId: 1, from: 0), [ObjectRangeRef(startOffset: 0, endOffset: 20, objectId: 3)])
        XCTAssertEqual(c.image.objectRanges(streamId: 2, from: 0), [ObjectRangeRef(startOffset: 0, endOffset: 5, objectId: 4)])
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [1, 2])
        XCTAssertEqual(c.image.streamStates[1]?.endOffset, 20)
    }
}
