import Foundation
import NIOCore
@testable import SiltBroker
import SiltController
import SiltMetadata
import SiltProtocol
import SiltRecords
import XCTest

/// The partition seam (`ledPartition`) on the wire: a partition led by another broker, an
/// offline one, and leader epochs older or newer than the broker's, for each request that
/// goes through it. A second broker is registered with the real controller; its partitions
/// are placed by the real placement.
extension BrokerTests {
    /// Registers broker 1 (unfenced) beside this broker (0), creates a 2-partition topic and
    /// returns (partition led here, partition led by broker 1).
    private func twoBrokerTopic(_ name: String) throws -> (mine: Int32, theirs: Int32) {
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

    private func oneRecord() -> ByteBuffer {
        var b = RecordBatchBuilder()
        b.append(key: nil as String?, value: "v", timestamp: 1)
        return b.build()
    }

    func testRequestsForAnotherBrokersPartitionNameTheLeader() throws {
        let (mine, theirs) = try twoBrokerTopic("split")
        XCTAssertEqual(try produce("split", partition: mine, oneRecord()).errorCode, 0)
        // Produce v10+: NOT_LEADER_OR_FOLLOWER with the leader and where it is (KIP-951).
        var req = ProduceRequest()
        req.acks = -1
        req.timeoutMs = 5000
        var t = ProduceRequest.TopicProduceData()
        t.name = "split"
        var p = ProduceRequest.PartitionProduceData()
        p.index = theirs
        p.records = oneRecord()
        t.partitionData = [p]
        req.topicData = [t]
        let resp = try call(req, version: 10)
        let pr = resp.responses[0].partitionResponses[0]
        XCTAssertEqual(pr.errorCode, ErrorCode.notLeaderOrFollower)
        XCTAssertEqual(pr.currentLeader.leaderId, 1)
        XCTAssertEqual(pr.currentLeader.leaderEpoch, 0)
        XCTAssertTrue(resp.nodeEndpoints.contains { $0.nodeId == 1 && $0.host == "other" && $0.port == 9999 })
        // Fetch, ListOffsets, OffsetForLeaderEpoch and DeleteRecords: the same seam.
        var fetch = fetchRequest("split", offset: 0)
        fetch.topics[0].partitions[0].partition = theirs
        let f = try call(fetch, version: 12).responses[0].partitions[0]
        XCTAssertEqual(f.errorCode, ErrorCode.notLeaderOrFollower)
        XCTAssertEqual(f.currentLeader.leaderId, 1)
        var lo = ListOffsetsRequest()
        var lt = ListOffsetsRequest.ListOffsetsTopic()
        lt.name = "split"
        var lp = ListOffsetsRequest.ListOffsetsPartition()
        lp.partitionIndex = theirs
        lp.timestamp = -1
        lt.partitions = [lp]
        lo.topics = [lt]
        XCTAssertEqual(try call(lo, version: 6).topics[0].partitions[0].errorCode, ErrorCode.notLeaderOrFollower)
        var ofe = OffsetForLeaderEpochRequest()
        var ot = OffsetForLeaderEpochRequest.OffsetForLeaderTopic()
        ot.topic = "split"
        var op = OffsetForLeaderEpochRequest.OffsetForLeaderPartition()
        op.partition = theirs
        op.leaderEpoch = 0
        ot.partitions = [op]
        ofe.topics = [ot]
        XCTAssertEqual(try call(ofe, version: 4).topics[0].partitions[0].errorCode, ErrorCode.notLeaderOrFollower)
        var dr = DeleteRecordsRequest()
        var dt = DeleteRecordsRequest.DeleteRecordsTopic()
        dt.name = "split"
        var dp = DeleteRecordsRequest.DeleteRecordsPartition()
        dp.partitionIndex = theirs
        dp.offset = 0
        dt.partitions = [dp]
        dr.topics = [dt]
        dr.timeoutMs = 1000
        XCTAssertEqual(try call(dr, version: 2).topics[0].partitions[0].errorCode, ErrorCode.notLeaderOrFollower)
        // Metadata names each partition's own leader, and both brokers.
        var md = MetadataRequest()
        var mt = MetadataRequest.MetadataRequestTopic()
        mt.name = "split"
        md.topics = [mt]
        let m = try call(md, version: 12)
        XCTAssertEqual(Set(m.brokers.map(\.nodeId)), [0, 1])
        XCTAssertEqual(m.topics[0].partitions.sorted { $0.partitionIndex < $1.partitionIndex }.map(\.leaderId),
                       mine == 0 ? [0, 1] : [1, 0])
    }

    func testLeaderEpochsOlderOrNewerThanTheBrokersAreRefusedAsKafkaDoes() throws {
        let (mine, _) = try twoBrokerTopic("epochs")
        func fetch(epoch: Int32) throws -> Int16 {
            var req = fetchRequest("epochs", offset: 0)
            req.topics[0].partitions[0].partition = mine
            req.topics[0].partitions[0].currentLeaderEpoch = epoch
            return try call(req, version: 12).responses[0].partitions[0].errorCode
        }
        XCTAssertEqual(try fetch(epoch: -1), 0, "no epoch given: not checked")
        XCTAssertEqual(try fetch(epoch: 0), 0)
        XCTAssertEqual(try fetch(epoch: 1), ErrorCode.unknownLeaderEpoch)
        // This broker shuts down (fenced: epoch 1, offline) and comes back (epoch 2): a client
        // still at epoch 0 is told its leader is stale.
        let epoch = broker.lifecycle.currentBrokerEpoch
        _ = try controller.brokerHeartbeat(nodeId: 0, brokerEpoch: epoch, metadataOffset: 0, wantFence: true, wantShutDown: false)
        _ = try controller.brokerHeartbeat(nodeId: 0, brokerEpoch: epoch, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: false)
        try controller.awaitCommitted()
        try broker.metadata.catchUp(on: group.next()).wait()
        XCTAssertEqual(try fetch(epoch: 0), ErrorCode.fencedLeaderEpoch)
        XCTAssertEqual(try fetch(epoch: 2), 0)
    }

    func testAFencedBrokersPartitionsAreOffline() throws {
        let (_, theirs) = try twoBrokerTopic("offline")
        // A minute from now, without heartbeats: both sessions have expired.
        XCTAssertTrue(controller.fenceExpiredBrokers(nowMs: MetadataController.wallClockMs() + 60_000).contains(1))
        try controller.awaitCommitted()
        try broker.metadata.catchUp(on: group.next()).wait()
        var md = MetadataRequest()
        var mt = MetadataRequest.MetadataRequestTopic()
        mt.name = "offline"
        md.topics = [mt]
        let m = try call(md, version: 12)
        let part = try XCTUnwrap(m.topics[0].partitions.first { $0.partitionIndex == theirs })
        XCTAssertEqual(part.leaderId, -1)
        XCTAssertEqual(part.errorCode, ErrorCode.leaderNotAvailable)
        XCTAssertEqual(part.offlineReplicas, [1])
        XCTAssertFalse(m.brokers.contains { $0.nodeId == 1 }, "a fenced broker is not listed")
    }
}
