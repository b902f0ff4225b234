import SiltMetadata
import SiltStreams
import Foundation
import Logging
@testable import SiltController
import XCTest

/// The object lifecycle in the metadata log: open, prepare, commit, compaction, trim,
/// topic deletion, destroy, and the snapshot of all of it.
final class ObjectLifecycleTests: XCTestCase {
    var dir: String!
    let now: Int64 = 1_000_000

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-objects-\(UUID())").path
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Closes `c` once its proposals are committed, reopens the directory, and checks that the
    /// log replays to `image` (default: `c`'s image).
    func assertReplaysToTheSameImage(_ c: MetadataController, _ image: MetadataImage? = nil,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = image ?? c.image
        try c.awaitCommitted()
        c.close()
        let reopened = try open()
        defer { reopened.close() }
        XCTAssertEqual(MetadataControllerTestSupport.withoutOffset(reopened.image),
                       MetadataControllerTestSupport.withoutOffset(expected), file: file, line: line)
    }

    func open(snapshotIntervalBytes: Int = 20 << 20) throws -> MetadataController {
        try MetadataController(directory: dir, logger: Logger(label: "test"), snapshotIntervalBytes: snapshotIntervalBytes) { _ in }
    }

    typealias Obj = MetadataController.CommitObject
    typealias Range = MetadataController.CommitRange

    func r(_ stream: UInt64, _ start: Int64, _ end: Int64, epoch: Int64 = 0) -> Range {
        Range(streamId: stream, streamEpoch: epoch, startOffset: start, endOffset: end)
    }

    func assertRefused(_ c: MetadataController, code: Int16, contains text: String? = nil, file: StaticString = #filePath,
                       line: UInt = #line, _ body: () throws -> Void) {
        let before = c.image
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            guard let e = e as? ControllerError else { return XCTFail("not a ControllerError: \(e)", file: file, line: line) }
            XCTAssertEqual(e.kafkaErrorCode, code, e.description, file: file, line: line)
            if let text { XCTAssertTrue(e.description.contains(text), e.description, file: file, line: line) }
        }
        XCTAssertEqual(c.image, before, "a refusal writes nothing", file: file, line: line)
    }

    /// A controller with topic "t" (streams 1 and 2) and node 7's uploader open at epoch 1.
    func setUpUploader() throws -> (MetadataController, Int64) {
        let c = try open()
        let t = try c.createTopic(name: "t", partitions: 2, configs: [:], validateOnly: false)
        XCTAssertEqual(t.streamIds, [1, 2])
        let (epoch, streams) = try c.openUploader(nodeId: 7)
        XCTAssertEqual(epoch, 1)
        XCTAssertEqual(streams.map(\.streamId), [1, 2])
        XCTAssertEqual(streams.map(\.state), [StreamState(epoch: 0, startOffset: 0, endOffset: 0),
                                              StreamState(epoch: 0, startOffset: 0, endOffset: 0)])
        return (c, epoch)
    }

    func testFreshUploadCommitsAndIndexesRanges() throws {
        let (c, epoch) = try setUpUploader()
        let first = try c.prepareObjects(nodeId: 7, nodeEpoch: epoch, count: 2, ttlMs: 60_000, nowMs: now)
        XCTAssertEqual(first, 1)
        XCTAssertEqual(c.image.preparedObjects[2], PreparedObject(nodeId: 7, expiresAtMs: now + 60_000))
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 1, size: 100, kind: .streamSet, ranges: [r(1, 0, 10), r(2, 0, 5)]),
            Obj(objectId: 2, size: 50, kind: .stream, ranges: [r(1, 10, 20)]),
        ], compactedObjectIds: [], nowMs: now + 1)
        let img = c.image
        XCTAssertEqual(img.streamStates[1], StreamState(epoch: 0, startOffset: 0, endOffset: 20))
        XCTAssertEqual(img.streamStates[2], StreamState(epoch: 0, startOffset: 0, endOffset: 5))
        XCTAssertEqual(img.objectRanges(streamId: 1, from: 0), [ObjectRangeRef(startOffset: 0, endOffset: 10, objectId: 1),
                                                                ObjectRangeRef(startOffset: 10, endOffset: 20, objectId: 2)])
        XCTAssertEqual(img.objectRanges(streamId: 1, from: 9).map(\.objectId), [1, 2])
        XCTAssertEqual(img.objectRanges(streamId: 1, from: 10).map(\.objectId), [2])
        XCTAssertEqual(img.objectRanges(streamId: 1, from: 20), [])
        XCTAssertEqual(img.objectRanges(streamId: 99, from: 0), [])
        XCTAssertTrue(img.preparedObjects.isEmpty)
        XCTAssertEqual(img.committedObjects.map(\.objectId), [1, 2])
        XCTAssertEqual(img.object(id: 1)?.committedAtMs, now + 1)
        XCTAssertEqual(img.object(id: 1)?.ranges, [StreamRange(streamId: 1, startOffset: 0, endOffset: 10),
                                                   StreamRange(streamId: 2, startOffset: 0, endOffset: 5)])
        XCTAssertEqual(img.nextObjectId, 3)
        // The next upload continues at the committed ends.
        let next = try c.prepareObjects(nodeId: 7, nodeEpoch: epoch, count: 1, ttlMs: 60_000, nowMs: now)
        XCTAssertEqual(next, 3)
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 3, size: 10, kind: .streamSet, ranges: [r(2, 5, 8)])], compactedObjectIds: [], nowMs: now)
        XCTAssertEqual(c.image.objectRanges(streamId: 2, from: 6).map(\.objectId), [3])
        // The log replays to the same image.
        try assertReplaysToTheSameImage(c)
    }

    func testRefusalsWriteNothing() throws {
        let (c, _) = try setUpUploader()
        // A second incarnation fences the first.
        let (epoch, _) = try c.openUploader(nodeId: 7)
        XCTAssertEqual(epoch, 2)
        assertRefused(c, code: 77, contains: "stale") {
            _ = try c.prepareObjects(nodeId: 7, nodeEpoch: 1, count: 1, ttlMs: 1000, nowMs: self.now)
        }
        assertRefused(c, code: 77, contains: "OpenUploader") {
            _ = try c.prepareObjects(nodeId: 8, nodeEpoch: 1, count: 1, ttlMs: 1000, nowMs: self.now)
        }
        assertRefused(c, code: 42) { _ = try c.prepareObjects(nodeId: 7, nodeEpoch: epoch, count: 0, ttlMs: 1000, nowMs: self.now) }
        assertRefused(c, code: 42) { _ = try c.prepareObjects(nodeId: 7, nodeEpoch: epoch, count: 1, ttlMs: 0, nowMs: self.now) }
        let first = try c.prepareObjects(nodeId: 7, nodeEpoch: epoch, count: 3, ttlMs: 1000, nowMs: now)
        _ = try c.openUploader(nodeId: 8)
        let other = try c.prepareObjects(nodeId: 8, nodeEpoch: 1, count: 1, ttlMs: 1000, nowMs: now)
        let ok = Obj(objectId: first, size: 1, kind: .streamSet, ranges: [r(1, 0, 10)])

        assertRefused(c, code: 77) { try c.commitObjects(nodeId: 7, nodeEpoch: 1, objects: [ok], compactedObjectIds: [], nowMs: self.now) }
        assertRefused(c, code: 42, contains: "not prepared") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [Obj(objectId: 999, size: 1, kind: .streamSet, ranges: [self.r(1, 0, 10)])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "expired") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [ok], compactedObjectIds: [], nowMs: self.now + 1000)
        }
        assertRefused(c, code: 42, contains: "node 8") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [Obj(objectId: other, size: 1, kind: .streamSet, ranges: [self.r(1, 0, 10)])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "repeat") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [ok, Obj(objectId: first, size: 1, kind: .streamSet, ranges: [self.r(1, 10, 20)])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "no objects") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [], compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "no ranges") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [Obj(objectId: first, size: 1, kind: .streamSet, ranges: [])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "empty or inverted") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [Obj(objectId: first, size: 1, kind: .streamSet, ranges: [self.r(1, 0, 0)])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "several streams") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [Obj(objectId: first, size: 1, kind: .stream, ranges: [self.r(1, 0, 1), self.r(2, 0, 1)])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 1, contains: "expected a range starting at offset 0") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [Obj(objectId: first, size: 1, kind: .streamSet, ranges: [self.r(1, 5, 10)])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 1, contains: "offset 10") {   // a gap between two objects of one commit
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [ok, Obj(objectId: first + 1, size: 1, kind: .stream, ranges: [self.r(1, 11, 20)])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 74, contains: "epoch 0") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [Obj(objectId: first, size: 1, kind: .streamSet, ranges: [self.r(1, 0, 10, epoch: 3)])],
                                compactedObjectIds: [], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "not committed") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [ok], compactedObjectIds: [first + 2], nowMs: self.now)
        }
        // And the good commit still goes through afterwards.
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [ok], compactedObjectIds: [], nowMs: now)
        XCTAssertEqual(c.image.streamStates[1]?.endOffset, 10)
    }

    /// Commits objects 1 (s1 0..<10, s2 0..<5) and 2 (s1 10..<20) and prepares 3, 4, 5.
    func setUpTwoObjects() throws -> (MetadataController, Int64) {
        let (c, epoch) = try setUpUploader()
        _ = try c.prepareObjects(nodeId: 7, nodeEpoch: epoch, count: 5, ttlMs: 60_000, nowMs: now)
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 1, size: 100, kind: .streamSet, ranges: [r(1, 0, 10), r(2, 0, 5)]),
            Obj(objectId: 2, size: 50, kind: .streamSet, ranges: [r(1, 10, 20)]),
        ], compactedObjectIds: [], nowMs: now)
        return (c, epoch)
    }

    func testCompactionSwapsObjectsAtomically() throws {
        let (c, epoch) = try setUpTwoObjects()
        // Coverage must be exact: a gap, an overlap, something extra, and a missing stream are refused.
        assertRefused(c, code: 42, contains: "the new objects hold 0..<15") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 3, size: 1, kind: .stream, ranges: [self.r(1, 0, 15)]),
                Obj(objectId: 4, size: 1, kind: .stream, ranges: [self.r(2, 0, 5)])], compactedObjectIds: [1, 2], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "overlap") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 3, size: 1, kind: .stream, ranges: [self.r(1, 0, 15)]),
                Obj(objectId: 5, size: 1, kind: .stream, ranges: [self.r(1, 12, 20)]),
                Obj(objectId: 4, size: 1, kind: .stream, ranges: [self.r(2, 0, 5)])], compactedObjectIds: [1, 2], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "0..<21") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 3, size: 1, kind: .stream, ranges: [self.r(1, 0, 21)]),
                Obj(objectId: 4, size: 1, kind: .stream, ranges: [self.r(2, 0, 5)])], compactedObjectIds: [1, 2], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "Stream 2") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 3, size: 1, kind: .stream, ranges: [self.r(1, 0, 20)])], compactedObjectIds: [1, 2], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "live data nothing") {   // stream 2 is not in object 2
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 3, size: 1, kind: .streamSet, ranges: [self.r(1, 10, 20), self.r(2, 0, 5)])],
                                compactedObjectIds: [2], nowMs: self.now)
        }
        assertRefused(c, code: 42, contains: "repeat") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 3, size: 1, kind: .stream, ranges: [self.r(1, 0, 20)])], compactedObjectIds: [1, 1], nowMs: self.now)
        }

        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 3, size: 150, kind: .stream, ranges: [r(1, 0, 20)]),
            Obj(objectId: 4, size: 5, kind: .stream, ranges: [r(2, 0, 5)]),
        ], compactedObjectIds: [1, 2], nowMs: now)
        let img = c.image
        XCTAssertEqual(img.objectRanges(streamId: 1, from: 0), [ObjectRangeRef(startOffset: 0, endOffset: 20, objectId: 3)])
        XCTAssertEqual(img.objectRanges(streamId: 2, from: 0), [ObjectRangeRef(startOffset: 0, endOffset: 5, objectId: 4)])
        XCTAssertEqual(img.objectsAwaitingDeletion, [1, 2])
        XCTAssertEqual(img.committedObjects.map(\.objectId), [3, 4])
        XCTAssertEqual(img.streamStates[1]?.endOffset, 20, "a compaction never moves the end")
        // Compacted objects cannot be compacted again.
        assertRefused(c, code: 42, contains: "not committed and live") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 5, size: 1, kind: .stream, ranges: [self.r(1, 0, 20)])], compactedObjectIds: [1], nowMs: self.now)
        }
        try assertReplaysToTheSameImage(c, img)
    }

    func testCompactionAfterTrimCoversOnlyLiveData() throws {
        let (c, epoch) = try setUpTwoObjects()
        XCTAssertEqual(try c.trimStream(streamId: 1, startOffset: 12), 12)
        // Object 1 still holds stream 2; object 2 holds s1 12..<20 live. The compaction may
        // keep the dead prefix (10..<12) or drop it.
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 3, size: 1, kind: .stream, ranges: [r(1, 10, 20)])], compactedObjectIds: [2], nowMs: now)
        XCTAssertEqual(c.image.objectRanges(streamId: 1, from: 12).map(\.objectId), [3])
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 4, size: 1, kind: .stream, ranges: [r(1, 12, 20)])], compactedObjectIds: [3], nowMs: now)
        XCTAssertEqual(c.image.objectRanges(streamId: 1, from: 0), [ObjectRangeRef(startOffset: 12, endOffset: 20, objectId: 4)])
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [2, 3])
    }

    func testTrimRetiresObjectsWhoseRangesAreAllDead() throws {
        let (c, _) = try setUpTwoObjects()
        XCTAssertEqual(try c.trimStream(streamId: 1, startOffset: 10), 10)
        // Object 1 still holds live data of stream 2.
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [])
        XCTAssertEqual(c.image.objectRanges(streamId: 1, from: 0).map(\.objectId), [2])
        XCTAssertEqual(try c.trimStream(streamId: 2, startOffset: 5), 5)
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [1])
        // Never backwards; capped at the committed end.
        XCTAssertEqual(try c.trimStream(streamId: 1, startOffset: 3), 10)
        let offset = c.image.nextOffset
        XCTAssertEqual(try c.trimStream(streamId: 1, startOffset: 1000), 20)
        XCTAssertEqual(c.image.streamStates[1], StreamState(epoch: 0, startOffset: 20, endOffset: 20))
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [1, 2])
        XCTAssertEqual(c.image.objectRanges(streamId: 1, from: 0), [])
        XCTAssertEqual(c.image.nextOffset, offset + 1)
        XCTAssertThrowsError(try c.trimStream(streamId: 99, startOffset: 1)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 3)
        }
        try assertReplaysToTheSameImage(c)
    }

    func testTopicDeletionKillsItsData() throws {
        let (c, epoch) = try setUpUploader()
        let u = try c.createTopic(name: "u", partitions: 1, configs: [:], validateOnly: false)
        let s3 = u.streamIds[0]
        _ = try c.prepareObjects(nodeId: 7, nodeEpoch: epoch, count: 3, ttlMs: 60_000, nowMs: now)
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 1, size: 1, kind: .streamSet, ranges: [r(1, 0, 10), r(s3, 0, 4)]),   // shared with topic u
            Obj(objectId: 2, size: 1, kind: .stream, ranges: [r(2, 0, 7)]),
        ], compactedObjectIds: [], nowMs: now)
        _ = try c.deleteTopic(name: "t", id: nil)
        let img = c.image
        XCTAssertNil(img.streamStates[1])
        XCTAssertEqual(img.objectRanges(streamId: 1, from: 0), [])
        XCTAssertEqual(img.objectsAwaitingDeletion, [2], "object 1 still holds topic u's data")
        XCTAssertEqual(img.objectRanges(streamId: s3, from: 0).map(\.objectId), [1])
        // An upload that still carries the deleted streams' data is accepted; that data is ignored.
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 3, size: 1, kind: .streamSet, ranges: [r(1, 10, 20), r(s3, 4, 9)])], compactedObjectIds: [], nowMs: now)
        XCTAssertEqual(c.image.streamStates[s3]?.endOffset, 9)
        XCTAssertEqual(c.image.object(id: 3)?.ranges.count, 2)
        _ = try c.deleteTopic(name: "u", id: nil)
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [1, 2, 3])
        XCTAssertTrue(c.image.committedObjects.isEmpty)
        XCTAssertTrue(c.image.streamObjects.isEmpty)
        try assertReplaysToTheSameImage(c)
    }

    func testCommitOfOnlyDeletedStreamsGoesStraightToDeletion() throws {
        let (c, epoch) = try setUpUploader()
        _ = try c.prepareObjects(nodeId: 7, nodeEpoch: epoch, count: 1, ttlMs: 60_000, nowMs: now)
        _ = try c.deleteTopic(name: "t", id: nil)
        try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
            Obj(objectId: 1, size: 1, kind: .streamSet, ranges: [r(1, 0, 10)])], compactedObjectIds: [], nowMs: now)
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [1])
        XCTAssertTrue(c.image.preparedObjects.isEmpty)
    }

    func testDestroyAndJanitorClaims() throws {
        let (c, epoch) = try setUpTwoObjects()   // 3, 4, 5 prepared until now + 60 s
        try c.awaitCommitted()
        XCTAssertEqual(c.destroyCandidates(nowMs: now), .init(awaitingDeletion: [], expiredPrepared: []))
        assertRefused(c, code: 42, contains: "live") { try c.destroyObjects(ids: [1]) }
        assertRefused(c, code: 42, contains: "not expired") { try c.destroyObjects(ids: [3]) }
        XCTAssertEqual(try c.trimStream(streamId: 1, startOffset: 20), 20)   // object 2 dies
        let later = now + 60_000
        try c.awaitCommitted()
        XCTAssertEqual(c.destroyCandidates(nowMs: later), .init(awaitingDeletion: [2], expiredPrepared: [3, 4, 5]))
        // Claimed ids stay uncommittable even if the clock steps back.
        assertRefused(c, code: 42, contains: "not prepared") {
            try c.commitObjects(nodeId: 7, nodeEpoch: epoch, objects: [
                Obj(objectId: 3, size: 1, kind: .streamSet, ranges: [self.r(2, 5, 6)])], compactedObjectIds: [], nowMs: self.now)
        }
        try c.destroyObjects(ids: [2, 3, 4, 5, 77])   // 77 was never known: skipped
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [])
        XCTAssertTrue(c.image.preparedObjects.isEmpty)
        let offset = c.image.nextOffset
        try c.destroyObjects(ids: [2, 3])   // again: nothing to write
        XCTAssertEqual(c.image.nextOffset, offset)
        try assertReplaysToTheSameImage(c)
    }

    func testSnapshotRebuildsTheObjectState() throws {
        let (c, epoch) = try setUpTwoObjects()
        _ = try c.openUploader(nodeId: 9)
        XCTAssertEqual(try c.trimStream(streamId: 1, startOffset: 4), 4)
        XCTAssertEqual(try c.trimStream(streamId: 2, startOffset: 5), 5)
        let e2 = try c.openUploader(nodeId: 7).nodeEpoch
        XCTAssertGreaterThan(e2, epoch)
        _ = try c.prepareObjects(nodeId: 7, nodeEpoch: e2, count: 2, ttlMs: 5_000, nowMs: now)
        try c.commitObjects(nodeId: 7, nodeEpoch: e2, objects: [
            Obj(objectId: 3, size: 10, kind: .stream, ranges: [r(1, 4, 20)])], compactedObjectIds: [1, 2], nowMs: now)
        let img = c.image
        XCTAssertFalse(img.preparedObjects.isEmpty)
        XCTAssertFalse(img.objectsAwaitingDeletion.isEmpty)
        XCTAssertEqual(img.nodeEpochs, [7: e2, 9: 1])

        let rebuilt = MetadataImage(snapshot: img.snapshotRecords, endOffset: img.nextOffset)
        XCTAssertEqual(rebuilt, img)
        XCTAssertEqual(rebuilt.snapshotRecords, img.snapshotRecords)
        // Through the snapshot's bytes, as a follower gets them.
        let bytes = MetadataSnapshot.encode(img.snapshotRecords)
        XCTAssertEqual(MetadataImage(snapshot: try MetadataSnapshot.decode(bytes), endOffset: img.nextOffset), img)
    }

    func testSnapshotOfALongHistoryReopensToTheSameImage() throws {
        let c = try open(snapshotIntervalBytes: 4000)
        try c.createTopic(name: "t", partitions: 3, configs: [:], validateOnly: false)
        let epoch = try c.openUploader(nodeId: 1).nodeEpoch
        var end: [UInt64: Int64] = [1: 0, 2: 0, 3: 0]
        for i in 0..<60 {
            let id = try c.prepareObjects(nodeId: 1, nodeEpoch: epoch, count: 1, ttlMs: 60_000, nowMs: now)
            let streams: [UInt64] = [1, 2, 3].filter { ($0 + UInt64(i)) % 2 == 0 || $0 == 1 }
            try c.commitObjects(nodeId: 1, nodeEpoch: epoch, objects: [
                Obj(objectId: id, size: 100, kind: .streamSet, ranges: streams.map { s in
                    defer { end[s]! += 10 }
                    return r(s, end[s]!, end[s]! + 10)
                })], compactedObjectIds: [], nowMs: now + Int64(i))
            if i % 10 == 9 { try c.trimStream(streamId: 1, startOffset: end[1]! - 25) }
        }
        _ = try c.prepareObjects(nodeId: 1, nodeEpoch: epoch, count: 3, ttlMs: 60_000, nowMs: now)
        let before = c.image
        try c.awaitCommitted()
        XCTAssertNotNil(c.awaitSnapshot(atLeast: 1), "a snapshot was taken")
        c.close()
        let reopened = try open(snapshotIntervalBytes: 4000)
        defer { reopened.close() }
        XCTAssertEqual(MetadataControllerTestSupport.withoutOffset(reopened.image), MetadataControllerTestSupport.withoutOffset(before))
    }
}
