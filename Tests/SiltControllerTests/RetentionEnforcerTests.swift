import Foundation
import Logging
import SiltConfig
@testable import SiltController
import SiltStreams
import XCTest

/// Retention decisions: time and size at object-range granularity, compact-only topics
/// untouched, trims recorded in the metadata log and dead objects left to the janitor.
final class RetentionEnforcerTests: XCTestCase {
    var dir: String!
    let now: Int64 = 10_000_000

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-retention-\(UUID())").path
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Topic "t" (one stream, id 1) with `configs`, and three stream objects of 100 bytes
    /// each: offsets 0..<10 (newest record at `now - 3000`), 10..<20 (`now - 2000`), 20..<30 (`now - 1000`).
    func setUp(configs: [String: String]) throws -> (MetadataController, RetentionEnforcer) {
        let c = try MetadataController(directory: dir, logger: Logger(label: "test"), validateConfigs: TopicConfig.validate)
        try c.createTopic(name: "t", partitions: 1, configs: configs, validateOnly: false)
        let (epoch, _) = try c.openUploader(nodeId: 0)
        let first = try c.prepareObjects(nodeId: 0, nodeEpoch: epoch, count: 3, ttlMs: 60_000, nowMs: now)
        try c.commitObjects(nodeId: 0, nodeEpoch: epoch, objects: (0..<3).map { i in
            MetadataController.CommitObject(
                objectId: first + UInt64(i), size: 120, kind: .stream,
                ranges: [.init(streamId: 1, streamEpoch: 0, startOffset: Int64(i) * 10, endOffset: Int64(i + 1) * 10,
                               stats: RangeStats(bytes: 100, maxTimestampMs: now - 3000 + Int64(i) * 1000))])
        }, compactedObjectIds: [], nowMs: now)
        let config = try ServerConfig(properties: ["log.dirs": dir])
        let nowMs = now
        return (c, RetentionEnforcer(controller: c, config: config, intervalMs: 1000, logger: Logger(label: "test"),
                                     nowMs: { nowMs }))
    }

    func testTimeRetentionTrimsExpiredRanges() throws {
        let (c, enforcer) = try setUp(configs: ["retention.ms": "1500"])
        XCTAssertEqual(enforcer.runOnce(), [1: 20], "ranges newest at now-3000 and now-2000 are older than 1500 ms")
        XCTAssertEqual(c.image.streamStates[1]?.startOffset, 20)
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [1, 2], "the trimmed objects are dead: the janitor deletes them")
        XCTAssertEqual(enforcer.runOnce(), [:], "nothing more expired")
    }

    func testSizeRetentionKeepsAtLeastRetentionBytes() throws {
        let (c, enforcer) = try setUp(configs: ["retention.ms": "-1", "retention.bytes": "150"])
        // 300 bytes: dropping the first leaves 200 >= 150, dropping the second would leave 100 < 150.
        XCTAssertEqual(enforcer.runOnce(), [1: 10])
        XCTAssertEqual(c.image.objectsAwaitingDeletion, [1])
        XCTAssertEqual(RetentionEnforcer.retentionStart(image: c.image, streamId: 1, retentionMs: -1, retentionBytes: 100,
                                                        nowMs: now), 20)
        XCTAssertEqual(RetentionEnforcer.retentionStart(image: c.image, streamId: 1, retentionMs: -1, retentionBytes: 0,
                                                        nowMs: now), 30, "retention.bytes=0 drops every committed range")
    }

    func testUnlimitedAndCompactOnlyTopicsAreUntouched() throws {
        let (c, enforcer) = try setUp(configs: ["retention.ms": "-1", "retention.bytes": "-1"])
        XCTAssertEqual(enforcer.runOnce(), [:])
        try c.alterConfigs(ConfigResource(type: 2, name: "t"),
                           changes: [ConfigChange(name: "retention.ms", op: .set, value: "1"),
                                     ConfigChange(name: "cleanup.policy", op: .set, value: "compact")],
                           replaceAll: true, validateOnly: false, staticConfig: enforcer.config)
        XCTAssertEqual(enforcer.runOnce(), [:], "compact-only: retention does not delete")
        XCTAssertEqual(c.image.streamStates[1]?.startOffset, 0)
        try c.alterConfigs(ConfigResource(type: 2, name: "t"),
                           changes: [ConfigChange(name: "cleanup.policy", op: .append, value: "delete")],
                           replaceAll: false, validateOnly: false, staticConfig: enforcer.config)
        XCTAssertEqual(enforcer.runOnce(), [1: 30], "compact,delete: retention applies")
    }

    func testDynamicBrokerDefaultDrivesRetention() throws {
        let (c, enforcer) = try setUp(configs: [:])
        XCTAssertEqual(enforcer.runOnce(), [:], "7 days by default")
        try c.alterConfigs(ConfigResource(type: 4, name: ""), changes: [ConfigChange(name: "log.retention.ms", op: .set, value: "2500")],
                           replaceAll: false, validateOnly: false, staticConfig: enforcer.config)
        XCTAssertEqual(enforcer.runOnce(), [1: 10])
    }

    func testObjectsWithoutStatsUseCommitTimeAndSize() throws {
        let c = try MetadataController(directory: dir, logger: Logger(label: "test"), validateConfigs: TopicConfig.validate)
        try c.createTopic(name: "t", partitions: 2, configs: [:], validateOnly: false)
        let (epoch, _) = try c.openUploader(nodeId: 0)
        let id = try c.prepareObjects(nodeId: 0, nodeEpoch: epoch, count: 1, ttlMs: 60_000, nowMs: now)
        try c.commitObjects(nodeId: 0, nodeEpoch: epoch, objects: [.init(objectId: id, size: 200, kind: .streamSet, ranges: [
            .init(streamId: 1, streamEpoch: 0, startOffset: 0, endOffset: 5),
            .init(streamId: 2, streamEpoch: 0, startOffset: 0, endOffset: 7),
        ])], compactedObjectIds: [], nowMs: now)
        XCTAssertNil(c.image.object(id: id)?.rangeStats, "an old-style commit carries no stats")
        XCTAssertEqual(c.image.object(id: id)?.stats(streamId: 2), RangeStats(bytes: 100, maxTimestampMs: now))
        XCTAssertNil(RetentionEnforcer.retentionStart(image: c.image, streamId: 2, retentionMs: 10, retentionBytes: -1, nowMs: now))
        XCTAssertEqual(RetentionEnforcer.retentionStart(image: c.image, streamId: 2, retentionMs: 10, retentionBytes: -1,
                                                        nowMs: now + 11), 7)
    }
}
