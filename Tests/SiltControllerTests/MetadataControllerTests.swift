import Foundation
import Logging
@testable import SiltController
import SiltMetadata
import SiltRaft
import XCTest

final class MetadataControllerTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-meta-\(UUID())").path
    }

    func open(snapshotIntervalBytes: Int = 20 << 20) throws -> MetadataController {
        try MetadataController(directory: dir, logger: Logger(label: "test"), snapshotIntervalBytes: snapshotIntervalBytes) { configs in
            if configs.keys.contains("bad") { throw NSError(domain: "bad", code: 1) }
        }
    }

    func testTopicsSurviveReopen() throws {
        let c = try open()
        let a = try c.createTopic(name: "a", partitions: 3, configs: ["retention.ms": "1"], validateOnly: false)
        try c.createTopic(name: "b", partitions: 1, configs: [:], validateOnly: false)
        _ = try c.createPartitions(name: "a", count: 5, validateOnly: false)
        _ = try c.deleteTopic(name: "b", id: nil)
        try c.createTopic(name: "dry", partitions: 1, configs: [:], validateOnly: true)
        try c.awaitCommitted()
        c.close()

        let reopened = try open().image
        XCTAssertEqual(reopened.topicsByName.keys.sorted(), ["a"])
        XCTAssertEqual(reopened.topic(named: "a")?.partitionCount, 5)
        XCTAssertEqual(reopened.topic(named: "a")?.id, a.id)
        XCTAssertEqual(reopened.topic(id: a.id)?.configs, ["retention.ms": "1"])
        // Four records, and a control batch for each leader epoch (the first open, the reopen).
        XCTAssertEqual(reopened.nextOffset, 6)
    }

    func testRefusals() throws {
        let c = try open()
        try c.createTopic(name: "t.x", partitions: 1, configs: [:], validateOnly: false)
        XCTAssertThrowsError(try c.createTopic(name: "t.x", partitions: 1, configs: [:], validateOnly: false)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 36)
        }
        XCTAssertThrowsError(try c.createTopic(name: "t_x", partitions: 1, configs: [:], validateOnly: false)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 17)   // collides with t.x
        }
        for bad in ["", ".", "..", "has space", "ünï", String(repeating: "x", count: 250)] {
            XCTAssertThrowsError(try c.createTopic(name: bad, partitions: 1, configs: [:], validateOnly: false)) {
                XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 17, bad)
            }
        }
        XCTAssertThrowsError(try c.createTopic(name: "p", partitions: 0, configs: [:], validateOnly: false)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 37)
        }
        XCTAssertThrowsError(try c.createTopic(name: "p", partitions: 1, configs: ["bad": "1"], validateOnly: false)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 40)
        }
        XCTAssertThrowsError(try c.createPartitions(name: "t.x", count: 1, validateOnly: false)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 37)
        }
        XCTAssertThrowsError(try c.deleteTopic(name: "nope", id: nil)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 3)
        }
        XCTAssertThrowsError(try c.deleteTopic(name: nil, id: UUID())) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 100)
        }
        XCTAssertEqual(c.image.topicsByName.count, 1)
    }

    func testTornTailIsTruncatedAndAppendsContinue() throws {
        let c = try open()
        try c.createTopic(name: "keep", partitions: 2, configs: [:], validateOnly: false)
        try c.createTopic(name: "torn", partitions: 1, configs: [:], validateOnly: false)
        c.close()
        let path = dir + "/" + RaftLogStore.segmentName(0)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        // Cut the last record in half, as a crash mid-write would.
        XCTAssertEqual(truncate(path, off_t(size - 10)), 0)
        let reopened = try open()
        XCTAssertEqual(reopened.image.topicsByName.keys.sorted(), ["keep"])
        try reopened.createTopic(name: "after", partitions: 1, configs: [:], validateOnly: false)
        XCTAssertEqual(try open().image.topicsByName.keys.sorted(), ["after", "keep"])
    }

    func testCorruptRecordStopsReplayThere() throws {
        let c = try open()
        try c.createTopic(name: "one", partitions: 1, configs: [:], validateOnly: false)
        try c.createTopic(name: "two", partitions: 1, configs: [:], validateOnly: false)
        c.close()
        let path = dir + "/" + RaftLogStore.segmentName(0)
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count - 3] ^= 0xFF   // flip a byte inside the second record's payload
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try open().image.topicsByName.keys.sorted(), ["one"])
    }

    func testSnapshotsReplaceOldSegmentsAndRebuildTheSameImage() throws {
        let c = try open(snapshotIntervalBytes: 2000)
        for i in 0..<40 {
            try c.createTopic(name: "t\(i)", partitions: 2, configs: ["retention.ms": "\(i)"], validateOnly: false)
        }
        for i in stride(from: 0, to: 40, by: 3) { _ = try c.deleteTopic(name: "t\(i)", id: nil) }
        _ = try c.createPartitions(name: "t1", count: 4, validateOnly: false)
        let before = c.image
        try c.awaitCommitted()
        let snapshot = try XCTUnwrap(c.awaitSnapshot(atLeast: 1), "a snapshot was taken")
        c.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertEqual(files.filter { $0.hasSuffix(".checkpoint") }.count, 1, "\(files)")
        XCTAssertLessThanOrEqual(files.filter { $0.hasSuffix(".log") }.count, 2, "segments below a snapshot are deleted: \(files)")

        let reopenedController = try open(snapshotIntervalBytes: 2000)
        let reopened = reopenedController.image
        XCTAssertEqual(reopened.topicsByName, before.topicsByName)
        XCTAssertEqual(reopened.streams, before.streams)
        XCTAssertEqual(reopened.nextStreamId, before.nextStreamId)
        // The snapshot alone rebuilds the image as it was at its end offset.
        let fromSnapshot = MetadataImage(snapshot: try MetadataSnapshot.decode(snapshot.bytes), endOffset: snapshot.id.endOffset)
        XCTAssertEqual(fromSnapshot.nextOffset, snapshot.id.endOffset)
        XCTAssertEqual(fromSnapshot.topicsByName["t1"]?.id, before.topicsByName["t1"]?.id)
        reopenedController.close()
        // Stream ids of deleted topics are never handed out again.
        let fresh = try open(snapshotIntervalBytes: 2000).createTopic(name: "fresh", partitions: 1, configs: [:], validateOnly: false)
        XCTAssertGreaterThanOrEqual(fresh.streamIds[0], before.nextStreamId)
    }
}

/// A committed record that passes its CRC but does not decode (a newer release wrote it, or
/// a bug) stops the controller with its offset and type; the log is not cut.
final class UndecodableRecordTests: XCTestCase {
    func testAnUndecodableCommittedRecordStopsTheControllerNamingItsOffsetAndType() throws {
        let dir = NSTemporaryDirectory() + "silt-undecodable-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = try MetadataController(directory: dir, logger: Logger(label: "test")) { _ in }
        try c.createTopic(name: "before", partitions: 1, configs: [:], validateOnly: false)
        try c.awaitCommitted()
        c.close()
        // A record of type 1999 (unknown) at the log end, in a batch whose frame CRC is valid.
        let (store, persisted) = try RaftLogStore.open(directory: dir)
        let end = persisted.batches.last!.endOffset
        try store.append([RaftBatch(baseOffset: end, epoch: persisted.batches.last!.epoch, isControl: false,
                                    records: [[0x01, 0xCF, 0x0F, 0x00, 0x00]])])
        try store.sync()
        let sizeBefore = try FileManager.default.attributesOfItem(atPath: dir + "/" + RaftLogStore.segmentName(0))[.size] as! Int
        let stopped = FatalReason()
        XCTAssertThrowsError(try MetadataController(directory: dir, logger: Logger(label: "test"),
                                                    onFatal: { stopped.set($0) }) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("offset \(end)"), "\(error)")
            XCTAssertTrue("\(error)".contains("type 1999"), "\(error)")
        }
        XCTAssertNotNil(stopped.value)
        let sizeAfter = try FileManager.default.attributesOfItem(atPath: dir + "/" + RaftLogStore.segmentName(0))[.size] as! Int
        XCTAssertGreaterThanOrEqual(sizeAfter, sizeBefore, "nothing was cut")
    }
}
