import Foundation
import NIOCore
@testable import SiltBroker
import SiltProtocol
import XCTest

/// DeleteRecords on the log-buffer write path with a real uploader: the trim waits for the
/// upload of the offset, then ListOffsets(EARLIEST) and Fetch honour the new start.
extension LogBufferWritePathTests {
    func createTopic(_ name: String, configs: [String: String] = [:]) throws {
        var create = CreateTopicsRequest()
        var ct = CreateTopicsRequest.CreatableTopic()
        ct.name = name
        ct.numPartitions = 1
        ct.replicationFactor = -1
        ct.configs = configs.map { k, v in
            var c = CreateTopicsRequest.CreatableTopicConfig()
            c.name = k
            c.value = v
            return c
        }
        create.topics = [ct]
        XCTAssertEqual(try send(create, version: 7).wait()?.topics[0].errorCode, 0)
    }

    func deleteRecords(_ parts: [(topic: String, partition: Int32, offset: Int64)], timeoutMs: Int32 = 5000) throws
        -> [DeleteRecordsResponse.DeleteRecordsPartitionResult]
    {
        var req = DeleteRecordsRequest()
        req.timeoutMs = timeoutMs
        var byTopic: [String: [DeleteRecordsRequest.DeleteRecordsPartition]] = [:]
        var order: [String] = []
        for p in parts {
            if byTopic[p.topic] == nil { order.append(p.topic) }
            var dp = DeleteRecordsRequest.DeleteRecordsPartition()
            dp.partitionIndex = p.partition
            dp.offset = p.offset
            byTopic[p.topic, default: []].append(dp)
        }
        req.topics = order.map { name in
            var t = DeleteRecordsRequest.DeleteRecordsTopic()
            t.name = name
            t.partitions = byTopic[name]!
            return t
        }
        let resp = try XCTUnwrap(try send(req, version: 2).wait())
        XCTAssertEqual(resp.topics.map(\.name), order)
        return resp.topics.flatMap(\.partitions)
    }

    func earliest(_ topic: String) throws -> Int64 {
        var req = ListOffsetsRequest()
        req.replicaId = -1
        var t = ListOffsetsRequest.ListOffsetsTopic()
        t.name = topic
        var p = ListOffsetsRequest.ListOffsetsPartition()
        p.timestamp = -2
        t.partitions = [p]
        req.topics = [t]
        return try XCTUnwrap(try send(req, version: 6).wait()).topics[0].partitions[0].offset
    }

    func testDeleteRecordsWaitsForTheUploadThenTrims() async throws {
        // Data the uploader never sees stays in the log buffer: the trim times out, nothing moves.
        fakeWAL.lock.withLock { fakeWAL.releaseUploaderReader = true }
        try createTopic("stuck")
        XCTAssertEqual(try send(produceRequest("stuck", values: ["a", "b", "c"]), version: 9).wait()?
            .responses[0].partitionResponses[0].errorCode, 0)
        // (A 200 ms timeout still waits deleteRecordsUploadWaitMsMin for the upload.)
        let started = Date()
        let timedOut = try deleteRecords([("stuck", 0, 2)], timeoutMs: 200)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started) * 1000, Double(Broker.deleteRecordsUploadWaitMsMin) - 50)
        XCTAssertEqual(timedOut.map(\.errorCode), [7], "REQUEST_TIMED_OUT")
        XCTAssertEqual(timedOut.map(\.lowWatermark), [-1])
        XCTAssertEqual(try earliest("stuck"), 0)

        // An uploader that uploads on its own only every 10 minutes: DeleteRecords asks it to
        // upload the stream at once, so the 5 s request timeout is plenty.
        _ = try await startUploader(thresholdBytes: 64 << 20, intervalMs: 600_000)
        try createTopic("d")
        let values = (0..<10).map { "v\($0)" }
        XCTAssertEqual(try send(produceRequest("d", values: values), version: 9).wait()?
            .responses[0].partitionResponses[0].errorCode, 0)
        // Offset 4 is not uploaded yet: the broker asks for the upload, waits for the commit, then
        // trims; also with a 0 timeout (Kafka answers a single-replica partition at once).
        let done = try deleteRecords([("d", 0, 4)], timeoutMs: 0)
        XCTAssertEqual(done.map(\.errorCode), [0])
        XCTAssertEqual(done.map(\.lowWatermark), [4])
        XCTAssertEqual(try earliest("d"), 4)
        XCTAssertEqual(controller.image.streamStates[controller.image.topic(named: "d")!.streamIds[0]]?.startOffset, 4)
        let below = try fetch("d", offset: 0)
        XCTAssertEqual(below.errorCode, 1, "OFFSET_OUT_OF_RANGE below the new start")
        XCTAssertEqual(below.logStartOffset, 4)
        XCTAssertEqual(try fetch("d", offset: 4).errorCode, 0)

        // Edge cases in one request: past the high watermark, below -1, a duplicate partition,
        // an unknown partition, and an offset below the start (no change).
        let edge = try deleteRecords([("d", 0, 11), ("nope", 0, 1), ("e", 0, 1)])
        XCTAssertEqual(edge.map(\.errorCode), [1, 3, 3])
        XCTAssertEqual(try deleteRecords([("d", 0, -2)]).map(\.errorCode), [1])
        XCTAssertEqual(try deleteRecords([("d", 0, 2), ("d", 0, 3)]).map(\.errorCode), [0, 42])
        XCTAssertEqual(try deleteRecords([("d", 0, 2)]).map(\.lowWatermark), [4])
        // -1: up to the high watermark.
        let all = try deleteRecords([("d", 0, -1)])
        XCTAssertEqual(all.map(\.errorCode), [0])
        XCTAssertEqual(all.map(\.lowWatermark), [10])
        XCTAssertEqual(try earliest("d"), 10)
    }

    func testDeleteRecordsOfACompactedTopicIsAPolicyViolation() throws {
        try createTopic("compacted", configs: ["cleanup.policy": "compact"])
        let refused = try deleteRecords([("compacted", 0, -1)])
        XCTAssertEqual(refused.map(\.errorCode), [44], "POLICY_VIOLATION")
        XCTAssertEqual(refused.map(\.lowWatermark), [-1])
        XCTAssertEqual(try earliest("compacted"), 0)
        // The policy is checked first, as in Kafka: even an offset past the end gets it.
        XCTAssertEqual(try deleteRecords([("compacted", 0, 5)]).map(\.errorCode), [44])
    }
}
