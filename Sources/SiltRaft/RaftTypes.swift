/// Bounds and timeouts of one voter of the controller quorum. Names and defaults follow
/// Kafka's `controller.quorum.*` keys; units are last in every name.
public struct RaftConfig: Sendable {
    /// This node; must be one of `voters`.
    public var nodeId: Int32
    /// The voter set, sorted ascending, no duplicates. Majority is `count / 2 + 1`.
    public var voters: [Int32]
    /// An election timer is drawn uniformly from `[electionTimeoutMs, 2 * electionTimeoutMs)`.
    public var electionTimeoutMs: Int64
    /// A follower without a successful fetch response for this long starts a pre-vote; a
    /// leader without fetches from a majority for this long resigns.
    public var fetchTimeoutMs: Int64
    /// A lost election waits a random `[0, electionBackoffMaxMs)` before the next pre-vote.
    public var electionBackoffMaxMs: Int64
    /// How long a leader parks a fetch that has nothing new to return.
    public var fetchMaxWaitMs: Int64
    /// A request without a response for this long is sent again (fetch, fetch snapshot,
    /// BeginQuorumEpoch). Must exceed `fetchMaxWaitMs` and stay below `fetchTimeoutMs`.
    public var requestTimeoutMs: Int64
    /// At most this many batches in one fetch response.
    public var fetchBatchesMax: Int
    /// At most this many record bytes in one fetch response (a batch always travels whole,
    /// and the first batch is sent even when it alone exceeds the bound). A proposal must fit.
    public var fetchBytesMax: Int
    /// At most this many observers are tracked for DescribeQuorum; the one that fetched
    /// least recently is forgotten first.
    public var observersMax: Int

    public init(nodeId: Int32, voters: [Int32], electionTimeoutMs: Int64 = 1000, fetchTimeoutMs: Int64 = 2000,
                electionBackoffMaxMs: Int64 = 1000, fetchMaxWaitMs: Int64 = 500, requestTimeoutMs: Int64 = 1000,
                fetchBatchesMax: Int = 64, fetchBytesMax: Int = 8 << 20, observersMax: Int = 256) {
        self.nodeId = nodeId
        self.voters = voters
        self.electionTimeoutMs = electionTimeoutMs
        self.fetchTimeoutMs = fetchTimeoutMs
        self.electionBackoffMaxMs = electionBackoffMaxMs
        self.fetchMaxWaitMs = fetchMaxWaitMs
        self.requestTimeoutMs = requestTimeoutMs
        self.fetchBatchesMax = fetchBatchesMax
        self.fetchBytesMax = fetchBytesMax
        self.observersMax = observersMax
    }

    /// Votes (or durable copies) needed to win an election or commit an offset.
    public var majority: Int { voters.count / 2 + 1 }

    func validate() {
        precondition(!voters.isEmpty, "RaftConfig: no voters")
        precondition(voters == voters.sorted() && Set(voters).count == voters.count,
                     "RaftConfig: voters must be sorted and unique: \(voters)")
        precondition(voters.allSatisfy { $0 >= 0 }, "RaftConfig: voter ids must be >= 0")
        precondition(voters.contains(nodeId), "RaftConfig: node \(nodeId) is not a voter \(voters)")
        precondition(electionTimeoutMs > 0 && electionBackoffMaxMs > 0 && fetchMaxWaitMs > 0,
                     "RaftConfig: timeouts must be positive")
        precondition(fetchMaxWaitMs < requestTimeoutMs && requestTimeoutMs < fetchTimeoutMs,
                     "RaftConfig: need fetchMaxWaitMs < requestTimeoutMs < fetchTimeoutMs")
        precondition(fetchBatchesMax > 0 && fetchBytesMax > 0 && observersMax > 0, "RaftConfig: bounds must be positive")
    }
}

/// One batch of the replicated log: appended atomically, replicated whole, stamped with
/// the epoch of the leader that appended it. Offsets count records, like Kafka's.
///
///     baseOffset                       endOffset = baseOffset + records.count
///     │ r0 │ r1 │ ... │ r(n-1) │
public struct RaftBatch: Equatable, Sendable {
    public var baseOffset: Int64
    public var epoch: Int32
    /// A control batch (the leader's first batch of its epoch); the state machine skips it.
    public var isControl: Bool
    /// Never empty.
    public var records: [[UInt8]]

    public init(baseOffset: Int64, epoch: Int32, isControl: Bool, records: [[UInt8]]) {
        precondition(!records.isEmpty, "RaftBatch: a batch holds at least one record")
        precondition(baseOffset >= 0 && epoch > 0, "RaftBatch: offset \(baseOffset) epoch \(epoch)")
        self.baseOffset = baseOffset
        self.epoch = epoch
        self.isControl = isControl
        self.records = records
    }

    public var endOffset: Int64 { baseOffset + Int64(records.count) }
    /// Payload bytes, the unit of `RaftConfig.fetchBytesMax`.
    public var byteCount: Int { records.reduce(0) { $0 + $1.count } }
}

/// Names a snapshot: it holds the state after applying every record below `endOffset`,
/// and the record at `endOffset - 1` was appended in `epoch` (KIP-630).
public struct SnapshotId: Equatable, Hashable, Sendable {
    public var endOffset: Int64
    public var epoch: Int32
    public init(endOffset: Int64, epoch: Int32) { self.endOffset = endOffset; self.epoch = epoch }
}

/// A state-machine snapshot; the bytes are opaque to the core.
public struct RaftSnapshot: Equatable, Sendable {
    public var id: SnapshotId
    public var bytes: [UInt8]
    public init(id: SnapshotId, bytes: [UInt8]) { self.id = id; self.bytes = bytes }
}

/// What a voter must keep durably across restarts (Kafka's quorum-state file).
/// Invariant: `votedFor` never changes from one voter to another within an epoch.
public struct QuorumState: Equatable, Sendable {
    public var epoch: Int32
    public var votedFor: Int32?
    public var leaderId: Int32?
    public init(epoch: Int32, votedFor: Int32? = nil, leaderId: Int32? = nil) {
        self.epoch = epoch; self.votedFor = votedFor; self.leaderId = leaderId
    }
}

/// Everything a voter found on disk at start: the quorum state, the latest snapshot and
/// the batches after it (contiguous from the snapshot's end, or from 0 without one).
/// Everything passed here counts as durable.
public struct RaftPersisted: Sendable {
    public var quorum: QuorumState
    public var snapshot: RaftSnapshot?
    public var batches: [RaftBatch]
    public init(quorum: QuorumState = QuorumState(epoch: 0), snapshot: RaftSnapshot? = nil, batches: [RaftBatch] = []) {
        self.quorum = quorum; self.snapshot = snapshot; self.batches = batches
    }
}

/// The role of a voter (KIP-595 states plus KIP-996's prospective).
public enum RaftRole: Equatable, Sendable {
    /// No known leader in this epoch; waiting for the election timer.
    case unattached(epoch: Int32)
    /// Asking for pre-votes for `epoch + 1`; nothing changed or persisted yet.
    case prospective(epoch: Int32)
    /// Voted for itself in `epoch`, asking for votes.
    case candidate(epoch: Int32)
    case leader(epoch: Int32)
    case follower(epoch: Int32, leaderId: Int32)
    /// Was the leader of `epoch` and gave it up; waits an election timeout, then pre-votes.
    case resigned(epoch: Int32)

    public var epoch: Int32 {
        switch self {
        case .unattached(let e), .prospective(let e), .candidate(let e), .leader(let e), .resigned(let e): return e
        case .follower(let e, _): return e
        }
    }
}

public enum ProposeResult: Equatable, Sendable {
    case accepted(baseOffset: Int64, epoch: Int32)
    case notLeader(leaderId: Int32?, epoch: Int32)
}

/// One replica as DescribeQuorum reports it; -1 means unknown.
public struct ReplicaDescription: Equatable, Sendable {
    public var replicaId: Int32
    public var logEndOffset: Int64
    public var lastFetchTimestampMs: Int64
    public var lastCaughtUpTimestampMs: Int64
}

/// DescribeQuorum's answer; only the leader's is complete (others report -1s).
public struct QuorumDescription: Equatable, Sendable {
    public var leaderId: Int32
    public var leaderEpoch: Int32
    public var highWatermark: Int64
    public var voters: [ReplicaDescription]
    public var observers: [ReplicaDescription]
}

/// Kafka error codes used by the quorum RPCs (Kafka's `Errors` numbering).
public enum RaftErrorCode {
    public static let none: Int16 = 0
    public static let notLeaderOrFollower: Int16 = 6
    public static let invalidRequest: Int16 = 42
    public static let fencedLeaderEpoch: Int16 = 74
    public static let unknownLeaderEpoch: Int16 = 75
    public static let inconsistentVoterSet: Int16 = 94
    public static let snapshotNotFound: Int16 = 98
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64). The simulation
/// seeds it; production passes `SystemRandomNumberGenerator`.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
