import NIOCore
import SiltGroups
import SiltProtocol
import XCTest

/// Groups and offsets come back from `__consumer_offsets` records, tombstones included.
final class GroupLoadingTests: XCTestCase {
    let tp0 = TopicPartition("t", 0)
    let tp1 = TopicPartition("t", 1)

    /// Replays what one coordinator wrote into a fresh one, as a broker restart does.
    private func reload(_ from: Harness, partitions: Int32 = 4) -> Harness {
        let next = Harness(partitions: partitions, loading: Set(0..<partitions))
        for p in 0..<partitions {
            let decoded = from.topic.allRecords.filter { $0.0 == p }.map { _, r in
                try! GroupRecords.decode(key: ByteBuffer(bytes: r.key), value: r.value.map { ByteBuffer(bytes: $0) })
            }
            next.coordinator.replay(partition: p, decoded)
            next.coordinator.finishLoading(partition: p)
        }
        return next
    }

    func testLoadingPartitionAnswersLoadInProgress() {
        let h = Harness(loading: [GroupRecords.partition(for: "g", partitions: 4)])
        XCTAssertEqual(h.join().last?.error, GroupErrorCode.coordinatorLoadInProgress)
        XCTAssertEqual(h.commit(generation: -1, memberId: "", [tp0: 1]).last, GroupErrorCode.coordinatorLoadInProgress)
        XCTAssertEqual(h.coordinator.fetchOffsets(groupId: "g", partitions: nil, requireStable: false).0,
                       GroupErrorCode.coordinatorLoadInProgress)
        XCTAssertTrue(h.coordinator.listGroups(states: nil).loading)
    }

    func testOffsetsAndGenerationSurviveReload() {
        let h = Harness()
        let (a, _) = h.joinNew()
        _ = h.sync(generation: 1, memberId: a, assignments: [a: [4, 2]])
        XCTAssertEqual(h.commit(generation: 1, memberId: a, [tp0: 11, tp1: 22], metadata: "m").last, 0)
        XCTAssertEqual(h.commit(generation: 1, memberId: a, [tp0: 12]).last, 0)
        XCTAssertEqual(h.commit("simple", generation: -1, memberId: "", [tp0: 5]).last, 0)

        let after = reload(h)
        XCTAssertEqual(after.fetch(), [tp0: 12, tp1: 22], "later records win")
        XCTAssertEqual(after.fetch("simple"), [tp0: 5])
        let d = after.coordinator.describe("g")
        XCTAssertEqual(d.state, .stable)
        XCTAssertEqual(d.members.map(\.memberId), [a])
        XCTAssertEqual(d.members.first?.assignment, [4, 2])
        // The member carries on in its generation as if nothing happened.
        XCTAssertEqual(after.coordinator.heartbeat(groupId: "g", generationId: 1, memberId: a, groupInstanceId: nil), 0)
        XCTAssertEqual(after.commit(generation: 1, memberId: a, [tp0: 13]).last, 0)
        XCTAssertEqual(after.commit(generation: 0, memberId: a, [tp0: 14]).last, GroupErrorCode.illegalGeneration)
    }

    func testTombstonesDeleteOnReload() {
        let h = Harness()
        XCTAssertEqual(h.commit(generation: -1, memberId: "", [tp0: 1, tp1: 2]).last, 0)
        let gone = Box<(Int16, [TopicPartition: Int16])>()
        h.coordinator.deleteOffsets(groupId: "g", partitions: [tp1]) { gone.put(($0, $1)) }
        XCTAssertEqual(gone.last?.0, 0)
        XCTAssertEqual(h.commit("doomed", generation: -1, memberId: "", [tp0: 9]).last, 0)
        let deleted = Box<Int16>()
        h.coordinator.deleteGroup("doomed") { deleted.put($0) }
        XCTAssertEqual(deleted.last, 0)

        let after = reload(h)
        XCTAssertEqual(after.fetch(), [tp0: 1])
        XCTAssertEqual(after.coordinator.describe("doomed").state, .dead)
        XCTAssertEqual(after.coordinator.listGroups(states: nil).groups.map(\.groupId), ["g"])
    }

    func testRecordsUseKafkaLayout() throws {
        let key = GroupRecords.offsetKey(groupId: "g", tp0)
        // int16 version 1, string "g", string "t", int32 0.
        XCTAssertEqual(key, [0, 1, 0, 1, 0x67, 0, 1, 0x74, 0, 0, 0, 0])
        XCTAssertEqual(Array(GroupRecords.groupKey("g")), [0, 2, 0, 1, 0x67])
        let value = GroupRecords.offsetValue(CommittedOffset(offset: 7, leaderEpoch: 3, metadata: "", commitTimestampMs: 1))
        XCTAssertEqual(Array(value.prefix(2)), [0, 3])
        let decoded = try GroupRecords.decode(key: ByteBuffer(bytes: key), value: ByteBuffer(bytes: value))
        XCTAssertEqual(decoded, .offset(groupId: "g", tp0, CommittedOffset(offset: 7, leaderEpoch: 3, metadata: "", commitTimestampMs: 1)))
    }
}
