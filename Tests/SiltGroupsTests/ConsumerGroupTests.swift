import NIOCore
import SiltProtocol
import XCTest
@testable import SiltGroups

/// A KIP-848 client as the coordinator sees it: it consumes what it was given and stops
/// consuming revoked partitions when it chooses (`revokeNow`), reporting what it owns.
final class ConsumerClient {
    let memberId: String
    let group: String
    var epoch: Int32 = 0
    var consuming: Set<TopicPartition> = []
    var assignor: String?
    var topics: [String]
    var regex: String?
    var instance: String?

    init(_ memberId: String, group: String = "cg", topics: [String] = ["t"], assignor: String? = nil, instance: String? = nil) {
        self.memberId = memberId
        self.group = group
        self.topics = topics
        self.assignor = assignor
        self.instance = instance
    }

    /// Partitions the coordinator took away that this client still consumes.
    var pendingRevoke: Set<TopicPartition> = []
    var lastOkMs: Int64 = 0
    var revokeDeadlineMs: Int64 = .max

    /// One heartbeat; `revokeNow`: the client lets revoked partitions go before it sends it
    /// (otherwise it keeps consuming them one more round).
    @discardableResult
    func beat(_ h: ConsumerHarness, revokeNow: Bool = true, epoch: Int32? = nil) -> ConsumerHeartbeatResult {
        if revokeNow {
            consuming.subtract(pendingRevoke)
            pendingRevoke = []
            revokeDeadlineMs = .max
        }
        var req = ConsumerHeartbeatRequest(groupId: group, memberId: memberId, memberEpoch: epoch ?? self.epoch)
        req.instanceId = instance
        req.ownedPartitions = self.epoch == 0 ? [] : consuming.sorted()
        if self.epoch == 0 {
            req.rebalanceTimeoutMs = 30_000
            req.subscribedTopicNames = topics
            req.subscribedTopicRegex = regex
            req.serverAssignor = assignor
        }
        let r = h.heartbeat(req)
        switch r.error {
        case GroupErrorCode.none:
            lastOkMs = h.clock.now
            self.epoch = r.memberEpoch
            if let a = r.assignment.map(Set.init) {
                let revoked = consuming.subtracting(a)
                if !revoked.isEmpty && pendingRevoke.isEmpty { revokeDeadlineMs = h.clock.now + 30_000 }
                pendingRevoke.formUnion(revoked)
                consuming.formUnion(a)
            }
        case GroupErrorCode.unknownMemberId, KafkaErrorCode.fencedMemberEpoch:
            lose()
        default:
            break
        }
        return r
    }

    /// Fenced, or its own timers say the coordinator gave up on it: it stops consuming at
    /// once (librdkafka's lost partitions) and rejoins at epoch 0.
    func lose() {
        consuming = []
        pendingRevoke = []
        revokeDeadlineMs = .max
        epoch = 0
    }

    /// The client's own view of its session and its rebalance timeout (as librdkafka keeps).
    func checkTimers(nowMs: Int64) {
        guard epoch > 0 else { return }
        if nowMs - lastOkMs >= 45_000 || nowMs >= revokeDeadlineMs { lose() }
    }

    func leave(_ h: ConsumerHarness, staticLeave: Bool = false) -> ConsumerHeartbeatResult {
        var req = ConsumerHeartbeatRequest(groupId: group, memberId: memberId,
                                           memberEpoch: staticLeave ? ConsumerMember.staticLeaveEpoch : ConsumerMember.leaveEpoch)
        req.instanceId = instance
        lose()
        return h.heartbeat(req)
    }
}

struct ConsumerHarness {
    let clock: ManualClock
    let log: MemoryOffsetsTopic
    let coordinator: GroupCoordinator
    var topics: [String: Int32] = ["t": 6]

    init(maxSize: Int = Int(Int32.max), assignors: [String] = ["uniform", "range"],
         groupTimeouts: (@Sendable (String) -> (sessionTimeoutMs: Int32, heartbeatIntervalMs: Int32))? = nil) {
        var config = GroupCoordinatorConfig()
        config.consumerGroupTimeouts = groupTimeouts
        config.offsetsPartitions = 4
        config.consumerMaxSize = maxSize
        config.consumerAssignors = assignors
        let clock = ManualClock()
        self.clock = clock
        log = MemoryOffsetsTopic()
        coordinator = GroupCoordinator(config: config, persistence: log, loading: [], clock: { clock.now })
    }

    /// A new coordinator over the same log and clock, its partitions loaded by replaying the
    /// log through the production decoder (a broker restart, or the coordinator moving).
    init(reloading from: ConsumerHarness) {
        clock = from.clock
        log = from.log
        topics = from.topics
        let clock = self.clock
        coordinator = GroupCoordinator(config: from.coordinator.config, persistence: log, loading: Set(0..<4), clock: { clock.now })
        for p in Int32(0)..<4 { replay(partition: p) }
    }

    /// Replays partition `p` of the log into `coordinator`, which must be loading it.
    func replay(partition p: Int32) {
        let decoded = log.allRecords.filter { $0.0 == p }.map { _, r in
            try! GroupRecords.decode(key: ByteBuffer(bytes: r.key), value: r.value.map { ByteBuffer(bytes: $0) })
        }
        coordinator.replay(partition: p, decoded)
        coordinator.finishLoading(partition: p)
    }

    func describe(_ group: String = "cg") -> GroupCoordinator.ConsumerGroupDescription { coordinator.describeConsumerGroup(group) }

    /// One heartbeat, answered synchronously (the in-memory log is durable at once unless held).
    func heartbeat(_ req: ConsumerHeartbeatRequest) -> ConsumerHeartbeatResult {
        let box = Box<ConsumerHeartbeatResult>()
        coordinator.consumerHeartbeat(req, topicNames: { Array(topics.keys) }, partitionCount: { topics[$0] }) { box.put($0) }
        return box.last!
    }

    func advance(_ ms: Int64) {
        clock.advance(ms)
        coordinator.tick()
    }
}

/// Heartbeats every client, round after round, until revocations are reported and freed
/// partitions taken (a client reports a revocation on its next heartbeat).
func settle(_ h: ConsumerHarness, _ clients: ConsumerClient...) {
    for _ in 0..<3 { for c in clients { c.beat(h) } }
}

func tps(_ ps: [Int32]) -> Set<TopicPartition> { tps("t", ps) }
func tps(_ topic: String, _ ps: [Int32]) -> Set<TopicPartition> { Set(ps.map { TopicPartition(topic, $0) }) }

final class ConsumerGroupTests: XCTestCase {
    func testErrorCodesAreKafkas() {
        XCTAssertEqual(KafkaErrorCode.name(KafkaErrorCode.fencedMemberEpoch), "FENCED_MEMBER_EPOCH")
        XCTAssertEqual(KafkaErrorCode.name(KafkaErrorCode.unreleasedInstanceId), "UNRELEASED_INSTANCE_ID")
        XCTAssertEqual(KafkaErrorCode.name(KafkaErrorCode.unsupportedAssignor), "UNSUPPORTED_ASSIGNOR")
        XCTAssertEqual(KafkaErrorCode.name(KafkaErrorCode.staleMemberEpoch), "STALE_MEMBER_EPOCH")
    }

    func testFirstMemberGetsEveryPartitionAtEpochOne() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a")
        let r = a.beat(h)
        XCTAssertEqual(r.error, 0)
        XCTAssertEqual(r.memberEpoch, 1)
        XCTAssertEqual(r.heartbeatIntervalMs, 5000)
        XCTAssertEqual(a.consuming, tps([0, 1, 2, 3, 4, 5]))
        let d = h.describe()
        XCTAssertEqual(d.state, "Stable")
        XCTAssertEqual(d.groupEpoch, 1)
        XCTAssertEqual(d.assignorName, "uniform")
        // A heartbeat with nothing new carries no assignment.
        XCTAssertNil(a.beat(h).assignment)
    }

    func testPartitionMovesOnlyAfterItsOwnerRevokedIt() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a"), b = ConsumerClient("b")
        a.beat(h)
        let rb = b.beat(h)
        XCTAssertEqual(rb.memberEpoch, 2)
        XCTAssertEqual(rb.assignment, [], "everything is still owned by a")
        XCTAssertEqual(h.describe().state, "Reconciling")
        // a is told to give 3 up, keeps its epoch while it has not.
        let ra = a.beat(h, revokeNow: false)
        XCTAssertEqual(ra.memberEpoch, 1)
        XCTAssertEqual(ra.assignment?.count, 3)
        XCTAssertEqual(b.beat(h).assignment, nil, "a still consumes them")
        XCTAssertTrue(b.consuming.isEmpty)
        XCTAssertEqual(a.beat(h, revokeNow: true).memberEpoch, 2)
        XCTAssertEqual(a.consuming.count, 3)
        b.beat(h)
        XCTAssertEqual(b.consuming.count, 3)
        XCTAssertTrue(a.consuming.isDisjoint(with: b.consuming))
        XCTAssertEqual(h.describe().state, "Stable")
    }

    func testRangeAssignorWhenMembersAskForIt() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a", assignor: "range"), b = ConsumerClient("b", assignor: "range")
        settle(h, a, b)
        XCTAssertEqual(a.consuming, tps([0, 1, 2]))
        XCTAssertEqual(b.consuming, tps([3, 4, 5]))
        XCTAssertEqual(h.describe().assignorName, "range")
        let bad = ConsumerClient("c", assignor: "sticky")
        XCTAssertEqual(bad.beat(h).error, KafkaErrorCode.unsupportedAssignor)
        // group.consumer.assignors: the first listed is the default; one not listed is refused.
        let rangeFirst = ConsumerHarness(assignors: ["range"])
        let x = ConsumerClient("x"), y = ConsumerClient("y")
        settle(rangeFirst, x, y)
        XCTAssertEqual(rangeFirst.describe().assignorName, "range")
        XCTAssertEqual(x.consuming, tps([0, 1, 2]))
        XCTAssertEqual(ConsumerClient("z", assignor: "uniform").beat(rangeFirst).error, KafkaErrorCode.unsupportedAssignor)
    }

    func testAssignorsSplitEvenlyAndUniformIsSticky() {
        let subs: [ConsumerAssignors.Subscription] = [("a", ["t", "u"]), ("b", ["t", "u"]), ("c", ["t"])]
        let parts: [String: Int32] = ["t": 7, "u": 2]
        let range = ConsumerAssignors.assign(.range, members: subs, partitions: parts, previous: [:])
        XCTAssertEqual(range["a"], tps([0, 1, 2]).union(tps("u", [0])))
        XCTAssertEqual(range["c"], tps([5, 6]))
        let first = ConsumerAssignors.assign(.uniform, members: subs, partitions: parts, previous: [:])
        XCTAssertEqual(first.values.map(\.count).sorted(), [3, 3, 3])
        XCTAssertEqual(first.values.reduce(Set()) { $0.union($1) }.count, 9)
        XCTAssertTrue(first["c"]!.allSatisfy { $0.topic == "t" })
        // A fourth member takes partitions from the others; nobody else's partitions move.
        let more = subs + [("d", ["t", "u"])]
        let second = ConsumerAssignors.assign(.uniform, members: more, partitions: parts, previous: first)
        XCTAssertEqual(second.values.map(\.count).sorted(), [2, 2, 2, 3])
        for id in ["a", "b", "c"] { XCTAssertTrue(second[id]!.isSubset(of: first[id]!), id) }
    }

    func testLeaveFreesPartitionsAndStaticLeaveKeepsThem() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a", instance: "ia"), b = ConsumerClient("b")
        settle(h, a, b)
        let aHad = a.consuming
        XCTAssertEqual(aHad.count, 3)
        // Static leave: epoch -2, a's partitions stay a's, the group epoch does not move.
        let epoch = h.describe().groupEpoch
        XCTAssertEqual(a.leave(h, staticLeave: true).memberEpoch, -2)
        XCTAssertEqual(h.describe().groupEpoch, epoch)
        XCTAssertEqual(h.describe().state, "Stable")
        b.beat(h)
        XCTAssertEqual(b.consuming.count, 3)
        // The same instance comes back with a new member id and gets its partitions back.
        let a2 = ConsumerClient("a2", instance: "ia")
        let r = a2.beat(h)
        XCTAssertEqual(r.error, 0)
        XCTAssertEqual(a2.consuming, aHad)
        XCTAssertEqual(h.describe().groupEpoch, epoch)
        // The instance is now in use: another incarnation is refused.
        XCTAssertEqual(ConsumerClient("a3", instance: "ia").beat(h).error, KafkaErrorCode.unreleasedInstanceId)
        // A dynamic leave frees the partitions: b takes all 6.
        XCTAssertEqual(a2.leave(h).memberEpoch, -1)
        XCTAssertEqual(h.describe().groupEpoch, epoch + 1)
        settle(h, b)
        XCTAssertEqual(b.consuming.count, 6)
        XCTAssertEqual(ConsumerClient("zz").leave(h).error, GroupErrorCode.unknownMemberId)
    }

    func testSilentMemberExpiresAfterTheSessionTimeout() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a"), b = ConsumerClient("b")
        settle(h, a, b)
        h.advance(40_000)
        b.beat(h)
        h.advance(6_000)   // a silent for 46 s > 45 s
        XCTAssertEqual(h.describe().members.map(\.memberId), ["b"])
        settle(h, b)
        XCTAssertEqual(b.consuming.count, 6)
        XCTAssertEqual(a.beat(h).error, GroupErrorCode.unknownMemberId)
        XCTAssertTrue(a.consuming.isEmpty)
    }

    func testRevocationPastTheRebalanceTimeoutFencesTheMember() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a"), b = ConsumerClient("b")
        a.beat(h); b.beat(h)
        a.beat(h, revokeNow: false)   // told to revoke 3, never does
        h.advance(31_000)
        XCTAssertEqual(h.describe().members.map(\.memberId), ["b"])
        settle(h, b)
        XCTAssertEqual(b.consuming.count, 6)
    }

    func testEpochChecks() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a")
        a.beat(h)
        XCTAssertEqual(a.beat(h, epoch: 7).error, KafkaErrorCode.fencedMemberEpoch)
        XCTAssertTrue(a.consuming.isEmpty, "a fenced client drops its partitions")
        XCTAssertEqual(a.beat(h).memberEpoch, 2, "and rejoins at epoch 0 as a new incarnation")
        XCTAssertEqual(ConsumerClient("x").beat(h, epoch: 3).error, GroupErrorCode.unknownMemberId)
        XCTAssertEqual(ConsumerClient("x", group: "nowhere").beat(h, epoch: 3).error, GroupErrorCode.unknownMemberId)
        // The previous epoch is accepted when the member owns no more than it was given (a lost response).
        let b = ConsumerClient("b")
        b.beat(h)
        let old = a.epoch
        settle(h, a, b)
        XCTAssertGreaterThan(a.epoch, old)
        XCTAssertEqual(a.beat(h, epoch: old).error, 0)
        XCTAssertEqual(a.beat(h, epoch: old - 1).error, KafkaErrorCode.fencedMemberEpoch)
        var empty = ConsumerHeartbeatRequest(groupId: "cg", memberId: "", memberEpoch: 0)
        empty.rebalanceTimeoutMs = 1000
        empty.subscribedTopicNames = ["t"]
        XCTAssertEqual(h.heartbeat(empty).error, GroupErrorCode.invalidRequest)
    }

    func testGroupMaxSize() {
        let h = ConsumerHarness(maxSize: 2)
        ConsumerClient("a").beat(h)
        ConsumerClient("b").beat(h)
        XCTAssertEqual(ConsumerClient("c").beat(h).error, GroupErrorCode.groupMaxSizeReached)
    }

    func testNewPartitionsBumpTheGroupEpoch() {
        var h = ConsumerHarness()
        let a = ConsumerClient("a")
        a.beat(h)
        h.topics["t"] = 8
        a.beat(h)
        XCTAssertEqual(a.consuming.count, 8)
        XCTAssertEqual(a.epoch, 2)
    }

    func testRegexSubscriptionFollowsTopicsAsTheyAppear() {
        var h = ConsumerHarness()
        h.topics = ["orders-1": 2, "orders-2": 2, "audit": 1, "__consumer_offsets": 50, "xorders-1": 1]
        let a = ConsumerClient("a", topics: [])
        a.regex = "orders-.*"
        a.beat(h)
        XCTAssertEqual(a.consuming, tps("orders-1", [0, 1]).union(tps("orders-2", [0, 1])), "whole names only, no internal topics")
        XCTAssertEqual(h.describe().members.first?.subscribedTopicRegex, "orders-.*")
        let epoch = a.epoch
        h.topics["orders-3"] = 1
        a.beat(h)
        XCTAssertEqual(a.consuming.count, 5)
        XCTAssertEqual(a.epoch, epoch + 1)
        let bad = ConsumerClient("b", topics: [])
        bad.regex = "orders-("
        XCTAssertEqual(bad.beat(h).error, KafkaErrorCode.invalidRegularExpression)
        XCTAssertEqual(KafkaErrorCode.name(KafkaErrorCode.invalidRegularExpression), "INVALID_REGULAR_EXPRESSION")
    }

    func testClassicAndConsumerGroupsRefuseEachOther() {
        let h = ConsumerHarness()
        ConsumerClient("a").beat(h)
        let box = Box<JoinResult>()
        h.coordinator.join(JoinRequest(groupId: "cg", memberId: "", groupInstanceId: nil, protocols: consumerProtocols,
                                       sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000)) { box.put($0) }
        XCTAssertEqual(box.last?.error, GroupErrorCode.inconsistentGroupProtocol)
        // A classic group with members: a consumer-protocol member is told the group is not one of its kind.
        let classic = Box<JoinResult>()
        for id in ["", "m"] {
            h.coordinator.join(JoinRequest(groupId: "classic", memberId: id.isEmpty ? id : classic.last!.memberId,
                                           groupInstanceId: nil, protocols: consumerProtocols,
                                           sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000)) { classic.put($0) }
        }
        XCTAssertEqual(ConsumerClient("c", group: "classic").beat(h).error, GroupErrorCode.groupIdNotFound)
        XCTAssertEqual(h.describe("classic").error, GroupErrorCode.groupIdNotFound)
        let listed = h.coordinator.listGroups(states: nil).groups.map { "\($0.groupId):\($0.groupType):\($0.state)" }
        XCTAssertEqual(listed, ["cg:consumer:Stable", "classic:classic:PreparingRebalance"])
        XCTAssertEqual(h.coordinator.listGroups(states: nil, types: ["consumer"]).groups.map(\.groupId), ["cg"])
        // DescribeGroups (v0-5) knows classic groups only, as Kafka's: the consumer group is Dead to it.
        XCTAssertEqual(h.coordinator.describe("cg").state, .dead)
        XCTAssertEqual(h.coordinator.describe("cg").members, [])
    }

    func testEmptyConsumerGroupBecomesClassicWithItsOffsets() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a")
        a.beat(h)
        commit(h, memberId: "a", epoch: a.epoch, expect: 0)
        _ = a.leave(h)
        let box = Box<JoinResult>()
        h.coordinator.join(JoinRequest(groupId: "cg", memberId: "", groupInstanceId: nil, protocols: consumerProtocols,
                                       sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000)) { box.put($0) }
        XCTAssertEqual(box.last?.error, GroupErrorCode.memberIdRequired)
        XCTAssertEqual(h.coordinator.fetchOffsets(groupId: "cg", partitions: nil, requireStable: false).1.first?.offset?.offset, 42)
    }

    func commit(_ h: ConsumerHarness, memberId: String, epoch: Int32, version: Int16 = 9, expect: Int16,
                file: StaticString = #filePath, line: UInt = #line) {
        let box = Box<Int16>()
        h.coordinator.commitOffsets(groupId: "cg", generationId: epoch, memberId: memberId, groupInstanceId: nil,
                                    offsets: [TopicPartition("t", 0): CommittedOffset(offset: 42, commitTimestampMs: 0)],
                                    version: version) { box.put($0) }
        XCTAssertEqual(box.last, expect, file: file, line: line)
    }

    func testOffsetCommitAndFetchCheckTheMemberEpoch() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a"), b = ConsumerClient("b")
        a.beat(h)
        commit(h, memberId: "a", epoch: 1, expect: 0)
        settle(h, a, b)   // a moves to epoch 2
        XCTAssertEqual(a.epoch, 2)
        commit(h, memberId: "a", epoch: 1, expect: KafkaErrorCode.staleMemberEpoch)
        commit(h, memberId: "a", epoch: 9, expect: KafkaErrorCode.fencedMemberEpoch)
        commit(h, memberId: "a", epoch: 2, version: 8, expect: KafkaErrorCode.unsupportedVersion)
        commit(h, memberId: "nobody", epoch: 2, expect: GroupErrorCode.unknownMemberId)
        commit(h, memberId: "", epoch: -1, expect: GroupErrorCode.unknownMemberId)   // an admin commit while members consume
        commit(h, memberId: "a", epoch: 2, expect: 0)
        XCTAssertEqual(h.coordinator.fetchOffsets(groupId: "cg", partitions: nil, requireStable: false, member: (id: "a", epoch: 1)).0,
                       KafkaErrorCode.staleMemberEpoch)
        XCTAssertEqual(h.coordinator.fetchOffsets(groupId: "cg", partitions: nil, requireStable: false, member: (id: "a", epoch: 2))
                        .1.first?.offset?.offset, 42)
        XCTAssertEqual(h.coordinator.fetchOffsets(groupId: "cg", partitions: nil, requireStable: false).0, 0)
    }

    func testCoordinatorMoveKeepsMembersAndEpochs() {
        let h = ConsumerHarness()
        let a = ConsumerClient("a"), b = ConsumerClient("b")
        settle(h, a, b)
        let before = h.describe()
        let p = h.coordinator.partition(for: "cg")
        h.coordinator.unload(partition: p)
        XCTAssertEqual(a.beat(h).error, GroupErrorCode.notCoordinator)
        // The partition comes back (the coordinator moved away and back): replayed from the log.
        h.coordinator.beginLoading(partition: p)
        XCTAssertEqual(a.beat(h).error, GroupErrorCode.coordinatorLoadInProgress)
        h.replay(partition: p)
        XCTAssertEqual(h.describe(), before)
        let (aHad, bHad, aEpoch) = (a.consuming, b.consuming, a.epoch)
        XCTAssertEqual(a.beat(h).error, GroupErrorCode.none)
        XCTAssertEqual(b.beat(h).error, GroupErrorCode.none)
        XCTAssertEqual(a.epoch, aEpoch)
        XCTAssertEqual(a.consuming, aHad)
        XCTAssertEqual(b.consuming, bHad)
        XCTAssertEqual(h.describe().groupEpoch, before.groupEpoch)
    }

    /// Seeded random joins, leaves, crashes, slow revocations, subscription changes and
    /// coordinator restarts (a new coordinator replaying the log): no
    /// partition is ever consumed by two clients, and once the churn stops the group settles
    /// on a complete, balanced assignment.
    func testRandomChurnNeverSharesAPartition() {
        for seed in UInt64(1)...20 {
            var rng = SplitMix64(seed: seed)
            var h = ConsumerHarness()
            h.topics = ["t": 5, "u": 4]
            var clients: [ConsumerClient] = []
            var next = 0
            crashed = []
            for _ in 0..<400 {
                switch rng.next() % 10 {
                case 0 where clients.count < 6:
                    let topics = rng.next() % 3 == 0 ? ["t"] : ["t", "u"]
                    clients.append(ConsumerClient("m\(next)", topics: topics, assignor: rng.next() % 4 == 0 ? "range" : nil))
                    next += 1
                    clients.last!.beat(h)
                case 1 where !clients.isEmpty:
                    _ = clients.remove(at: Int(rng.next() % UInt64(clients.count))).leave(h)
                case 2 where !clients.isEmpty:
                    // A crash: the client stops; its partitions are free only after its session.
                    let gone = clients.remove(at: Int(rng.next() % UInt64(clients.count)))
                    crashed.append(gone)
                case 3:
                    h.advance(Int64(rng.next() % 20_000))
                    for c in clients + crashed { c.checkTimers(nowMs: h.clock.now) }
                    crashed.removeAll { $0.consuming.isEmpty }
                case 4 where rng.next() % 4 == 0:
                    // The coordinator restarts: a new one replays the log. Every member it had
                    // carries on, nobody is told it is unknown.
                    h = ConsumerHarness(reloading: h)
                    for c in clients where c.epoch > 0 {
                        XCTAssertNotEqual(c.beat(h, revokeNow: false).error, GroupErrorCode.unknownMemberId, "seed \(seed): \(c.memberId)")
                    }
                default:
                    guard !clients.isEmpty else { continue }
                    clients[Int(rng.next() % UInt64(clients.count))].beat(h, revokeNow: rng.next() % 3 != 0)
                }
                assertNoSharing(clients + crashed, seed: seed)
            }
            // Churn over: the crashed expire, everyone heartbeats until nothing changes.
            h.advance(46_000)
            for c in clients + crashed { c.checkTimers(nowMs: h.clock.now) }
            crashed.removeAll()
            for _ in 0..<4 { for c in clients { c.beat(h) } }
            assertNoSharing(clients, seed: seed)
            guard !clients.isEmpty else { continue }
            let all = clients.reduce(Set<TopicPartition>()) { $0.union($1.consuming) }
            let subscribed = Set(clients.flatMap(\.topics)).reduce(0) { $0 + Int(h.topics[$1]!) }
            XCTAssertEqual(all.count, subscribed, "seed \(seed): every subscribed partition consumed")
            XCTAssertEqual(h.describe().state, "Stable", "seed \(seed)")
        }
    }

    private var crashed: [ConsumerClient] = []

    private func assertNoSharing(_ clients: [ConsumerClient], seed: UInt64) {
        var seen: [TopicPartition: String] = [:]
        for c in clients {
            for tp in c.consuming {
                XCTAssertNil(seen[tp], "seed \(seed): \(tp) consumed by \(seen[tp] ?? "") and \(c.memberId)")
                seen[tp] = c.memberId
            }
        }
    }
}

/// A small seeded generator, so a failing sequence replays exactly.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
