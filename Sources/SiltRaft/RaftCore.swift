/// The deterministic Raft core of one controller-quorum voter (KRaft: KIP-595 with
/// KIP-996 pre-vote and KIP-630 snapshots). No clock, no I/O, no threads: a driver feeds it
/// time, messages, proposals and flush completions, and executes the outputs in order (see
/// `RaftOutput` for the durability contract and `RaftMessage` for correlation).
///
///     unattached ─timer─▶ prospective ─majority of pre-votes─▶ candidate ─majority of votes─▶ leader
///     prospective, candidate ─refused or timed out─▶ (backoff) prospective
///     follower ─no fetch answer for fetchTimeoutMs─▶ prospective
///     leader ─resign(), or no fetch from a majority for fetchTimeoutMs─▶ resigned ─timer─▶ prospective
///     any role ─higher epoch─▶ unattached, or follower when the message names the leader
///     unattached, prospective, candidate ─BeginQuorumEpoch, refusal naming a live leader─▶ follower
///
/// Not thread-safe; one owner calls it. Every call returns the outputs it produced.
public final class RaftCore {
    public let config: RaftConfig
    public private(set) var role: RaftRole
    /// The committed prefix ends here. Never decreases while the process lives; at start it
    /// is the snapshot's end. A follower's is min(leader's, own log end).
    public internal(set) var highWatermark: Int64

    var quorum: QuorumState
    var log: RaftLog
    /// The log is durable on this node below this offset (what `flushed(upTo:)` reported).
    var flushedOffset: Int64
    var random: any RandomNumberGenerator
    /// When an unattached, prospective, candidate or resigned voter next starts a pre-vote.
    var electionDeadlineMs: Int64
    /// The leader of the current epoch that is known to have resigned (this node when
    /// resigned); its name in other voters' answers is stale and is not followed again.
    var resignedLeaderId: Int32?
    /// Set while prospective or candidate.
    var election: ElectionProgress?
    /// Set while follower.
    var follower: FollowerProgress?
    /// Set while leader.
    var leader: LeaderProgress?
    /// Outputs of the call in progress, in order.
    private var outputs: [RaftOutput] = []

    /// Starts from what the driver found on disk. A voter that was the leader comes back
    /// resigned; one that knew a leader comes back following it; any other unattached.
    public init(config: RaftConfig, persisted: RaftPersisted, nowMs: Int64, random: some RandomNumberGenerator) {
        config.validate()
        self.config = config
        self.quorum = persisted.quorum
        self.log = RaftLog(snapshot: persisted.snapshot, batches: persisted.batches)
        self.flushedOffset = log.endOffset
        self.highWatermark = log.startOffset
        self.random = random
        self.electionDeadlineMs = nowMs
        precondition(quorum.epoch >= log.lastEpoch, "RaftCore: log epoch \(log.lastEpoch) above quorum epoch \(quorum.epoch)")
        switch quorum.leaderId {
        case config.nodeId?:
            role = .resigned(epoch: quorum.epoch)
            resignedLeaderId = config.nodeId
            electionDeadlineMs = nowMs + randomElectionTimeoutMs()
        case let leaderId?:
            role = .follower(epoch: quorum.epoch, leaderId: leaderId)
            follower = FollowerProgress(leaderId: leaderId, fetchDeadlineMs: followerFetchDeadlineMs(nowMs: nowMs))
        case nil:
            role = .unattached(epoch: quorum.epoch)
            electionDeadlineMs = nowMs + randomElectionTimeoutMs()
        }
        // The only voter needs nobody's vote: it elects itself at the first tick, as KRaft does.
        if config.voters == [config.nodeId] { electionDeadlineMs = nowMs }
    }

    // MARK: Read-only state

    public var epoch: Int32 { quorum.epoch }
    /// The leader of the current epoch, if known (this node when leading or resigned).
    public var leaderId: Int32? { quorum.leaderId }
    public var logEndOffset: Int64 { log.endOffset }
    /// The latest snapshot's end offset, or 0.
    public var logStartOffset: Int64 { log.startOffset }
    public var latestSnapshot: RaftSnapshot? { log.snapshot }
    /// Leader, and the high watermark has passed the control batch of its own epoch: the
    /// state machine has applied everything earlier leaders committed and may take proposals.
    public var leaderReady: Bool {
        guard let leader else { return false }
        return highWatermark > leader.epochStartOffset
    }

    /// True if a batch of the log starts at `offset`, or it is the log end (where a reader
    /// may start; anything else is a malformed fetch offset).
    public func isBatchBoundary(_ offset: Int64) -> Bool { offset >= log.startOffset && log.isBoundary(offset) }

    /// The batches covering `[from, upTo)`; `from` must be a batch boundary at or above
    /// `logStartOffset` and `upTo` at most `logEndOffset`.
    public func batches(from: Int64, upTo: Int64) -> [RaftBatch] {
        precondition(from >= log.startOffset && upTo <= log.endOffset && from <= upTo,
                     "RaftCore.batches: [\(from), \(upTo)) outside [\(log.startOffset), \(log.endOffset)]")
        return log.read(from: from, upTo: upTo, countMax: Int.max, bytesMax: Int.max)
    }

    // MARK: Inputs

    /// Fires timers: elections, fetch and request timeouts, parked fetches, check-quorum.
    public func tick(nowMs: Int64) -> [RaftOutput] {
        switch role {
        case .leader: leaderTick(nowMs: nowMs)
        case .follower: followerTick(nowMs: nowMs)
        case .unattached, .prospective, .candidate, .resigned:
            if nowMs >= electionDeadlineMs { startPreVote(nowMs: nowMs) }
        }
        return takeOutputs()
    }

    public func receive(_ message: RaftMessage, from: Int32, nowMs: Int64) -> [RaftOutput] {
        switch message {
        case let .voteRequest(candidateEpoch, candidateId, lastOffsetEpoch, lastOffset, preVote):
            handleVoteRequest(candidateEpoch: candidateEpoch, candidateId: candidateId, lastOffsetEpoch: lastOffsetEpoch,
                              lastOffset: lastOffset, preVote: preVote, from: from, nowMs: nowMs)
        case let .voteResponse(errorCode, leaderId, leaderEpoch, voteGranted, preVote):
            handleVoteResponse(errorCode: errorCode, leaderId: leaderId, leaderEpoch: leaderEpoch,
                               voteGranted: voteGranted, preVote: preVote, from: from, nowMs: nowMs)
        case let .beginQuorumEpoch(leaderId, leaderEpoch):
            handleBeginQuorumEpoch(leaderId: leaderId, leaderEpoch: leaderEpoch, from: from, nowMs: nowMs)
        case let .beginQuorumEpochResponse(errorCode, leaderId, leaderEpoch):
            handleBeginQuorumEpochResponse(errorCode: errorCode, leaderId: leaderId, leaderEpoch: leaderEpoch,
                                           from: from, nowMs: nowMs)
        case let .endQuorumEpoch(leaderId, leaderEpoch, preferredSuccessors):
            handleEndQuorumEpoch(leaderId: leaderId, leaderEpoch: leaderEpoch, preferredSuccessors: preferredSuccessors,
                                 from: from, nowMs: nowMs)
        case let .endQuorumEpochResponse(_, leaderId, leaderEpoch):
            if config.voters.contains(from) { observe(epoch: leaderEpoch, leaderId: leaderId, nowMs: nowMs) }
        case let .fetchRequest(replicaId, currentLeaderEpoch, fetchOffset, lastFetchedEpoch):
            handleFetchRequest(replicaId: replicaId, currentLeaderEpoch: currentLeaderEpoch, fetchOffset: fetchOffset,
                               lastFetchedEpoch: lastFetchedEpoch, from: from, nowMs: nowMs)
        case let .fetchResponse(errorCode, leaderId, leaderEpoch, highWatermark, _, batches, divergingEpoch, snapshotId):
            handleFetchResponse(errorCode: errorCode, leaderId: leaderId, leaderEpoch: leaderEpoch,
                                highWatermark: highWatermark, batches: batches, divergingEpoch: divergingEpoch,
                                snapshotId: snapshotId, from: from, nowMs: nowMs)
        case let .fetchSnapshotRequest(replicaId, currentLeaderEpoch, snapshotId):
            handleFetchSnapshotRequest(replicaId: replicaId, currentLeaderEpoch: currentLeaderEpoch,
                                       snapshotId: snapshotId, from: from)
        case let .fetchSnapshotResponse(errorCode, leaderId, leaderEpoch, snapshot):
            handleFetchSnapshotResponse(errorCode: errorCode, leaderId: leaderId, leaderEpoch: leaderEpoch,
                                        snapshot: snapshot, from: from, nowMs: nowMs)
        }
        return takeOutputs()
    }

    /// Appends one batch of `records` in the leader's epoch. The batch must fit in one fetch
    /// (`fetchBytesMax`). Accepted means appended, not committed: watch `commit` outputs.
    public func propose(_ records: [[UInt8]], nowMs: Int64) -> (result: ProposeResult, outputs: [RaftOutput]) {
        guard leader != nil else {
            return (.notLeader(leaderId: leaderHint < 0 ? nil : leaderHint, epoch: quorum.epoch), [])
        }
        let batch = RaftBatch(baseOffset: log.endOffset, epoch: quorum.epoch, isControl: false, records: records)
        precondition(batch.byteCount <= config.fetchBytesMax, "RaftCore.propose: \(batch.byteCount) bytes > fetchBytesMax")
        appendAsLeader(batch)
        return (.accepted(baseOffset: batch.baseOffset, epoch: batch.epoch), takeOutputs())
    }

    /// The log is durable below `offset` (one call per fsync, covering all earlier appends).
    public func flushed(upTo offset: Int64, nowMs: Int64) -> [RaftOutput] {
        precondition(offset <= log.endOffset, "RaftCore.flushed: \(offset) past the log end \(log.endOffset)")
        precondition(log.isBoundary(offset) || offset < log.startOffset, "RaftCore.flushed: \(offset) is not a batch boundary")
        if offset > flushedOffset {
            flushedOffset = offset
            if leader != nil { advanceHighWatermark() }
            if follower != nil { sendFetchIfReady(nowMs: nowMs) }
        }
        return takeOutputs()
    }

    /// The state machine stored `snapshot`, taken at a committed batch boundary. The core
    /// drops the batches it covers (output `deleteBefore`) and serves it to fetchers that
    /// are behind the log start. A snapshot not past the current one is ignored.
    public func snapshotTaken(_ snapshot: RaftSnapshot) -> [RaftOutput] {
        precondition(snapshot.id.endOffset <= highWatermark,
                     "RaftCore.snapshotTaken: \(snapshot.id) above the high watermark \(highWatermark)")
        guard snapshot.id.endOffset > log.startOffset else { return [] }
        log.compact(to: snapshot)
        flushedOffset = max(flushedOffset, log.startOffset)
        return [.deleteBefore(offset: snapshot.id.endOffset)]
    }

    /// A leader steps down gracefully: EndQuorumEpoch to the other voters, then resigned.
    public func resign(nowMs: Int64) -> [RaftOutput] {
        if leader != nil { resignLeadership(nowMs: nowMs) }
        return takeOutputs()
    }

    /// DescribeQuorum. Only the leader knows the replicas; elsewhere they report -1.
    public func describe(nowMs: Int64) -> QuorumDescription {
        func describe(_ id: Int32, _ p: ReplicaProgress?) -> ReplicaDescription {
            ReplicaDescription(replicaId: id, logEndOffset: p?.endOffset ?? -1,
                               lastFetchTimestampMs: p?.lastFetchMs ?? -1, lastCaughtUpTimestampMs: p?.lastCaughtUpMs ?? -1)
        }
        let voters = config.voters.map { id -> ReplicaDescription in
            if id == config.nodeId, leader != nil {
                return ReplicaDescription(replicaId: id, logEndOffset: log.endOffset,
                                          lastFetchTimestampMs: nowMs, lastCaughtUpTimestampMs: nowMs)
            }
            return describe(id, leader?.voters[id])
        }
        let observers = (leader?.observers ?? [:]).keys.sorted().map { describe($0, leader?.observers[$0]) }
        return QuorumDescription(leaderId: quorum.leaderId ?? -1, leaderEpoch: quorum.epoch, highWatermark: highWatermark,
                                 voters: voters, observers: observers)
    }

    // MARK: Shared machinery

    func emit(_ output: RaftOutput) { outputs.append(output) }

    func send(_ message: RaftMessage, to: Int32) { outputs.append(.send(to: to, message)) }

    private func takeOutputs() -> [RaftOutput] {
        defer { outputs = [] }
        return outputs
    }

    /// The leader to name in responses: -1 when unknown or resigned.
    var leaderHint: Int32 {
        guard let id = quorum.leaderId, id != resignedLeaderId else { return -1 }
        return id
    }

    var otherVoters: [Int32] { config.voters.filter { $0 != config.nodeId } }

    func persist(_ state: QuorumState) {
        precondition(state.epoch > quorum.epoch || state.votedFor == quorum.votedFor || quorum.votedFor == nil,
                     "RaftCore: vote changed within epoch \(state.epoch): \(quorum) → \(state)")
        precondition(state.epoch >= quorum.epoch, "RaftCore: epoch went back \(quorum.epoch) → \(state.epoch)")
        if state.epoch > quorum.epoch { resignedLeaderId = nil }
        quorum = state
        emit(.persistQuorumState(state))
    }

    /// Enters `newRole` with no role progress; the caller installs the new role's own.
    func setRole(_ newRole: RaftRole) {
        if newRole != role { emit(.roleChanged(newRole)) }
        role = newRole
        election = nil
        follower = nil
        leader = nil
    }

    func randomElectionTimeoutMs() -> Int64 {
        config.electionTimeoutMs + randomBelow(config.electionTimeoutMs)
    }

    func randomBackoffMs() -> Int64 { randomBelow(config.electionBackoffMaxMs) }

    /// When a follower that hears nothing more from its leader starts a pre-vote: within
    /// `fetchTimeoutMs` (Kafka's maximum), less up to one election backoff. Followers that last
    /// heard from a dead leader at the same moment would otherwise run for the same epoch at
    /// the same moment and split the vote, costing an election timeout. Staggered, the first
    /// is refused by the others, which still count the leader alive, and the next one wins.
    func followerFetchDeadlineMs(nowMs: Int64) -> Int64 {
        nowMs + config.fetchTimeoutMs - randomBelow(min(config.electionBackoffMaxMs, config.fetchTimeoutMs / 2))
    }

    private func randomBelow(_ bound: Int64) -> Int64 { Int64(random.next() % UInt64(bound)) }

    /// Learns from a message's epoch and leader. A higher epoch is adopted at once (as a
    /// follower when the message names a leader, else unattached); in the current epoch a
    /// newly named leader is followed. Returns whether the message is current (not stale).
    @discardableResult
    func observe(epoch messageEpoch: Int32, leaderId messageLeader: Int32, nowMs: Int64) -> Bool {
        let named: Int32? = messageLeader >= 0 && config.voters.contains(messageLeader) ? messageLeader : nil
        if messageEpoch > quorum.epoch {
            precondition(named != config.nodeId, "RaftCore: told it leads epoch \(messageEpoch) it never won")
            if let named { becomeFollower(epoch: messageEpoch, leaderId: named, nowMs: nowMs) }
            else { becomeUnattached(epoch: messageEpoch, nowMs: nowMs) }
            return true
        }
        guard messageEpoch == quorum.epoch else { return false }
        if let named, named != config.nodeId, named != resignedLeaderId, follower?.leaderId != named {
            precondition(leader == nil && (quorum.leaderId == nil || quorum.leaderId == named),
                         "RaftCore: two leaders in epoch \(messageEpoch): \(String(describing: quorum.leaderId)) and \(named)")
            becomeFollower(epoch: messageEpoch, leaderId: named, nowMs: nowMs)
        }
        return true
    }

    /// Unattached in `epoch` (a higher epoch resets the vote and the leader).
    func becomeUnattached(epoch newEpoch: Int32, nowMs: Int64) {
        if newEpoch > quorum.epoch { persist(QuorumState(epoch: newEpoch)) }
        setRole(.unattached(epoch: newEpoch))
        electionDeadlineMs = nowMs + randomElectionTimeoutMs()
    }

    func becomeFollower(epoch newEpoch: Int32, leaderId: Int32, nowMs: Int64) {
        precondition(leaderId != config.nodeId, "RaftCore: cannot follow itself")
        if newEpoch > quorum.epoch {
            persist(QuorumState(epoch: newEpoch, votedFor: nil, leaderId: leaderId))
        } else if quorum.leaderId != leaderId {
            persist(QuorumState(epoch: newEpoch, votedFor: quorum.votedFor, leaderId: leaderId))
        }
        setRole(.follower(epoch: newEpoch, leaderId: leaderId))
        follower = FollowerProgress(leaderId: leaderId, fetchDeadlineMs: followerFetchDeadlineMs(nowMs: nowMs))
        sendFetchIfReady(nowMs: nowMs)
    }

    func truncate(to offset: Int64) {
        precondition(offset >= highWatermark, "RaftCore: truncate to \(offset) below the high watermark \(highWatermark)")
        log.truncate(to: offset)
        flushedOffset = min(flushedOffset, offset)
        emit(.truncate(toOffset: offset))
    }

    func raiseHighWatermark(to offset: Int64) {
        guard offset > highWatermark else { return }
        precondition(offset <= log.endOffset && log.isBoundary(offset), "RaftCore: high watermark \(offset) not a batch boundary")
        highWatermark = offset
        emit(.commit(highWatermark: offset))
    }
}
