import Foundation
@testable import SiltBroker
import SiltGroups
import SiltMetrics
import SiltProtocol
import XCTest

/// kafka_network_requestmetrics_errors counts the error codes of every API's responses
/// (generated `errorCodeCount`), through the broker's real request path.
extension BrokerTests {
    private func errors(_ apiKey: Int16) -> UInt64? {
        broker.metrics.requestStats().first { $0.apiKey == apiKey }?.errors
    }

    func testErrorsAreCountedForEveryApi() throws {
        try startGroups()
        // APIs the old hand-written list did not know: KIP-848's heartbeat, CreatePartitions,
        // DescribeConfigs, ConsumerGroupDescribe.
        var hb = ConsumerGroupHeartbeatRequest()
        hb.groupId = "nobody"
        hb.memberId = "m"
        hb.memberEpoch = 3
        XCTAssertEqual(try call(hb, version: 0).errorCode, GroupErrorCode.unknownMemberId)
        XCTAssertEqual(errors(ConsumerGroupHeartbeatRequest.apiKey), 1)

        var cp = CreatePartitionsRequest()
        for name in ["missing-a", "missing-b"] {
            var t = CreatePartitionsRequest.CreatePartitionsTopic()
            t.name = name
            t.count = 3
            t.assignments = nil
            cp.topics.append(t)
        }
        cp.timeoutMs = 1000
        let cpResp = try call(cp, version: 1)
        XCTAssertEqual(cpResp.results.filter { $0.errorCode != 0 }.count, 2)
        XCTAssertEqual(errors(CreatePartitionsRequest.apiKey), 2, "one per failed topic")

        var cgd = ConsumerGroupDescribeRequest()
        cgd.groupIds = ["nobody", "nobody-else"]
        _ = try call(cgd, version: 0)
        XCTAssertEqual(errors(ConsumerGroupDescribeRequest.apiKey), 2, "one per unknown group")

        // A success counts none, and a request is still counted as a request.
        var ok = ApiVersionsRequest()
        ok.clientSoftwareName = "t"
        ok.clientSoftwareVersion = "1"
        XCTAssertEqual(try call(ok, version: 3).errorCode, 0)
        XCTAssertEqual(errors(ApiVersionsRequest.apiKey), 0)
    }

    func testGeneratedErrorCountWalksNestedStructs() {
        var p = ProduceResponse()
        var t = ProduceResponse.TopicProduceResponse()
        var ok = ProduceResponse.PartitionProduceResponse()
        ok.errorCode = 0
        var bad = ProduceResponse.PartitionProduceResponse()
        bad.errorCode = KafkaErrorCode.notLeaderOrFollower
        t.partitionResponses = [ok, bad, bad]
        p.responses = [t, t]
        XCTAssertEqual(p.errorCodeCount, 4)
        var f = FetchResponse()
        f.errorCode = 1
        XCTAssertEqual(f.errorCodeCount, 1)
        XCTAssertEqual(MetadataResponse().errorCodeCount, 0)
    }
}
