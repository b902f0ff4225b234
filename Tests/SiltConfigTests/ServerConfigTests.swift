import SiltConfig
import XCTest

final class ServerConfigTests: XCTestCase {
    func testDefaultsStartASingleCombinedNode() throws {
        let c = try ServerConfig()
        XCTAssertEqual(c.nodeId, 0)
        XCTAssertEqual(c.processRoles, [.broker, .controller])
        XCTAssertEqual(c.clientListeners, [Listener(name: "PLAINTEXT", host: "127.0.0.1", port: 9092)])
        XCTAssertEqual(c.advertisedListeners, [Listener(name: "PLAINTEXT", host: "127.0.0.1", port: 9092)])
        XCTAssertEqual(c.quorumVoters, [QuorumVoter(id: 0, host: "127.0.0.1", port: 9093)])
        XCTAssertEqual(c.logDirs, ["silt-data"])
        XCTAssertEqual(c.numPartitions, 1)
        XCTAssertTrue(c.autoCreateTopics)
        XCTAssertEqual(c.messageMaxBytes, 1_048_588)
        XCTAssertEqual(c.socketRequestMaxBytes, 104_857_600)
    }

    func testBadValuesNameTheKey() {
        let cases: [(String, String)] = [
            ("num.partitions", "abc"), ("num.partitions", "0"), ("auto.create.topics.enable", "yes"),
            ("node.id", "-3"), ("listeners", "PLAINTEXT:/127.0.0.1:9092"), ("process.roles", "broker,janitor"),
            ("controller.quorum.voters", "0@host"), ("message.max.bytes", "99999999999"),
            ("log.message.timestamp.type", "WallClock"),
        ]
        for (key, value) in cases {
            XCTAssertThrowsError(try ServerConfig(properties: [key: value]), "\(key)=\(value)") { error in
                XCTAssertTrue("\(error)".contains(key), "error for \(key)=\(value) does not name the key: \(error)")
            }
        }
    }

    func testStreamStorageKeys() throws {
        let defaults = try ServerConfig(properties: [:]).objectStorage
        XCTAssertEqual(defaults.uploadThresholdBytes, (64 << 20) / 3, "a third of the 64 MiB log buffer")
        XCTAssertEqual(defaults.uploadIntervalMs, 60_000)
        XCTAssertEqual(defaults.blockCacheBytes, 128 << 20)
        XCTAssertEqual(defaults.objectPartBytes, 16 << 20)
        XCTAssertEqual(defaults.streamSetCompactionIntervalMs, 5 * 60_000)
        XCTAssertEqual(defaults.deletionDelayMs, 60_000)
        let tuned = try ServerConfig(properties: [
            "s3.wal.cache.size": "16777216", "s3.wal.upload.threshold": "4194304",
            "s3.stream.set.object.compaction.interval.ms": "3000", "s3.object.deletion.delay.ms": "0",
        ]).objectStorage
        XCTAssertEqual(tuned.uploadThresholdBytes, 4 << 20)
        XCTAssertEqual(tuned.streamSetCompactionIntervalMs, 3000)
        XCTAssertEqual(tuned.streamObjectCompactionIntervalMs, 30 * 60_000)
        XCTAssertEqual(tuned.deletionDelayMs, 0)
        // The buffer holds what waits for upload: a threshold over half of it could never fill.
        XCTAssertThrowsError(try ServerConfig(properties: ["s3.wal.cache.size": "16777216", "s3.wal.upload.threshold": "9000000"])) {
            XCTAssertEqual(($0 as? ConfigError)?.key, "s3.wal.upload.threshold")
        }
        XCTAssertThrowsError(try ServerConfig(properties: ["s3.object.part.size": "1024"])) {
            XCTAssertEqual(($0 as? ConfigError)?.key, "s3.object.part.size")
        }
    }

    func testAutoMQStartLineIsAccepted() throws {
        let c = try ServerConfig.load(propertiesFile: nil, overrides: [
            "process.roles=broker,controller", "node.id=1",
            "controller.quorum.voters=0@192.168.0.1:9093,1@192.168.0.2:9093,2@192.168.0.3:9093",
            "listeners=PLAINTEXT://192.168.0.2:9092,CONTROLLER://192.168.0.2:9093",
            "advertised.listeners=PLAINTEXT://192.168.0.2:9092",
            "s3.wal.path=/dev/nvme1n1", "autobalancer.controller.enable=true",
        ])
        XCTAssertEqual(c.nodeId, 1)
        XCTAssertEqual(c.quorumVoters.map(\.id), [0, 1, 2])
        XCTAssertEqual(c.advertisedListeners, [Listener(name: "PLAINTEXT", host: "192.168.0.2", port: 9092)])
        XCTAssertTrue(c.warnings.isEmpty, "\(c.warnings)")
    }

    /// A node listed as a voter must run the controller role.
    func testVoterWithoutControllerRoleIsRefused() {
        XCTAssertThrowsError(try ServerConfig.load(propertiesFile: nil, overrides: [
            "process.roles=broker", "node.id=0", "controller.quorum.voters=0@127.0.0.1:9093",
            "listeners=PLAINTEXT://127.0.0.1:9092",
        ])) {
            XCTAssertEqual(($0 as? ConfigError)?.key, "controller.quorum.voters")
            XCTAssertTrue("\($0)".contains("has no controller"), "\($0)")
        }
    }

    func testControllerNodeMustBeAVoter() {
        XCTAssertThrowsError(try ServerConfig(properties: [
            "node.id": "5", "controller.quorum.voters": "0@127.0.0.1:9093",
        ])) { XCTAssertTrue("\($0)".contains("controller.quorum.voters")) }
    }

    func testUnknownKeysWarnAndLaterOverridesWin() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-config-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("server.properties").path
        try """
        # a comment
        num.partitions = 3
        log.dirs=/tmp/a,\\
          /tmp/b
        some.future.key=1
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let c = try ServerConfig.load(propertiesFile: file, overrides: ["num.partitions=4", "num.partitions=6"])
        XCTAssertEqual(c.numPartitions, 6)
        XCTAssertEqual(c.logDirs, ["/tmp/a", "/tmp/b"])
        XCTAssertEqual(c.warnings, ["unknown configuration 'some.future.key' is ignored"])
    }

    func testTopicDefaultsFollowBrokerSynonyms() throws {
        let c = try ServerConfig(properties: ["message.max.bytes": "2000", "log.retention.hours": "1"])
        XCTAssertEqual(c.topicDefault("max.message.bytes").value, "2000")
        XCTAssertEqual(c.topicDefault("retention.ms").value, "3600000")
        XCTAssertEqual(c.topicDefault("cleanup.policy").value, "delete")
        XCTAssertThrowsError(try TopicConfig.validate(["retention.ms": "soon"]))
        XCTAssertThrowsError(try TopicConfig.validate(["no.such.config": "1"]))
        XCTAssertNoThrow(try TopicConfig.validate(["cleanup.policy": "compact,delete", "retention.bytes": "-1"]))
    }

    /// Kafka 3.x's topic keys and values: every compression.type, message.format.version
    /// (accepted and ignored), and the keys Silt stores without acting on them.
    func testKafkaTopicKeysAreAcceptedAsKafka3Accepts() throws {
        for codec in ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"] {
            XCTAssertNoThrow(try TopicConfig.validate(["compression.type": codec]), codec)
        }
        for version in ["0.10.0.0", "0.8.2", "0.11.0-IV2", "2.8", "3.0-IV1", "3.9.1"] {
            XCTAssertNoThrow(try TopicConfig.validate(["message.format.version": version]), version)
        }
        XCTAssertNoThrow(try TopicConfig.validate([
            "flush.ms": "1000", "flush.messages": "1", "file.delete.delay.ms": "10000", "max.compaction.lag.ms": "100",
            "segment.jitter.ms": "0", "segment.index.bytes": "4096", "index.interval.bytes": "4096", "preallocate": "true",
            "unclean.leader.election.enable": "false", "message.downconversion.enable": "false",
            "leader.replication.throttled.replicas": "0:1,1:2", "follower.replication.throttled.replicas": "*",
            "compression.zstd.level": "-5", "compression.gzip.level": "-1", "remote.storage.enable": "false",
        ]))
        XCTAssertNotNil(TopicConfig.defsByName["flush.ms"]?.ignoredReason)
        XCTAssertNil(TopicConfig.defsByName["retention.ms"]?.ignoredReason, "retention is applied")
        XCTAssertEqual(TopicConfig.ignoredKeys(["retention.ms", "flush.ms", "compression.type"]).map(\.key),
                       ["flush.ms"], "compression.type is applied (produced batches are recompressed)")
        // Every broker synonym is a broker key, so it can be set per node and described.
        for def in TopicConfig.defs {
            if let syn = def.brokerSynonym { XCTAssertNotNil(ServerConfig.keyDef(syn), syn) }
        }
        // The broker-level keys take the same values.
        let c = try ServerConfig(properties: ["compression.type": "zstd", "log.message.format.version": "0.10.0.0",
                                              "log.flush.interval.ms": "1000"])
        XCTAssertEqual(c.topicDefault("compression.type").value, "zstd")
        XCTAssertEqual(c.topicDefault("flush.ms").value, "1000")
        XCTAssertEqual(c.warnings, [])
    }

    func testBadTopicValuesGetAClearError() {
        let cases: [(String, String, String)] = [
            ("compression.type", "brotli", "must be one of uncompressed, zstd, lz4, snappy, gzip, producer"),
            ("compression.type", "none", "must be one of"),
            ("message.format.version", "banana", "not a Kafka version"),
            ("message.format.version", "4.0", "unknown Kafka version"),
            ("message.format.version", "0.12.0", "unknown Kafka version"),
            ("message.format.version", "3.0-XY1", "not a Kafka version"),
            ("flush.messages", "0", "must be at least 1"),
            ("flush.ms", "soon", "expected a 64-bit integer"),
            ("compression.gzip.level", "0", "must be -1 or between 1 and 9"),
            ("compression.lz4.level", "18", "must be between 1 and 17"),
            ("leader.replication.throttled.replicas", "0-1", "partition:broker"),
            ("preallocate", "maybe", "expected true or false"),
        ]
        for (key, value, reason) in cases {
            XCTAssertThrowsError(try TopicConfig.validate([key: value]), "\(key)=\(value)") { error in
                XCTAssertEqual((error as? ConfigError)?.key, key)
                XCTAssertTrue("\(error)".contains(reason), "\(key)=\(value): \(error)")
            }
        }
    }

    func testPropertiesParser() throws {
        let p = try Properties.parse("a=1\n! bang comment\nb : two words \nc=x\\=y\n\n  d=  4")
        XCTAssertEqual(p, ["a": "1", "b": "two words", "c": "x=y", "d": "4"])
        XCTAssertThrowsError(try Properties.parse("novalue"))
        XCTAssertThrowsError(try Properties.parseOverride("=3"))
    }

    func testMetaPropertiesFormatsOnceAndRefusesAnotherNode() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-meta-\(UUID())").path
        let id = try MetaProperties.ensureFormatted(logDirs: [dir], nodeId: 2, clusterId: nil)
        XCTAssertEqual(id.count, 22)
        XCTAssertEqual(try MetaProperties.ensureFormatted(logDirs: [dir], nodeId: 2, clusterId: nil), id)
        XCTAssertThrowsError(try MetaProperties.ensureFormatted(logDirs: [dir], nodeId: 3, clusterId: nil))
        XCTAssertThrowsError(try MetaProperties.ensureFormatted(logDirs: [dir], nodeId: 2, clusterId: "other"))
    }
}

extension ServerConfigTests {
    /// `s3.wal.takeover.paths`: other nodes' WALs by node id; malformed items, a node twice and
    /// this node's own WAL are refused with the key named.
    func testWALTakeoverPaths() throws {
        let ok = try ServerConfig(properties: ["log.dirs": "/tmp/x", "node.id": "1",
                                               "s3.wal.takeover.paths": "2@/data/node2/wal.silt, 3@/dev/nvme1n1"])
        XCTAssertEqual(ok.walTakeoverPaths, [2: "/data/node2/wal.silt", 3: "/dev/nvme1n1"])
        XCTAssertEqual(try ServerConfig(properties: ["log.dirs": "/tmp/x"]).walTakeoverPaths, [:])
        for bad in ["2:/data/wal", "x@/data/wal", "2@relative/wal", "2@/a,2@/b", "1@/own/wal"] {
            XCTAssertThrowsError(try ServerConfig(properties: ["log.dirs": "/tmp/x", "node.id": "1",
                                                               "s3.wal.takeover.paths": bad]), bad) {
                XCTAssertTrue("\($0)".contains("s3.wal.takeover.paths"), "\($0)")
            }
        }
    }

    /// S3 WAL mode: AutoMQ's `0@s3://bucket?...` with its parameter names and defaults; the
    /// bucket URI keeps the connection parameters; out-of-bounds values are refused by name.
    func testS3WALPath() throws {
        let url = "0@s3://wal-bucket?region=us-east-1&endpoint=http://127.0.0.1:9000&pathStyle=true"
        let plain = try ServerConfig(properties: ["log.dirs": "/tmp/x", "s3.wal.path": url])
        XCTAssertEqual(plain.objectWAL, ObjectWALSettings(bucketURI: url))
        XCTAssertEqual(plain.objectWAL?.batchIntervalMs, 250)
        XCTAssertEqual(plain.objectWAL?.maxBytesInBatch, 8 << 20)
        XCTAssertEqual(plain.walCapacityBytes, 1 << 30, "the WAL's bound is maxUnflushedBytes")
        let tuned = try ServerConfig(properties: ["log.dirs": "/tmp/x", "s3.wal.path": url
            + "&batchInterval=20&maxBytesInBatch=1048576&maxUnflushedBytes=67108864&maxInflightUploadCount=8"])
        XCTAssertEqual(tuned.objectWAL, ObjectWALSettings(bucketURI: url, batchIntervalMs: 20, maxBytesInBatch: 1 << 20,
                                                          maxUnflushedBytes: 64 << 20, maxInflightUploadCount: 8))
        XCTAssertNil(try ServerConfig(properties: ["log.dirs": "/tmp/x", "s3.wal.path": "0@file:///data/wal"]).objectWAL)
        for bad in ["0@s3://?region=x", url + "&batchInterval=-1", url + "&maxBytesInBatch=1", url + "&maxInflightUploadCount=0",
                    url + "&maxUnflushedBytes=16777216&maxBytesInBatch=16777216", url + "&capacity=1073741824"] {
            XCTAssertThrowsError(try ServerConfig(properties: ["log.dirs": "/tmp/x", "s3.wal.path": bad]), bad) {
                XCTAssertTrue("\($0)".contains("s3.wal.path"), "\($0)")
            }
        }
    }

    /// The WAL's capacity counts as explicit when `s3.wal.capacity` or the path's `capacity=`
    /// gives it (even at the default's value); only then is a smaller block device refused.
    func testWALCapacityExplicit() throws {
        let byDefault = try ServerConfig(properties: ["s3.wal.path": "/dev/nvme1n1"])
        XCTAssertEqual(byDefault.walCapacityBytes, 2 << 30)
        XCTAssertFalse(byDefault.walCapacityExplicit)
        for properties in [["s3.wal.capacity": "2147483648"], ["s3.wal.path": "0@file:///dev/nvme1n1?capacity=2147483648"]] {
            let given = try ServerConfig(properties: properties)
            XCTAssertEqual(given.walCapacityBytes, 2 << 30)
            XCTAssertTrue(given.walCapacityExplicit, "\(properties)")
        }
    }
}
