import SiltConfig
import SiltStreams
import Foundation
import Logging
import NIOCore
@testable import SiltController
import SiltMetadata
import SiltProtocol
import XCTest

/// The internal object APIs through the generated request/response types, on the wire and back.
final class ControllerServiceObjectTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-service-\(UUID())").path
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Encodes and decodes `value` as version 0, as the network would.
    func wire<M: KafkaApiMessage>(_ value: M) throws -> M {
        var buffer = ByteBuffer()
        value.encode(into: &buffer, version: 0)
        let decoded = try M(from: &buffer, version: 0)
        XCTAssertEqual(buffer.readableBytes, 0)
        return decoded
    }

    func testUploaderLifecycleOverTheGeneratedTypes() throws {
        let controller = try MetadataController(directory: dir + "/meta", logger: Logger(label: "test")) { _ in }
        let config = try ServerConfig(properties: ["log.dirs": dir, "s3.object.prepare.ttl.ms": "5000"])
        let service = ControllerService(controller: controller, config: config, logger: Logger(label: "test"))
        for key in [OpenUploaderRequest.apiKey, PrepareS3ObjectRequest.apiKey, CommitS3ObjectsRequest.apiKey, TrimStreamsRequest.apiKey] {
            XCTAssertEqual(ControllerService.supportedApis[key], 0...0)
            XCTAssertNotNil(ApiKey(rawValue: key))
        }
        try controller.createTopic(name: "t", partitions: 2, configs: [:], validateOnly: false)

        var open = OpenUploaderRequest()
        open.nodeId = 3
        let opened = try wire(service.openUploader(try wire(open)))
        XCTAssertEqual(opened.errorCode, 0)
        XCTAssertNil(opened.errorMessage)
        XCTAssertEqual(opened.nodeEpoch, 1)
        XCTAssertEqual(opened.streams.map(\.streamId), [1, 2])
        XCTAssertEqual(opened.streams.map(\.endOffset), [0, 0])

        var prepare = PrepareS3ObjectRequest()
        prepare.nodeId = 3
        prepare.nodeEpoch = opened.nodeEpoch
        prepare.count = 2
        let prepared = try wire(service.prepareObjects(try wire(prepare)))   // TtlMs -1: the configured TTL
        XCTAssertEqual(prepared.errorCode, 0)
        XCTAssertEqual(prepared.firstObjectId, 1)
        let expiry = try XCTUnwrap(controller.image.preparedObjects[1]?.expiresAtMs)
        XCTAssertLessThanOrEqual(expiry - MetadataController.wallClockMs(), 5000)

        var commit = CommitS3ObjectsRequest()
        commit.nodeId = 3
        commit.nodeEpoch = opened.nodeEpoch
        var object = CommitS3ObjectsRequest.S3Object()
        object.objectId = prepared.firstObjectId
        object.objectSize = 123
        object.kind = 0
        var range = CommitS3ObjectsRequest.StreamRange()
        range.streamId = 1
        range.streamEpoch = 0
        range.startOffset = 0
        range.endOffset = 40
        object.ranges = [range]
        commit.objects = [object]
        XCTAssertEqual(try wire(service.commitObjects(try wire(commit))).errorCode, 0)
        XCTAssertEqual(controller.image.streamStates[1]?.endOffset, 40)

        // The same range again: the stream's end moved, and the message says where it is.
        object.objectId = prepared.firstObjectId + 1
        commit.objects = [object]
        let again = try wire(service.commitObjects(try wire(commit)))
        XCTAssertEqual(again.errorCode, 1)
        XCTAssertTrue(again.errorMessage?.contains("offset 40") == true, again.errorMessage ?? "")
        // A stale node epoch, and an unknown kind.
        commit.nodeEpoch = 0
        XCTAssertEqual(try wire(service.commitObjects(try wire(commit))).errorCode, 77)
        commit.nodeEpoch = opened.nodeEpoch
        object.kind = 9
        commit.objects = [object]
        XCTAssertEqual(try wire(service.commitObjects(try wire(commit))).errorCode, 42)

        var trim = TrimStreamsRequest()
        var a = TrimStreamsRequest.TrimStream()
        a.streamId = 1
        a.newStartOffset = 100
        var b = TrimStreamsRequest.TrimStream()
        b.streamId = 77
        b.newStartOffset = 1
        trim.streams = [a, b]
        let trimmed = try wire(service.trimStreams(try wire(trim)))
        XCTAssertEqual(trimmed.streams.map(\.errorCode), [0, 3])
        XCTAssertEqual(trimmed.streams[0].startOffset, 40, "capped at the committed end")
        XCTAssertEqual(controller.image.objectsAwaitingDeletion, [1])
        trim.streams = [a, a]
        XCTAssertEqual(try wire(service.trimStreams(try wire(trim))).streams.map(\.errorCode), [42, 42])
    }
}

extension ControllerServiceObjectTests {
    /// BrokerRegistration and BrokerHeartbeat through the generated types: a broker of another
    /// cluster gets INCONSISTENT_CLUSTER_ID, a second live node with the same id
    /// DUPLICATE_BROKER_REGISTRATION, and a heartbeat of the registered epoch unfences.
    func testBrokerRegistrationAndHeartbeatOverTheGeneratedTypes() throws {
        let controller = try MetadataController(directory: dir + "/meta", logger: Logger(label: "test"),
                                                quorum: .single(clusterId: "cluster-a")) { _ in }
        defer { controller.close() }
        let service = ControllerService(controller: controller, config: try ServerConfig(properties: ["log.dirs": dir]),
                                        logger: Logger(label: "test"))
        func register(cluster: String, incarnation: UUID) throws -> BrokerRegistrationResponse {
            var req = BrokerRegistrationRequest()
            req.brokerId = 4
            req.clusterId = cluster
            req.incarnationId = incarnation.kafka
            var l = BrokerRegistrationRequest.Listener()
            l.name = "PLAINTEXT"
            l.host = "127.0.0.5"
            l.port = 9092
            req.listeners = [l]
            req.rack = "r1"
            return try wire(service.brokerRegistration(try wire(req)))
        }
        XCTAssertEqual(try register(cluster: "cluster-b", incarnation: UUID()).errorCode, KafkaErrorCode.inconsistentClusterId)
        XCTAssertNil(controller.image.brokers[4], "a refused registration writes nothing")
        let first = try register(cluster: "cluster-a", incarnation: UUID())
        XCTAssertEqual(first.errorCode, 0)
        var beat = BrokerHeartbeatRequest()
        beat.brokerId = 4
        beat.brokerEpoch = first.brokerEpoch
        beat.currentMetadataOffset = controller.image.nextOffset
        let answer = try wire(service.brokerHeartbeat(try wire(beat)))
        XCTAssertEqual(answer.errorCode, 0)
        XCTAssertFalse(answer.isFenced)
        XCTAssertEqual(controller.image.brokers[4]?.rack, "r1")
        XCTAssertEqual(controller.image.brokers[4]?.listeners, [BrokerEndpoint(name: "PLAINTEXT", host: "127.0.0.5", port: 9092)])
        XCTAssertEqual(try register(cluster: "cluster-a", incarnation: UUID()).errorCode, KafkaErrorCode.duplicateBrokerRegistration)
        beat.brokerEpoch = first.brokerEpoch + 7
        XCTAssertEqual(try wire(service.brokerHeartbeat(try wire(beat))).errorCode, KafkaErrorCode.staleBrokerEpoch)
    }
}
