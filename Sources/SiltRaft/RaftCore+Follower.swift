/// Follower-only state. Invariant: at most one request to the leader is outstanding, and
/// while it is, the log does not change (so its answer applies to the log as it was sent).
struct FollowerProgress {
    let leaderId: Int32
    /// Without a successful fetch response by then, the follower starts a pre-vote.
    var fetchDeadlineMs: Int64
    /// The last successful fetch response; nil until one arrives or once the leader resigned.
    var leaderContactMs: Int64?
    var inFlight: InFlight?

    init(leaderId: Int32, fetchDeadlineMs: Int64) {
        self.leaderId = leaderId
        self.fetchDeadlineMs = fetchDeadlineMs
    }
}

/// The follower's outstanding request and when it was sent.
enum InFlight {
    case fetch(sentMs: Int64)
    case fetchSnapshot(SnapshotId, sentMs: Int64)

    var sentMs: Int64 {
        switch self {
        case .fetch(let t), .fetchSnapshot(_, let t): return t
        }
    }
}

extension RaftCore {
    func followerTick(nowMs: Int64) {
        guard let progress = follower else { return }
        if nowMs >= progress.fetchDeadlineMs {
            startPreVote(nowMs: nowMs)
            return
        }
        if let inFlight = progress.inFlight, nowMs - inFlight.sentMs >= config.requestTimeoutMs {
            follower?.inFlight = nil
        }
        sendFetchIfReady(nowMs: nowMs)
    }

    /// Fetches from the log end once everything appended is durable (so the leader may count
    /// `fetchOffset` as durable here) and nothing else is outstanding.
    func sendFetchIfReady(nowMs: Int64) {
        guard let progress = follower, progress.inFlight == nil, flushedOffset >= log.endOffset else { return }
        follower?.inFlight = .fetch(sentMs: nowMs)
        send(.fetchRequest(replicaId: config.nodeId, currentLeaderEpoch: quorum.epoch, fetchOffset: log.endOffset,
                           lastFetchedEpoch: log.lastEpoch), to: progress.leaderId)
    }

    /// The follower state if this response comes from the leader we follow, in our epoch;
    /// any other response only teaches its epoch and leader.
    private func awaitedLeader(_ from: Int32, leaderEpoch: Int32, leaderId: Int32, nowMs: Int64) -> FollowerProgress? {
        guard config.voters.contains(from) else { return nil }
        guard leaderEpoch == quorum.epoch, let progress = follower, progress.leaderId == from else {
            observe(epoch: leaderEpoch, leaderId: leaderId, nowMs: nowMs)
            return nil
        }
        return progress
    }

    func handleFetchResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32, highWatermark leaderHighWatermark: Int64,
                             batches: [RaftBatch], divergingEpoch: DivergingEpoch?, snapshotId: SnapshotId?,
                             from: Int32, nowMs: Int64) {
        guard let progress = awaitedLeader(from, leaderEpoch: leaderEpoch, leaderId: leaderId, nowMs: nowMs),
              case .fetch? = progress.inFlight else { return }
        guard errorCode == RaftErrorCode.none else {
            // The leader stepped down without telling us (EndQuorumEpoch lost): elect soon.
            // Other errors are retried when the request times out.
            if errorCode == RaftErrorCode.notLeaderOrFollower, leaderId < 0 {
                leaderResigned(progress.leaderId, startElectionWithinMs: randomBackoffMs(), nowMs: nowMs)
            }
            return
        }
        follower?.inFlight = nil
        follower?.leaderContactMs = nowMs
        follower?.fetchDeadlineMs = followerFetchDeadlineMs(nowMs: nowMs)
        if let divergingEpoch {
            truncate(toDivergence: divergingEpoch)
        } else if let snapshotId {
            precondition(snapshotId.endOffset > log.startOffset,
                         "RaftCore: told to fetch snapshot \(snapshotId) at log start \(log.startOffset)")
            follower?.inFlight = .fetchSnapshot(snapshotId, sentMs: nowMs)
            send(.fetchSnapshotRequest(replicaId: config.nodeId, currentLeaderEpoch: quorum.epoch, snapshotId: snapshotId),
                 to: from)
            return
        } else {
            for batch in batches {
                precondition(batch.epoch <= quorum.epoch, "RaftCore: batch of epoch \(batch.epoch) from the leader of \(quorum.epoch)")
                log.append(batch)
            }
            if !batches.isEmpty { emit(.append(batches)) }
            raiseHighWatermark(to: min(leaderHighWatermark, log.endOffset))
        }
        sendFetchIfReady(nowMs: nowMs)
    }

    /// Cuts the log where it stops matching the leader's: at the end of the diverging epoch
    /// in both logs, rounded down to a batch boundary of ours.
    private func truncate(toDivergence diverging: DivergingEpoch) {
        let ourEnd = log.endOffsetForEpoch(diverging.epoch)?.endOffset ?? log.startOffset
        let offset = log.boundary(atOrBelow: min(diverging.endOffset, ourEnd, log.endOffset))
        precondition(offset < log.endOffset, "RaftCore: divergence \(diverging) truncates nothing at \(log.endOffset)")
        truncate(to: offset)
    }

    func handleFetchSnapshotResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32, snapshot: RaftSnapshot?,
                                     from: Int32, nowMs: Int64) {
        guard let progress = awaitedLeader(from, leaderEpoch: leaderEpoch, leaderId: leaderId, nowMs: nowMs),
              case .fetchSnapshot(let wanted, _)? = progress.inFlight else { return }
        follower?.inFlight = nil
        // An error (the leader took a newer snapshot) falls back to a fetch, which names it.
        if errorCode == RaftErrorCode.none, let snapshot {
            precondition(snapshot.id == wanted && snapshot.id.endOffset >= highWatermark,
                         "RaftCore: snapshot \(snapshot.id) for request \(wanted), high watermark \(highWatermark)")
            follower?.leaderContactMs = nowMs
            follower?.fetchDeadlineMs = followerFetchDeadlineMs(nowMs: nowMs)
            log.install(snapshot)
            flushedOffset = log.endOffset
            highWatermark = log.endOffset // the state machine reloads from the snapshot: no commit output
            emit(.installSnapshot(snapshot))
        }
        sendFetchIfReady(nowMs: nowMs)
    }
}
