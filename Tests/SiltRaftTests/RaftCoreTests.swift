import SiltRaft
import XCTest

final class RaftCoreTests: XCTestCase {
    private func batch(_ base: Int64, epoch: Int32, count: Int = 1) -> RaftBatch {
        RaftBatch(baseOffset: base, epoch: epoch, isControl: false,
                  records: (0..<count).map { [UInt8(truncatingIfNeeded: base + Int64($0))] })
    }

    /// Three voters elect exactly one leader through pre-vote; the others follow it, and the
    /// leader's control batch commits.
    func testElectsSingleLeader() throws {
        let c = RaftTestCluster(voters: [1, 2, 3])
        let leader = try XCTUnwrap(c.electLeader())
        XCTAssertEqual(c.leaders, [leader])
        XCTAssertEqual(c[leader].epoch, 1)
        for id in c.voters where id != leader {
            XCTAssertEqual(c[id].role, .follower(epoch: 1, leaderId: leader))
        }
        XCTAssertEqual(c[leader].highWatermark, 1, "the control batch is committed")
        let control = c[leader].batches(from: 0, upTo: 1)
        XCTAssertEqual(control.first?.isControl, true)
        XCTAssertEqual(control.first?.epoch, 1)
        XCTAssertEqual(c.propose([7], on: leader), .accepted(baseOffset: 1, epoch: 1))
        c.advance(byMs: 10)
        XCTAssertTrue(c.voters.allSatisfy { c[$0].highWatermark == 2 })
        let follower = c.voters.first { $0 != leader }!
        XCTAssertEqual(c.propose([8], on: follower), .notLeader(leaderId: leader, epoch: 1))
    }

    /// A single voter leads on its own.
    func testSingleVoterLeadsAlone() throws {
        let c = RaftTestCluster(voters: [5])
        XCTAssertEqual(c.electLeader(), 5)
        XCTAssertEqual(c.propose([1, 2], on: 5), .accepted(baseOffset: 1, epoch: 1))
        XCTAssertEqual(c[5].highWatermark, 2)
    }

    /// A voter cut off from a live leader keeps asking for pre-votes, but voters that hear
    /// from the leader refuse, so its epoch never moves and nothing is persisted (KIP-996).
    func testPreVoteRefusedWhileLeaderLive() throws {
        let c = RaftTestCluster(voters: [1, 2, 3])
        let leader = try XCTUnwrap(c.electLeader())
        let loner = c.voters.last { $0 != leader }!
        let other = c.voters.first { $0 != leader && $0 != loner }!
        let core = c[loner]
        c.clearOutputs()
        // The loner's fetches are lost; it times out and becomes prospective.
        c.isolated = [loner]
        c.advance(byMs: 2500)
        XCTAssertEqual(core.role, .prospective(epoch: 1))
        XCTAssertFalse(c.outputs[loner, default: []].contains { if case .persistQuorumState = $0 { true } else { false } })
        // Reconnected, its pre-vote is refused by both: the follower has a live leader, and
        // the leader never grants one.
        c.isolated = []
        let request = RaftMessage.voteRequest(candidateEpoch: 2, candidateId: loner, lastOffsetEpoch: 1,
                                              lastOffset: core.logEndOffset, preVote: true)
        for voter in [leader, other] {
            let out = c[voter].receive(request, from: loner, nowMs: c.nowMs)
            XCTAssertEqual(out, [.send(to: loner, .voteResponse(errorCode: 0, leaderId: leader, leaderEpoch: 1,
                                                                  voteGranted: false, preVote: true))])
        }
        c.advance(byMs: 3000)
        XCTAssertEqual(c.leaders, [leader])
        XCTAssertEqual(c[leader].epoch, 1)
        XCTAssertEqual(core.role, .follower(epoch: 1, leaderId: leader), "a refusal naming the leader sends it back")
    }

    /// A real vote is persisted before the response leaves, granted once per epoch, and
    /// refused to a candidate whose log is behind.
    func testVotePersistedBeforeResponseAndGrantedOnce() {
        let persisted = RaftPersisted(quorum: QuorumState(epoch: 3), batches: [batch(0, epoch: 2, count: 2)])
        let core = RaftCore(config: RaftConfig(nodeId: 1, voters: [1, 2, 3]), persisted: persisted, nowMs: 0,
                            random: SplitMix64(seed: 1))
        let out = core.receive(.voteRequest(candidateEpoch: 4, candidateId: 2, lastOffsetEpoch: 2, lastOffset: 2, preVote: false),
                               from: 2, nowMs: 5)
        let persists = out.indices.filter { if case .persistQuorumState = out[$0] { true } else { false } }
        let response = out.firstIndex { if case .send = $0 { true } else { false } }!
        XCTAssertEqual(out[persists.last!], .persistQuorumState(QuorumState(epoch: 4, votedFor: 2)))
        XCTAssertLessThan(persists.last!, response)
        XCTAssertEqual(out[response], .send(to: 2, .voteResponse(errorCode: 0, leaderId: -1, leaderEpoch: 4,
                                                                voteGranted: true, preVote: false)))
        let second = core.receive(.voteRequest(candidateEpoch: 4, candidateId: 3, lastOffsetEpoch: 2, lastOffset: 9, preVote: false),
                                  from: 3, nowMs: 6)
        XCTAssertEqual(second, [.send(to: 3, .voteResponse(errorCode: 0, leaderId: -1, leaderEpoch: 4,
                                                           voteGranted: false, preVote: false))])
        let behind = core.receive(.voteRequest(candidateEpoch: 5, candidateId: 3, lastOffsetEpoch: 2, lastOffset: 1, preVote: false),
                                  from: 3, nowMs: 7)
        XCTAssertEqual(behind.last, .send(to: 3, .voteResponse(errorCode: 0, leaderId: -1, leaderEpoch: 5,
                                                               voteGranted: false, preVote: false)))
        XCTAssertEqual(core.epoch, 5, "a real vote request of a higher epoch is adopted")
        // A pre-vote for the next epoch changes nothing.
        let pre = core.receive(.voteRequest(candidateEpoch: 6, candidateId: 2, lastOffsetEpoch: 2, lastOffset: 2, preVote: true),
                               from: 2, nowMs: 8)
        XCTAssertEqual(pre, [.send(to: 2, .voteResponse(errorCode: 0, leaderId: -1, leaderEpoch: 5, voteGranted: true, preVote: true))])
        XCTAssertEqual(core.epoch, 5)
        XCTAssertEqual(core.role, .unattached(epoch: 5))
        // One from a voter already in a later epoch shows that epoch, which is adopted.
        let ahead = core.receive(.voteRequest(candidateEpoch: 9, candidateId: 2, lastOffsetEpoch: 2, lastOffset: 2, preVote: true),
                                 from: 2, nowMs: 9)
        XCTAssertEqual(ahead, [.persistQuorumState(QuorumState(epoch: 8)), .roleChanged(.unattached(epoch: 8)),
                               .send(to: 2, .voteResponse(errorCode: 0, leaderId: -1, leaderEpoch: 8, voteGranted: true, preVote: true))])
    }

    /// A follower with an uncommitted tail from an old epoch is told where it diverges,
    /// truncates to the end of the common epoch, and then matches the leader.
    func testDivergingFollowerTruncates() throws {
        let common = batch(0, epoch: 1, count: 2)
        let persisted: [Int32: RaftPersisted] = [
            1: RaftPersisted(quorum: QuorumState(epoch: 3), batches: [common, batch(2, epoch: 3, count: 2)]),
            2: RaftPersisted(quorum: QuorumState(epoch: 3), batches: [common, batch(2, epoch: 2, count: 3)]),
            3: RaftPersisted(quorum: QuorumState(epoch: 3), batches: [common, batch(2, epoch: 3, count: 2)]),
        ]
        let c = RaftTestCluster(voters: [1, 2, 3], persisted: persisted) { $0.electionTimeoutMs = $0.nodeId == 1 ? 100 : 1000 }
        XCTAssertEqual(c.electLeader(), 1)
        let divergences = c.sent(by: 1).compactMap { sent -> DivergingEpoch? in
            if sent.to == 2, case let .fetchResponse(_, _, _, _, _, _, diverging?, _) = sent.message { diverging } else { nil }
        }
        XCTAssertEqual(divergences, [DivergingEpoch(epoch: 1, endOffset: 2)], "epoch 2 is unknown to the leader; epoch 1 ends at 2")
        XCTAssertTrue(c.outputs[2]!.contains(.truncate(toOffset: 2)))
        XCTAssertEqual(c[2].batches(from: 0, upTo: c[2].logEndOffset), c[1].batches(from: 0, upTo: c[1].logEndOffset))
        XCTAssertEqual(c[2].highWatermark, 5)
    }

    /// A voter that starts empty behind a compacted leader fetches its snapshot, installs it,
    /// and continues from the snapshot's end.
    func testLaggingFollowerCatchesUpFromSnapshot() throws {
        let c = RaftTestCluster(voters: [1, 2, 3]) { $0.electionTimeoutMs = $0.nodeId == 1 ? 100 : 1000 }
        XCTAssertEqual(c.electLeader(), 1)
        c.isolated = [3]
        for i in 0..<5 { _ = c.propose([UInt8(i)], on: 1) }
        c.advance(byMs: 10)
        XCTAssertEqual(c[1].highWatermark, 6)
        let snapshot = RaftSnapshot(id: SnapshotId(endOffset: 6, epoch: 1), bytes: [42])
        XCTAssertEqual(c[1].snapshotTaken(snapshot), [.deleteBefore(offset: 6)])
        XCTAssertEqual(c[1].logStartOffset, 6)
        c.isolated = []
        c.clearOutputs()
        c.advance(byMs: 1000)
        XCTAssertTrue(c.sent(by: 3).contains { $0.message == .fetchSnapshotRequest(replicaId: 3, currentLeaderEpoch: 1,
                                                                                     snapshotId: snapshot.id) })
        XCTAssertTrue(c.outputs[3]!.contains(.installSnapshot(snapshot)))
        XCTAssertEqual(c[3].logStartOffset, 6)
        XCTAssertEqual(c[3].highWatermark, 6)
        XCTAssertEqual(c.propose([9], on: 1), .accepted(baseOffset: 6, epoch: 1))
        c.advance(byMs: 10)
        XCTAssertEqual(c[3].batches(from: 6, upTo: c[3].logEndOffset).map(\.records), [[[9]]])
        XCTAssertEqual(c[3].highWatermark, 7)
    }

    /// A leader that hears from no majority for fetchTimeoutMs resigns with EndQuorumEpoch;
    /// the followers then elect a new leader in a higher epoch.
    func testLeaderWithoutMajorityResigns() throws {
        let c = RaftTestCluster(voters: [1, 2, 3]) { $0.electionTimeoutMs = $0.nodeId == 1 ? 100 : 1000 }
        XCTAssertEqual(c.electLeader(), 1)
        c.isolated = [2, 3]
        c.clearOutputs()
        c.advance(byMs: 1990)
        XCTAssertEqual(c[1].role, .leader(epoch: 1), "still within fetchTimeoutMs")
        c.advance(byMs: 100)
        XCTAssertEqual(c[1].role, .resigned(epoch: 1))
        XCTAssertTrue(c.sent(by: 1).contains { $0.to == 2 && {
            if case .endQuorumEpoch(1, 1, _) = $0 { true } else { false } }($0.message) })
        XCTAssertEqual(c.propose([1], on: 1), .notLeader(leaderId: nil, epoch: 1))
        c.isolated = [1]
        let next = try XCTUnwrap(c.electLeader())
        XCTAssertNotEqual(next, 1)
        XCTAssertEqual(c[next].epoch, 2)
    }

    /// Followers that last heard from a dead leader at the same moment start their pre-votes
    /// at staggered times: the first is refused (the other still counts the leader alive) and
    /// the next wins, so the successor is elected in the next epoch within the fetch timeout,
    /// without a split vote costing an election timeout. Over 50 seeds, allowing a collision
    /// of both timers in one 10 ms tick now and then.
    func testDeadLeaderReplacedInFirstRound() throws {
        var firstRound = 0
        for seed in UInt64(1)...50 {
            let c = RaftTestCluster(voters: [1, 2, 3], seed: seed)
            let old = try XCTUnwrap(c.electLeader())
            c.advance(byMs: 100) // steady fetching
            c.isolated = [old]
            let killedMs = c.nowMs
            var next: Int32?
            while next == nil, c.nowMs - killedMs < 10_000 {
                c.advance(byMs: 10)
                next = c.leaders.first { $0 != old && c[$0].leaderReady }
            }
            let successor = try XCTUnwrap(next, "seed \(seed)")
            let config = RaftConfig(nodeId: 1, voters: [1, 2, 3])
            if c[successor].epoch == 2 {
                firstRound += 1
                XCTAssertLessThanOrEqual(c.nowMs - killedMs, config.fetchTimeoutMs + 20, "seed \(seed)")
            } else {
                XCTAssertLessThanOrEqual(c.nowMs - killedMs, config.fetchTimeoutMs + config.electionBackoffMaxMs
                                         + 2 * config.electionTimeoutMs + 20, "seed \(seed)")
            }
        }
        XCTAssertGreaterThanOrEqual(firstRound, 45)
    }

    /// Graceful resignation: the first preferred successor starts its election at once.
    func testResignHandsOverToPreferredSuccessor() throws {
        let c = RaftTestCluster(voters: [1, 2, 3]) { $0.electionTimeoutMs = $0.nodeId == 1 ? 100 : 5000 }
        XCTAssertEqual(c.electLeader(), 1)
        let out = c[1].resign(nowMs: c.nowMs)
        XCTAssertEqual(out.first, .roleChanged(.resigned(epoch: 1)))
        let successors = out.compactMap { if case let .send(_, .endQuorumEpoch(_, _, s)) = $0 { s } else { nil } }
        XCTAssertEqual(successors.count, 2)
        c.absorb(out, from: 1)
        c.deliverAll()
        c.advance(byMs: 10)
        XCTAssertEqual(c.leaders, [successors[0][0]], "the preferred successor is elected on its next tick")
        XCTAssertEqual(c[successors[0][0]].epoch, 2)
    }

    /// Observers get only committed batches; a fetch with nothing new is parked and answered
    /// when the high watermark moves. DescribeQuorum lists voters and observers.
    func testObserverSeesOnlyCommittedData() throws {
        let c = RaftTestCluster(voters: [1, 2, 3]) { $0.electionTimeoutMs = $0.nodeId == 1 ? 100 : 1000 }
        XCTAssertEqual(c.electLeader(), 1)
        let leader = c[1]
        c.isolated = [2, 3]
        _ = c.propose([1], on: 1)
        _ = c.propose([2], on: 1)
        XCTAssertEqual(leader.logEndOffset, 3)
        XCTAssertEqual(leader.highWatermark, 1)
        let fetch = RaftMessage.fetchRequest(replicaId: 100, currentLeaderEpoch: 1, fetchOffset: 0, lastFetchedEpoch: 0)
        let answer = leader.receive(fetch, from: 100, nowMs: c.nowMs)
        guard case let .send(100, .fetchResponse(0, 1, 1, hw, _, batches, nil, nil))? = answer.first else {
            return XCTFail("expected a fetch response: \(answer)")
        }
        XCTAssertEqual(hw, 1)
        XCTAssertEqual(batches.map(\.endOffset), [1], "only the committed control batch")
        // Caught up to the high watermark: parked until it moves.
        let parked = leader.receive(.fetchRequest(replicaId: 100, currentLeaderEpoch: 1, fetchOffset: 1, lastFetchedEpoch: 1),
                                    from: 100, nowMs: c.nowMs)
        XCTAssertEqual(parked, [])
        c.isolated = []
        c.advance(byMs: 10)
        XCTAssertEqual(leader.highWatermark, 3)
        let answers = c.sent(by: 1).filter { $0.to == 100 }.map(\.message)
        guard case let .fetchResponse(0, 1, 1, answerHighWatermark, 0, answerBatches, nil, nil)? = answers.first
        else { return XCTFail("the parked observer fetch was not answered: \(answers)") }
        XCTAssertGreaterThan(answerHighWatermark, 1, "answered because the high watermark moved")
        XCTAssertEqual(answerBatches.first?.baseOffset, 1)
        XCTAssertEqual(answerBatches.last?.endOffset, answerHighWatermark, "committed batches only")
        let description = leader.describe(nowMs: c.nowMs)
        XCTAssertEqual(description.leaderId, 1)
        XCTAssertEqual(description.highWatermark, 3)
        XCTAssertEqual(description.voters.map(\.replicaId), [1, 2, 3])
        XCTAssertEqual(description.voters.map(\.logEndOffset), [3, 3, 3])
        XCTAssertEqual(description.observers.map(\.replicaId), [100])
        XCTAssertEqual(description.observers[0].logEndOffset, 1)
    }

    /// A parked fetch with nothing new is answered at fetchMaxWaitMs.
    func testParkedFetchAnsweredAtDeadline() throws {
        let c = RaftTestCluster(voters: [1, 2, 3]) { $0.electionTimeoutMs = $0.nodeId == 1 ? 100 : 1000 }
        XCTAssertEqual(c.electLeader(), 1)
        let leader = c[1]
        let isTo2 = { (o: RaftOutput) in if case .send(2, _) = o { true } else { false } }
        let fetch = RaftMessage.fetchRequest(replicaId: 2, currentLeaderEpoch: 1, fetchOffset: 1, lastFetchedEpoch: 1)
        XCTAssertEqual(leader.receive(fetch, from: 2, nowMs: c.nowMs), [])
        XCTAssertEqual(leader.tick(nowMs: c.nowMs + 499).filter(isTo2), [])
        XCTAssertEqual(leader.tick(nowMs: c.nowMs + 500).filter(isTo2), [
            .send(to: 2, .fetchResponse(errorCode: 0, leaderId: 1, leaderEpoch: 1, highWatermark: 1, logStartOffset: 0,
                                        batches: [], divergingEpoch: nil, snapshotId: nil)),
        ])
        let stale = leader.receive(.fetchRequest(replicaId: 2, currentLeaderEpoch: 0, fetchOffset: 1, lastFetchedEpoch: 1),
                                   from: 2, nowMs: c.nowMs)
        XCTAssertEqual(stale, [.send(to: 2, .fetchResponse(errorCode: RaftErrorCode.fencedLeaderEpoch, leaderId: 1, leaderEpoch: 1,
                                                          highWatermark: 1, logStartOffset: 0, batches: [],
                                                          divergingEpoch: nil, snapshotId: nil))])
    }

    /// A restarted leader comes back resigned and tells fetchers it no longer leads.
    func testRestartedLeaderComesBackResigned() {
        let persisted = RaftPersisted(quorum: QuorumState(epoch: 2, votedFor: 1, leaderId: 1), batches: [batch(0, epoch: 2)])
        let core = RaftCore(config: RaftConfig(nodeId: 1, voters: [1, 2, 3]), persisted: persisted, nowMs: 0,
                            random: SplitMix64(seed: 1))
        XCTAssertEqual(core.role, .resigned(epoch: 2))
        XCTAssertEqual(core.receive(.fetchRequest(replicaId: 2, currentLeaderEpoch: 2, fetchOffset: 1, lastFetchedEpoch: 2),
                                    from: 2, nowMs: 1),
                       [.send(to: 2, .fetchResponse(errorCode: RaftErrorCode.notLeaderOrFollower, leaderId: -1, leaderEpoch: 2,
                                                    highWatermark: 0, logStartOffset: 0, batches: [], divergingEpoch: nil,
                                                    snapshotId: nil))])
    }
}
