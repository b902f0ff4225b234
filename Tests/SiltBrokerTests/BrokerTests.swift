import Foundation
import Logging
import NIOCore
import NIOPosix
@testable import SiltBroker
import SiltConfig
import SiltController
import SiltMetadata
import SiltNet
import SiltProtocol
import SiltRecords
import SiltStorage
import XCTest

/// Drives the broker request by request, without sockets: frames in, frames out, checked
/// with the generated codec (header versions included). The broker runs the production data
/// path (`NodeFixture`): streams, the shared-memory log buffer and the real WAL writer.
final class BrokerTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!
    var dir: String!
    var node: NodeFixture!
    var logs: StreamLogManager!
    var writePath: LogBufferWritePath!
    var broker: Broker!
    var controller: MetadataController!
    let logger = Logger(label: "test")

    override func setUpWithError() throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-broker-\(UUID())").path
        node = try NodeFixture(dir: dir, logger: logger)
        try start(overrides: [:])
    }

    override func tearDownWithError() throws {
        stopBroker()
        node?.shutdown()
        try group.syncShutdownGracefully()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Starts the controller and a broker on the node's log buffer.
    func start(overrides: [String: String]) throws {
        var props = ["log.dirs": dir!]
        props.merge(overrides) { _, b in b }
        let config = try ServerConfig(properties: props)
        controller = try MetadataController(directory: dir + "/__cluster_metadata", logger: logger,
                                            quorum: .single(clusterId: "test-cluster-id-000000"),
                                            validateConfigs: TopicConfig.validate)
        let service = ControllerService(controller: controller, config: config, logger: logger)
        let channel = LocalControllerChannel(service: service, eventLoop: group.next(), logger: logger)
        (broker, logs, writePath) = node.makeBroker(config: config, clusterId: "test-cluster-id-000000",
                                                    controllerChannel: channel)
        try node.start(broker, path: writePath, controller: controller, on: group.next())
    }

    /// Stops the broker (as the broker role does: what it appended becomes durable first) and
    /// the controller. The node (log buffer, WAL writer) carries on.
    func stopBroker() {
        if let writePath {
            XCTAssertTrue(writePath.waitUntilDurable(timeout: .seconds(10)), "the WAL did not drain")
            writePath.stop()
        }
        node?.stopUploader()
        broker?.stop()
        controller?.close()   // before the loops its long-polls are parked on
        logs?.shutdown()
    }

    /// A restart of the broker and the controller; the new broker finds the data in the log buffer.
    func restart() throws {
        stopBroker()
        try start(overrides: [:])
    }

    var context: RequestContext {
        RequestContext(eventLoop: group.next(), listenerName: "PLAINTEXT", logger: logger)
    }

    func frame<R: KafkaRequest>(_ request: R, version: Int16, correlationId: Int32 = 42) -> ByteBuffer {
        var out = ByteBuffer()
        var header = RequestHeader()
        header.requestApiKey = R.apiKey
        header.requestApiVersion = version
        header.correlationId = correlationId
        header.clientId = "broker-tests"
        header.encode(into: &out, version: requestHeaderVersion(apiKey: R.apiKey, apiVersion: version))
        request.encode(into: &out, version: version)
        return out
    }

    /// Sends one request and decodes the response, checking the size prefix, the
    /// correlation id and that nothing trails the body.
    func call<R: KafkaRequest>(_ request: R, version: Int16, file: StaticString = #filePath, line: UInt = #line) throws -> R.Response {
        guard var out = try broker.handle(frame: frame(request, version: version), context: context).wait() else {
            XCTFail("no response", file: file, line: line)
            throw CancellationError()
        }
        XCTAssertEqual(out.readInteger(as: Int32.self).map(Int.init), out.readableBytes, file: file, line: line)
        let header = try ResponseHeader(from: &out, version: responseHeaderVersion(apiKey: R.apiKey, apiVersion: version))
        XCTAssertEqual(header.correlationId, 42, file: file, line: line)
        let response = try R.Response(from: &out, version: version)
        XCTAssertEqual(out.readableBytes, 0, "trailing bytes", file: file, line: line)
        return response
    }

    func batch(_ values: [String], timestamp: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> ByteBuffer {
        var b = RecordBatchBuilder()
        for (i, v) in values.enumerated() {
            b.append(key: "k\(i)", value: v, headers: [RecordHeader(key: "h", value: [1, 2])], timestamp: timestamp)
        }
        return b.build()
    }

    func produce(_ topic: String, partition: Int32 = 0, _ records: ByteBuffer, acks: Int16 = -1, version: Int16 = 9)
        throws -> ProduceResponse.PartitionProduceResponse {
        var req = ProduceRequest()
        req.acks = acks
        req.timeoutMs = 5000
        var t = ProduceRequest.TopicProduceData()
        t.name = topic
        var p = ProduceRequest.PartitionProduceData()
        p.index = partition
        p.records = records
        t.partitionData = [p]
        req.topicData = [t]
        return try call(req, version: version).responses[0].partitionResponses[0]
    }

    func fetchRequest(_ topic: String, offset: Int64, maxBytes: Int32 = 1 << 20, partitionMaxBytes: Int32 = 1 << 20,
                      minBytes: Int32 = 0, maxWaitMs: Int32 = 0) -> FetchRequest {
        var req = FetchRequest()
        req.maxWaitMs = maxWaitMs
        req.minBytes = minBytes
        req.maxBytes = maxBytes
        var t = FetchRequest.FetchTopic()
        t.topic = topic
        var p = FetchRequest.FetchPartition()
        p.partition = 0
        p.fetchOffset = offset
        p.partitionMaxBytes = partitionMaxBytes
        t.partitions = [p]
        req.topics = [t]
        return req
    }

    func createTopic(_ name: String, partitions: Int32 = 1, configs: [String: String] = [:]) throws {
        var req = CreateTopicsRequest()
        var t = CreateTopicsRequest.CreatableTopic()
        t.name = name
        t.numPartitions = partitions
        t.replicationFactor = -1
        t.configs = configs.map { k, v in
            var c = CreateTopicsRequest.CreatableTopicConfig()
            c.name = k
            c.value = v
            return c
        }
        req.topics = [t]
        let resp = try call(req, version: 7)
        XCTAssertEqual(resp.topics[0].errorCode, 0, resp.topics[0].errorMessage ?? "")
    }

    // MARK: ApiVersions

    func testApiVersionsAdvertisesExactlyWhatIsServed() throws {
        for version: Int16 in 0...4 {
            var req = ApiVersionsRequest()
            req.clientSoftwareName = "silt-tests"
            req.clientSoftwareVersion = "1.0"
            let resp = try call(req, version: version)
            XCTAssertEqual(resp.errorCode, 0)
            let advertised = Dictionary(uniqueKeysWithValues: resp.apiKeys.map { ($0.apiKey, $0.minVersion...$0.maxVersion) })
            XCTAssertEqual(advertised, Broker.supportedApis)
            XCTAssertNil(advertised[CreateDelegationTokenRequest.apiKey], "not served, so not advertised")
        }
    }

    func testUnsupportedApiVersionsGetsV0AnswerWithRange() throws {
        var out = ByteBuffer()
        out.writeInteger(Int16(18)); out.writeInteger(Int16(99)); out.writeInteger(Int32(42))
        out.writeInteger(Int16(3)); out.writeString("abc")
        out.writeBytes([0, 0x7, 0x1, 0x2])   // whatever a future version carries
        var resp = try XCTUnwrap(try broker.handle(frame: out, context: context).wait())
        _ = resp.readInteger(as: Int32.self)
        XCTAssertEqual(resp.readInteger(as: Int32.self), 42)   // v0 header: correlation id only
        let body = try ApiVersionsResponse(from: &resp, version: 0)
        XCTAssertEqual(body.errorCode, 35)
        XCTAssertEqual(body.apiKeys.map { [$0.apiKey, $0.minVersion, $0.maxVersion] }, [[18, 0, 4]])
        XCTAssertEqual(resp.readableBytes, 0)
    }

    func testInvalidClientSoftwareNameIsRejected() throws {
        var req = ApiVersionsRequest()
        req.clientSoftwareName = "bad name!"
        req.clientSoftwareVersion = "1"
        XCTAssertEqual(try call(req, version: 3).errorCode, 42)
        req.clientSoftwareName = "-leading-dash"
        XCTAssertEqual(try call(req, version: 3).errorCode, 42)
        req.clientSoftwareName = "librdkafka"
        req.clientSoftwareVersion = "2.3.0"
        XCTAssertEqual(try call(req, version: 3).errorCode, 0)
    }

    func testUnknownApiKeyAndUnsupportedVersionCloseTheConnection() throws {
        var out = ByteBuffer()
        out.writeInteger(Int16(9999)); out.writeInteger(Int16(0)); out.writeInteger(Int32(1)); out.writeInteger(Int16(-1))
        XCTAssertThrowsError(try broker.handle(frame: out, context: context))
        // Produce v2 (message format v1) is not served.
        XCTAssertThrowsError(try broker.handle(frame: frame(ProduceRequest(), version: 2), context: context))
        // A truncated body.
        var truncated = frame(fetchRequest("t", offset: 0), version: 12)
        truncated.moveWriterIndex(to: truncated.writerIndex - 5)
        XCTAssertThrowsError(try broker.handle(frame: truncated, context: context))
    }

    // MARK: Produce and fetch

    func testProduceFetchRoundTripAndRestart() throws {
        try createTopic("orders")
        let first = try produce("orders", batch(["a", "b", "c"]))
        XCTAssertEqual(first.errorCode, 0)
        XCTAssertEqual(first.baseOffset, 0)
        let second = try produce("orders", batch(["d", "e"]))
        XCTAssertEqual(second.baseOffset, 3)

        for version: Int16 in [4, 11, 12, 13, 16, 17] {
            var req = fetchRequest("orders", offset: 0)
            if version >= 13 { req.topics[0].topicId = broker.metadata.image.topic(named: "orders")!.id.kafka }
            let resp = try call(req, version: version)
            XCTAssertEqual(resp.responses[0].partitions[0].errorCode, 0, "v\(version)")
            XCTAssertEqual(resp.responses[0].partitions[0].highWatermark, 5)
            let records = try XCTUnwrap(resp.responses[0].partitions[0].records)
            let headers = try parseBatchHeaders(records)
            XCTAssertEqual(headers.map(\.baseOffset), [0, 3])
            var values: [String] = []
            for h in headers {
                var reader = try RecordReader(batch: records, header: h)
                while let r = try reader.next() { values.append(String(buffer: r.value!)) }
            }
            XCTAssertEqual(values, ["a", "b", "c", "d", "e"])
        }

        try restart()
        let resp = try call(fetchRequest("orders", offset: 0), version: 12)
        XCTAssertEqual(resp.responses[0].partitions[0].highWatermark, 5)
        XCTAssertEqual(try parseBatchHeaders(resp.responses[0].partitions[0].records!).map(\.baseOffset), [0, 3])
        XCTAssertEqual(try produce("orders", batch(["f"])).baseOffset, 5)
    }

    func testFetchFromMidBatchReturnsWholeBatchAndRespectsMaxBytes() throws {
        try createTopic("t")
        let big = String(repeating: "x", count: 1000)
        for _ in 0..<5 { XCTAssertEqual(try produce("t", batch([big, big])).errorCode, 0) }
        // Offset 3 sits inside the batch [2, 3].
        let mid = try call(fetchRequest("t", offset: 3, partitionMaxBytes: 1), version: 12)
        let headers = try parseBatchHeaders(mid.responses[0].partitions[0].records!)
        XCTAssertEqual(headers.map(\.baseOffset), [2], "first batch returned whole even past the byte limit")
        let limited = try call(fetchRequest("t", offset: 0, maxBytes: 4500), version: 12)
        let bytes = limited.responses[0].partitions[0].records!.readableBytes
        XCTAssertLessThanOrEqual(bytes, 4500)
        XCTAssertEqual(try parseBatchHeaders(limited.responses[0].partitions[0].records!).count, 2)
        let beyond = try call(fetchRequest("t", offset: 11), version: 12)
        XCTAssertEqual(beyond.responses[0].partitions[0].errorCode, 1)   // OFFSET_OUT_OF_RANGE
    }

    func testLongPollWakesOnProduce() throws {
        try createTopic("wait")
        let started = Date()
        let pending = try broker.handle(frame: frame(fetchRequest("wait", offset: 0, minBytes: 1, maxWaitMs: 5000), version: 12),
                                        context: context)
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(try produce("wait", batch(["late"])).errorCode, 0)
        var out = try XCTUnwrap(try pending.wait())
        XCTAssertLessThan(Date().timeIntervalSince(started), 4)
        _ = out.readInteger(as: Int32.self)
        _ = try ResponseHeader(from: &out, version: 1)
        let resp = try FetchResponse(from: &out, version: 12)
        XCTAssertEqual(try parseBatchHeaders(resp.responses[0].partitions[0].records!).count, 1)

        // With nothing arriving, the fetch answers empty once maxWait runs out.
        let t0 = Date()
        let empty = try call(fetchRequest("wait", offset: 1, minBytes: 1, maxWaitMs: 300), version: 12)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(t0), 0.25)
        XCTAssertEqual(empty.responses[0].partitions[0].records?.readableBytes, 0)
    }

    func testProduceValidationErrors() throws {
        try createTopic("v", configs: ["max.message.bytes": "200"])
        var corrupt = batch(["x"])
        corrupt.setInteger(UInt8(0xAB), at: corrupt.writerIndex - 1)
        XCTAssertEqual(try produce("v", corrupt).errorCode, 2)           // CORRUPT_MESSAGE (CRC)
        XCTAssertEqual(try produce("v", batch([String(repeating: "y", count: 300)])).errorCode, 10)   // MESSAGE_TOO_LARGE
        var offset = batch(["z"])
        offset.setInteger(Int64(7), at: 0)
        XCTAssertEqual(try produce("v", offset).errorCode, 87)           // INVALID_RECORD: base offset 0 from clients
        XCTAssertEqual(try produce("nope", batch(["z"])).errorCode, 3)   // UNKNOWN_TOPIC_OR_PARTITION
        XCTAssertEqual(try produce("v", batch(["ok"]), acks: 2).errorCode, 21)
        XCTAssertEqual(try produce("v", batch(["ok"])).baseOffset, 0, "nothing rejected was stored")
    }

    func testAcksZeroGetsNoResponseButIsStored() throws {
        try createTopic("fire")
        var req = ProduceRequest()
        req.acks = 0
        var t = ProduceRequest.TopicProduceData()
        t.name = "fire"
        var p = ProduceRequest.PartitionProduceData()
        p.records = batch(["forget"])
        t.partitionData = [p]
        req.topicData = [t]
        XCTAssertNil(try broker.handle(frame: frame(req, version: 7), context: context).wait())
        let deadline = Date().addingTimeInterval(5)
        var hw: Int64 = 0
        while Date() < deadline {
            hw = try call(fetchRequest("fire", offset: 0), version: 12).responses[0].partitions[0].highWatermark
            if hw == 1 { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        XCTAssertEqual(hw, 1)
    }

    func testLogAppendTimeTopicStampsTheBatch() throws {
        try createTopic("lat", configs: ["message.timestamp.type": "LogAppendTime"])
        let before = Int64(Date().timeIntervalSince1970 * 1000)
        let r = try produce("lat", batch(["a"], timestamp: 1000))
        XCTAssertGreaterThanOrEqual(r.logAppendTimeMs, before)
        let records = try call(fetchRequest("lat", offset: 0), version: 12).responses[0].partitions[0].records!
        let h = try parseBatchHeaders(records)[0]
        XCTAssertEqual(h.timestampType, .logAppendTime)
        XCTAssertEqual(h.maxTimestamp, r.logAppendTimeMs)
        XCTAssertTrue(h.isCRCValid(in: records))
    }

    // MARK: Metadata and admin

    func testMetadataAutoCreatesAndHonoursAllowFlag() throws {
        var req = MetadataRequest()
        var t = MetadataRequest.MetadataRequestTopic()
        t.name = "auto"
        req.topics = [t]
        req.allowAutoTopicCreation = false
        var resp = try call(req, version: 12)
        XCTAssertEqual(resp.topics[0].errorCode, 3)
        req.allowAutoTopicCreation = true
        resp = try call(req, version: 12)
        XCTAssertEqual(resp.topics[0].errorCode, 0)
        XCTAssertEqual(resp.topics[0].partitions.count, 1)
        XCTAssertNotEqual(resp.topics[0].topicId, .zero)
        XCTAssertEqual(resp.brokers.map(\.port), [9092])
        XCTAssertEqual(resp.clusterId, "test-cluster-id-000000")
        // All topics: null list (v1+), empty list in v0.
        req.topics = nil
        XCTAssertEqual(try call(req, version: 1).topics.map(\.name), ["auto"])
        req.topics = []
        XCTAssertEqual(try call(req, version: 0).topics.map(\.name), ["auto"])
        XCTAssertEqual(try call(req, version: 1).topics.count, 0)
        t.name = "bad name"
        req.topics = [t]
        XCTAssertEqual(try call(req, version: 9).topics[0].errorCode, 17)
    }

    func testCreateValidateOnlyDeleteAndPartitions() throws {
        var req = CreateTopicsRequest()
        var t = CreateTopicsRequest.CreatableTopic()
        t.name = "dry"
        t.numPartitions = 3
        t.replicationFactor = 1
        req.topics = [t]
        req.validateOnly = true
        XCTAssertEqual(try call(req, version: 5).topics[0].numPartitions, 3)
        XCTAssertNil(broker.metadata.image.topic(named: "dry"))
        req.validateOnly = false
        XCTAssertEqual(try call(req, version: 5).topics[0].errorCode, 0)
        XCTAssertEqual(try call(req, version: 5).topics[0].errorCode, 36)

        var cp = CreatePartitionsRequest()
        var cpt = CreatePartitionsRequest.CreatePartitionsTopic()
        cpt.name = "dry"
        cpt.count = 5
        cp.topics = [cpt]
        XCTAssertEqual(try call(cp, version: 3).results[0].errorCode, 0)
        XCTAssertEqual(broker.metadata.image.topic(named: "dry")?.partitionCount, 5)
        XCTAssertEqual(try produce("dry", partition: 4, batch(["p4"])).errorCode, 0)
        XCTAssertEqual(try call(cp, version: 3).results[0].errorCode, 37)

        var del = DeleteTopicsRequest()
        var dt = DeleteTopicsRequest.DeleteTopicState()
        dt.topicId = broker.metadata.image.topic(named: "dry")!.id.kafka
        del.topics = [dt]
        let deleted = try call(del, version: 6).responses[0]
        XCTAssertEqual(deleted.errorCode, 0)
        XCTAssertEqual(deleted.name, "dry")
        XCTAssertNil(logs.partition(topic: "dry", partition: 4))
        del.topicNames = ["dry"]
        XCTAssertEqual(try call(del, version: 5).responses[0].errorCode, 3)
    }

    func testDescribeConfigsAndCluster() throws {
        try createTopic("cfg", configs: ["retention.ms": "1234"])
        var req = DescribeConfigsRequest()
        var r = DescribeConfigsRequest.DescribeConfigsResource()
        r.resourceType = 2
        r.resourceName = "cfg"
        req.resources = [r]
        req.includeSynonyms = true
        let resp = try call(req, version: 4).results[0]
        XCTAssertEqual(resp.errorCode, 0)
        let retention = try XCTUnwrap(resp.configs.first { $0.name == "retention.ms" })
        XCTAssertEqual(retention.value, "1234")
        XCTAssertEqual(retention.configSource, 1)
        let maxBytes = try XCTUnwrap(resp.configs.first { $0.name == "max.message.bytes" })
        XCTAssertEqual(maxBytes.value, "1048588")
        XCTAssertEqual(maxBytes.configSource, 5)
        r.resourceType = 4
        r.resourceName = "0"
        req.resources = [r]
        XCTAssertTrue(try call(req, version: 1).results[0].configs.contains { $0.name == "num.partitions" && $0.value == "1" })

        let cluster = try call(DescribeClusterRequest(), version: 1)
        XCTAssertEqual(cluster.clusterId, "test-cluster-id-000000")
        XCTAssertEqual(cluster.brokers.map(\.brokerId), [0])
        var unknownType = DescribeClusterRequest()
        unknownType.endpointType = 7   // neither brokers (1) nor controllers (2)
        XCTAssertEqual(try call(unknownType, version: 1).errorCode, KafkaErrorCode.unsupportedEndpointType)
    }

    func testListOffsetsAndLeaderEpoch() throws {
        try createTopic("lo")
        XCTAssertEqual(try produce("lo", batch(["a", "b"], timestamp: 1_000)).errorCode, 0)
        XCTAssertEqual(try produce("lo", batch(["c"], timestamp: 2_000)).errorCode, 0)
        func list(_ ts: Int64, version: Int16 = 6) throws -> ListOffsetsResponse.ListOffsetsPartitionResponse {
            var req = ListOffsetsRequest()
            req.replicaId = -1
            var t = ListOffsetsRequest.ListOffsetsTopic()
            t.name = "lo"
            var p = ListOffsetsRequest.ListOffsetsPartition()
            p.timestamp = ts
            t.partitions = [p]
            req.topics = [t]
            return try call(req, version: version).topics[0].partitions[0]
        }
        XCTAssertEqual(try list(-2).offset, 0)
        XCTAssertEqual(try list(-1).offset, 3)
        XCTAssertEqual(try list(1_500).offset, 2)
        XCTAssertEqual(try list(1_500).timestamp, 2_000)
        XCTAssertEqual(try list(9_999).offset, -1)
        XCTAssertEqual(try list(-1, version: 0).oldStyleOffsets, [3])

        var req = OffsetForLeaderEpochRequest()
        var t = OffsetForLeaderEpochRequest.OffsetForLeaderTopic()
        t.topic = "lo"
        var p = OffsetForLeaderEpochRequest.OffsetForLeaderPartition()
        p.leaderEpoch = 0
        t.partitions = [p]
        req.topics = [t]
        let e = try call(req, version: 4).topics[0].partitions[0]
        XCTAssertEqual(e.errorCode, 0)
        XCTAssertEqual(e.endOffset, 3)
    }
}

/// A broker that starts after the controller has snapshotted loads the snapshot
/// (FetchSnapshot), then follows the records after it.
final class MetadataSnapshotFollowTests: XCTestCase {
    func testBrokerCatchesUpThroughASnapshot() throws {
        let logger = Logger(label: "test")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-snapfollow-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ServerConfig(properties: ["log.dirs": dir])
        let controller = try MetadataController(directory: dir + "/__cluster_metadata", logger: logger,
                                                snapshotIntervalBytes: 500, quorum: .single(clusterId: "c"),
                                                validateConfigs: TopicConfig.validate)
        for i in 0..<30 { try controller.createTopic(name: "s\(i)", partitions: 1, configs: [:], validateOnly: false) }
        for i in 0..<10 { _ = try controller.deleteTopic(name: "s\(i)", id: nil) }
        try controller.awaitCommitted()
        XCTAssertNotNil(controller.awaitSnapshot(atLeast: 1), "a snapshot was taken")
        let service = ControllerService(controller: controller, config: config, logger: logger)
        let node = try NodeFixture(dir: dir, logger: logger)
        defer { node.shutdown() }
        let (broker, logs, path) = node.makeBroker(config: config, clusterId: "c", controllerChannel:
                                                       LocalControllerChannel(service: service, eventLoop: group.next(), logger: logger))
        defer { logs.shutdown() }
        try node.start(broker, path: path, controller: controller, on: group.next())
        defer { path.stop(); broker.stop(); controller.close() }
        // The broker's own start (registration, its 20 streams opened) appends records the
        // controller commits after the broker's first fetch: catch up to the controller's end.
        try controller.awaitCommitted()
        try broker.metadata.catchUp(on: group.next()).wait()
        XCTAssertEqual(broker.metadata.image.topicsByName.keys.sorted(), controller.image.topicsByName.keys.sorted())
        XCTAssertEqual(broker.metadata.image.nextOffset, controller.image.nextOffset)
        XCTAssertNotNil(logs.partition(topic: "s29", partition: 0))
        XCTAssertNil(logs.partition(topic: "s0", partition: 0))
        // And keeps following after it.
        try controller.createTopic(name: "later", partitions: 2, configs: [:], validateOnly: false)
        try controller.awaitCommitted()
        try broker.metadata.catchUp(on: group.next()).wait()
        XCTAssertEqual(broker.metadata.image.topic(named: "later")?.partitionCount, 2)
        try broker.whenPartitionsOpen(on: group.next(), within: .seconds(10)).wait()
        XCTAssertNotNil(logs.partition(topic: "later", partition: 1))
    }
}

/// A broker of another cluster is refused by the controllers at its first metadata fetch,
/// and its start fails at once with both cluster ids instead of waiting.
final class BrokerClusterIdTests: XCTestCase {
    func testABrokerOfAnotherClusterDoesNotStart() throws {
        let logger = Logger(label: "test")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-othercluster-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ServerConfig(properties: ["log.dirs": dir])
        let controller = try MetadataController(directory: dir + "/__cluster_metadata", logger: logger,
                                                quorum: .single(clusterId: "cluster-one"), validateConfigs: TopicConfig.validate)
        defer { controller.close() }
        let service = ControllerService(controller: controller, config: config, logger: logger)
        let node = try NodeFixture(dir: dir, logger: logger)
        defer { node.shutdown() }
        let (broker, logs, _) = node.makeBroker(config: config, clusterId: "cluster-two", controllerChannel:
                                                    LocalControllerChannel(service: service, eventLoop: group.next(), logger: logger))
        defer { logs.shutdown() }
        let started = Date()
        XCTAssertThrowsError(try broker.start(on: group.next(), timeout: .seconds(30))) { error in
            XCTAssertTrue("\(error)".contains("'cluster-two'") && "\(error)".contains("'cluster-one'"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "refused at once, not after the start timeout")
        broker.stop()
    }
}
