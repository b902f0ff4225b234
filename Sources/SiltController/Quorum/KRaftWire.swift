import NIOCore
import SiltProtocol
import SiltRaft
import SiltRecords

/// `RaftMessage`s as KRaft's RPCs on the CONTROLLER listener: Vote, BeginQuorumEpoch,
/// EndQuorumEpoch, Fetch and FetchSnapshot on `__cluster_metadata` partition 0.
///
/// Two things the shared specs cannot carry yet travel as tagged fields (KIP-482), which
/// any reader that does not know them skips:
/// - PreVote (KIP-996; Kafka 4.0 gives VoteRequest v2 a field for it): tag 0 of Vote's
///   request and response PartitionData, one byte.
/// - The sender's voter set (`controller.quorum.voters`, normalized): top-level tag
///   `votersTag` of every voter request, so that a voter set that differs is found at first
///   contact (INCONSISTENT_VOTER_SET). A refusal carries the refuser's value under the same
///   tag, so the log line can show both.
public enum KRaftWire {
    public static let metadataTopic = "__cluster_metadata"
    static let preVoteTag = 0
    public static let votersTag = 10_000

    static let voteVersion: Int16 = 1
    static let beginVersion: Int16 = 1
    static let endVersion: Int16 = 1
    static let fetchVersion: Int16 = 12
    static let fetchSnapshotVersion: Int16 = 0

    enum Kind: Hashable { case vote, begin, end, fetch, fetchSnapshot }

    static func kind(of m: RaftMessage) -> Kind {
        switch m {
        case .voteRequest, .voteResponse: return .vote
        case .beginQuorumEpoch, .beginQuorumEpochResponse: return .begin
        case .endQuorumEpoch, .endQuorumEpochResponse: return .end
        case .fetchRequest, .fetchResponse: return .fetch
        case .fetchSnapshotRequest, .fetchSnapshotResponse: return .fetchSnapshot
        }
    }

    static func isRequest(_ m: RaftMessage) -> Bool {
        switch m {
        case .voteRequest, .beginQuorumEpoch, .endQuorumEpoch, .fetchRequest, .fetchSnapshotRequest: return true
        default: return false
        }
    }

    /// The answer to a request the core will not answer any more (a newer one of its kind
    /// came from the same voter, or it timed out): the sender ignores it, since its core
    /// only takes the answer to its latest request.
    static func superseded(_ kind: Kind) -> RaftMessage {
        let code = KafkaErrorCode.requestTimedOut
        switch kind {
        case .vote: return .voteResponse(errorCode: code, leaderId: -1, leaderEpoch: -1, voteGranted: false, preVote: false)
        case .begin: return .beginQuorumEpochResponse(errorCode: code, leaderId: -1, leaderEpoch: -1)
        case .end: return .endQuorumEpochResponse(errorCode: code, leaderId: -1, leaderEpoch: -1)
        case .fetch:
            return .fetchResponse(errorCode: code, leaderId: -1, leaderEpoch: -1, highWatermark: -1, logStartOffset: -1,
                                  batches: [], divergingEpoch: nil, snapshotId: nil)
        case .fetchSnapshot: return .fetchSnapshotResponse(errorCode: code, leaderId: -1, leaderEpoch: -1, snapshot: nil)
        }
    }

    // MARK: Requests out

    enum Request {
        case vote(VoteRequest), begin(BeginQuorumEpochRequest), end(EndQuorumEpochRequest)
        case fetch(FetchRequest), fetchSnapshot(FetchSnapshotRequest)
    }

    static func request(_ m: RaftMessage, clusterId: String, voters: String, fetchMaxWaitMs: Int64) -> Request {
        let tag = [votersTag: Array(voters.utf8)]
        switch m {
        case .voteRequest(let candidateEpoch, let candidateId, let lastOffsetEpoch, let lastOffset, let preVote):
            var p = VoteRequest.PartitionData()
            p.candidateEpoch = candidateEpoch
            p.candidateId = candidateId
            p.lastOffsetEpoch = lastOffsetEpoch
            p.lastOffset = lastOffset
            if preVote { p.unknownTaggedFields[preVoteTag] = [1] }
            var t = VoteRequest.TopicData()
            t.topicName = metadataTopic
            t.partitions = [p]
            var r = VoteRequest()
            r.clusterId = clusterId
            r.topics = [t]
            r.unknownTaggedFields = tag
            return .vote(r)
        case .beginQuorumEpoch(let leaderId, let leaderEpoch):
            var p = BeginQuorumEpochRequest.PartitionData()
            p.leaderId = leaderId
            p.leaderEpoch = leaderEpoch
            var t = BeginQuorumEpochRequest.TopicData()
            t.topicName = metadataTopic
            t.partitions = [p]
            var r = BeginQuorumEpochRequest()
            r.clusterId = clusterId
            r.topics = [t]
            r.unknownTaggedFields = tag
            return .begin(r)
        case .endQuorumEpoch(let leaderId, let leaderEpoch, let successors):
            var p = EndQuorumEpochRequest.PartitionData()
            p.leaderId = leaderId
            p.leaderEpoch = leaderEpoch
            p.preferredCandidates = successors.map { var c = EndQuorumEpochRequest.ReplicaInfo(); c.candidateId = $0; return c }
            var t = EndQuorumEpochRequest.TopicData()
            t.topicName = metadataTopic
            t.partitions = [p]
            var r = EndQuorumEpochRequest()
            r.clusterId = clusterId
            r.topics = [t]
            r.unknownTaggedFields = tag
            return .end(r)
        case .fetchRequest(let replicaId, let currentLeaderEpoch, let fetchOffset, let lastFetchedEpoch):
            var p = FetchRequest.FetchPartition()
            p.partition = 0
            p.currentLeaderEpoch = currentLeaderEpoch
            p.fetchOffset = fetchOffset
            p.lastFetchedEpoch = lastFetchedEpoch
            p.partitionMaxBytes = Int32.max
            var t = FetchRequest.FetchTopic()
            t.topic = metadataTopic
            t.partitions = [p]
            var r = FetchRequest()
            r.clusterId = clusterId
            r.replicaId = replicaId
            r.maxWaitMs = Int32(fetchMaxWaitMs)
            r.minBytes = 1
            r.topics = [t]
            r.unknownTaggedFields = tag
            return .fetch(r)
        case .fetchSnapshotRequest(let replicaId, let currentLeaderEpoch, let snapshotId):
            var p = FetchSnapshotRequest.PartitionSnapshot()
            p.partition = 0
            p.currentLeaderEpoch = currentLeaderEpoch
            p.snapshotId.endOffset = snapshotId.endOffset
            p.snapshotId.epoch = snapshotId.epoch
            p.position = 0
            var t = FetchSnapshotRequest.TopicSnapshot()
            t.name = metadataTopic
            t.partitions = [p]
            var r = FetchSnapshotRequest()
            r.clusterId = clusterId
            r.replicaId = replicaId
            r.maxBytes = Int32.max
            r.topics = [t]
            r.unknownTaggedFields = tag
            return .fetchSnapshot(r)
        default:
            preconditionFailure("\(m) is not a request")
        }
    }

    // MARK: Responses in

    /// A peer's answer: a message for the core, or a refusal of this node's configuration.
    enum Inbound {
        case message(RaftMessage)
        case inconsistent(code: Int16, theirs: String)
    }

    static func refusal(_ code: Int16, _ tagged: [Int: [UInt8]]) -> Inbound? {
        guard code == KafkaErrorCode.inconsistentVoterSet || code == KafkaErrorCode.inconsistentClusterId else { return nil }
        return .inconsistent(code: code, theirs: String(decoding: tagged[votersTag] ?? [], as: UTF8.self))
    }

    struct WireError: Error, CustomStringConvertible { var description: String }

    static func decode(_ r: VoteResponse) throws -> Inbound {
        if let refused = refusal(r.errorCode, r.unknownTaggedFields) { return refused }
        guard let p = r.topics.first?.partitions.first else { throw WireError(description: "Vote answer without a partition") }
        return .message(.voteResponse(errorCode: r.errorCode != 0 ? r.errorCode : p.errorCode, leaderId: p.leaderId,
                                      leaderEpoch: p.leaderEpoch, voteGranted: p.voteGranted,
                                      preVote: p.unknownTaggedFields[preVoteTag] == [1]))
    }

    static func decode(_ r: BeginQuorumEpochResponse) throws -> Inbound {
        if let refused = refusal(r.errorCode, r.unknownTaggedFields) { return refused }
        guard let p = r.topics.first?.partitions.first else { throw WireError(description: "BeginQuorumEpoch answer without a partition") }
        return .message(.beginQuorumEpochResponse(errorCode: r.errorCode != 0 ? r.errorCode : p.errorCode,
                                                  leaderId: p.leaderId, leaderEpoch: p.leaderEpoch))
    }

    static func decode(_ r: EndQuorumEpochResponse) throws -> Inbound {
        if let refused = refusal(r.errorCode, r.unknownTaggedFields) { return refused }
        guard let p = r.topics.first?.partitions.first else { throw WireError(description: "EndQuorumEpoch answer without a partition") }
        return .message(.endQuorumEpochResponse(errorCode: r.errorCode != 0 ? r.errorCode : p.errorCode,
                                                leaderId: p.leaderId, leaderEpoch: p.leaderEpoch))
    }

    static func decode(_ r: FetchResponse) throws -> Inbound {
        if let refused = refusal(r.errorCode, r.unknownTaggedFields) { return refused }
        guard let p = r.responses.first?.partitions.first else {
            if r.errorCode != 0 {
                return .message(.fetchResponse(errorCode: r.errorCode, leaderId: -1, leaderEpoch: -1, highWatermark: -1,
                                               logStartOffset: -1, batches: [], divergingEpoch: nil, snapshotId: nil))
            }
            throw WireError(description: "Fetch answer without a partition")
        }
        let batches = try p.records.map { try decodeBatches($0) } ?? []
        return .message(.fetchResponse(
            errorCode: p.errorCode, leaderId: p.currentLeader.leaderId, leaderEpoch: p.currentLeader.leaderEpoch,
            highWatermark: p.highWatermark, logStartOffset: p.logStartOffset, batches: batches,
            divergingEpoch: p.divergingEpoch.epoch >= 0
                ? DivergingEpoch(epoch: p.divergingEpoch.epoch, endOffset: p.divergingEpoch.endOffset) : nil,
            snapshotId: p.snapshotId.endOffset >= 0 ? SnapshotId(endOffset: p.snapshotId.endOffset, epoch: p.snapshotId.epoch) : nil))
    }

    static func decode(_ r: FetchSnapshotResponse) throws -> Inbound {
        if let refused = refusal(r.errorCode, r.unknownTaggedFields) { return refused }
        guard let p = r.topics.first?.partitions.first else {
            return .message(.fetchSnapshotResponse(errorCode: r.errorCode, leaderId: -1, leaderEpoch: -1, snapshot: nil))
        }
        var snapshot: RaftSnapshot?
        if p.errorCode == 0, let bytes = p.unalignedRecords {
            guard p.position == 0, Int64(bytes.readableBytes) == p.size else {
                throw WireError(description: "FetchSnapshot answer is a partial snapshot (\(bytes.readableBytes) of \(p.size) bytes)")
            }
            snapshot = RaftSnapshot(id: SnapshotId(endOffset: p.snapshotId.endOffset, epoch: p.snapshotId.epoch),
                                    bytes: Array(bytes.readableBytesView))
        }
        return .message(.fetchSnapshotResponse(errorCode: r.errorCode != 0 ? r.errorCode : p.errorCode,
                                               leaderId: p.currentLeader.leaderId, leaderEpoch: p.currentLeader.leaderEpoch,
                                               snapshot: snapshot))
    }

    // MARK: Requests in

    /// A voter's request as a core message, with who sent it; nil for an observer's fetch.
    static func message(_ r: VoteRequest) -> RaftMessage? {
        guard let p = r.topics.first?.partitions.first else { return nil }
        return .voteRequest(candidateEpoch: p.candidateEpoch, candidateId: p.candidateId, lastOffsetEpoch: p.lastOffsetEpoch,
                            lastOffset: p.lastOffset, preVote: p.unknownTaggedFields[preVoteTag] == [1])
    }

    static func message(_ r: BeginQuorumEpochRequest) -> RaftMessage? {
        guard let p = r.topics.first?.partitions.first else { return nil }
        return .beginQuorumEpoch(leaderId: p.leaderId, leaderEpoch: p.leaderEpoch)
    }

    static func message(_ r: EndQuorumEpochRequest) -> RaftMessage? {
        guard let p = r.topics.first?.partitions.first else { return nil }
        let successors = p.preferredCandidates.map(\.candidateId) + p.preferredSuccessors
        return .endQuorumEpoch(leaderId: p.leaderId, leaderEpoch: p.leaderEpoch, preferredSuccessors: successors)
    }

    static func message(_ r: FetchRequest, version: Int16) -> RaftMessage? {
        guard let p = r.topics.first?.partitions.first else { return nil }
        let replicaId = version >= 15 ? r.replicaState.replicaId : r.replicaId
        return .fetchRequest(replicaId: replicaId, currentLeaderEpoch: p.currentLeaderEpoch, fetchOffset: p.fetchOffset,
                             lastFetchedEpoch: p.lastFetchedEpoch)
    }

    static func message(_ r: FetchSnapshotRequest) -> RaftMessage? {
        guard let p = r.topics.first?.partitions.first else { return nil }
        return .fetchSnapshotRequest(replicaId: r.replicaId, currentLeaderEpoch: p.currentLeaderEpoch,
                                     snapshotId: SnapshotId(endOffset: p.snapshotId.endOffset, epoch: p.snapshotId.epoch))
    }

    // MARK: Responses out

    static func voteResponse(_ m: RaftMessage) -> VoteResponse {
        guard case .voteResponse(let errorCode, let leaderId, let leaderEpoch, let granted, let preVote) = m else {
            preconditionFailure("expected a vote response, got \(m)")
        }
        var p = VoteResponse.PartitionData()
        p.errorCode = errorCode
        p.leaderId = leaderId
        p.leaderEpoch = leaderEpoch
        p.voteGranted = granted
        if preVote { p.unknownTaggedFields[preVoteTag] = [1] }
        var t = VoteResponse.TopicData()
        t.topicName = metadataTopic
        t.partitions = [p]
        var r = VoteResponse()
        r.topics = [t]
        return r
    }

    static func beginResponse(_ m: RaftMessage) -> BeginQuorumEpochResponse {
        guard case .beginQuorumEpochResponse(let errorCode, let leaderId, let leaderEpoch) = m else {
            preconditionFailure("expected a BeginQuorumEpoch response, got \(m)")
        }
        var p = BeginQuorumEpochResponse.PartitionData()
        p.errorCode = errorCode
        p.leaderId = leaderId
        p.leaderEpoch = leaderEpoch
        var t = BeginQuorumEpochResponse.TopicData()
        t.topicName = metadataTopic
        t.partitions = [p]
        var r = BeginQuorumEpochResponse()
        r.topics = [t]
        return r
    }

    static func endResponse(_ m: RaftMessage) -> EndQuorumEpochResponse {
        guard case .endQuorumEpochResponse(let errorCode, let leaderId, let leaderEpoch) = m else {
            preconditionFailure("expected an EndQuorumEpoch response, got \(m)")
        }
        var p = EndQuorumEpochResponse.PartitionData()
        p.errorCode = errorCode
        p.leaderId = leaderId
        p.leaderEpoch = leaderEpoch
        var t = EndQuorumEpochResponse.TopicData()
        t.topicName = metadataTopic
        t.partitions = [p]
        var r = EndQuorumEpochResponse()
        r.topics = [t]
        return r
    }

    static func fetchResponse(_ m: RaftMessage, bytesMax: Int) -> FetchResponse {
        guard case .fetchResponse(let errorCode, let leaderId, let leaderEpoch, let hw, let logStart, let batches,
                                  let diverging, let snapshotId) = m else {
            preconditionFailure("expected a fetch response, got \(m)")
        }
        var p = FetchResponse.PartitionData()
        p.partitionIndex = 0
        p.errorCode = errorCode
        p.highWatermark = hw
        p.lastStableOffset = hw
        p.logStartOffset = logStart
        p.currentLeader.leaderId = leaderId
        p.currentLeader.leaderEpoch = leaderEpoch
        if let d = diverging { p.divergingEpoch.epoch = d.epoch; p.divergingEpoch.endOffset = d.endOffset }
        if let s = snapshotId { p.snapshotId.endOffset = s.endOffset; p.snapshotId.epoch = s.epoch }
        p.records = encode(batches, bytesMax: bytesMax)
        return fetchResponse(p)
    }

    static func fetchResponse(_ p: FetchResponse.PartitionData) -> FetchResponse {
        var t = FetchResponse.FetchableTopicResponse()
        t.topic = metadataTopic
        t.partitions = [p]
        var r = FetchResponse()
        r.responses = [t]
        return r
    }

    static func fetchSnapshotResponse(_ m: RaftMessage) -> FetchSnapshotResponse {
        guard case .fetchSnapshotResponse(let errorCode, let leaderId, let leaderEpoch, let snapshot) = m else {
            preconditionFailure("expected a FetchSnapshot response, got \(m)")
        }
        var p = FetchSnapshotResponse.PartitionSnapshot()
        p.index = 0
        p.errorCode = errorCode
        p.currentLeader.leaderId = leaderId
        p.currentLeader.leaderEpoch = leaderEpoch
        if let s = snapshot {
            p.snapshotId.endOffset = s.id.endOffset
            p.snapshotId.epoch = s.id.epoch
            p.size = Int64(s.bytes.count)
            p.position = 0
            var b = ByteBufferAllocator().buffer(capacity: s.bytes.count)
            b.writeBytes(s.bytes)
            p.unalignedRecords = b
        }
        var t = FetchSnapshotResponse.TopicSnapshot()
        t.name = metadataTopic
        t.partitions = [p]
        var r = FetchSnapshotResponse()
        r.topics = [t]
        return r
    }

    // MARK: Batches as Kafka record batches

    /// Raft batches as v2 record batches: baseOffset, partitionLeaderEpoch = the batch's
    /// epoch, the control attribute for control batches, one record per entry (its value).
    /// Stops before `bytesMax` (but always carries the first batch).
    public static func encode(_ batches: [RaftBatch], bytesMax: Int) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: 0)
        for b in batches {
            var builder = RecordBatchBuilder(baseOffset: b.baseOffset, partitionLeaderEpoch: b.epoch)
            builder.isControl = b.isControl
            for r in b.records { builder.append(key: nil as [UInt8]?, value: r, timestamp: 0) }
            let before = out.writerIndex
            builder.build(into: &out)
            if out.writerIndex > bytesMax && before > 0 {
                out.moveWriterIndex(to: before)
                break
            }
        }
        return out
    }

    /// The inverse of `encode`; a batch that fails its CRC is an error, not data.
    public static func decodeBatches(_ buffer: ByteBuffer) throws -> [RaftBatch] {
        var out: [RaftBatch] = []
        for header in try parseBatchHeaders(buffer) {
            guard header.isCRCValid(in: buffer) else { throw RecordBatchError.corruptMessage("metadata batch CRC") }
            var reader = try RecordReader(batch: buffer, header: header)
            var records: [[UInt8]] = []
            while let r = try reader.next() { records.append(r.value.map { Array($0.readableBytesView) } ?? []) }
            out.append(RaftBatch(baseOffset: header.baseOffset, epoch: header.partitionLeaderEpoch,
                                 isControl: header.attributes & 0x20 != 0, records: records))
        }
        return out
    }

    static func errorName(_ code: Int16) -> String { KafkaErrorCode.name(code) }
}
