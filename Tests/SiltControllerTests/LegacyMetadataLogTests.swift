import CSupport
import Foundation
import Logging
import NIOCore
import SiltController
import SiltMetadata
import SiltRecords
import SiltStreams
import XCTest

/// A metadata directory as the release before binary records wrote it (JSON payloads and a
/// snapshot of JSON values) is read back record for record, opened by the controller, and
/// retired.
final class LegacyMetadataLogTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-legacy-\(UUID())").path
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func json(_ r: MetadataRecord) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return [UInt8](try! encoder.encode(r))
    }

    /// The old `MetadataLog.append`'s bytes: length u32 BE | crc32c u32 BE | payload.
    static func segment(_ payloads: [[UInt8]]) -> [UInt8] {
        var out = [UInt8]()
        for p in payloads {
            let crc = p.withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, p.count) }
            for v in [UInt32(p.count), crc] { out += [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
            out += p
        }
        return out
    }

    /// The old `MetadataSnapshot.encode`'s bytes: one batch, JSON values.
    static func jsonSnapshot(_ records: [MetadataRecord]) -> [UInt8] {
        var builder = RecordBatchBuilder(baseOffset: 0, partitionLeaderEpoch: 0)
        for r in records { builder.append(key: nil as [UInt8]?, value: json(r), timestamp: 1_700_000_000_000) }
        return Array(builder.build().readableBytesView)
    }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name))
    }

    let topicId = UUID(uuidString: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")!

    var snapshotRecords: [MetadataRecord] {
        [.topic(.init(name: "orders", id: topicId, partitions: 1, configs: ["retention.ms": "1000"], streamIds: [1])),
         .streamIdFloor(2),
         .brokerConfig(nodeId: -1, key: "log.retention.ms", value: "60000"),
         .streamState(streamId: 1, epoch: 0, startOffset: 0, endOffset: 0),
         .objectIdFloor(1)]
    }

    var logRecords: [MetadataRecord] {
        [.nodeEpoch(nodeId: 7, epoch: 1),
         .prepareObjects(firstId: 1, count: 2, nodeId: 7, expiresAtMs: 99),
         .commitObjects(.init(objects: [.init(objectId: 1, size: 9, kind: .stream,
                                              ranges: [StreamRange(streamId: 1, startOffset: 0, endOffset: 3)],
                                              rangeStats: [RangeStats(bytes: 9, maxTimestampMs: 5)])],
                              compactedObjectIds: [], committedAtMs: 7)),
         .topicConfig(topicId: topicId, key: "retention.ms", value: nil),
         .producerIds(brokerId: 3, nextProducerId: 1000)]
    }

    /// Snapshot at 3; the segment starts at 0 (its first 3 records are in the snapshot) and
    /// goes on with `logRecords`, as the old MetadataLog left it before its next snapshot.
    func writeLegacyDirectory() throws {
        try write("snapshot-00000000000000000003.batch", Self.jsonSnapshot(snapshotRecords))
        let covered: [MetadataRecord] = [
            .topic(.init(name: "orders", id: topicId, partitions: 1, configs: ["retention.ms": "1000"], streamIds: [1])),
            .brokerConfig(nodeId: -1, key: "log.retention.ms", value: "60000"), .streamIdFloor(2)]
        try write("metadata-00000000000000000000.log", Self.segment((covered + logRecords).map(Self.json)))
    }

    func testReadReturnsTheSnapshotThenTheLogRecords() throws {
        XCTAssertNil(try LegacyMetadataLog.read(directory: dir), "no legacy files")
        XCTAssertNil(try LegacyMetadataLog.read(directory: dir + "/missing"))
        try writeLegacyDirectory()
        let got = try XCTUnwrap(try LegacyMetadataLog.read(directory: dir))
        XCTAssertEqual(got.records, snapshotRecords + logRecords)
        XCTAssertEqual(got.endOffset, 3 + Int64(logRecords.count))
        // The image they build is the one the controller opens.
        let image = MetadataImage(snapshot: got.records, endOffset: got.endOffset)
        let c = try MetadataController(directory: dir, logger: Logger(label: "test")) { _ in }
        defer { c.close() }
        XCTAssertEqual(MetadataControllerTestSupport.withoutOffset(c.image), MetadataControllerTestSupport.withoutOffset(image))
        XCTAssertEqual(image.topic(named: "orders")?.configs, [:])
        XCTAssertEqual(image.nextProducerId, 1000)
    }

    /// A metadata directory of the JSON release becomes the quorum log's first snapshot; the
    /// JSON files move aside, and the controller goes on in the new format.
    func testAControllerMigratesAJSONDirectory() throws {
        try writeLegacyDirectory()
        let legacy = try XCTUnwrap(try LegacyMetadataLog.read(directory: dir))
        let c = try MetadataController(directory: dir, logger: Logger(label: "test")) { _ in }
        let snapshot = try XCTUnwrap(c.latestSnapshot)
        XCTAssertEqual(snapshot.id.endOffset, legacy.endOffset, "the snapshot ends where the JSON log did")
        XCTAssertEqual(try LegacyMetadataLog.decodeSnapshot(snapshot.bytes).legacyJSON, false)
        XCTAssertEqual(MetadataImage(snapshot: try MetadataSnapshot.decode(snapshot.bytes), endOffset: snapshot.id.endOffset),
                       MetadataImage(snapshot: legacy.records, endOffset: legacy.endOffset))
        XCTAssertNil(try LegacyMetadataLog.read(directory: dir), "the JSON files moved aside")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + LegacyMetadataLog.retiredDirectoryName))
        try c.createTopic(name: "after", partitions: 2, configs: [:], validateOnly: false)
        try c.awaitCommitted()
        let image = c.image
        c.close()
        let reopened = try MetadataController(directory: dir, logger: Logger(label: "test")) { _ in }
        defer { reopened.close() }
        XCTAssertEqual(reopened.image.topicsByName, image.topicsByName)
        XCTAssertEqual(reopened.image.topic(named: "orders")?.id, legacy.records.compactMap {
            if case .topic(let t) = $0, t.name == "orders" { return t.id } else { return nil } }.first)
    }

    func testATornTailEndsTheLogAndDamageElsewhereThrows() throws {
        try writeLegacyDirectory()
        let path = dir + "/metadata-00000000000000000000.log"
        let whole = [UInt8](FileManager.default.contents(atPath: path)!)
        try write("metadata-00000000000000000000.log", Array(whole.dropLast(5)))
        let got = try XCTUnwrap(try LegacyMetadataLog.read(directory: dir))
        XCTAssertEqual(got.records, snapshotRecords + logRecords.dropLast())
        XCTAssertEqual(Array(FileManager.default.contents(atPath: path)!), Array(whole.dropLast(5)), "read-only")
        // A damaged segment followed by another is not a torn tail.
        try write("metadata-00000000000000000000.log", Array(whole.dropLast(5)))
        try write("metadata-00000000000000000007.log", Self.segment([Self.json(.streamIdFloor(9))]))
        XCTAssertThrowsError(try LegacyMetadataLog.read(directory: dir))
        // A whole record (CRC good) that does not decode is refused, never skipped.
        try FileManager.default.removeItem(atPath: dir + "/metadata-00000000000000000007.log")
        try write("metadata-00000000000000000000.log", whole + Self.segment([[1, 0xF0, 0x0F, 0, 0]]))
        XCTAssertThrowsError(try LegacyMetadataLog.read(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("offset 8") && "\(e)".contains("2032"), "\(e)")
        }
        XCTAssertThrowsError(try MetadataController(directory: dir, logger: Logger(label: "test")) { _ in }) { e in
            XCTAssertTrue("\(e)".contains("offset 8"), "\(e)")
        }
    }

    func testRetireMovesTheFilesAsideAndIsIdempotent() throws {
        try writeLegacyDirectory()
        try write("snapshot-00000000000000000009.batch.tmp", [1, 2, 3])
        try write("unrelated", [4])
        try LegacyMetadataLog.retire(directory: dir)
        XCTAssertNil(try LegacyMetadataLog.read(directory: dir))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["legacy-json", "unrelated"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/legacy-json").sorted(), [
            "metadata-00000000000000000000.log", "snapshot-00000000000000000003.batch", "snapshot-00000000000000000009.batch.tmp"])
        try LegacyMetadataLog.retire(directory: dir)

        // Interrupted half-way: what is left is not read as a whole log.
        try write("metadata-00000000000000000000.log", Self.segment([Self.json(.streamIdFloor(9))]))
        XCTAssertThrowsError(try LegacyMetadataLog.read(directory: dir)) { e in
            guard case LegacyMetadataLog.LegacyError.partiallyRetired = e else { return XCTFail("\(e)") }
        }
        try LegacyMetadataLog.retire(directory: dir)
        XCTAssertNil(try LegacyMetadataLog.read(directory: dir))
    }
}
