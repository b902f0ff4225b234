/// Votes collected by a prospective (pre-votes) or candidate (votes) voter in one round.
/// Invariant: this node is in `granted`; `granted` and `rejected` are disjoint.
struct ElectionProgress {
    var granted: Set<Int32>
    var rejected: Set<Int32> = []
}

extension RaftCore {
    /// A voter's log is at least as up to date as ours (Raft's rule, on KRaft's fields).
    func isUpToDate(lastOffsetEpoch: Int32, lastOffset: Int64) -> Bool {
        (lastOffsetEpoch, lastOffset) >= (log.lastEpoch, log.endOffset)
    }

    /// A leader is known alive: this node leads, or follows one that answered a fetch within
    /// `fetchTimeoutMs`. Such a voter refuses pre-votes (KIP-996).
    func hasLiveLeader(nowMs: Int64) -> Bool {
        if leader != nil { return true }
        guard let contact = follower?.leaderContactMs else { return false }
        return nowMs - contact < config.fetchTimeoutMs
    }

    /// Prospective: asks every other voter for a pre-vote for `epoch + 1`. Changes and
    /// persists nothing. Called when an election timer or a follower's fetch timer fires.
    func startPreVote(nowMs: Int64) {
        setRole(.prospective(epoch: quorum.epoch))
        election = ElectionProgress(granted: [config.nodeId])
        electionDeadlineMs = nowMs + randomElectionTimeoutMs()
        for voter in otherVoters {
            send(.voteRequest(candidateEpoch: quorum.epoch + 1, candidateId: config.nodeId, lastOffsetEpoch: log.lastEpoch,
                              lastOffset: log.endOffset, preVote: true), to: voter)
        }
        tallyVotes(nowMs: nowMs)
    }

    /// Candidate: a new epoch with a vote for itself, persisted before the vote requests leave.
    private func startElection(nowMs: Int64) {
        persist(QuorumState(epoch: quorum.epoch + 1, votedFor: config.nodeId, leaderId: nil))
        setRole(.candidate(epoch: quorum.epoch))
        election = ElectionProgress(granted: [config.nodeId])
        electionDeadlineMs = nowMs + randomElectionTimeoutMs()
        for voter in otherVoters {
            send(.voteRequest(candidateEpoch: quorum.epoch, candidateId: config.nodeId, lastOffsetEpoch: log.lastEpoch,
                              lastOffset: log.endOffset, preVote: false), to: voter)
        }
        tallyVotes(nowMs: nowMs)
    }

    /// A majority of grants moves prospective → candidate → leader; a majority of refusals
    /// ends the round: the next pre-vote waits a random backoff.
    private func tallyVotes(nowMs: Int64) {
        guard let election else { return }
        if election.granted.count >= config.majority {
            if case .prospective = role { startElection(nowMs: nowMs) } else { becomeLeader(nowMs: nowMs) }
        } else if election.rejected.count > config.voters.count - config.majority {
            electionDeadlineMs = min(electionDeadlineMs, nowMs + randomBackoffMs())
        }
    }

    func handleVoteRequest(candidateEpoch: Int32, candidateId: Int32, lastOffsetEpoch: Int32, lastOffset: Int64,
                           preVote: Bool, from: Int32, nowMs: Int64) {
        guard config.voters.contains(candidateId), candidateId != config.nodeId, candidateId == from else {
            send(.voteResponse(errorCode: RaftErrorCode.inconsistentVoterSet, leaderId: leaderHint,
                               leaderEpoch: quorum.epoch, voteGranted: false, preVote: preVote), to: from)
            return
        }
        let upToDate = isUpToDate(lastOffsetEpoch: lastOffsetEpoch, lastOffset: lastOffset)
        if preVote {
            // A pre-vote changes nothing, but it shows the sender's own epoch. A voter behind it
            // adopts that epoch like any other: otherwise a voter that once ran an election the
            // others never heard of could never rejoin (they refuse its pre-votes while their
            // leader lives, and it cannot follow a leader of a lower epoch).
            if candidateEpoch - 1 > quorum.epoch { becomeUnattached(epoch: candidateEpoch - 1, nowMs: nowMs) }
            let granted = candidateEpoch >= quorum.epoch && upToDate && !hasLiveLeader(nowMs: nowMs)
            send(.voteResponse(errorCode: RaftErrorCode.none, leaderId: leaderHint, leaderEpoch: quorum.epoch,
                               voteGranted: granted, preVote: true), to: from)
            return
        }
        if candidateEpoch > quorum.epoch { becomeUnattached(epoch: candidateEpoch, nowMs: nowMs) }
        let granted = candidateEpoch == quorum.epoch && upToDate && quorum.leaderId == nil
            && (quorum.votedFor == nil || quorum.votedFor == candidateId)
        if granted && quorum.votedFor == nil {
            persist(QuorumState(epoch: quorum.epoch, votedFor: candidateId, leaderId: nil))
            becomeUnattached(epoch: quorum.epoch, nowMs: nowMs)
        }
        send(.voteResponse(errorCode: RaftErrorCode.none, leaderId: leaderHint, leaderEpoch: quorum.epoch,
                           voteGranted: granted, preVote: false), to: from)
    }

    func handleVoteResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32, voteGranted: Bool, preVote: Bool,
                            from: Int32, nowMs: Int64) {
        guard config.voters.contains(from), errorCode == RaftErrorCode.none else { return }
        if leaderEpoch > quorum.epoch {
            observe(epoch: leaderEpoch, leaderId: leaderId, nowMs: nowMs)
            return
        }
        guard leaderEpoch == quorum.epoch, election != nil else { return }
        switch (role, preVote) {
        case (.prospective, true), (.candidate, false):
            if voteGranted {
                election?.granted.insert(from)
                election?.rejected.remove(from)
            } else {
                // A refusal naming a live leader of this epoch: follow it (KIP-996).
                observe(epoch: leaderEpoch, leaderId: leaderId, nowMs: nowMs)
                guard election != nil else { return }
                election?.rejected.insert(from)
                election?.granted.remove(from)
            }
            tallyVotes(nowMs: nowMs)
        default:
            return
        }
    }

    private func becomeLeader(nowMs: Int64) {
        persist(QuorumState(epoch: quorum.epoch, votedFor: config.nodeId, leaderId: config.nodeId))
        setRole(.leader(epoch: quorum.epoch))
        var progress = LeaderProgress(epochStartOffset: log.endOffset)
        for voter in otherVoters {
            progress.voters[voter] = ReplicaProgress(lastFetchMs: nowMs, beginQuorumEpochSentMs: nowMs)
        }
        leader = progress
        appendAsLeader(RaftBatch(baseOffset: log.endOffset, epoch: quorum.epoch, isControl: true,
                                 records: [withUnsafeBytes(of: config.nodeId.bigEndian) { Array($0) }]))
        for voter in otherVoters {
            send(.beginQuorumEpoch(leaderId: config.nodeId, leaderEpoch: quorum.epoch), to: voter)
        }
    }

    func handleBeginQuorumEpoch(leaderId: Int32, leaderEpoch: Int32, from: Int32, nowMs: Int64) {
        guard config.voters.contains(leaderId), leaderId == from, leaderId != config.nodeId else {
            send(.beginQuorumEpochResponse(errorCode: RaftErrorCode.inconsistentVoterSet, leaderId: leaderHint,
                                           leaderEpoch: quorum.epoch), to: from)
            return
        }
        let current = observe(epoch: leaderEpoch, leaderId: leaderId, nowMs: nowMs)
        send(.beginQuorumEpochResponse(errorCode: current ? RaftErrorCode.none : RaftErrorCode.fencedLeaderEpoch,
                                       leaderId: leaderHint, leaderEpoch: quorum.epoch), to: from)
    }

    func handleBeginQuorumEpochResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32, from: Int32, nowMs: Int64) {
        guard config.voters.contains(from) else { return }
        observe(epoch: leaderEpoch, leaderId: leaderId, nowMs: nowMs)
        if errorCode == RaftErrorCode.none, leaderEpoch == quorum.epoch, leader != nil {
            leader?.voters[from]?.beginQuorumEpochAcknowledged = true
        }
    }

    /// Gives up leadership: EndQuorumEpoch to the other voters naming the most caught-up
    /// first as preferred successors, then resigned until the election timer fires.
    func resignLeadership(nowMs: Int64) {
        guard let progress = leader else { return }
        let successors = otherVoters.sorted {
            let a = progress.voters[$0]?.endOffset ?? -1, b = progress.voters[$1]?.endOffset ?? -1
            return a != b ? a > b : $0 < $1
        }
        setRole(.resigned(epoch: quorum.epoch))
        resignedLeaderId = config.nodeId
        electionDeadlineMs = nowMs + randomElectionTimeoutMs()
        for voter in otherVoters {
            send(.endQuorumEpoch(leaderId: config.nodeId, leaderEpoch: quorum.epoch, preferredSuccessors: successors), to: voter)
        }
    }

    /// The leader of `leaderEpoch` resigned: start the election sooner, the first preferred
    /// successor at once, the next ones spaced by `electionBackoffMaxMs / (voters - 1)`,
    /// voters not listed after a random backoff.
    func handleEndQuorumEpoch(leaderId: Int32, leaderEpoch: Int32, preferredSuccessors: [Int32], from: Int32, nowMs: Int64) {
        guard config.voters.contains(from), leaderId == from else {
            send(.endQuorumEpochResponse(errorCode: RaftErrorCode.inconsistentVoterSet, leaderId: leaderHint,
                                         leaderEpoch: quorum.epoch), to: from)
            return
        }
        if leaderEpoch > quorum.epoch { becomeUnattached(epoch: leaderEpoch, nowMs: nowMs) }
        guard leaderEpoch == quorum.epoch else {
            send(.endQuorumEpochResponse(errorCode: RaftErrorCode.fencedLeaderEpoch, leaderId: leaderHint,
                                         leaderEpoch: quorum.epoch), to: from)
            return
        }
        let delayMs: Int64
        if let position = preferredSuccessors.firstIndex(of: config.nodeId) {
            delayMs = Int64(position) * config.electionBackoffMaxMs / Int64(max(1, config.voters.count - 1))
        } else {
            delayMs = randomBackoffMs()
        }
        leaderResigned(leaderId, startElectionWithinMs: delayMs, nowMs: nowMs)
        send(.endQuorumEpochResponse(errorCode: RaftErrorCode.none, leaderId: leaderHint, leaderEpoch: quorum.epoch), to: from)
    }

    /// The current epoch's leader is gone: never follow it again in this epoch, grant
    /// pre-votes, and start a pre-vote within `delayMs`.
    func leaderResigned(_ leaderId: Int32, startElectionWithinMs delayMs: Int64, nowMs: Int64) {
        resignedLeaderId = leaderId
        if var progress = follower, progress.leaderId == leaderId {
            progress.leaderContactMs = nil
            progress.fetchDeadlineMs = min(progress.fetchDeadlineMs, nowMs + delayMs)
            follower = progress
        } else if case .unattached = role {
            electionDeadlineMs = min(electionDeadlineMs, nowMs + delayMs)
        }
    }
}
