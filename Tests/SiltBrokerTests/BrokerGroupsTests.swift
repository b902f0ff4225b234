import Foundation
import Logging
import NIOCore
import NIOPosix
@testable import SiltBroker
import SiltConfig
import SiltController
import SiltGroups
import SiltNet
import SiltProtocol
import SiltStorage
import XCTest

/// The group APIs on the wire: FindCoordinator in every shape, a join/sync/commit/fetch
/// round, and offsets reloaded from `__consumer_offsets` after a broker restart. Uses
/// `BrokerTests`' broker, restarted with the group coordinator.
extension BrokerTests {
    /// (Re)starts the broker with the group coordinator on 5 offsets partitions, and waits
    /// until they are loaded.
    func startGroups(overrides: [String: String] = [:]) throws {
        stopBroker()
        try start(overrides: ["offsets.topic.num.partitions": "5", "group.initial.rebalance.delay.ms": "0"]
            .merging(overrides) { _, b in b })
        try broker.startGroupCoordinator(on: group.next())
        // As a client would: the first FindCoordinator creates __consumer_offsets.
        var find = FindCoordinatorRequest()
        find.key = "g"
        _ = try call(find, version: 3)
        let deadline = Date().addingTimeInterval(10)
        while broker.groupCoordinator == nil || (0..<5).contains(where: { broker.groupCoordinator!.isLoading(partition: $0) }) {
            guard Date() < deadline else { throw CancellationError() }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    func testFindCoordinatorAllVersions() throws {
        try startGroups()
        for version: Int16 in 0...3 {
            var req = FindCoordinatorRequest()
            req.key = "g"
            let resp = try call(req, version: version)
            XCTAssertEqual(resp.errorCode, 0)
            XCTAssertEqual(resp.nodeId, 0)
            XCTAssertEqual(resp.port, 9092)
        }
        var batched = FindCoordinatorRequest()
        batched.coordinatorKeys = ["a", "b"]
        let resp = try call(batched, version: 4)
        XCTAssertEqual(resp.coordinators.map(\.key), ["a", "b"])
        XCTAssertEqual(resp.coordinators.map(\.errorCode), [0, 0])
        var txn = FindCoordinatorRequest()
        txn.keyType = 1
        txn.coordinatorKeys = ["tx"]
        let refused = try call(txn, version: 6)
        XCTAssertEqual(refused.coordinators.first?.errorCode, GroupErrorCode.invalidRequest)
        XCTAssertEqual(refused.coordinators.first?.nodeId, -1)
    }

    func testOffsetsTopicIsInternalAndCompacted() throws {
        try startGroups()
        var req = MetadataRequest()
        req.topics = nil
        let resp = try call(req, version: 12)
        let topic = resp.topics.first { $0.name == Broker.offsetsTopic }
        XCTAssertEqual(topic?.isInternal, true)
        XCTAssertEqual(topic?.partitions.count, 5)
        XCTAssertEqual(broker.metadata.image.topic(named: Broker.offsetsTopic)?.configs["cleanup.policy"], "compact")
    }

    /// Join, sync, commit and fetch on the wire; the offsets come back after a restart.
    func testJoinSyncCommitFetchAndReload() throws {
        try startGroups()
        var create = CreateTopicsRequest()
        var t = CreateTopicsRequest.CreatableTopic()
        t.name = "t"
        t.numPartitions = 2
        t.replicationFactor = -1
        create.topics = [t]
        XCTAssertEqual(try call(create, version: 7).topics.first?.errorCode, 0)

        var join = JoinGroupRequest()
        join.groupId = "g"
        join.sessionTimeoutMs = 10_000
        join.rebalanceTimeoutMs = 10_000
        join.protocolType = "consumer"
        var proto = JoinGroupRequest.JoinGroupRequestProtocol()
        proto.name = "range"
        proto.metadata = [0, 0, 0, 0, 0, 1, 0, 1, 0x74, 0xff, 0xff, 0xff, 0xff]
        join.protocols = [proto]
        let first = try call(join, version: 9)
        XCTAssertEqual(first.errorCode, GroupErrorCode.memberIdRequired)
        join.memberId = first.memberId
        let joined = try call(join, version: 9)
        XCTAssertEqual(joined.errorCode, 0)
        XCTAssertEqual(joined.leader, first.memberId)
        XCTAssertEqual(joined.protocolName, "range")

        var sync = SyncGroupRequest()
        sync.groupId = "g"
        sync.generationId = joined.generationId
        sync.memberId = joined.memberId
        sync.protocolType = "consumer"
        sync.protocolName = "range"
        var a = SyncGroupRequest.SyncGroupRequestAssignment()
        a.memberId = joined.memberId
        a.assignment = [1, 2, 3]
        sync.assignments = [a]
        XCTAssertEqual(try call(sync, version: 5).assignment, [1, 2, 3])
        sync.protocolName = "roundrobin"
        XCTAssertEqual(try call(sync, version: 5).errorCode, GroupErrorCode.inconsistentGroupProtocol)

        var commit = OffsetCommitRequest()
        commit.groupId = "g"
        commit.generationIdOrMemberEpoch = joined.generationId
        commit.memberId = joined.memberId
        var ct = OffsetCommitRequest.OffsetCommitRequestTopic()
        ct.name = "t"
        ct.partitions = [(Int32(0), Int64(10), "m0"), (1, 20, nil), (7, 1, nil)].map { (p: Int32, o: Int64, m: String?) in
            var cp = OffsetCommitRequest.OffsetCommitRequestPartition()
            cp.partitionIndex = p
            cp.committedOffset = o
            cp.committedMetadata = m
            return cp
        }
        commit.topics = [ct]
        let committed = try call(commit, version: 8)
        XCTAssertEqual(committed.topics.first?.partitions.map(\.errorCode), [0, 0, ErrorCode.unknownTopicOrPartition])
        commit.generationIdOrMemberEpoch += 5
        XCTAssertEqual(try call(commit, version: 8).topics.first?.partitions.first?.errorCode, GroupErrorCode.illegalGeneration)

        try checkFetched()
        try checkAdministration()
        try startGroups()
        try checkFetched()
    }

    /// The group is stable and subscribed to "t": its offsets and itself stay.
    private func checkAdministration() throws {
        var offsetDelete = OffsetDeleteRequest()
        offsetDelete.groupId = "g"
        var dt = OffsetDeleteRequest.OffsetDeleteRequestTopic()
        dt.name = "t"
        var dp = OffsetDeleteRequest.OffsetDeleteRequestPartition()
        dp.partitionIndex = 0
        dt.partitions = [dp]
        offsetDelete.topics = [dt]
        let od = try call(offsetDelete, version: 0)
        XCTAssertEqual(od.errorCode, 0)
        XCTAssertEqual(od.topics.first?.partitions.first?.errorCode, GroupErrorCode.groupSubscribedToTopic)

        var list = ListGroupsRequest()
        list.statesFilter = ["stable"]
        list.typesFilter = ["classic"]
        XCTAssertEqual(try call(list, version: 5).groups.map(\.groupId), ["g"])
        XCTAssertEqual(try call(list, version: 5).groups.first?.groupState, "Stable")
        list.typesFilter = ["consumer"]
        XCTAssertEqual(try call(list, version: 5).groups.count, 0, "no KIP-848 groups here")
        list.typesFilter = []
        list.statesFilter = ["Empty"]
        XCTAssertEqual(try call(list, version: 4).groups.count, 0)

        var describe = DescribeGroupsRequest()
        describe.groups = ["g", "nobody"]
        let described = try call(describe, version: 5)
        XCTAssertEqual(described.groups.map(\.groupState), ["Stable", "Dead"])
        XCTAssertEqual(described.groups[0].protocolData, "range")
        XCTAssertEqual(described.groups[0].members.first?.memberAssignment, [1, 2, 3])
        XCTAssertEqual(described.groups[0].members.first?.clientId, "broker-tests")
        XCTAssertEqual(described.groups.map(\.authorizedOperations), [Int32.min, Int32.min], "not asked for")
        describe.includeAuthorizedOperations = true
        XCTAssertEqual(try call(describe, version: 5).groups.map(\.authorizedOperations),
                       [KafkaAclOperation.allowed(.group), KafkaAclOperation.allowed(.group)], "no authorizer: all of a group's")

        var delete = DeleteGroupsRequest()
        delete.groupsNames = ["g", "nobody"]
        let deleted = try call(delete, version: 2)
        XCTAssertEqual(deleted.results.map(\.errorCode), [GroupErrorCode.nonEmptyGroup, GroupErrorCode.groupIdNotFound])
    }

    private func checkFetched() throws {
        var v1 = OffsetFetchRequest()
        v1.groupId = "g"
        var ft = OffsetFetchRequest.OffsetFetchRequestTopic()
        ft.name = "t"
        ft.partitionIndexes = [0, 1]
        v1.topics = [ft]
        let old = try call(v1, version: 1)
        XCTAssertEqual(old.topics.first?.partitions.map(\.committedOffset), [10, 20])
        XCTAssertEqual(old.topics.first?.partitions.map(\.metadata), ["m0", ""])

        var v8 = OffsetFetchRequest()
        var g = OffsetFetchRequest.OffsetFetchRequestGroup()
        g.groupId = "g"
        g.topics = nil
        var other = OffsetFetchRequest.OffsetFetchRequestGroup()
        other.groupId = "nobody"
        other.topics = nil
        v8.groups = [g, other]
        v8.requireStable = true
        let multi = try call(v8, version: 9)
        XCTAssertEqual(multi.groups.map(\.groupId), ["g", "nobody"])
        XCTAssertEqual(multi.groups[0].topics.first?.partitions.map(\.committedOffset), [10, 20])
        XCTAssertEqual(multi.groups[1].topics.count, 0)
    }
}
