import Foundation
import NIOCore
@testable import SiltBroker
import SiltController
import SiltMetadata
import SiltProtocol
import XCTest

/// ElectLeaders on the wire, with one replica per partition: a partition led here or by
/// another broker needs no election, unknown topics and partitions are named as Kafka names
/// them, and an offline partition (its broker fenced) has no leader to elect.
extension BrokerTests {
    /// Broker 1 registered and unfenced beside this broker (0); a 2-partition topic with one
    /// partition on each. Returns (partition led here, partition led by broker 1).
    private func splitTopic(_ name: String) throws -> (mine: Int32, theirs: Int32) {
        let info = MetadataController.BrokerInfo(nodeId: 1, incarnationId: UUID(),
                                                 listeners: [BrokerEndpoint(name: "PLAINTEXT", host: "other", port: 9999)], rack: nil)
        let epoch = try controller.registerBroker(info)
        _ = try controller.brokerHeartbeat(nodeId: 1, brokerEpoch: epoch, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: false)
        try createTopic(name, partitions: 2)
        let image = controller.image
        let topic = image.topic(named: name)!
        let leaders = (0..<Int32(2)).map { image.leadership(topic: topic, partition: $0)!.leader }
        XCTAssertEqual(Set(leaders), [0, 1], "one partition each")
        return (Int32(leaders.firstIndex(of: 0)!), Int32(leaders.firstIndex(of: 1)!))
    }

    private func elect(_ type: Int8, _ partitions: [(String, [Int32])]?, version: Int16 = 2) throws -> ElectLeadersResponse {
        var req = ElectLeadersRequest()
        req.electionType = type
        req.topicPartitions = partitions.map { list in
            list.map { name, ps in
                var t = ElectLeadersRequest.TopicPartitions()
                t.topic = name
                t.partitions = ps
                return t
            }
        }
        return try call(req, version: version)
    }

    private func codes(_ resp: ElectLeadersResponse) -> [String: Int16] {
        var out: [String: Int16] = [:]
        for t in resp.replicaElectionResults {
            for p in t.partitionResult { out["\(t.topic)-\(p.partitionId)"] = p.errorCode }
        }
        return out
    }

    func testElectLeadersWithOneReplicaPerPartition() throws {
        let (mine, theirs) = try splitTopic("elect")
        for type: Int8 in [0, 1] {
            let resp = try elect(type, [("elect", [mine, theirs, 7, -1]), ("nope", [0])])
            XCTAssertEqual(resp.errorCode, 0)
            XCTAssertEqual(resp.replicaElectionResults.map(\.topic), ["elect", "nope"], "request order")
            XCTAssertEqual(resp.replicaElectionResults[0].partitionResult.map(\.partitionId), [mine, theirs, 7, -1])
            XCTAssertEqual(codes(resp), [
                "elect-\(mine)": ErrorCode.electionNotNeeded, "elect-\(theirs)": ErrorCode.electionNotNeeded,
                "elect-7": ErrorCode.unknownTopicOrPartition, "elect--1": ErrorCode.unknownTopicOrPartition,
                "nope-0": ErrorCode.unknownTopicOrPartition,
            ], "election type \(type)")
            XCTAssertEqual(resp.replicaElectionResults[0].partitionResult[2].errorMessage, "No such partition as elect-7")
            XCTAssertEqual(resp.replicaElectionResults[1].partitionResult[0].errorMessage, "No such topic as nope")
        }
        // v0 (no election type on the wire: preferred) answers the same.
        XCTAssertEqual(codes(try elect(0, [("elect", [mine])], version: 0)), ["elect-\(mine)": ErrorCode.electionNotNeeded])
        // Every partition (a null list): none needs an election, so none is listed.
        XCTAssertTrue(try elect(0, nil).replicaElectionResults.allSatisfy { $0.partitionResult.isEmpty })
        // An unknown election type fails the request and every partition.
        let bad = try elect(5, [("elect", [mine])])
        XCTAssertEqual(bad.errorCode, ErrorCode.invalidRequest)
        XCTAssertEqual(codes(bad), ["elect-\(mine)": ErrorCode.invalidRequest])
    }

    func testElectLeadersForAnOfflinePartition() throws {
        let (mine, theirs) = try splitTopic("elect_off")
        let fenced = controller.fenceExpiredBrokers(nowMs: MetadataController.wallClockMs() + 60_000)
        XCTAssertTrue(fenced.contains(1))
        try controller.awaitCommitted()
        try broker.metadata.catchUp(on: group.next()).wait()
        let topic = broker.metadata.image.topic(named: "elect_off")!
        XCTAssertEqual(broker.metadata.image.leadership(topic: topic, partition: theirs)?.leader, -1, "offline")
        let preferred = try elect(0, [("elect_off", [theirs])])
        XCTAssertEqual(codes(preferred), ["elect_off-\(theirs)": ErrorCode.preferredLeaderNotAvailable])
        XCTAssertNotNil(preferred.replicaElectionResults[0].partitionResult[0].errorMessage)
        XCTAssertEqual(codes(try elect(1, [("elect_off", [theirs])])), ["elect_off-\(theirs)": ErrorCode.eligibleLeadersNotAvailable])
        // Every partition: only those that cannot get their leader are listed (this broker's
        // own partition too when the fixture's broker 0 had no live session either).
        let all = codes(try elect(1, nil))
        XCTAssertEqual(all["elect_off-\(theirs)"], ErrorCode.eligibleLeadersNotAvailable)
        XCTAssertEqual(all["elect_off-\(mine)"], fenced.contains(0) ? ErrorCode.eligibleLeadersNotAvailable : nil)
        XCTAssertEqual(Set(all.keys), Set(["elect_off-\(theirs)"] + (fenced.contains(0) ? ["elect_off-\(mine)"] : [])))
    }
}
