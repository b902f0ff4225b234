import Foundation
import Logging
import SiltConfig
@testable import SiltController
import SiltMetadata
import XCTest

/// AlterConfigs / IncrementalAlterConfigs semantics, dynamic broker configs, and the
/// resolution order of a topic key (topic → node → cluster default → static → default).
final class ConfigAlterTests: ControllerDirectoryTestCase {

    let topic = ConfigResource(type: ConfigResource.topicType, name: "t")
    let node0 = ConfigResource(type: ConfigResource.brokerType, name: "0")
    let cluster = ConfigResource(type: ConfigResource.brokerType, name: "")

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

    func testLegacyAlterReplacesAllOverrides() throws {
        let c = try open()
        let config = try ServerConfig(properties: ["log.dirs": dir])
        try c.createTopic(name: "t", partitions: 1, configs: ["retention.ms": "1000", "cleanup.policy": "compact"],
                          validateOnly: false)
        try c.alterConfigs(topic, changes: [set("retention.bytes", "5000")], replaceAll: true, validateOnly: false,
                           staticConfig: config)
        XCTAssertEqual(c.image.topic(named: "t")?.configs, ["retention.bytes": "5000"], "unspecified keys return to default")
        // validateOnly checks and writes nothing.
        let before = c.image
        try c.alterConfigs(topic, changes: [set("retention.ms", "7")], replaceAll: true, validateOnly: true, staticConfig: config)
        XCTAssertEqual(c.image, before)
    }

    func testIncrementalOperations() throws {
        let c = try open()
        let config = try ServerConfig(properties: ["log.dirs": dir])
        try c.createTopic(name: "t", partitions: 1, configs: ["retention.ms": "1000"], validateOnly: false)
        try c.alterConfigs(topic, changes: [set("retention.bytes", "10"), ConfigChange(name: "cleanup.policy", op: .append, value: "compact")],
                           replaceAll: false, validateOnly: false, staticConfig: config)
        XCTAssertEqual(c.image.topic(named: "t")?.configs,
                       ["retention.ms": "1000", "retention.bytes": "10", "cleanup.policy": "delete,compact"],
                       "SET keeps other overrides; APPEND starts from the inherited value")
        try c.alterConfigs(topic, changes: [ConfigChange(name: "cleanup.policy", op: .subtract, value: "delete"),
                                            ConfigChange(name: "retention.ms", op: .delete, value: nil)],
                           replaceAll: false, validateOnly: false, staticConfig: config)
        XCTAssertEqual(c.image.topic(named: "t")?.configs, ["retention.bytes": "10", "cleanup.policy": "compact"])
        assertRefused(c, code: 40, contains: "not allowed for config key: retention.bytes") {
            try c.alterConfigs(topic, changes: [ConfigChange(name: "retention.bytes", op: .append, value: "1")],
                               replaceAll: false, validateOnly: false, staticConfig: config)
        }
    }

    func testBadInputIsRefusedWithKafkaErrors() throws {
        let c = try open()
        let config = try ServerConfig(properties: ["log.dirs": dir])
        try c.createTopic(name: "t", partitions: 1, configs: [:], validateOnly: false)
        assertRefused(c, code: 40, contains: "Unknown topic config name: no.such.key") {
            try c.alterConfigs(topic, changes: [set("no.such.key", "1")], replaceAll: false, validateOnly: false, staticConfig: config)
        }
        assertRefused(c, code: 40, contains: "retention.ms") {
            try c.alterConfigs(topic, changes: [set("retention.ms", "soon")], replaceAll: false, validateOnly: false,
                               staticConfig: config)
        }
        assertRefused(c, code: 40, contains: "must be one of") {
            try c.alterConfigs(topic, changes: [set("cleanup.policy", "shred")], replaceAll: true, validateOnly: true,
                               staticConfig: config)
        }
        assertRefused(c, code: 3, contains: "'nope' does not exist") {
            try c.alterConfigs(ConfigResource(type: 2, name: "nope"), changes: [set("retention.ms", "1")], replaceAll: false,
                               validateOnly: false, staticConfig: config)
        }
        assertRefused(c, code: 42, contains: "duplicate config keys") {
            try c.alterConfigs(topic, changes: [set("retention.ms", "1"), set("retention.ms", "2")], replaceAll: false,
                               validateOnly: false, staticConfig: config)
        }
        assertRefused(c, code: 40, contains: "Cannot update these configs dynamically: [log.dirs]") {
            try c.alterConfigs(node0, changes: [set("log.dirs", "/x")], replaceAll: false, validateOnly: false, staticConfig: config)
        }
        assertRefused(c, code: 42, contains: "Unable to parse broker name") {
            try c.alterConfigs(ConfigResource(type: 4, name: "x"), changes: [set("log.retention.ms", "1")], replaceAll: false,
                               validateOnly: false, staticConfig: config)
        }
    }

    /// librdkafka's 0081 and 0092: a topic created with compression.type=lz4 and
    /// message.format.version=0.10.0.0, then AlterConfigs with flush.ms; DescribeConfigs
    /// reports them all. Kafka's broker synonyms are dynamic per node too.
    func testKafkaTopicKeysAreStoredAndDescribed() throws {
        let c = try open()
        let config = try ServerConfig(properties: ["log.dirs": dir, "node.id": "0"])
        try c.createTopic(name: "t", partitions: 1,
                          configs: ["compression.type": "lz4", "message.format.version": "0.10.0.0"], validateOnly: false)
        try c.alterConfigs(topic, changes: [set("flush.ms", "12345"), set("flush.messages", "10")], replaceAll: false,
                           validateOnly: false, staticConfig: config)
        let overrides = c.image.topic(named: "t")!.configs
        XCTAssertEqual(overrides, ["compression.type": "lz4", "message.format.version": "0.10.0.0", "flush.ms": "12345",
                                   "flush.messages": "10"])
        let r = TopicConfigResolver(config: config, image: c.image)
        let entries = Dictionary(uniqueKeysWithValues: r.topicEntries(overrides: overrides).map { ($0.name, $0) })
        XCTAssertEqual(entries["compression.type"]?.value, "lz4")
        XCTAssertEqual(entries["compression.type"]?.source, ConfigSource.dynamicTopic)
        XCTAssertEqual(entries["flush.ms"]?.value, "12345")
        XCTAssertEqual(entries["message.format.version"]?.value, "0.10.0.0")
        XCTAssertEqual(entries["segment.jitter.ms"]?.value, "0")
        XCTAssertEqual(entries["segment.jitter.ms"]?.source, ConfigSource.defaultConfig)
        XCTAssertEqual(entries["file.delete.delay.ms"]?.synonyms.last?.name, "log.segment.delete.delay.ms")
        // The node-level synonym applies to a topic without its own value.
        try c.alterConfigs(node0, changes: [set("log.flush.interval.messages", "7")], replaceAll: false, validateOnly: false,
                           staticConfig: config)
        XCTAssertEqual(r.value("flush.messages", overrides: [:]), "9223372036854775807", "resolver made before the change")
        XCTAssertEqual(TopicConfigResolver(config: config, image: c.image).value("flush.messages", overrides: [:]), "7")
        // Bad values are still refused, naming the key.
        assertRefused(c, code: 40, contains: "compression.type") {
            try c.alterConfigs(topic, changes: [set("compression.type", "brotli")], replaceAll: false, validateOnly: false,
                               staticConfig: config)
        }
        XCTAssertThrowsError(try c.createTopic(name: "u", partitions: 1, configs: ["message.format.version": "0.7"],
                                               validateOnly: false)) { e in
            XCTAssertEqual((e as? ControllerError)?.kafkaErrorCode, 40)
            XCTAssertTrue("\(e)".contains("message.format.version"), "\(e)")
        }
    }

    /// librdkafka's 0081 alters `sasl.kerberos.min.time.before.relogin` on BROKER "0", a key
    /// Kafka reconfigures at run time: stored, described as a dynamic broker value, writable;
    /// a bad value is still INVALID_CONFIG naming the key, and a static key still refused.
    func testKafkaDynamicSecurityKeysAreStoredAndDescribed() throws {
        let c = try open()
        let config = try ServerConfig(properties: ["log.dirs": dir, "node.id": "0"])
        try c.alterConfigs(node0, changes: [set("sasl.kerberos.min.time.before.relogin", "58000")], replaceAll: false,
                           validateOnly: false, staticConfig: config)
        XCTAssertEqual(c.image.brokerConfigs[0], ["sasl.kerberos.min.time.before.relogin": "58000"])
        let entries = Dictionary(uniqueKeysWithValues: TopicConfigResolver(config: config, image: c.image)
            .brokerEntries(node: 0).map { ($0.name, $0) })
        let e = try XCTUnwrap(entries["sasl.kerberos.min.time.before.relogin"])
        XCTAssertEqual(e.value, "58000")
        XCTAssertEqual(e.source, ConfigSource.dynamicBroker)
        XCTAssertFalse(e.readOnly)
        XCTAssertEqual(e.synonyms.last?.value, "60000", "Kafka's default under it")
        XCTAssertEqual(ServerConfig.ignoredDynamicKeys["sasl.kerberos.min.time.before.relogin"], "Silt has no SASL listener yet")
        assertRefused(c, code: 40, contains: "sasl.kerberos.ticket.renew.window.factor") {
            try c.alterConfigs(node0, changes: [set("sasl.kerberos.ticket.renew.window.factor", "soon")], replaceAll: false,
                               validateOnly: false, staticConfig: config)
        }
        assertRefused(c, code: 40, contains: "Cannot update these configs dynamically: [listeners]") {
            try c.alterConfigs(node0, changes: [set("listeners", "PLAINTEXT://:1")], replaceAll: false, validateOnly: false,
                               staticConfig: config)
        }
    }

    func testResolutionOrderAndSources() throws {
        let c = try open()
        let config = try ServerConfig(properties: ["log.dirs": dir, "log.retention.ms": "111", "node.id": "0"])
        try c.createTopic(name: "t", partitions: 1, configs: [:], validateOnly: false)
        func resolved() -> (String, Int8, [Int8]) {
            let r = TopicConfigResolver(config: config, image: c.image)
            let e = r.topicEntries(overrides: c.image.topic(named: "t")!.configs).first { $0.name == "retention.ms" }!
            XCTAssertEqual(r.value("retention.ms", topic: c.image.topic(named: "t")!), e.value)
            return (e.value!, e.source, e.synonyms.map(\.source))
        }
        XCTAssertTrue(resolved() == ("111", ConfigSource.staticBroker, [4, 5]))
        try c.alterConfigs(cluster, changes: [set("log.retention.ms", "222")], replaceAll: false, validateOnly: false,
                           staticConfig: config)
        XCTAssertTrue(resolved() == ("222", ConfigSource.dynamicDefaultBroker, [3, 4, 5]))
        try c.alterConfigs(node0, changes: [set("log.retention.ms", "333")], replaceAll: false, validateOnly: false,
                           staticConfig: config)
        XCTAssertTrue(resolved() == ("333", ConfigSource.dynamicBroker, [2, 3, 4, 5]))
        try c.alterConfigs(topic, changes: [set("retention.ms", "444")], replaceAll: false, validateOnly: false,
                           staticConfig: config)
        XCTAssertTrue(resolved() == ("444", ConfigSource.dynamicTopic, [1, 2, 3, 4, 5]))
        // Another node's dynamic config does not apply here.
        try c.alterConfigs(ConfigResource(type: 4, name: "9"), changes: [set("log.retention.bytes", "9")], replaceAll: false,
                           validateOnly: false, staticConfig: config)
        XCTAssertEqual(TopicConfigResolver(config: config, image: c.image).value("retention.bytes", overrides: [:]), "-1")
        // The broker resource shows the dynamic layers; "" only the cluster defaults.
        let r = TopicConfigResolver(config: config, image: c.image)
        let nodeEntry = r.brokerEntries(node: 0).first { $0.name == "log.retention.ms" }!
        XCTAssertEqual(nodeEntry.value, "333")
        XCTAssertEqual(nodeEntry.source, ConfigSource.dynamicBroker)
        XCTAssertFalse(nodeEntry.readOnly)
        XCTAssertTrue(r.brokerEntries(node: 0).first { $0.name == "log.dirs" }!.readOnly)
        XCTAssertEqual(r.brokerEntries(node: nil).map(\.name), ["log.retention.ms"])
    }

    /// `value` (produce and fetch use it) takes a short path; it must agree with the layers
    /// DescribeConfigs shows, for every topic key.
    func testValueAgreesWithDescribedEntriesForEveryKey() throws {
        let c = try open()
        let config = try ServerConfig(properties: ["log.dirs": dir, "node.id": "0", "log.retention.hours": "5",
                                                   "message.max.bytes": "2000000", "log.cleanup.policy": "compact"])
        try c.alterConfigs(cluster, changes: [set("log.segment.bytes", "100000")], replaceAll: false, validateOnly: false,
                           staticConfig: config)
        try c.alterConfigs(node0, changes: [set("log.cleaner.delete.retention.ms", "7")], replaceAll: false,
                           validateOnly: false, staticConfig: config)
        let r = TopicConfigResolver(config: config, image: c.image)
        for overrides in [[:], ["retention.ms": "9", "segment.bytes": "20000"]] {
            for e in r.topicEntries(overrides: overrides) {
                XCTAssertEqual(r.value(e.name, overrides: overrides), e.value, e.name)
            }
        }
        XCTAssertEqual(r.value("retention.ms", overrides: [:]), "18000000")
        XCTAssertEqual(r.value("segment.bytes", overrides: [:]), "100000")
        XCTAssertEqual(r.value("delete.retention.ms", overrides: [:]), "7")
    }

    func testConfigsSurviveReplayAndSnapshot() throws {
        let config = try ServerConfig(properties: ["log.dirs": dir])
        do {
            let c = try open(snapshotIntervalBytes: 1)   // a snapshot after every commit
            try c.createTopic(name: "t", partitions: 1, configs: [:], validateOnly: false)
            try c.alterConfigs(topic, changes: [set("retention.ms", "5")], replaceAll: false, validateOnly: false,
                               staticConfig: config)
            try c.alterConfigs(cluster, changes: [set("log.retention.bytes", "77")], replaceAll: false, validateOnly: false,
                               staticConfig: config)
            try c.alterConfigs(node0, changes: [set("message.max.bytes", "2048")], replaceAll: false, validateOnly: false,
                               staticConfig: config)
            // Removing the last key of a node leaves no empty entry (images compare equal after replay).
            try c.alterConfigs(node0, changes: [ConfigChange(name: "message.max.bytes", op: .delete, value: nil)],
                               replaceAll: false, validateOnly: false, staticConfig: config)
            let snapshot = MetadataImage(snapshot: c.image.snapshotRecords, endOffset: c.image.nextOffset)
            XCTAssertEqual(snapshot, c.image)
        }
        let reopened = try open()
        XCTAssertEqual(reopened.image.topic(named: "t")?.configs, ["retention.ms": "5"])
        XCTAssertEqual(reopened.image.brokerConfigs, [MetadataRecord.clusterDefaultNode: ["log.retention.bytes": "77"]])
    }
}
