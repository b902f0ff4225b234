/// What a leader knows of one other replica (voter or observer). -1 means unknown.
struct ReplicaProgress {
    /// The largest fetch offset that passed the consistency check: on a voter, its log
    /// matches ours and is durable below it.
    var endOffset: Int64 = -1
    var lastFetchMs: Int64 = -1
    /// Kafka's rule: caught up when it fetched at our log end, or at the log end we had at
    /// its previous fetch (then as of that previous fetch).
    var lastCaughtUpMs: Int64 = -1
    var leaderEndAtLastFetch: Int64 = -1
    /// The high watermark of the last fetch response sent to it: a fetch is parked only when
    /// it has nothing new, including the high watermark.
    var lastSentHighWatermark: Int64 = -1
    /// Voters only: BeginQuorumEpoch is resent every `requestTimeoutMs` until acknowledged
    /// or the voter fetches.
    var beginQuorumEpochAcknowledged = false
    var beginQuorumEpochSentMs: Int64 = -1

    init(lastFetchMs: Int64 = -1, beginQuorumEpochSentMs: Int64 = -1) {
        self.lastFetchMs = lastFetchMs
        self.beginQuorumEpochSentMs = beginQuorumEpochSentMs
    }
}

/// A fetch with nothing to return yet, answered when batches arrive, the high watermark
/// moves, or at `deadlineMs`. At most one per replica (the latest request replaces it).
struct ParkedFetch {
    var fetchOffset: Int64
    var lastFetchedEpoch: Int32
    var deadlineMs: Int64
}

/// Leader-only state. Invariants: `voters` holds exactly the other voters; `observers`
/// holds at most `observersMax` entries; `parked` keys are replicas in `voters` or
/// `observers`.
struct LeaderProgress {
    /// Offset of this epoch's control batch: the high watermark may advance only past it.
    let epochStartOffset: Int64
    var voters: [Int32: ReplicaProgress] = [:]
    var observers: [Int32: ReplicaProgress] = [:]
    var parked: [Int32: ParkedFetch] = [:]
}

/// How a fetch's (fetchOffset, lastFetchedEpoch) relates to the leader's log.
enum FetchCheck {
    case valid
    case diverging(DivergingEpoch)
    case snapshot(SnapshotId)

    var isValid: Bool { if case .valid = self { true } else { false } }
}

extension RaftCore {
    func appendAsLeader(_ batch: RaftBatch) {
        log.append(batch)
        emit(.append([batch]))
        answerParkedFetches(voters: true)
    }

    func leaderTick(nowMs: Int64) {
        guard let progress = leader else { return }
        let live = 1 + progress.voters.values.filter { nowMs - $0.lastFetchMs < config.fetchTimeoutMs }.count
        if live < config.majority {
            resignLeadership(nowMs: nowMs)
            return
        }
        for voter in otherVoters {
            guard let p = progress.voters[voter], !p.beginQuorumEpochAcknowledged,
                  nowMs - p.beginQuorumEpochSentMs >= config.requestTimeoutMs else { continue }
            leader?.voters[voter]?.beginQuorumEpochSentMs = nowMs
            send(.beginQuorumEpoch(leaderId: config.nodeId, leaderEpoch: quorum.epoch), to: voter)
        }
        for replica in progress.parked.keys.sorted() where progress.parked[replica]!.deadlineMs <= nowMs {
            answerParkedFetch(replica)
        }
    }

    /// Kafka's validation of a fetch position against the leader's log.
    func checkFetch(fetchOffset: Int64, lastFetchedEpoch: Int32) -> FetchCheck {
        if fetchOffset < log.startOffset, let snapshot = log.snapshot { return .snapshot(snapshot.id) }
        if fetchOffset == log.startOffset && lastFetchedEpoch == log.startEpoch { return .valid }
        guard let end = log.endOffsetForEpoch(lastFetchedEpoch) else {
            if let snapshot = log.snapshot { return .snapshot(snapshot.id) }
            return .diverging(DivergingEpoch(epoch: 0, endOffset: 0))
        }
        if end.epoch == lastFetchedEpoch && end.endOffset >= fetchOffset { return .valid }
        return .diverging(end)
    }

    func handleFetchRequest(replicaId: Int32, currentLeaderEpoch: Int32, fetchOffset: Int64, lastFetchedEpoch: Int32,
                            from: Int32, nowMs: Int64) {
        func fail(_ errorCode: Int16) {
            send(.fetchResponse(errorCode: errorCode, leaderId: leaderHint, leaderEpoch: quorum.epoch,
                                highWatermark: highWatermark, logStartOffset: log.startOffset, batches: [],
                                divergingEpoch: nil, snapshotId: nil), to: from)
        }
        if currentLeaderEpoch < quorum.epoch { return fail(RaftErrorCode.fencedLeaderEpoch) }
        if currentLeaderEpoch > quorum.epoch { return fail(RaftErrorCode.unknownLeaderEpoch) }
        // A resigned leader answers with no leader id, and its followers start electing.
        guard leader != nil else { return fail(RaftErrorCode.notLeaderOrFollower) }
        guard replicaId != config.nodeId, replicaId == from || replicaId < 0, fetchOffset >= 0 else {
            return fail(RaftErrorCode.invalidRequest)
        }
        let isVoter = config.voters.contains(replicaId)
        let check = checkFetch(fetchOffset: fetchOffset, lastFetchedEpoch: lastFetchedEpoch)
        if check.isValid, !log.isBoundary(fetchOffset) { return fail(RaftErrorCode.invalidRequest) }
        if replicaId >= 0 { recordFetch(replicaId, isVoter: isVoter, fetchOffset: fetchOffset, valid: check.isValid, nowMs: nowMs) }
        if isVoter, check.isValid { advanceHighWatermark() }
        let response = fetchResponse(replicaId: replicaId, fetchOffset: fetchOffset, lastFetchedEpoch: lastFetchedEpoch)
        // Observers with id -1 cannot be told apart, so their fetches are never parked.
        let knowsHighWatermark = replicaId >= 0
            && (leader!.voters[replicaId] ?? leader!.observers[replicaId])?.lastSentHighWatermark == highWatermark
        if response.hasData || !knowsHighWatermark {
            sendFetchResponse(response.message, to: replicaId, isVoter: isVoter, via: from)
        } else {
            leader!.parked[replicaId] = ParkedFetch(fetchOffset: fetchOffset, lastFetchedEpoch: lastFetchedEpoch,
                                                    deadlineMs: nowMs + config.fetchMaxWaitMs)
        }
    }

    /// Updates what we know of a replica after a fetch (tracking at most `observersMax`
    /// observers) and drops its parked fetch, which this newer request replaces.
    private func recordFetch(_ replicaId: Int32, isVoter: Bool, fetchOffset: Int64, valid: Bool, nowMs: Int64) {
        var p: ReplicaProgress
        if isVoter {
            p = leader!.voters[replicaId]!
            p.beginQuorumEpochAcknowledged = true
        } else if let known = leader!.observers[replicaId] {
            p = known
        } else {
            if leader!.observers.count >= config.observersMax {
                let oldest = leader!.observers.min { ($0.value.lastFetchMs, $0.key) < ($1.value.lastFetchMs, $1.key) }!.key
                leader!.observers[oldest] = nil
                leader!.parked[oldest] = nil
            }
            p = ReplicaProgress()
        }
        if valid {
            p.endOffset = max(p.endOffset, fetchOffset)
            if fetchOffset >= log.endOffset { p.lastCaughtUpMs = nowMs }
            else if fetchOffset >= p.leaderEndAtLastFetch { p.lastCaughtUpMs = max(p.lastCaughtUpMs, p.lastFetchMs) }
        }
        p.lastFetchMs = nowMs
        p.leaderEndAtLastFetch = log.endOffset
        if isVoter { leader!.voters[replicaId] = p } else { leader!.observers[replicaId] = p }
        leader!.parked[replicaId] = nil
    }

    /// The answer to a fetch now: voters get everything from their offset, observers only
    /// committed batches, so an observer never has to truncate.
    private func fetchResponse(replicaId: Int32, fetchOffset: Int64, lastFetchedEpoch: Int32)
        -> (message: RaftMessage, hasData: Bool) {
        var batches: [RaftBatch] = []
        var diverging: DivergingEpoch?
        var snapshotId: SnapshotId?
        switch checkFetch(fetchOffset: fetchOffset, lastFetchedEpoch: lastFetchedEpoch) {
        case .valid:
            let limit = config.voters.contains(replicaId) ? log.endOffset : highWatermark
            batches = log.read(from: fetchOffset, upTo: limit, countMax: config.fetchBatchesMax, bytesMax: config.fetchBytesMax)
        case .diverging(let d): diverging = d
        case .snapshot(let id): snapshotId = id
        }
        let message = RaftMessage.fetchResponse(errorCode: RaftErrorCode.none, leaderId: config.nodeId,
                                                leaderEpoch: quorum.epoch, highWatermark: highWatermark,
                                                logStartOffset: log.startOffset, batches: batches,
                                                divergingEpoch: diverging, snapshotId: snapshotId)
        return (message, !batches.isEmpty || diverging != nil || snapshotId != nil)
    }

    private func sendFetchResponse(_ message: RaftMessage, to replicaId: Int32, isVoter: Bool, via destination: Int32) {
        if isVoter { leader!.voters[replicaId]!.lastSentHighWatermark = highWatermark }
        else if replicaId >= 0 { leader!.observers[replicaId]!.lastSentHighWatermark = highWatermark }
        send(message, to: destination)
    }

    private func answerParkedFetch(_ replicaId: Int32) {
        guard let parked = leader?.parked.removeValue(forKey: replicaId) else { return }
        let response = fetchResponse(replicaId: replicaId, fetchOffset: parked.fetchOffset, lastFetchedEpoch: parked.lastFetchedEpoch)
        sendFetchResponse(response.message, to: replicaId, isVoter: config.voters.contains(replicaId), via: replicaId)
    }

    /// Answers parked fetches: all of them when the high watermark moved, else (new batches)
    /// the voters' only, since observers see nothing past the high watermark.
    func answerParkedFetches(voters: Bool) {
        guard let progress = leader else { return }
        for replica in progress.parked.keys.sorted() where !voters || config.voters.contains(replica) {
            answerParkedFetch(replica)
        }
    }

    /// The high watermark is the largest offset durable on a majority of voters (this node
    /// counting only what `flushed(upTo:)` reported), and only once that covers a batch of
    /// this leader's own epoch (Raft's commitment rule; the control batch is the first).
    func advanceHighWatermark() {
        guard let progress = leader else { return }
        var durable = [min(flushedOffset, log.endOffset)]
        for voter in otherVoters { durable.append(progress.voters[voter]!.endOffset) }
        durable.sort(by: >)
        let candidate = durable[config.majority - 1]
        guard candidate > progress.epochStartOffset, candidate > highWatermark else { return }
        raiseHighWatermark(to: candidate)
        answerParkedFetches(voters: false)
    }

    func handleFetchSnapshotRequest(replicaId: Int32, currentLeaderEpoch: Int32, snapshotId: SnapshotId, from: Int32) {
        var errorCode = RaftErrorCode.none
        var snapshot: RaftSnapshot?
        if currentLeaderEpoch < quorum.epoch { errorCode = RaftErrorCode.fencedLeaderEpoch }
        else if currentLeaderEpoch > quorum.epoch { errorCode = RaftErrorCode.unknownLeaderEpoch }
        else if leader == nil { errorCode = RaftErrorCode.notLeaderOrFollower }
        else if log.snapshot?.id != snapshotId { errorCode = RaftErrorCode.snapshotNotFound }
        else { snapshot = log.snapshot }
        send(.fetchSnapshotResponse(errorCode: errorCode, leaderId: leaderHint, leaderEpoch: quorum.epoch,
                                    snapshot: snapshot), to: from)
    }
}
