import NIOCore
import SiltProtocol
import XCTest
@testable import SiltGroups

/// KIP-848 group state in `__consumer_offsets`: written as Kafka's records on every change,
/// replayed by a new coordinator (restart or move), and members carry on where they were.
final class ConsumerGroupLoadingTests: XCTestCase {
    func testRestartKeepsMemberIdsEpochsAndAssignments() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a"), b = ConsumerClient("b"), c = ConsumerClient("c", instance: "ic")
        settle(h, a, b, c)
        let before = h.describe()
        XCTAssertEqual(before.state, "Stable")
        XCTAssertEqual(before.members.map(\.memberId), ["a", "b", "c"])

        let next = ConsumerHarness(reloading: h)
        XCTAssertEqual(next.describe(), before)
        for client in [a, b, c] {
            let had = (client.epoch, client.consuming)
            let r = client.beat(next)
            XCTAssertEqual(r.error, GroupErrorCode.none, client.memberId)
            XCTAssertEqual(r.memberId, client.memberId)
            XCTAssertEqual(client.epoch, had.0, client.memberId)
            XCTAssertEqual(client.consuming, had.1, client.memberId)
        }
        XCTAssertEqual(next.describe().groupEpoch, before.groupEpoch)
        // The static member is still known by its instance id: another incarnation is refused.
        XCTAssertEqual(ConsumerClient("c2", instance: "ic").beat(next).error, KafkaErrorCode.unreleasedInstanceId)
        // Life goes on: a leaves, b and c share its partitions.
        _ = a.leave(next)
        settle(next, b, c)
        XCTAssertEqual(b.consuming.count + c.consuming.count, 6)
        XCTAssertTrue(b.consuming.isDisjoint(with: c.consuming))
        // Offset commits check the restored member epochs.
        let box = Box<Int16>()
        next.coordinator.commitOffsets(groupId: "cg", generationId: b.epoch, memberId: "b", groupInstanceId: nil,
                                       offsets: [TopicPartition("t", 0): CommittedOffset(offset: 1, commitTimestampMs: 0)],
                                       version: 9) { box.put($0) }
        XCTAssertEqual(box.last, GroupErrorCode.none)
    }

    /// A restart in the middle of a revocation: the partition is still the old owner's, the
    /// new member gets it only once the owner released it, never both at once.
    func testRestartMidRevocationNeverSharesAPartition() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a")
        settle(h, a)
        XCTAssertEqual(a.consuming.count, 6)
        let b = ConsumerClient("b")
        b.beat(h)
        a.beat(h, revokeNow: false)   // told to revoke 3, still consuming them
        XCTAssertEqual(a.pendingRevoke.count, 3)

        let next = ConsumerHarness(reloading: h)
        let pending = next.describe().members.first { $0.memberId == "a" }!
        XCTAssertEqual(pending.assignment.count, 3)
        b.beat(next)
        XCTAssertTrue(a.consuming.isDisjoint(with: b.consuming), "b took a partition a still consumes")
        XCTAssertTrue(b.consuming.isEmpty)
        a.beat(next)   // releases them now
        b.beat(next)
        XCTAssertEqual(a.consuming.count, 3)
        XCTAssertEqual(b.consuming.count, 3)
        XCTAssertTrue(a.consuming.isDisjoint(with: b.consuming))
        XCTAssertEqual(next.describe().state, "Stable")
    }

    /// The rebalance timeout of a revocation pending at the restart starts again on load, and
    /// the session timeouts too: a member silent past them is removed, as before the restart.
    func testRestoredMembersGetFreshTimers() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a"), b = ConsumerClient("b")
        settle(h, a, b)
        h.clock.advance(40_000)   // close to the 45 s session timeout, before the restart
        let next = ConsumerHarness(reloading: h)
        next.advance(10_000)
        XCTAssertEqual(next.describe().members.count, 2, "sessions restart at load")
        a.beat(next)
        next.advance(40_000)
        XCTAssertEqual(next.describe().members.map(\.memberId), ["a"], "b stayed silent for 50 s")
        // The removal is in the log too.
        let again = ConsumerHarness(reloading: next)
        XCTAssertEqual(again.describe().members.map(\.memberId), ["a"])
    }

    func testFailedWriteAnswersCoordinatorNotAvailableAndIsRewritten() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a")
        settle(h, a)
        h.log.failing = true
        let b = ConsumerClient("b")
        XCTAssertEqual(b.beat(h).error, GroupErrorCode.coordinatorNotAvailable)
        h.log.failing = false
        // The next write carries every record of the group, so the log holds all of it.
        settle(h, a, b)
        XCTAssertEqual(a.consuming.count + b.consuming.count, 6)
        let before = h.describe()
        XCTAssertEqual(ConsumerHarness(reloading: h).describe(), before)
    }

    /// A leave whose write failed: its tombstones are not lost. The next tick rewrites the group
    /// and tombstones the keys of the failed write the group no longer has.
    func testFailedLeaveIsTombstonedByTheRetry() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a"), b = ConsumerClient("b")
        settle(h, a, b)
        h.log.failing = true
        XCTAssertEqual(a.leave(h).error, GroupErrorCode.coordinatorNotAvailable)
        XCTAssertEqual(h.describe().members.map(\.memberId), ["b"], "the leave happened in memory")
        h.log.failing = false
        h.advance(100)   // the tick retries the write
        XCTAssertEqual(ConsumerHarness(reloading: h).describe().members.map(\.memberId), ["b"])
        settle(h, b)
        XCTAssertEqual(ConsumerHarness(reloading: h).describe(), h.describe())
    }

    func testHeartbeatIsAnsweredOnlyOnceItsRecordsAreDurable() {
        let h = ConsumerHarness()
        h.log.hold = true
        let box = Box<ConsumerHeartbeatResult>()
        var req = ConsumerHeartbeatRequest(groupId: "cg", memberId: "a", memberEpoch: 0)
        req.rebalanceTimeoutMs = 30_000
        req.subscribedTopicNames = ["t"]
        h.coordinator.consumerHeartbeat(req, partitionCount: { h.topics[$0] }) { box.put($0) }
        XCTAssertNil(box.last)
        h.log.release()
        XCTAssertEqual(box.last?.error, GroupErrorCode.none)
        XCTAssertEqual(box.last?.assignment?.count, 6)
        // A heartbeat that changes nothing writes nothing and is answered at once.
        let written = h.log.allRecords.count
        h.log.hold = true
        req.memberEpoch = box.last!.memberEpoch
        req.ownedPartitions = box.last!.assignment
        let quiet = Box<ConsumerHeartbeatResult>()
        h.coordinator.consumerHeartbeat(req, partitionCount: { h.topics[$0] }) { quiet.put($0) }
        XCTAssertEqual(quiet.last?.error, GroupErrorCode.none)
        h.log.release()
        XCTAssertEqual(h.log.allRecords.count, written)
    }

    func testDeletedAndAbandonedGroupsLeaveNoRecordsBehind() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a")
        settle(h, a)
        let box = Box<Int16>()
        h.coordinator.commitOffsets(groupId: "cg", generationId: a.epoch, memberId: "a", groupInstanceId: nil,
                                    offsets: [TopicPartition("t", 0): CommittedOffset(offset: 5, commitTimestampMs: 0)],
                                    version: 9) { box.put($0) }
        _ = a.leave(h)
        XCTAssertEqual(ConsumerHarness(reloading: h).describe().state, "Empty")
        h.coordinator.deleteGroup("cg") { box.put($0) }
        XCTAssertEqual(box.last, GroupErrorCode.none)
        XCTAssertEqual(ConsumerHarness(reloading: h).describe().error, GroupErrorCode.groupIdNotFound)
        // A group whose only member left, with no offsets, goes from memory and from the log.
        let x = ConsumerClient("x", group: "other")
        x.beat(h)
        _ = x.leave(h)
        h.advance(100)
        XCTAssertEqual(h.describe("other").error, GroupErrorCode.groupIdNotFound)
        XCTAssertEqual(ConsumerHarness(reloading: h).describe("other").error, GroupErrorCode.groupIdNotFound)
    }

    func testAnEmptyConsumerGroupTurnedClassicReloadsClassic() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a")
        a.beat(h)
        _ = a.leave(h)
        let box = Box<JoinResult>()
        h.coordinator.join(JoinRequest(groupId: "cg", memberId: "", groupInstanceId: nil, protocols: consumerProtocols,
                                       sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000)) { box.put($0) }
        let next = ConsumerHarness(reloading: h)
        XCTAssertEqual(next.describe().error, GroupErrorCode.groupIdNotFound)
    }

    /// A regex subscription survives a reload without moving anything: the coordinator reads
    /// back what each regex matched (Kafka's ConsumerGroupRegularExpression records, type 16),
    /// so the members' next heartbeats keep their epochs and partitions, and the group epoch
    /// stays where it was. (Before those records, the reloaded group took the regex's topics
    /// for new ones and moved its epoch once.)
    func testRestartWithARegexSubscriptionMovesNothing() {
        var h = ConsumerHarness()
        h.topics = ["orders-1": 2, "orders-2": 2, "audit": 1]
        let a = ConsumerClient("a", topics: []), b = ConsumerClient("b", topics: ["audit"])
        a.regex = "orders-.*"
        settle(h, a, b)
        let before = h.describe()
        XCTAssertEqual(before.state, "Stable")
        XCTAssertEqual(a.consuming, tps("orders-1", [0, 1]).union(tps("orders-2", [0, 1])))

        var next = ConsumerHarness(reloading: h)
        for client in [a, b] {
            let had = (client.epoch, client.consuming)
            let r = client.beat(next)
            XCTAssertEqual(r.error, GroupErrorCode.none, client.memberId)
            XCTAssertEqual(client.epoch, had.0, client.memberId)
            XCTAssertEqual(client.consuming, had.1, client.memberId)
        }
        XCTAssertEqual(next.describe().groupEpoch, before.groupEpoch, "the reload moved the group epoch")
        XCTAssertEqual(next.describe().state, "Stable")
        // The regex still follows the topics after the reload: one epoch for a new match.
        next.topics["orders-3"] = 1
        settle(next, a, b)
        XCTAssertEqual(a.consuming.count, 5)
        XCTAssertEqual(next.describe().groupEpoch, before.groupEpoch + 1)
        let again = ConsumerHarness(reloading: next)
        settle(again, a, b)
        XCTAssertEqual(again.describe().groupEpoch, before.groupEpoch + 1)
    }

    /// The regex record's layout (key type 16: group and regex; value: the matched topics),
    /// and its tombstone once no member subscribes with the regex.
    func testRegexResolutionRecordAndItsTombstone() throws {
        var h = ConsumerHarness()
        h.topics = ["orders-1": 2, "orders-2": 2, "audit": 1]
        let a = ConsumerClient("a", topics: []), b = ConsumerClient("b", topics: ["audit"])
        a.regex = "orders-.*"
        settle(h, a, b)
        let key = GroupRecords.consumerKey(.regularExpression, "cg", regex: "orders-.*")
        XCTAssertEqual(Array(key.prefix(6)), [0, 16, 0, 2, 0x63, 0x67])
        let value = try XCTUnwrap(h.log.allRecords.last { $0.1.key == key }?.1.value ?? nil)
        guard case .consumer("cg", .regularExpression("orders-.*", let resolved?)) =
                try GroupRecords.decode(key: ByteBuffer(bytes: key), value: ByteBuffer(bytes: value)) else {
            return XCTFail("not decoded as a resolved regex")
        }
        XCTAssertEqual(resolved.topics, ["orders-1", "orders-2"])
        XCTAssertEqual(h.log.allRecords.filter { $0.1.key == key }.count, 1, "written once, not on every heartbeat")
        // Once no member uses the regex, its record is tombstoned and a reload finds none.
        _ = a.leave(h)
        settle(h, b)
        XCTAssertEqual(h.log.allRecords.last { $0.1.key == key }.map { $0.1.value == nil }, true)
        let epoch = h.describe().groupEpoch
        let next = ConsumerHarness(reloading: h)
        b.beat(next)
        XCTAssertEqual(next.describe().groupEpoch, epoch)
    }

    func testRecordLayoutIsKafkas() throws {
        // int16 record type 8, then the group and member ids as int16-length strings.
        let key = GroupRecords.consumerKey(.currentAssignment, "cg", memberId: "m")
        XCTAssertEqual(key, [0, 8, 0, 2, 0x63, 0x67, 0, 1, 0x6d])
        XCTAssertEqual(GroupRecords.consumerKey(.metadata, "cg"), [0, 3, 0, 2, 0x63, 0x67])
        let m = ConsumerMember(memberId: "m", instanceId: nil, clientId: "c", clientHost: "h", rebalanceTimeoutMs: 1, nowMs: 0)
        m.memberEpoch = 7
        m.previousMemberEpoch = 6
        m.assigned = [TopicPartition("t", 1), TopicPartition("t", 0)]
        let value = GroupRecords.currentAssignmentValue(m, ConsumerGroup())
        XCTAssertEqual(Array(value.prefix(10)), [0, 0, 0, 0, 0, 7, 0, 0, 0, 6])   // version 0, epochs
        guard case .consumer("cg", .currentAssignment("m", let decoded?)) =
                try GroupRecords.decode(key: ByteBuffer(bytes: key), value: ByteBuffer(bytes: value)) else {
            return XCTFail("not decoded as a current assignment")
        }
        XCTAssertEqual(decoded.memberEpoch, 7)
        XCTAssertEqual(decoded.assignedPartitions.map(\.partitions), [[0, 1]])
        // A record with a truncated value is an error the loader skips, not a crash.
        XCTAssertThrowsError(try GroupRecords.decode(key: ByteBuffer(bytes: key), value: ByteBuffer(bytes: Array(value.prefix(5)))))
    }
}
