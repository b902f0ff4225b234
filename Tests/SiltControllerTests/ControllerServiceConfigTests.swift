import Foundation
import Logging
import SiltConfig
@testable import SiltController
import SiltProtocol
import SiltStreams
import XCTest

/// (Incremental)AlterConfigs as the controller serves them, and range stats through CommitS3Objects.
final class ControllerServiceConfigTests: XCTestCase {
    var dir: String!
    var controller: MetadataController!
    var service: ControllerService!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-service-cfg-\(UUID())").path
        controller = try MetadataController(directory: dir + "/meta", logger: Logger(label: "test"),
                                            validateConfigs: TopicConfig.validate)
        service = ControllerService(controller: controller, config: try ServerConfig(properties: ["log.dirs": dir]),
                                    logger: Logger(label: "test"))
        try controller.createTopic(name: "t", partitions: 1, configs: [:], validateOnly: false)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func resource(_ type: Int8, _ name: String, _ configs: [(String, Int8, String?)]) -> IncrementalAlterConfigsRequest.AlterConfigsResource {
        var r = IncrementalAlterConfigsRequest.AlterConfigsResource()
        r.resourceType = type
        r.resourceName = name
        r.configs = configs.map { k, op, v in
            var c = IncrementalAlterConfigsRequest.AlterableConfig()
            c.name = k
            c.configOperation = op
            c.value = v
            return c
        }
        return r
    }

    func testEachResourceIsAnsweredOnItsOwn() throws {
        var req = IncrementalAlterConfigsRequest()
        req.resources = [
            resource(2, "t", [("retention.ms", 0, "100")]),
            resource(4, "", [("log.retention.bytes", 0, "1000")]),
            resource(2, "missing", [("retention.ms", 0, "1")]),
            resource(4, "0", [("log.retention.ms", 9, "1")]),          // unknown operation
            resource(2, "dup", []), resource(2, "dup", []),             // a resource twice
            resource(7, "x", [("a", 0, "b")]),                          // an unsupported resource type
        ]
        let resp = service.incrementalAlterConfigs(req)
        XCTAssertEqual(resp.responses.map(\.errorCode), [0, 0, 3, 42, 42, 42, 42])
        XCTAssertEqual(resp.responses.map(\.resourceName), ["t", "", "missing", "0", "dup", "dup", "x"])
        XCTAssertNil(resp.responses[0].errorMessage)
        XCTAssertEqual(controller.image.topic(named: "t")?.configs, ["retention.ms": "100"])
        XCTAssertEqual(controller.image.brokerConfigs, [-1: ["log.retention.bytes": "1000"]])

        var legacy = AlterConfigsRequest()
        var r = AlterConfigsRequest.AlterConfigsResource()
        r.resourceType = 2
        r.resourceName = "t"
        var c = AlterConfigsRequest.AlterableConfig()
        c.name = "retention.bytes"
        c.value = "5"
        r.configs = [c]
        legacy.resources = [r]
        XCTAssertEqual(service.alterConfigs(legacy).responses.map(\.errorCode), [0])
        XCTAssertEqual(controller.image.topic(named: "t")?.configs, ["retention.bytes": "5"])
    }

    func testCommitCarriesRangeStatsIntoTheImage() throws {
        let (epoch, _) = try controller.openUploader(nodeId: 0)
        let id = try controller.prepareObjects(nodeId: 0, nodeEpoch: epoch, count: 1, ttlMs: 60_000)
        var commit = CommitS3ObjectsRequest()
        commit.nodeId = 0
        commit.nodeEpoch = epoch
        var o = CommitS3ObjectsRequest.S3Object()
        o.objectId = Int64(bitPattern: id)
        o.objectSize = 500
        var range = CommitS3ObjectsRequest.StreamRange()
        range.streamId = 1
        range.startOffset = 0
        range.endOffset = 10
        range.bytes = 400
        range.maxTimestampMs = 1234
        o.ranges = [range]
        commit.objects = [o]
        XCTAssertEqual(service.commitObjects(commit).errorCode, 0)
        XCTAssertEqual(controller.image.object(id: id)?.rangeStats, [RangeStats(bytes: 400, maxTimestampMs: 1234)])
    }
}
