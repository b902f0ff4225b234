import Foundation
import Logging
import SiltConfig
@testable import SiltController
import SiltMetadata
import SiltProtocol
import XCTest

/// Kafka 4.0's GROUP config resource (KIP-848 group configs): stored in the metadata log,
/// described with GROUP_CONFIG / DEFAULT_CONFIG, bounded by the broker's keys, and
/// every refusal writes nothing.
final class GroupConfigTests: ControllerDirectoryTestCase {

    let group = ConfigResource(type: ConfigResource.groupType, name: "g")
    let session = GroupConfigKeys.sessionTimeoutMs
    let heartbeat = GroupConfigKeys.heartbeatIntervalMs

    func set(_ k: String, _ v: String?) -> ConfigChange { ConfigChange(name: k, op: .set, value: v) }

    func assertRefused(_ c: MetadataController, code: Int16, contains text: String, file: StaticString = #filePath,
                       line: UInt = #line, _ body: () throws -> Void) {
        let before = c.image
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            guard let e = e as? ControllerError else { return XCTFail("not a ControllerError: \(e)", file: file, line: line) }
            XCTAssertEqual(e.kafkaErrorCode, code, e.description, file: file, line: line)
            XCTAssertTrue(e.description.contains(text), e.description, file: file, line: line)
        }
        XCTAssertEqual(c.image, before, "a refusal writes nothing", file: file, line: line)
    }

    func testGroupConfigsAreStoredDescribedAndSurviveSnapshots() throws {
        let config = try ServerConfig(properties: ["log.dirs": dir, "group.consumer.heartbeat.interval.ms": "6000"])
        do {
            let c = try open(snapshotIntervalBytes: 1)   // a snapshot after every commit
            // A group nobody created is described with the broker's values, as Kafka does.
            let fresh = GroupConfigKeys.entries(overrides: c.image.groupConfigs["g"] ?? [:], config: config)
            XCTAssertEqual(fresh.map(\.name), [session, heartbeat])
            XCTAssertEqual(fresh.map(\.value), ["45000", "6000"])
            XCTAssertEqual(fresh.map(\.source), [ConfigSource.defaultConfig, ConfigSource.defaultConfig])

            try c.alterConfigs(group, changes: [set(session, "50000")], replaceAll: false, validateOnly: false,
                               staticConfig: config)
            XCTAssertEqual(c.image.groupConfigs, ["g": [session: "50000"]])
            let described = GroupConfigKeys.entries(overrides: c.image.groupConfigs["g"]!, config: config)
            XCTAssertEqual(described.map(\.value), ["50000", "6000"])
            XCTAssertEqual(described.map(\.source), [ConfigSource.groupConfig, ConfigSource.defaultConfig])
            XCTAssertEqual(GroupConfigKeys.timeouts(overrides: c.image.groupConfigs["g"], config: config).sessionTimeoutMs, 50000)

            // validateOnly checks and writes nothing.
            let before = c.image
            try c.alterConfigs(group, changes: [set(heartbeat, "7000")], replaceAll: false, validateOnly: true,
                               staticConfig: config)
            XCTAssertEqual(c.image, before)

            let snapshot = MetadataImage(snapshot: c.image.snapshotRecords, endOffset: c.image.nextOffset)
            XCTAssertEqual(snapshot, c.image)
        }
        let reopened = try open()
        XCTAssertEqual(reopened.image.groupConfigs, ["g": [session: "50000"]])
        // DELETE returns the key to the broker's value and leaves no empty map behind.
        try reopened.alterConfigs(group, changes: [ConfigChange(name: session, op: .delete, value: nil)], replaceAll: false,
                                  validateOnly: false, staticConfig: config)
        XCTAssertEqual(reopened.image.groupConfigs, [:])
        // Legacy AlterConfigs replaces the whole set.
        try reopened.alterConfigs(group, changes: [set(heartbeat, "10000")], replaceAll: true, validateOnly: false,
                                  staticConfig: config)
        XCTAssertEqual(reopened.image.groupConfigs, ["g": [heartbeat: "10000"]])
    }

    func testBadGroupConfigsAreRefusedWithKafkaErrors() throws {
        let c = try open()
        let config = try ServerConfig(properties: ["log.dirs": dir])
        let invalidConfig = KafkaErrorCode.invalidConfig
        try c.alterConfigs(group, changes: [set(heartbeat, "10000")], replaceAll: false, validateOnly: false,
                           staticConfig: config)
        assertRefused(c, code: invalidConfig, contains: "Unknown group config name: retention.ms") {
            try c.alterConfigs(group, changes: [set(session, "50000"), set("retention.ms", "5")], replaceAll: false,
                               validateOnly: false, staticConfig: config)
        }
        assertRefused(c, code: invalidConfig, contains: "consumer.session.timeout.ms") {
            try c.alterConfigs(group, changes: [set(session, "abc")], replaceAll: false, validateOnly: false, staticConfig: config)
        }
        // Kafka 4.0's bounds: session 45000..60000, heartbeat 5000..15000.
        assertRefused(c, code: invalidConfig, contains: "must be less than or equal to group.consumer.max.session.timeout.ms") {
            try c.alterConfigs(group, changes: [set(session, "60001")], replaceAll: false, validateOnly: false, staticConfig: config)
        }
        assertRefused(c, code: invalidConfig, contains: "must be greater than or equal to group.consumer.min.heartbeat.interval.ms") {
            try c.alterConfigs(group, changes: [set(heartbeat, "4999")], replaceAll: false, validateOnly: false, staticConfig: config)
        }
        // The bounds are the broker's: lowering its minimum lets the session fall below the
        // group's own heartbeat interval, which Kafka refuses.
        let low = try ServerConfig(properties: ["log.dirs": dir, "group.consumer.min.session.timeout.ms": "1000"])
        assertRefused(c, code: invalidConfig, contains: "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms") {
            try c.alterConfigs(group, changes: [set(session, "10000")], replaceAll: false, validateOnly: false, staticConfig: low)
        }
        assertRefused(c, code: KafkaErrorCode.invalidRequest, contains: "Group name must not be empty") {
            try c.alterConfigs(ConfigResource(type: ConfigResource.groupType, name: ""), changes: [set(session, "50000")],
                               replaceAll: false, validateOnly: false, staticConfig: config)
        }
        XCTAssertEqual(c.image.groupConfigs, ["g": [heartbeat: "10000"]])

        // A broker session timeout below the minimum (a test setup) does not block the other key.
        let fast = try ServerConfig(properties: ["log.dirs": dir, "group.consumer.session.timeout.ms": "20000"])
        try c.alterConfigs(group, changes: [set(heartbeat, "6000")], replaceAll: false, validateOnly: false, staticConfig: fast)
        XCTAssertEqual(c.image.groupConfigs, ["g": [heartbeat: "6000"]])
    }
}
