import Foundation
import SiltProtocol
import XCTest
@testable import SiltAdmin

/// kafka-topics and kafka-configs: command lines, the requests they make and the text they
/// print, without a network (the integration test runs them against a node).
final class KafkaToolsTests: XCTestCase {
    typealias KT = KafkaTopics
    typealias KC = KafkaConfigs
    let bs = ["--bootstrap-server", "127.0.0.1:9092"]

    func topicOptions(_ args: [String]) throws -> KT.Options {
        guard case .run(let o) = try KT.parse(args) else { throw AdminSession.Failure("help") }
        return o
    }

    func assertFails(_ body: @autoclosure () throws -> Any, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(text), "\(e)", file: file, line: line)
        }
    }

    // MARK: - kafka-topics

    /// librdkafka's forms (test_kafka_topics, test_create_topic_sh, test_delete_topic_sh, 0045, 0052, 0077).
    func testTopicsParsesLibrdkafkasForms() throws {
        let create = try topicOptions(bs + ["--create", "--topic", "t1", "--replication-factor", "1", "--partitions", "3",
                                            "--config", "message.timestamp.type=LogAppendTime", "--config=segment.ms=500"])
        XCTAssertEqual(create.action, .create)
        XCTAssertEqual(create.bootstrap, [.init(host: "127.0.0.1", port: 9092)])
        XCTAssertEqual(create.partitions, 3)
        XCTAssertEqual(create.replicationFactor, 1)
        XCTAssertEqual(create.configs.map { "\($0.0)=\($0.1)" }, ["message.timestamp.type=LogAppendTime", "segment.ms=500"])
        let req = KT.createRequest(create)
        XCTAssertEqual(req.topics.map(\.name), ["t1"])
        XCTAssertEqual(req.topics[0].numPartitions, 3)
        XCTAssertEqual(req.topics[0].configs.map(\.name), ["message.timestamp.type", "segment.ms"])
        XCTAssertEqual(req.topics[0].configs.map(\.value), ["LogAppendTime", "500"])
        // Without --partitions / --replication-factor the broker's defaults apply (-1).
        let bare = KT.createRequest(try topicOptions(bs + ["--create", "--topic", "t2"]))
        XCTAssertEqual(bare.topics[0].numPartitions, -1)
        XCTAssertEqual(bare.topics[0].replicationFactor, -1)

        XCTAssertEqual(try topicOptions(bs + ["--alter", "--topic", "t1", "--partitions", "4"]).partitions, 4)
        XCTAssertEqual(try topicOptions(bs + ["--delete", "--topic", "t1"]).action, .delete)
        XCTAssertEqual(try topicOptions(["--list"] + bs).action, .list)
        XCTAssertEqual(try KT.parse(["--help"]), .help)
    }

    func testTopicsRefusesBadCommandLines() {
        assertFails(try KT.parse(bs), "exactly one action")
        assertFails(try KT.parse(bs + ["--list", "--delete"]), "exactly one action")
        assertFails(try KT.parse(["--list"]), "Missing required argument \"[bootstrap-server]\"")
        assertFails(try KT.parse(bs + ["--create"]), "Missing required argument \"[topic]\"")
        assertFails(try KT.parse(bs + ["--alter", "--topic", "t"]), "Missing required argument \"[partitions]\"")
        assertFails(try KT.parse(bs + ["--create", "--topic", "t", "--partitions", "three"]), "'three' is not an integer")
        assertFails(try KT.parse(bs + ["--create", "--topic", "t", "--partitions", "0"]), "greater than 0")
        assertFails(try KT.parse(bs + ["--create", "--topic", "t", "--config", "novalue"]), "\"key=val\"")
        assertFails(try KT.parse(bs + ["--describe", "--partitions", "2"]), "can't be used with option \"[describe]\"")
        assertFails(try KT.parse(bs + ["--delete", "--topic", "t", "--if-not-exists"]), "if-not-exists")
        assertFails(try KT.parse(["--zookeeper", "z:2181", "--list"]), "--zookeeper is not supported: Silt has no ZooKeeper")
        assertFails(try KT.parse(bs + ["--create", "--topic", "t", "--replica-assignment", "0:1"]), "--replica-assignment is not supported")
        assertFails(try KT.parse(bs + ["--list", "--frobnicate"]), "--frobnicate is not a recognized option")
        assertFails(try KT.parse(bs + ["--describe", "--topic", "a(b"]), "not a valid regular expression")
        assertFails(try KT.parse(["--bootstrap-server", "nohost", "--list"]), "invalid host:port 'nohost'")
        assertFails(try KT.parse(["--bootstrap-server"]), "Option --bootstrap-server requires an argument")
    }

    /// `--topic` is a whole-name regular expression (`,` is `|`) except with --create.
    func testTopicSelection() throws {
        let all: [(name: String, isInternal: Bool)] = [("orders", false), ("orders.eu", false), ("__consumer_offsets", true),
                                                       ("audit", false)]
        XCTAssertEqual(try KT.select(all, topic: nil, excludeInternal: false), ["__consumer_offsets", "audit", "orders", "orders.eu"])
        XCTAssertEqual(try KT.select(all, topic: nil, excludeInternal: true), ["audit", "orders", "orders.eu"])
        XCTAssertEqual(try KT.select(all, topic: "orders", excludeInternal: false), ["orders"], "a whole-name match")
        XCTAssertEqual(try KT.select(all, topic: "orders.*", excludeInternal: false), ["orders", "orders.eu"])
        XCTAssertEqual(try KT.select(all, topic: "audit,orders", excludeInternal: false), ["audit", "orders"])
        XCTAssertEqual(try KT.select(all, topic: "nope", excludeInternal: false), [])
    }

    func testDescribeTextIsKafkas() {
        var topic = MetadataResponse.MetadataResponseTopic()
        topic.name = "t"
        topic.topicId = KafkaUUID(high: 0x1111_1111_1111_1111, low: 0x2222_2222_2222_2222)
        for (i, leader) in [(1, 2), (0, -1)] {
            var p = MetadataResponse.MetadataResponsePartition()
            p.partitionIndex = Int32(i)
            p.leaderId = Int32(leader)
            p.replicaNodes = [2]
            p.isrNodes = leader < 0 ? [] : [2]
            topic.partitions.append(p)
        }
        XCTAssertEqual(KT.describeText(topic, configs: [("cleanup.policy", "compact"), ("retention.ms", "100")]),
                       "Topic: t\tTopicId: \(topic.topicId.base64URL)\tPartitionCount: 2\tReplicationFactor: 1\t"
                       + "Configs: cleanup.policy=compact,retention.ms=100\n"
                       + "\tTopic: t\tPartition: 0\tLeader: none\tReplicas: 2\tIsr: \n"
                       + "\tTopic: t\tPartition: 1\tLeader: 2\tReplicas: 2\tIsr: 2\n")
        // Only entries that are not built-in defaults are listed; sensitive values print null.
        var result = DescribeConfigsResponse.DescribeConfigsResult()
        for (name, source, sensitive) in [("a", Int8(1), false), ("b", 5, false), ("c", 4, false), ("d", 1, true)] {
            var c = DescribeConfigsResponse.DescribeConfigsResourceResult()
            c.name = name
            c.value = "v"
            c.configSource = source
            c.isSensitive = sensitive
            result.configs.append(c)
        }
        XCTAssertEqual(KT.overriddenConfigs(result).map { "\($0.0)=\($0.1 ?? "null")" }, ["a=v", "c=v", "d=null"])
    }

    // MARK: - kafka-configs

    func configOptions(_ args: [String]) throws -> KC.Options {
        guard case .run(let o) = try KC.parse(args) else { throw AdminSession.Failure("help") }
        return o
    }

    func testConfigsParsesKafkasForms() throws {
        let alter = try configOptions(bs + ["--entity-type", "topics", "--entity-name", "t", "--alter",
                                            "--add-config", "retention.ms=5,cleanup.policy=[compact,delete]",
                                            "--delete-config", "flush.ms,segment.ms"])
        XCTAssertEqual(alter.entityType, .topics)
        XCTAssertEqual(alter.entity, .named("t"))
        XCTAssertEqual(alter.action, .alter(add: [("retention.ms", "5"), ("cleanup.policy", "compact,delete")],
                                            delete: ["flush.ms", "segment.ms"]))
        let req = KC.alterRequest(.topics, "t", add: [("retention.ms", "5")], delete: ["flush.ms"])
        XCTAssertEqual(req.resources.map(\.resourceType), [2])
        XCTAssertEqual(req.resources[0].configs.map(\.name), ["retention.ms", "flush.ms"])
        XCTAssertEqual(req.resources[0].configs.map(\.configOperation), [0, 1], "SET, then DELETE")
        XCTAssertEqual(req.resources[0].configs.map(\.value), ["5", nil])

        XCTAssertEqual(try configOptions(bs + ["--entity-type", "brokers", "--entity-default", "--describe"]).entity, .brokerDefault)
        XCTAssertEqual(try configOptions(bs + ["--broker-defaults", "--describe"]).entity, .brokerDefault)
        XCTAssertEqual(try configOptions(bs + ["--broker", "1", "--describe", "--all"]).action, .describe(all: true))
        XCTAssertEqual(try configOptions(bs + ["--topic", "t", "--describe"]).entity, .named("t"))
        XCTAssertEqual(try configOptions(bs + ["--entity-type", "topics", "--describe"]).entity, .all)
    }

    func testConfigsRefusesBadCommandLines() {
        let t = ["--entity-type", "topics", "--entity-name", "t"]
        assertFails(try KC.parse(bs + t), "exactly one action: --describe, --alter")
        assertFails(try KC.parse(bs + t + ["--describe", "--alter"]), "exactly one action")
        assertFails(try KC.parse(bs + ["--describe"]), "--entity-type must be specified")
        assertFails(try KC.parse(bs + t + ["--alter"]), "At least one of --add-config or --delete-config")
        assertFails(try KC.parse(bs + t + ["--alter", "--add-config", "retention.ms"]), "\"key=val\"")
        assertFails(try KC.parse(bs + t + ["--alter", "--add-config", "a=[1,2"]), "unbalanced brackets")
        assertFails(try KC.parse(bs + t + ["--alter", "--add-config", "a=1", "--delete-config", "a"]), "Cannot both add and delete")
        assertFails(try KC.parse(bs + ["--entity-type", "brokers", "--entity-name", "x", "--describe"]), "valid integer broker id")
        assertFails(try KC.parse(bs + ["--entity-type", "topics", "--entity-default", "--describe"]), "--entity-default")
        assertFails(try KC.parse(bs + ["--entity-type", "clients", "--describe"]), "--entity-type clients is not supported by Silt")
        assertFails(try KC.parse(bs + ["--entity-type", "widgets", "--describe"]), "Invalid entity type widgets")
        assertFails(try KC.parse(bs + ["--entity-type", "topics", "--alter", "--add-config", "a=1"]), "--entity-name or --entity-default")
        assertFails(try KC.parse(bs + t + ["--alter", "--add-config-file", "f"]), "--add-config-file is not supported")
        assertFails(try KC.parse(t + ["--describe"]), "Missing required argument \"[bootstrap-server]\"")
    }

    func testConfigLinesAreKafkas() {
        var result = DescribeConfigsResponse.DescribeConfigsResult()
        result.resourceType = 2
        result.resourceName = "t"
        func entry(_ name: String, _ value: String?, _ source: Int8, _ synonyms: [(String, String?, Int8)],
                   sensitive: Bool = false) -> DescribeConfigsResponse.DescribeConfigsResourceResult {
            var c = DescribeConfigsResponse.DescribeConfigsResourceResult()
            c.name = name
            c.value = value
            c.configSource = source
            c.isSensitive = sensitive
            c.synonyms = synonyms.map { n, v, s in
                var y = DescribeConfigsResponse.DescribeConfigsSynonym()
                y.name = n
                y.value = v
                y.source = s
                return y
            }
            return c
        }
        result.configs = [
            entry("retention.ms", "1000", 1, [("retention.ms", "1000", 1), ("log.retention.ms", "604800000", 5)]),
            entry("cleanup.policy", "compact", 1, [("cleanup.policy", "compact", 1)]),
            entry("segment.ms", "604800000", 5, [("log.roll.ms", "604800000", 5)]),
        ]
        XCTAssertEqual(KC.header(.topics, "t", all: false), "Dynamic configs for topic t are:")
        XCTAssertEqual(KC.header(.topics, "t", all: true), "All configs for topic t are:")
        XCTAssertEqual(KC.header(.brokers, "1", all: false), "Dynamic configs for broker 1 are:")
        XCTAssertEqual(KC.header(.brokers, "", all: false), "Default configs for brokers in the cluster are:")
        XCTAssertEqual(KC.configLines(result, type: .topics, all: false),
                       "  cleanup.policy=compact sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact}\n"
                       + "  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, "
                       + "DEFAULT_CONFIG:log.retention.ms=604800000}\n")
        XCTAssertEqual(KC.configLines(result, type: .topics, all: true).split(separator: "\n").count, 3)
        // A broker resource shows its own dynamic layer; "" the cluster default's; secrets print null.
        result.resourceType = 4
        result.resourceName = ""
        result.configs = [entry("log.retention.ms", "5", 3, [("log.retention.ms", "5", 3)]),
                          entry("log.retention.bytes", "9", 2, []),
                          entry("s3.secret", nil, 3, [("s3.secret", nil, 3)], sensitive: true)]
        XCTAssertEqual(KC.configLines(result, type: .brokers, all: false),
                       "  log.retention.ms=5 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=5}\n"
                       + "  s3.secret=null sensitive=true synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:s3.secret=null}\n")
    }

    func testUnreachableBrokerIsAClearError() {
        var o = KT.Options()
        o.bootstrap = [.init(host: "127.0.0.1", port: 1)]
        var errors: [String] = []
        XCTAssertEqual(KT.run(o, out: { _ in XCTFail("no output expected") }, err: { errors.append($0) }), 1)
        XCTAssertEqual(errors, ["Error while executing topic command : Failed to connect to 127.0.0.1:1: Connection refused"])
    }
}
