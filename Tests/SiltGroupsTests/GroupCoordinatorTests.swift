import NIOCore
import SiltGroups
import SiltProtocol
import XCTest

final class GroupCoordinatorTests: XCTestCase {
    let tp0 = TopicPartition("t", 0)
    let tp1 = TopicPartition("t", 1)

    /// One member: MEMBER_ID_REQUIRED, then a join that completes at once (no initial
    /// delay), a leader with the member list, and a stable group after SyncGroup.
    func testSingleMemberJoinSyncHeartbeat() {
        let h = Harness()
        let (id, join) = h.joinNew()
        let r = join.last!
        XCTAssertEqual(r.error, GroupErrorCode.none)
        XCTAssertEqual(r.generationId, 1)
        XCTAssertEqual(r.leader, id)
        XCTAssertEqual(r.protocolName, "range")
        XCTAssertEqual(r.members.map(\.memberId), [id])
        XCTAssertEqual(r.members.first?.metadata, [0, 1])
        let sync = h.sync(generation: 1, memberId: id, assignments: [id: [9, 9]])
        XCTAssertEqual(sync.last?.error, GroupErrorCode.none)
        XCTAssertEqual(sync.last?.assignment, [9, 9])
        XCTAssertEqual(h.coordinator.describe("g").state, .stable)
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: 1, memberId: id, groupInstanceId: nil), 0)
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: 0, memberId: id, groupInstanceId: nil),
                       GroupErrorCode.illegalGeneration)
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: 1, memberId: "nobody", groupInstanceId: nil),
                       GroupErrorCode.unknownMemberId)
    }

    /// A second member makes the group rebalance: the first learns it from its heartbeat,
    /// rejoins, and both get generation 2; a follower's SyncGroup waits for the leader's.
    func testSecondMemberTriggersRebalance() {
        let h = Harness()
        let (a, joinA) = h.joinNew()
        XCTAssertEqual(h.sync(generation: 1, memberId: a, assignments: [a: [1]]).last?.error, 0)
        let (b, joinB) = h.joinNew()
        XCTAssertNil(joinB.last, "the new member waits for the others to rejoin")
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: 1, memberId: a, groupInstanceId: nil),
                       GroupErrorCode.rebalanceInProgress)
        XCTAssertEqual(h.sync(generation: 1, memberId: a).last?.error, GroupErrorCode.rebalanceInProgress)
        let rejoinA = h.join(memberId: a)
        XCTAssertEqual(joinB.last?.generationId, 2)
        XCTAssertEqual(rejoinA.last?.generationId, 2)
        XCTAssertEqual(joinA.all.count, 1)
        XCTAssertEqual(rejoinA.last?.leader, a, "the leader keeps leading")
        XCTAssertEqual(Set(rejoinA.last!.members.map(\.memberId)), [a, b])
        XCTAssertEqual(joinB.last?.members, [], "followers get no member list")
        let syncB = h.sync(generation: 2, memberId: b)
        XCTAssertNil(syncB.last, "the follower waits for the leader's assignment")
        let syncA = h.sync(generation: 2, memberId: a, assignments: [a: [1], b: [2]])
        XCTAssertEqual(syncA.last?.assignment, [1])
        XCTAssertEqual(syncB.last?.assignment, [2])
        XCTAssertEqual(h.coordinator.describe("g").members.count, 2)
    }

    func testSessionExpiryRemovesSilentMember() {
        let h = Harness()
        let (a, _) = h.joinNew(session: 10_000)
        _ = h.sync(generation: 1, memberId: a, assignments: [:])
        let (b, joinB) = h.joinNew(session: 10_000)
        _ = h.join(memberId: a, session: 10_000)
        _ = h.sync(generation: 2, memberId: a, assignments: [:])
        XCTAssertEqual(joinB.last?.generationId, 2)
        // Only b heartbeats; a goes silent.
        for _ in 0..<4 {
            h.advance(3000)
            _ = h.coordinator.heartbeat(groupId: "g", generationId: 2, memberId: b, groupInstanceId: nil)
        }
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: 2, memberId: b, groupInstanceId: nil),
                       GroupErrorCode.rebalanceInProgress, "a expired, so the group rebalances")
        let rejoin = h.join(memberId: b)
        XCTAssertEqual(rejoin.last?.generationId, 3)
        XCTAssertEqual(rejoin.last?.members.map(\.memberId), [b])
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: 3, memberId: a, groupInstanceId: nil),
                       GroupErrorCode.unknownMemberId)
    }

    /// librdkafka's 0081: a static member closes (no LeaveGroup) and DeleteGroups comes one
    /// session timeout later. The answer must not depend on where the ~100 ms tick falls:
    /// DescribeGroups, ListGroups and DeleteGroups expire due sessions before answering.
    func testExpiredSessionsAreAppliedBeforeDescribeListAndDelete() {
        let h = Harness()
        let joined = h.join(instance: "i-1", session: 6000).last!
        XCTAssertEqual(h.sync(generation: joined.generationId, memberId: joined.memberId, instance: "i-1",
                              assignments: [joined.memberId: [1]]).last?.error, 0)
        h.clock.advance(5999)   // no tick: the owner's timer has not run yet
        let box = Box<Int16>()
        h.coordinator.deleteGroup("g") { box.put($0) }
        XCTAssertEqual(box.last, GroupErrorCode.nonEmptyGroup, "the session is not over yet")
        XCTAssertEqual(h.coordinator.describe("g").members.count, 1)
        h.clock.advance(1)      // the session is over; still no tick
        XCTAssertEqual(h.coordinator.listGroups(states: nil).groups.first?.state, "Empty")
        let d = h.coordinator.describe("g")
        XCTAssertEqual(d.state, .empty)
        XCTAssertEqual(d.members.count, 0)
        let deleted = Box<Int16>()
        h.coordinator.deleteGroup("g") { deleted.put($0) }
        XCTAssertEqual(deleted.last, GroupErrorCode.none)
    }

    /// A member that does not rejoin within the rebalance timeout is dropped and the
    /// rebalance completes with the rest.
    func testRebalanceTimeoutDropsMembersThatDidNotRejoin() {
        let h = Harness()
        let (a, _) = h.joinNew(session: 60_000, rebalance: 20_000)
        _ = h.sync(generation: 1, memberId: a)
        let (_, joinB) = h.joinNew(session: 60_000, rebalance: 20_000)
        h.advance(19_000)
        XCTAssertNil(joinB.last)
        h.advance(1_500)
        XCTAssertEqual(joinB.last?.generationId, 2)
        XCTAssertEqual(joinB.last?.leader, joinB.last?.memberId, "the only member left leads")
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: 1, memberId: a, groupInstanceId: nil),
                       GroupErrorCode.unknownMemberId)
    }

    /// group.initial.rebalance.delay.ms: a new group waits for more members, each new one
    /// extending the wait, and then completes one rebalance with all of them.
    func testInitialRebalanceDelayGathersMembers() {
        let h = Harness(initialDelayMs: 3000)
        let (_, joinA) = h.joinNew()
        h.advance(2000)
        XCTAssertNil(joinA.last)
        let (_, joinB) = h.joinNew()
        h.advance(2000)
        XCTAssertNil(joinA.last, "b's join extended the delay")
        h.advance(1100)
        XCTAssertEqual(joinA.last?.generationId, 1)
        XCTAssertEqual(joinB.last?.generationId, 1)
        XCTAssertEqual(max(joinA.last!.members.count, joinB.last!.members.count), 2)
    }

    /// A member that never sends its SyncGroup within the rebalance timeout is dropped;
    /// the members that did wait learn of the new rebalance.
    func testMissingSyncGroupExpires() {
        let h = Harness()
        let (a, _) = h.joinNew(session: 60_000, rebalance: 20_000)
        _ = h.sync(generation: 1, memberId: a)
        let (b, joinB) = h.joinNew(session: 60_000, rebalance: 20_000)
        let rejoinA = h.join(memberId: a, session: 60_000, rebalance: 20_000)
        XCTAssertEqual(joinB.last?.generationId, 2)
        XCTAssertEqual(rejoinA.last?.leader, a)
        let syncB = h.sync(generation: 2, memberId: b)   // the leader, a, never syncs
        for _ in 0..<7 {
            h.advance(3000)
            _ = h.coordinator.heartbeat(groupId: "g", generationId: 2, memberId: a, groupInstanceId: nil)
        }
        XCTAssertEqual(syncB.last?.error, GroupErrorCode.rebalanceInProgress)
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: 2, memberId: a, groupInstanceId: nil),
                       GroupErrorCode.unknownMemberId)
        XCTAssertEqual(h.join(memberId: b, session: 60_000, rebalance: 20_000).last?.members.map(\.memberId), [b])
    }

    func testInvalidSessionTimeoutAndMaxSize() {
        let h = Harness(maxSize: 1)
        XCTAssertEqual(h.join(session: 10).last?.error, GroupErrorCode.invalidSessionTimeout)
        XCTAssertEqual(h.join(session: 1_800_001).last?.error, GroupErrorCode.invalidSessionTimeout)
        XCTAssertEqual(h.join("").last?.error, GroupErrorCode.invalidGroupId)
        let (_, first) = h.joinNew()
        XCTAssertEqual(first.last?.error, 0)
        XCTAssertEqual(h.join().last?.error, GroupErrorCode.groupMaxSizeReached)
        XCTAssertEqual(h.join(protocols: [(name: "other", metadata: [])]).last?.error, GroupErrorCode.inconsistentGroupProtocol)
    }

    /// KIP-345: a restarted static member takes its old place without a rebalance; the old
    /// member id is fenced.
    func testStaticMemberReplacement() {
        let h = Harness()
        let leader = h.join(instance: "i-1").last!
        XCTAssertEqual(leader.error, 0)
        let follower = h.join(instance: "i-2")
        XCTAssertNil(follower.last)
        let rejoinLeader = h.join(memberId: leader.memberId, instance: "i-1")
        let gen = rejoinLeader.last!.generationId
        let followerId = follower.last!.memberId
        _ = h.sync(generation: gen, memberId: leader.memberId, instance: "i-1",
                   assignments: [leader.memberId: [1], followerId: [2]])
        // The follower restarts: unknown member id, same instance id.
        let restarted = h.join(instance: "i-2").last!
        XCTAssertEqual(restarted.error, 0)
        XCTAssertNotEqual(restarted.memberId, followerId)
        XCTAssertEqual(restarted.generationId, gen, "no rebalance for a static member's restart")
        XCTAssertEqual(h.coordinator.describe("g").state, .stable)
        XCTAssertEqual(h.sync(generation: gen, memberId: restarted.memberId, instance: "i-2").last?.assignment, [2])
        XCTAssertEqual(h.coordinator.heartbeat(groupId: "g", generationId: gen, memberId: followerId, groupInstanceId: "i-2"),
                       GroupErrorCode.fencedInstanceId)
        let (_, errors) = h.coordinator.leave(groupId: "g", members: [(memberId: followerId, groupInstanceId: "i-2")])
        XCTAssertEqual(errors, [GroupErrorCode.fencedInstanceId])
    }

    /// KIP-814: a restarted static leader keeps the group stable. One that can skip the
    /// assignment (v9+) is told to, with the member list; an older client (librdkafka sends
    /// JoinGroup v5) is answered with the old leader's id and no members, so it syncs as a
    /// follower and gets its old assignment back: no rebalance (librdkafka's test 0102).
    func testStaticLeaderRestart() {
        let h = Harness()
        let leader = h.join(instance: "i-1").last!
        _ = h.sync(generation: 1, memberId: leader.memberId, instance: "i-1", assignments: [leader.memberId: [7]])
        var req = JoinRequest(groupId: "g", groupInstanceId: "i-1", protocols: consumerProtocols,
                              sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 30_000)
        req.supportsSkipAssignment = true
        let skipped = Box<JoinResult>()
        h.coordinator.join(req) { skipped.put($0) }
        XCTAssertEqual(skipped.last?.skipAssignment, true)
        XCTAssertEqual(skipped.last?.generationId, 1)
        XCTAssertEqual(skipped.last?.leader, skipped.last?.memberId)
        XCTAssertEqual(skipped.last?.members.count, 1)
        XCTAssertEqual(h.coordinator.describe("g").state, .stable)
        let v9Id = skipped.last!.memberId
        let old = h.join(instance: "i-1").last!   // v < 9: still no rebalance
        XCTAssertEqual(old.error, 0)
        XCTAssertEqual(old.generationId, 1)
        XCTAssertFalse(old.skipAssignment)
        XCTAssertEqual(old.leader, v9Id, "the previous incarnation's id: this one must not assign")
        XCTAssertNotEqual(old.memberId, old.leader)
        XCTAssertEqual(old.members.count, 0)
        XCTAssertEqual(h.coordinator.describe("g").state, .stable)
        XCTAssertEqual(h.sync(generation: 1, memberId: old.memberId, instance: "i-1").last?.assignment, [7])
    }

    /// A restarted static member whose subscription metadata changed but whose protocols
    /// leave the group's selected protocol as it is causes no rebalance (Kafka compares the
    /// selected protocol, not the metadata bytes); one that changes the selection does.
    func testStaticRejoinRebalancesOnlyWhenTheSelectedProtocolChanges() {
        let h = Harness()
        let a = h.join(instance: "i-1").last!
        let b = h.join(instance: "i-2")
        let rejoinA = h.join(memberId: a.memberId, instance: "i-1").last!
        let bId = b.last!.memberId
        _ = h.sync(generation: rejoinA.generationId, memberId: a.memberId, instance: "i-1",
                   assignments: [a.memberId: [1], bId: [2]])
        let gen = rejoinA.generationId
        let newMetadata: [(name: String, metadata: [UInt8])] = [(name: "range", metadata: [0, 1, 9]), (name: "roundrobin", metadata: [0, 2, 9])]
        let restarted = h.join(instance: "i-2", protocols: newMetadata).last!
        XCTAssertEqual(restarted.error, 0)
        XCTAssertEqual(restarted.generationId, gen, "same selected protocol: no rebalance")
        XCTAssertEqual(h.coordinator.describe("g").state, .stable)
        XCTAssertEqual(h.sync(generation: gen, memberId: restarted.memberId, instance: "i-2").last?.assignment, [2])
        // Now it comes back offering only roundrobin: the selection changes, the group rebalances.
        let changed = h.join(instance: "i-2", protocols: [(name: "roundrobin", metadata: [0, 2])])
        XCTAssertNil(changed.last, "parked until the other member rejoins")
        XCTAssertEqual(h.coordinator.describe("g").state, .preparingRebalance)
    }

    func testBatchedLeave() {
        let h = Harness()
        let (a, _) = h.joinNew()
        _ = h.sync(generation: 1, memberId: a)
        let (top, errors) = h.coordinator.leave(groupId: "g", members: [(memberId: a, groupInstanceId: nil),
                                                                         (memberId: "ghost", groupInstanceId: nil)])
        XCTAssertEqual(top, 0)
        XCTAssertEqual(errors, [0, GroupErrorCode.unknownMemberId])
        let d = h.coordinator.describe("g")
        XCTAssertEqual(d.state, .empty)
        XCTAssertEqual(d.members.count, 0)
        XCTAssertEqual(h.coordinator.leave(groupId: "nope", members: [(memberId: "x", groupInstanceId: nil)]).1,
                       [GroupErrorCode.unknownMemberId])
    }

    func testCommitValidation() {
        let h = Harness()
        // Simple (standalone) commit: generation -1, no member; creates the group.
        XCTAssertEqual(h.commit(generation: -1, memberId: "", [tp0: 5]).last, 0)
        XCTAssertEqual(h.fetch(), [tp0: 5])
        XCTAssertEqual(h.commit("ghost-group", generation: 4, memberId: "m", [tp0: 1]).last, GroupErrorCode.illegalGeneration)
        let (a, _) = h.joinNew()
        XCTAssertEqual(h.commit(generation: 1, memberId: a, [tp0: 7]).last, GroupErrorCode.rebalanceInProgress,
                       "CompletingRebalance: commits wait for the assignment")
        _ = h.sync(generation: 1, memberId: a)
        XCTAssertEqual(h.commit(generation: 1, memberId: a, [tp0: 7, tp1: 3], metadata: "meta").last, 0)
        XCTAssertEqual(h.commit(generation: 5, memberId: a, [tp0: 8]).last, GroupErrorCode.illegalGeneration)
        XCTAssertEqual(h.commit(generation: 1, memberId: "stranger", [tp0: 8]).last, GroupErrorCode.unknownMemberId)
        XCTAssertEqual(h.commit(generation: -1, memberId: "", [tp0: 8]).last, GroupErrorCode.unknownMemberId,
                       "no generation-less commits while the group has members")
        let fetched = h.coordinator.fetchOffsets(groupId: "g", partitions: [tp0, tp1, TopicPartition("u", 0)], requireStable: false).1
        XCTAssertEqual(fetched.map { $0.offset?.offset ?? -1 }, [7, 3, -1])
        XCTAssertEqual(fetched[0].offset?.metadata, "meta")
    }

    func testRequireStableSeesPendingCommits() {
        let h = Harness()
        h.topic.hold = true
        let answer = h.commit(generation: -1, memberId: "", [tp0: 10])
        XCTAssertNil(answer.last, "answered only once durable")
        let pending = h.coordinator.fetchOffsets(groupId: "g", partitions: [tp0], requireStable: true).1
        XCTAssertEqual(pending.first?.error, GroupErrorCode.unstableOffsetCommit)
        XCTAssertEqual(h.fetch("g", [tp0]), [tp0: -1])
        h.topic.release()
        XCTAssertEqual(answer.last, 0)
        XCTAssertEqual(h.fetch("g", [tp0], stable: true), [tp0: 10])
    }

    func testFailedAppendIsRetriable() {
        let h = Harness()
        h.topic.failing = true
        XCTAssertEqual(h.commit(generation: -1, memberId: "", [tp0: 10]).last, GroupErrorCode.coordinatorNotAvailable)
        XCTAssertEqual(h.fetch("g", [tp0]), [tp0: -1])
    }

    func testDeleteGroupsAndOffsets() {
        let h = Harness()
        let unknown = Box<Int16>()
        h.coordinator.deleteGroup("nope") { unknown.put($0) }
        XCTAssertEqual(unknown.last, GroupErrorCode.groupIdNotFound)
        let subscription = ConsumerProtocolSubscription.encodedWithVersion(topics: ["t"])
        let (a, _) = h.joinNew(protocols: [(name: "range", metadata: subscription)])
        _ = h.sync(generation: 1, memberId: a)
        XCTAssertEqual(h.commit(generation: 1, memberId: a, [tp0: 1, TopicPartition("old", 0): 2]).last, 0)
        let busy = Box<Int16>()
        h.coordinator.deleteGroup("g") { busy.put($0) }
        XCTAssertEqual(busy.last, GroupErrorCode.nonEmptyGroup)
        let offsetsDeleted = Box<(Int16, [TopicPartition: Int16])>()
        h.coordinator.deleteOffsets(groupId: "g", partitions: [tp0, TopicPartition("old", 0)]) { offsetsDeleted.put(($0, $1)) }
        XCTAssertEqual(offsetsDeleted.last?.0, 0)
        XCTAssertEqual(offsetsDeleted.last?.1[tp0], GroupErrorCode.groupSubscribedToTopic)
        XCTAssertEqual(offsetsDeleted.last?.1[TopicPartition("old", 0)], 0)
        XCTAssertEqual(h.fetch(), [tp0: 1])
        _ = h.coordinator.leave(groupId: "g", members: [(memberId: a, groupInstanceId: nil)])
        let deleted = Box<Int16>()
        h.coordinator.deleteGroup("g") { deleted.put($0) }
        XCTAssertEqual(deleted.last, 0)
        XCTAssertEqual(h.coordinator.describe("g").state, .dead)
        XCTAssertEqual(h.coordinator.listGroups(states: nil).groups.count, 0)
        let tombstones = h.topic.allRecords.filter { $0.1.value == nil }
        XCTAssertEqual(tombstones.count, 3, "the old offset, then the remaining offset and the group")
    }

    /// Commits and DeleteGroups racing on simple groups from many threads: whatever the
    /// interleaving, `__consumer_offsets` ends with what the coordinator holds in memory (the
    /// log replays to the same state after a restart), and a deleted group is never stuck.
    func testConcurrentCommitsAndDeletesReachTheLogInDecisionOrder() {
        let h = Harness()
        let groups = (0..<4).map { "s\($0)" }
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            let g = groups[i % groups.count]
            if i % 3 == 0 {
                h.coordinator.deleteGroup(g) { _ in }
            } else {
                _ = h.commit(g, generation: -1, memberId: "", [tp0: Int64(i)])
            }
        }
        for g in groups {
            let inMemory = h.fetch(g, [tp0])[tp0] ?? -1
            let key = GroupRecords.offsetKey(groupId: g, tp0)
            let last = h.topic.allRecords.last { $0.1.key == key }?.1
            if inMemory == -1 {
                XCTAssertNil(last?.value, "\(g): no offset in memory, so the log must end with a tombstone (or nothing)")
            } else {
                let expected = GroupRecords.offsetValue(CommittedOffset(offset: inMemory, metadata: "", commitTimestampMs: h.clock.now))
                XCTAssertEqual(last?.value, expected, "\(g): the log's last offset record must be the one in memory")
            }
            XCTAssertEqual(h.commit(g, generation: -1, memberId: "", [tp0: 1_000]).last, 0, "\(g) still takes commits")
        }
    }

    func testPartitionForMatchesKafka() {
        // Expected values from Java's String.hashCode, Utils.abs, % 50.
        XCTAssertEqual(GroupRecords.partition(for: "my-group", partitions: 50), 12)
        XCTAssertEqual(GroupRecords.partition(for: "console-consumer-12345", partitions: 50), 6)
        XCTAssertEqual(GroupRecords.partition(for: "g", partitions: 50), 3)
        XCTAssertEqual(GroupRecords.partition(for: "payments-ünïcode", partitions: 50), 4)
    }
}

extension ConsumerProtocolSubscription {
    /// JoinGroup metadata as a consumer sends it: int16 version, then the subscription.
    static func encodedWithVersion(topics: [String], version: Int16 = 1) -> [UInt8] {
        var s = ConsumerProtocolSubscription()
        s.topics = topics
        var buffer = ByteBuffer()
        buffer.writeInteger(version)
        s.encode(into: &buffer, version: version)
        return Array(buffer.readableBytesView)
    }
}
