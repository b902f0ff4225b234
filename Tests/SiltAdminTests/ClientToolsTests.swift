import NIOCore
import SiltProtocol
import SiltRecords
import XCTest
@testable import SiltAdmin

/// The pure parts of kafka-console-producer, kafka-console-consumer and
/// kafka-consumer-groups: command lines, the partitioner, the formatter and the tables.
final class ClientToolsTests: XCTestCase {
    let bs = ["--bootstrap-server", "127.0.0.1:9092"]

    func testMurmur2MatchesKafkasUtilsTest() {
        let vectors: [(String, Int32)] = [("21", -973_932_308), ("foobar", -790_332_482),
                                          ("a-little-bit-long-string", -985_981_536),
                                          ("a-little-bit-longer-string", -1_486_304_829),
                                          ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971), ("abc", 479_470_107)]
        for (key, hash) in vectors { XCTAssertEqual(ConsoleProducer.murmur2(Array(key.utf8)), hash, key) }
        XCTAssertEqual(ConsoleProducer.partition(key: Array("21".utf8), partitions: 7), Int32((-973_932_308 & 0x7fff_ffff) % 7))
    }

    func testProducerCommandLine() throws {
        guard case .run(let o) = try ConsoleProducer.parse(bs + ["--topic", "t", "--property", "parse.key=true",
                                                                 "--property", "key.separator=:",
                                                                 "--producer-property", "compression.type=zstd",
                                                                 "--producer-property", "linger.ms=5"]) else { return XCTFail() }
        XCTAssertEqual(o.topic, "t")
        XCTAssertTrue(o.parseKey)
        XCTAssertEqual(o.keySeparator, ":")
        XCTAssertEqual(o.compression, .zstd)
        XCTAssertEqual(o.acks, -1)
        XCTAssertEqual(o.ignoredProperties, ["linger.ms"])
        let r = try ConsoleProducer.record("k1:v:1", o)
        XCTAssertEqual(r.key, Array("k1".utf8))
        XCTAssertEqual(r.value, Array("v:1".utf8))
        XCTAssertThrowsError(try ConsoleProducer.record("novalue", o)) { XCTAssertTrue("\($0)".contains("No key separator")) }
        XCTAssertThrowsError(try ConsoleProducer.parse(bs + ["--topic", "t", "--sync"])) { XCTAssertTrue("\($0)".contains("--sync is not supported")) }
        XCTAssertThrowsError(try ConsoleProducer.parse(bs)) { XCTAssertTrue("\($0)".contains("[topic]")) }
        XCTAssertThrowsError(try ConsoleProducer.parse(bs + ["--topic", "t", "--producer-property", "acks=0"]))
        guard case .run(let gz) = try ConsoleProducer.parse(bs + ["--compression-codec", "--topic", "t"]),
              case .run(let lz) = try ConsoleProducer.parse(bs + ["--topic", "t", "--compression-codec", "lz4"]) else { return XCTFail() }
        XCTAssertEqual(gz.compression, .gzip)
        XCTAssertEqual(lz.compression, .lz4)
    }

    func testConsumerCommandLine() throws {
        guard case .run(let o) = try ConsoleConsumer.parse(bs + ["--topic", "t", "--from-beginning", "--group", "g",
                                                                 "--max-messages", "5", "--timeout-ms", "3000",
                                                                 "--property", "print.key=true"]) else { return XCTFail() }
        XCTAssertEqual(o.group, "g")
        XCTAssertTrue(o.fromBeginning && o.format.printKey)
        XCTAssertEqual(o.maxMessages, 5)
        XCTAssertEqual(o.timeoutMs, 3000)
        guard case .run(let p) = try ConsoleConsumer.parse(bs + ["--topic", "t", "--partition", "1", "--offset", "earliest"])
        else { return XCTFail() }
        XCTAssertEqual(p.partition, 1)
        XCTAssertEqual(p.offset, -2)
        XCTAssertThrowsError(try ConsoleConsumer.parse(bs + ["--topic", "t", "--offset", "3"])) {
            XCTAssertTrue("\($0)".contains("partition is required"))
        }
        XCTAssertThrowsError(try ConsoleConsumer.parse(bs + ["--topic", "t", "--group", "g", "--partition", "0"])) {
            XCTAssertTrue("\($0)".contains("group and partition cannot be specified together"))
        }
        XCTAssertThrowsError(try ConsoleConsumer.parse(bs + ["--topic", "t", "--formatter", "x"])) {
            XCTAssertTrue("\($0)".contains("--formatter is not supported"))
        }
    }

    func testFormatterAsKafkasDefault() throws {
        var b = RecordBatchBuilder(baseOffset: 7)
        b.append(key: "k", value: "v", timestamp: 1000)
        b.append(key: nil, value: "w", timestamp: 1001)
        let batch = b.build()
        let header = try RecordBatchHeader(parsing: batch, at: 0)
        let records = try header.records(in: batch)
        var f = ConsoleConsumer.Format()
        XCTAssertEqual(ConsoleConsumer.format(records[0], partition: 2, timestampType: .createTime, f), "v\n")
        f.printKey = true
        f.keySeparator = "="
        XCTAssertEqual(ConsoleConsumer.format(records[1], partition: 2, timestampType: .createTime, f), "null=w\n")
        f.printTimestamp = true
        f.printPartition = true
        f.printOffset = true
        XCTAssertEqual(ConsoleConsumer.format(records[0], partition: 2, timestampType: .createTime, f),
                       "CreateTime:1000=Partition:2=Offset:7=k=v\n")
    }

    func testConsumerGroupsCommandLine() throws {
        guard case .run(let o) = try ConsumerGroups.parse(bs + ["--reset-offsets", "--group", "g", "--topic", "t:0,2",
                                                                "--to-offset", "5", "--execute"]) else { return XCTFail() }
        XCTAssertEqual(o.action, .resetOffsets)
        XCTAssertEqual(o.reset, .offset(5))
        XCTAssertTrue(o.execute)
        XCTAssertEqual(try ConsumerGroups.topicPartitions("t:0,2").1, [0, 2])
        XCTAssertNil(try ConsumerGroups.topicPartitions("t").1)
        XCTAssertThrowsError(try ConsumerGroups.parse(bs + ["--describe"])) { XCTAssertTrue("\($0)".contains("[group]")) }
        XCTAssertThrowsError(try ConsumerGroups.parse(bs + ["--reset-offsets", "--group", "g", "--topic", "t"])) {
            XCTAssertTrue("\($0)".contains("to-earliest"))
        }
        XCTAssertThrowsError(try ConsumerGroups.parse(bs + ["--list", "--describe", "--group", "g"])) {
            XCTAssertTrue("\($0)".contains("exactly one action"))
        }
        XCTAssertThrowsError(try ConsumerGroups.parse(bs + ["--reset-offsets", "--group", "g", "--all-topics", "--shift-by", "1"])) {
            XCTAssertTrue("\($0)".contains("--shift-by is not supported"))
        }
    }

    func testOffsetsTableAsConsumerGroupCommandPrintsIt() {
        let rows = [ConsumerGroups.OffsetRow(group: "g", topic: "t", partition: 0, currentOffset: 3, logEndOffset: 10,
                                             consumerId: nil, host: nil, clientId: nil),
                    ConsumerGroups.OffsetRow(group: "g", topic: "t", partition: 1, currentOffset: nil, logEndOffset: 4,
                                             consumerId: "console-consumer-1", host: "/127.0.0.1", clientId: "console-consumer")]
        let lines = ConsumerGroups.offsetsTable(rows).components(separatedBy: "\n")
        XCTAssertEqual(lines[0], "")
        XCTAssertEqual(lines[1], "GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             "
            + "CONSUMER-ID        HOST            CLIENT-ID")
        XCTAssertEqual(lines[2], "g               t               0          3               10              7               "
            + "-                  -               -")
        XCTAssertEqual(lines[3], "g               t               1          -               4               -               "
            + "console-consumer-1 /127.0.0.1      console-consumer")
        XCTAssertTrue(ConsumerGroups.resetTable("g", [PartitionKey("t", 0): 5]).contains(
            "\nGROUP                          TOPIC                          PARTITION  NEW-OFFSET     \n"))
    }

    func testRangeAssignorAndPayloads() {
        let a = ConsumerProtocolPayload.rangeAssign(subscriptions: ["m2": ["t"], "m1": ["t", "u"]], partitionCounts: ["t": 5, "u": 1])
        XCTAssertEqual(a["m1"], [PartitionKey("t", 0), PartitionKey("t", 1), PartitionKey("t", 2), PartitionKey("u", 0)])
        XCTAssertEqual(a["m2"], [PartitionKey("t", 3), PartitionKey("t", 4)])
        let bytes = ConsumerProtocolPayload.assignment(a["m1"]!)
        XCTAssertEqual(ConsumerProtocolPayload.partitions(ofAssignment: bytes), a["m1"])
        XCTAssertEqual(ConsumerProtocolPayload.partitions(ofAssignment: []), [])
        XCTAssertEqual(ConsumerProtocolPayload.topics(ofSubscription: ConsumerProtocolPayload.subscription(topics: ["x", "y"])), ["x", "y"])
    }
}
