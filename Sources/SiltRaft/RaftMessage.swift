/// The quorum RPCs, field for field as KRaft carries them (KIP-595, KIP-630, KIP-996), so a
/// driver maps each case onto one Kafka request or response. Leader ids are -1 when unknown.
///
/// Correlation is the driver's job, as in Kafka's `RequestManager`: a response reaches
/// `RaftCore.receive` only if it answers the latest request of its kind this node sent to
/// that peer and no response to that request was delivered before. Requests from one peer
/// are delivered in the order sent (one connection). A fetch response the core emits later
/// (a parked fetch) answers the latest fetch request received from that replica.
public enum RaftMessage: Equatable, Sendable {
    /// Vote. With `preVote` (KIP-996) `candidateEpoch` is the sender's epoch + 1 and the
    /// receiver changes nothing. `lastOffset` is the candidate's log end offset and
    /// `lastOffsetEpoch` the epoch of its last batch (or of its snapshot, or 0).
    case voteRequest(candidateEpoch: Int32, candidateId: Int32, lastOffsetEpoch: Int32, lastOffset: Int64, preVote: Bool)
    case voteResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32, voteGranted: Bool, preVote: Bool)
    case beginQuorumEpoch(leaderId: Int32, leaderEpoch: Int32)
    case beginQuorumEpochResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32)
    /// Sent by a leader that resigns; `preferredSuccessors` are the other voters, most
    /// caught up first.
    case endQuorumEpoch(leaderId: Int32, leaderEpoch: Int32, preferredSuccessors: [Int32])
    case endQuorumEpochResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32)
    /// `replicaId` is -1 or a non-voter for an observer. `fetchOffset` is the fetcher's log
    /// end (durable on a voter), `lastFetchedEpoch` the epoch of its last batch.
    case fetchRequest(replicaId: Int32, currentLeaderEpoch: Int32, fetchOffset: Int64, lastFetchedEpoch: Int32)
    /// At most one of `batches` (non-empty), `divergingEpoch`, `snapshotId` is set.
    case fetchResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32, highWatermark: Int64,
                       logStartOffset: Int64, batches: [RaftBatch], divergingEpoch: DivergingEpoch?,
                       snapshotId: SnapshotId?)
    case fetchSnapshotRequest(replicaId: Int32, currentLeaderEpoch: Int32, snapshotId: SnapshotId)
    /// The whole snapshot; the driver chunks it on the wire.
    case fetchSnapshotResponse(errorCode: Int16, leaderId: Int32, leaderEpoch: Int32, snapshot: RaftSnapshot?)
}

/// A fetch response's verdict that the fetcher's log diverges from the leader's: in the
/// leader's log the largest epoch not above the fetcher's last epoch is `epoch`, and it
/// ends at `endOffset`.
public struct DivergingEpoch: Equatable, Sendable {
    public var epoch: Int32
    public var endOffset: Int64
    public init(epoch: Int32, endOffset: Int64) { self.epoch = epoch; self.endOffset = endOffset }
}

/// What the driver must do, in list order. Durability contract:
/// - `persistQuorumState` and `installSnapshot` are durable before the driver executes any
///   later output of the same list (so a vote is on disk before the response leaves).
/// - `append`, `truncate` and `deleteBefore` change the log; appends become durable when the
///   driver later reports `flushed(upTo:)`. A flush issued before a `truncate(toOffset: t)`
///   reports at most `t`.
public enum RaftOutput: Equatable, Sendable {
    case persistQuorumState(QuorumState)
    /// Batches to write at the log's end (contiguous with it).
    case append([RaftBatch])
    /// Cut the log's tail so it ends at this offset (never below the high watermark).
    case truncate(toOffset: Int64)
    /// A snapshot fetched from the leader: store it durably and drop every batch; the state
    /// machine reloads from it (its applied offset becomes the snapshot's end).
    case installSnapshot(RaftSnapshot)
    /// After `snapshotTaken`: the batches below this offset are covered by the stored
    /// snapshot and may be deleted.
    case deleteBefore(offset: Int64)
    case send(to: Int32, RaftMessage)
    /// The committed prefix grew to end here; apply batches below it (`RaftCore.batches`).
    case commit(highWatermark: Int64)
    /// Informational.
    case roleChanged(RaftRole)
}
