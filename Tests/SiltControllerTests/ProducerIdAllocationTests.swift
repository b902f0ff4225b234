import Foundation
import Logging
import SiltController
import SiltMetadata
import XCTest

/// Producer id blocks are metadata records: never handed out twice, across a reopen and
/// across a snapshot that replaced the records.
final class ProducerIdAllocationTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-pids-\(UUID())").path
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func open(snapshotIntervalBytes: Int = 20 << 20) throws -> MetadataController {
        try MetadataController(directory: dir, logger: Logger(label: "test"), snapshotIntervalBytes: snapshotIntervalBytes) { _ in }
    }

    func testBlocksAreConsecutiveAndSurviveReopen() throws {
        let c = try open()
        let size = Int64(MetadataController.producerIdBlockSize)
        XCTAssertEqual(try c.allocateProducerIds(brokerId: 0), 0)
        XCTAssertEqual(try c.allocateProducerIds(brokerId: 1), size)
        XCTAssertEqual(c.image.nextProducerId, 2 * size)
        XCTAssertEqual(try open().allocateProducerIds(brokerId: 0), 2 * size, "a reopened controller continues after the last block")
    }

    func testSnapshotKeepsTheNextProducerId() throws {
        let c = try open(snapshotIntervalBytes: 500)
        _ = try c.allocateProducerIds(brokerId: 0)
        for i in 0..<30 { try c.createTopic(name: "t\(i)", partitions: 1, configs: [:], validateOnly: false) }
        try c.awaitCommitted()
        let snapshot = try XCTUnwrap(c.awaitSnapshot(atLeast: 1), "a snapshot replaced the producer id record")
        let image = MetadataImage(snapshot: try MetadataSnapshot.decode(snapshot.bytes), endOffset: snapshot.id.endOffset)
        XCTAssertEqual(image.nextProducerId, Int64(MetadataController.producerIdBlockSize))
        c.close()
        XCTAssertEqual(try open(snapshotIntervalBytes: 500).allocateProducerIds(brokerId: 0),
                       Int64(MetadataController.producerIdBlockSize))
    }
}
