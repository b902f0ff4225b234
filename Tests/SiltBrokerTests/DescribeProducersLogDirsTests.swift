import Foundation
import NIOCore
@testable import SiltBroker
import SiltProtocol
import XCTest

/// DescribeProducers and DescribeLogDirs on the wire, for partitions of one replica each.
extension BrokerTests {
    func testDescribeProducersListsTheLeadersIdempotentProducers() throws {
        try createTopic("dprod", partitions: 2)
        let init_ = try initProducerId()
        XCTAssertEqual(try produce("dprod", idempotentBatch(pid: init_.producerId, seq: 0, ["a", "b", "c"])).errorCode, 0)
        XCTAssertEqual(try produce("dprod", idempotentBatch(pid: init_.producerId, seq: 3, ["d"])).errorCode, 0)
        XCTAssertEqual(try produce("dprod", partition: 1, batch(["plain"])).errorCode, 0)

        var req = DescribeProducersRequest()
        var t = DescribeProducersRequest.TopicRequest()
        t.name = "dprod"
        t.partitionIndexes = [0, 1, 9]
        var unknown = DescribeProducersRequest.TopicRequest()
        unknown.name = "nope"
        unknown.partitionIndexes = [0]
        req.topics = [t, unknown]
        let resp: DescribeProducersResponse = try call(req, version: 0)
        XCTAssertEqual(resp.topics.map(\.name), ["dprod", "nope"])
        let parts = resp.topics[0].partitions
        XCTAssertEqual(parts.map(\.partitionIndex), [0, 1, 9])
        XCTAssertEqual(parts.map(\.errorCode), [0, 0, ErrorCode.unknownTopicOrPartition])
        let producer = try XCTUnwrap(parts[0].activeProducers.first)
        XCTAssertEqual(parts[0].activeProducers.count, 1)
        XCTAssertEqual(producer.producerId, init_.producerId)
        XCTAssertEqual(producer.producerEpoch, Int32(init_.producerEpoch))
        XCTAssertEqual(producer.lastSequence, 3)
        XCTAssertGreaterThan(producer.lastTimestamp, 0)
        XCTAssertEqual(producer.coordinatorEpoch, -1)
        XCTAssertEqual(producer.currentTxnStartOffset, -1)
        XCTAssertEqual(parts[1].activeProducers.count, 0, "a producer without an id is not tracked")
        XCTAssertEqual(resp.topics[1].partitions.map(\.errorCode), [ErrorCode.unknownTopicOrPartition])
    }

    func testDescribeLogDirsListsThePartitionsLedHere() throws {
        try createTopic("dirs_a", partitions: 2)
        try createTopic("dirs_b", partitions: 1)
        XCTAssertEqual(try produce("dirs_a", batch(["x"])).errorCode, 0)
        for version: Int16 in [0, 2, 4] {
            var all = DescribeLogDirsRequest()
            all.topics = nil
            let resp: DescribeLogDirsResponse = try call(all, version: version)
            XCTAssertEqual(resp.results.count, 1, "v\(version)")
            let dir = resp.results[0]
            XCTAssertEqual(dir.errorCode, 0)
            XCTAssertFalse(dir.logDir.isEmpty)
            let listed = dir.topics.filter { $0.name.hasPrefix("dirs_") }
            XCTAssertEqual(listed.map(\.name), ["dirs_a", "dirs_b"], "v\(version)")
            XCTAssertEqual(listed[0].partitions.map(\.partitionIndex), [0, 1])
            XCTAssertTrue(listed.flatMap(\.partitions).allSatisfy { $0.offsetLag == 0 && !$0.isFutureKey && $0.partitionSize >= 0 })
        }
        var some = DescribeLogDirsRequest()
        var t = DescribeLogDirsRequest.DescribableLogDirTopic()
        t.topic = "dirs_a"
        t.partitions = [1, 5]
        some.topics = [t]
        let resp: DescribeLogDirsResponse = try call(some, version: 4)
        XCTAssertEqual(resp.results[0].topics.map(\.name), ["dirs_a"])
        XCTAssertEqual(resp.results[0].topics[0].partitions.map(\.partitionIndex), [1], "a partition not hosted here is left out")
    }
}
