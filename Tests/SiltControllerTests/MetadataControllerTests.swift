import Foundation
import Logging
import SiltController
import XCTest

final class MetadataControllerTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-meta-\(UUID())").path
    }

    func open() throws -> MetadataController {
        try MetadataController(directory: dir, logger: Logger(label: "test")) { configs in
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

        let reopened = try open().image
        XCTAssertEqual(reopened.topicsByName.keys.sorted(), ["a"])
        XCTAssertEqual(reopened.topic(named: "a")?.partitionCount, 5)
        XCTAssertEqual(reopened.topic(named: "a")?.id, a.id)
        XCTAssertEqual(reopened.topic(id: a.id)?.configs, ["retention.ms": "1"])
        XCTAssertEqual(reopened.nextOffset, 4)
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
        let path = dir + "/metadata.log"
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
        let path = dir + "/metadata.log"
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count - 3] ^= 0xFF   // flip a byte inside the second record's payload
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try open().image.topicsByName.keys.sorted(), ["one"])
    }
}
