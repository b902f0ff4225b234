import Foundation
import Logging
import NIOCore
import SiltNet
import SiltProtocol
import SiltRaft

/// What the replicated log drives: the controller's metadata state machine.
public protocol QuorumStateMachine: AnyObject, Sendable {
    /// Replaces the committed state with a snapshot's (at start, or a follower installed one).
    func loadSnapshot(_ snapshot: RaftSnapshot) throws
    /// Committed batches, in log order, each exactly once.
    func apply(_ batches: [RaftBatch]) throws
    /// This node became the ready leader of `epoch` (true), or stopped leading (false).
    func activeChanged(_ active: Bool, epoch: Int32)
}

/// Runs a `RaftCore` for real: disk through `RaftLogStore`, time from a 10 ms tick,
/// messages over KRaft's RPCs on the CONTROLLER listener (`KRaftWire`).
///
/// ```
///  network event loops ──receive──▶ ┌──────────────────────────┐
///  controller (propose) ──────────▶ │ core + store writes      │ ──sync wanted──▶ disk queue: one fdatasync ─┐
///  tick (10 ms) ──────────────────▶ │ (lock; pwrite, no fsync) │ ◀──────────── flushed(upTo:) ───────────────┘
///                                   └──────────────────────────┘
///                                     │ send / respond (after unlock)   │ commit, snapshot install
///                                     ▼                                 ▼
///                                 peers' KafkaClients               apply queue ──▶ state machine
/// ```
///
/// Rules: the core is touched only under `lock`, and its outputs run there in order:
/// `persistQuorumState` and `installSnapshot` are durable before anything after them
/// (elections and installs are rare); appends and truncations are written at once (page
/// cache); durability is the group commit on the disk queue, one fdatasync for every append
/// made before it began. Sends and response completions run after the lock is released, in
/// output order; committed batches reach the state machine on one serial queue, in order.
/// No network event loop ever waits on an fsync.
public final class QuorumDriver: @unchecked Sendable {
    public struct Voter: Equatable, Sendable {
        public var id: Int32
        public var host: String
        public var port: Int
        public init(id: Int32, host: String, port: Int) { self.id = id; self.host = host; self.port = port }
    }

    public let config: RaftConfig
    public let voters: [Voter]
    public let clusterId: String
    let logger: Logger
    private let lock = NSLock()
    private let core: RaftCore
    private let store: RaftLogStore
    private weak var stateMachine: QuorumStateMachine?
    private let peers: [Int32: KafkaClient]
    private let tickLoop: EventLoop
    private var tickTask: RepeatedTask?
    private let diskQueue = DispatchQueue(label: "silt.raft.disk")
    private let applyQueue: DispatchQueue = {
        let q = DispatchQueue(label: "silt.raft.apply")
        q.setSpecific(key: QuorumDriver.applyQueueKey, value: ())
        return q
    }()
    private static let applyQueueKey = DispatchSpecificKey<Void>()
    /// Called once when the driver cannot go on (disk error, undecodable committed record,
    /// a voter set or cluster id that a majority of peers disagree with).
    private let onFatal: @Sendable (String) -> Void

    /// True while a group commit (one fdatasync) is scheduled or running on `diskQueue`.
    private var syncScheduled = false
    /// Appends since the last sync began: another sync is due when it ends.
    private var syncWanted = false
    /// Truncations since a sync began, by offset: its report may not claim past them.
    private var truncatedSinceSync: Int64 = .max
    /// Snapshots the state machine took, written on `diskQueue`, then adopted under the lock.
    private var snapshotWrites = 0
    static let snapshotWritesMax = 2

    /// The latest request of each kind from each voter, waiting for the core's answer
    /// (the core answers only the latest one; an earlier one is answered as superseded).
    private var pending: [PendingKey: EventLoopPromise<RaftMessage>] = [:]
    struct PendingKey: Hashable { var peer: Int32; var kind: KRaftWire.Kind }
    /// The latest request of each kind sent to each voter: only its first response reaches the core.
    private var sent: [PendingKey: (seq: UInt64, answered: Bool)] = [:]
    private var sendSeq: UInt64 = 0

    /// Applied (committed and handed to the state machine) up to here, and the epoch the
    /// state machine was told it leads; both touched on applyQueue only.
    private var appliedOffset: Int64 = 0
    private var activeEpoch: Int32?
    private var latestSnapshot: RaftSnapshot?
    /// Observer fetches parked until the high watermark moves, or their deadline.
    private var parkedObservers: [ParkedObserver] = []
    private struct ParkedObserver {
        var fetchOffset: Int64
        var deadlineMs: Int64
        var promise: EventLoopPromise<FetchResponse.PartitionData>
    }
    static let parkedObserversMax = 4096
    /// Peers that answered INCONSISTENT_VOTER_SET / INCONSISTENT_CLUSTER_ID.
    private var disagreeing: [Int32: String] = [:]
    private var fatal = false
    /// After `stop()`: the core is no longer driven, and disk work is refused.
    private var stopped = false

    public init(config: RaftConfig, voters: [Voter], clusterId: String, store: RaftLogStore, persisted: RaftPersisted,
                clientGroup: EventLoopGroup, localHost: String?, logger: Logger,
                onFatal: @escaping @Sendable (String) -> Void) {
        precondition(Set(voters.map(\.id)) == Set(config.voters), "voters and config disagree")
        self.config = config
        self.voters = voters.sorted { $0.id < $1.id }
        self.clusterId = clusterId
        self.store = store
        self.logger = logger
        self.onFatal = onFatal
        self.latestSnapshot = persisted.snapshot
        self.appliedOffset = persisted.snapshot?.id.endOffset ?? 0
        self.core = RaftCore(config: config, persisted: persisted, nowMs: QuorumDriver.nowMs(),
                             random: SystemRandomNumberGenerator())
        var peers: [Int32: KafkaClient] = [:]
        for v in voters where v.id != config.nodeId {
            peers[v.id] = KafkaClient(group: clientGroup, host: v.host, port: v.port,
                                      clientId: "silt-raft-\(config.nodeId)", logger: logger,
                                      localHost: localHost)
        }
        self.peers = peers
        self.tickLoop = clientGroup.next()
    }

    /// The voter-set fingerprint peers compare (controller.quorum.voters, normalized).
    public var voterString: String { voters.map { "\($0.id)@\($0.host):\($0.port)" }.joined(separator: ",") }

    /// True if a peer's `voterString` names the same voters as ours. Ids decide, as in KRaft:
    /// nodes may reach one voter by different names (a host name here, an address there).
    func sameVoters(_ theirs: String) -> Bool {
        let ids = theirs.split(separator: ",").map { $0.split(separator: "@", maxSplits: 1).first.flatMap { Int32($0) } }
        return ids.allSatisfy { $0 != nil } && ids.compactMap { $0 }.sorted() == config.voters
    }

    /// Loads the snapshot into the state machine and starts ticking.
    public func start(stateMachine: QuorumStateMachine) throws {
        self.stateMachine = stateMachine
        if let s = latestSnapshot { try stateMachine.loadSnapshot(s) }
        tickTask = tickLoop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { [weak self] _ in
            guard let self else { return }
            self.run { $0.tick(nowMs: QuorumDriver.nowMs()) }
            self.expireParkedObservers()
        }
    }

    /// Resigns leadership (EndQuorumEpoch, so the others elect at once) and stops: no output
    /// of the core runs after this returns, and no disk work is left behind (another
    /// instance may open the same directory next).
    public func stop() {
        let wasLeader: Bool = lock.withLock { if case .leader = core.role { return true }; return false }
        run { $0.resign(nowMs: QuorumDriver.nowMs()) }
        // Long-polls parked here are answered now (empty), not when their deadline passes.
        let parked: [() -> Void] = lock.withLock {
            stopped = true
            defer { parkedObservers = [] }
            return parkedObservers.map { p in let a = observerEmptyLocked(); return { p.promise.succeed(a) } }
        }
        for answer in parked { answer() }
        tickTask?.cancel()
        tickTask = nil
        // The state machine may be released (and stop us) from an apply closure itself.
        if DispatchQueue.getSpecific(key: QuorumDriver.applyQueueKey) == nil { applyQueue.sync {} }
        diskQueue.sync {}
        if wasLeader && !peers.isEmpty { usleep(QuorumDriver.resignGraceMs * 1000) }   // let EndQuorumEpoch leave
        for p in peers.values { p.close() }
    }

    /// How long a stopping leader lets its EndQuorumEpoch requests go out before it closes its connections.
    static let resignGraceMs: UInt32 = 100

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: The controller's side

    public enum ProposeError: Error { case notLeader(leaderId: Int32?, epoch: Int32) }

    /// Appends `records` as one batch if this node is the ready leader of `epoch`; returns
    /// the batch's end offset (respond once the state machine has applied it).
    public func propose(_ records: [[UInt8]], epoch: Int32) -> Result<Int64, ProposeError> {
        var result: Result<Int64, ProposeError> = .failure(.notLeader(leaderId: nil, epoch: epoch))
        run { core in
            guard core.leaderReady, core.epoch == epoch else {
                result = .failure(.notLeader(leaderId: core.leaderId, epoch: core.epoch))
                return []
            }
            let (r, outputs) = core.propose(records, nowMs: QuorumDriver.nowMs())
            switch r {
            case .accepted(let base, _): result = .success(base + Int64(records.count))
            case .notLeader(let leader, let e): result = .failure(.notLeader(leaderId: leader, epoch: e))
            }
            return outputs
        }
        return result
    }

    /// Who leads, as this node knows it.
    public var leader: (id: Int32?, epoch: Int32) { lock.withLock { (core.leaderId, core.epoch) } }
    public var highWatermark: Int64 { lock.withLock { core.highWatermark } }

    /// The state machine took a snapshot of what it applied: write it (off the lock), then
    /// let the store and the core drop the log below it. At most `snapshotWritesMax` at a
    /// time; a snapshot offered beyond that is skipped (the next one covers it).
    public func snapshotTaken(_ snapshot: RaftSnapshot) {
        let go: Bool = lock.withLock {
            guard !stopped, snapshotWrites < QuorumDriver.snapshotWritesMax else { return false }
            snapshotWrites += 1
            return true
        }
        guard go else { return }
        let directory = store.directory
        diskQueue.async {
            do {
                try RaftLogStore.writeSnapshotFile(snapshot, directory: directory)
            } catch {
                self.logger.error("metadata snapshot failed (the log stays longer)", metadata: ["error": "\(error)"])
                self.lock.withLock { self.snapshotWrites -= 1 }
                return
            }
            self.run { core in
                self.snapshotWrites -= 1
                guard !self.stopped else { return [] }
                do {
                    try self.store.adoptSnapshot(snapshot.id)
                } catch {
                    self.fatalLocked("metadata log: cannot drop the log below snapshot \(snapshot.id): \(error)")
                    return []
                }
                self.latestSnapshot = snapshot
                return core.snapshotTaken(snapshot)
            }
            self.logger.info("metadata snapshot written", metadata: ["endOffset": "\(snapshot.id.endOffset)",
                                                                     "bytes": "\(snapshot.bytes.count)"])
        }
    }

    // MARK: Incoming requests

    /// A request from voter `from` (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch,
    /// FetchSnapshot), answered when the core answers it (a fetch may be parked).
    func receiveRequest(_ message: RaftMessage, from peer: Int32, on loop: EventLoop) -> EventLoopFuture<RaftMessage> {
        let promise = loop.makePromise(of: RaftMessage.self)
        let kind = KRaftWire.kind(of: message)
        let key = PendingKey(peer: peer, kind: kind)
        let superseded: EventLoopPromise<RaftMessage>? = lock.withLock {
            defer { pending[key] = promise }
            return pending[key]
        }
        superseded?.succeed(KRaftWire.superseded(kind))
        run { $0.receive(message, from: peer, nowMs: QuorumDriver.nowMs()) }
        // A request the core never answers (it may ignore one) must not hold its connection.
        let timeout = loop.scheduleTask(in: .milliseconds(config.fetchMaxWaitMs + 5000)) {
            let mine: Bool = self.lock.withLock {
                guard self.pending[key]?.futureResult === promise.futureResult else { return false }
                self.pending[key] = nil
                return true
            }
            if mine { promise.succeed(KRaftWire.superseded(kind)) }
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        return promise.futureResult
    }

    /// A fetch from an observer (a broker): committed batches only, parked until there are some.
    func observerFetch(fetchOffset: Int64, maxWaitMs: Int32, on loop: EventLoop)
        -> EventLoopFuture<FetchResponse.PartitionData> {
        let now = QuorumDriver.nowMs()
        return lock.withLock { () -> EventLoopFuture<FetchResponse.PartitionData> in
            if let answer = observerAnswerLocked(fetchOffset: fetchOffset) { return loop.makeSucceededFuture(answer) }
            guard maxWaitMs > 0, parkedObservers.count < QuorumDriver.parkedObserversMax else {
                return loop.makeSucceededFuture(observerEmptyLocked())
            }
            let promise = loop.makePromise(of: FetchResponse.PartitionData.self)
            parkedObservers.append(ParkedObserver(fetchOffset: fetchOffset, deadlineMs: now + Int64(maxWaitMs), promise: promise))
            return promise.futureResult
        }
    }

    /// An answer now, or nil to park (nothing committed past `fetchOffset` yet).
    private func observerAnswerLocked(fetchOffset: Int64) -> FetchResponse.PartitionData? {
        var pd = FetchResponse.PartitionData()
        pd.partitionIndex = 0
        pd.currentLeader.leaderId = core.leaderId ?? -1
        pd.currentLeader.leaderEpoch = core.epoch
        guard case .leader = core.role else {
            pd.errorCode = KafkaErrorCode.notLeaderOrFollower
            return pd
        }
        let hw = core.highWatermark
        pd.highWatermark = hw
        pd.lastStableOffset = hw
        pd.logStartOffset = core.logStartOffset
        if fetchOffset < core.logStartOffset, let s = latestSnapshot {
            pd.snapshotId.endOffset = s.id.endOffset
            pd.snapshotId.epoch = s.id.epoch
            return pd
        }
        if fetchOffset > hw {
            pd.errorCode = KafkaErrorCode.offsetOutOfRange
            return pd
        }
        if fetchOffset == hw { return nil }
        guard core.isBatchBoundary(fetchOffset) else {
            pd.errorCode = KafkaErrorCode.offsetOutOfRange   // not where a batch starts: a confused observer
            return pd
        }
        let batches = core.batches(from: fetchOffset, upTo: hw)
        pd.records = KRaftWire.encode(batches, bytesMax: config.fetchBytesMax)
        return pd
    }

    private func observerEmptyLocked() -> FetchResponse.PartitionData {
        var pd = FetchResponse.PartitionData()
        pd.highWatermark = core.highWatermark
        pd.lastStableOffset = core.highWatermark
        pd.logStartOffset = core.logStartOffset
        pd.currentLeader.leaderId = core.leaderId ?? -1
        pd.currentLeader.leaderEpoch = core.epoch
        pd.records = ByteBuffer()
        return pd
    }

    private func wakeObserversLocked() -> [() -> Void] {
        var out: [() -> Void] = []
        var keep: [ParkedObserver] = []
        for p in parkedObservers {
            if let answer = observerAnswerLocked(fetchOffset: p.fetchOffset) {
                out.append { p.promise.succeed(answer) }
            } else {
                keep.append(p)
            }
        }
        parkedObservers = keep
        return out
    }

    private func expireParkedObservers() {
        let now = QuorumDriver.nowMs()
        let due: [() -> Void] = lock.withLock {
            var out: [() -> Void] = []
            var keep: [ParkedObserver] = []
            for p in parkedObservers {
                if p.deadlineMs <= now {
                    let answer = observerEmptyLocked()
                    out.append { p.promise.succeed(answer) }
                } else {
                    keep.append(p)
                }
            }
            parkedObservers = keep
            return out
        }
        for d in due { d() }
    }

    /// DescribeQuorum's view: the core's description (meaningful on the leader) and whether
    /// this node leads.
    func describe() -> (QuorumDescription, isLeader: Bool) {
        lock.withLock {
            if case .leader = core.role { return (core.describe(nowMs: QuorumDriver.nowMs()), true) }
            return (core.describe(nowMs: QuorumDriver.nowMs()), false)
        }
    }

    /// The snapshot observers (brokers) load when they are behind the log start.
    var latestSnapshotForObservers: RaftSnapshot? { lock.withLock { latestSnapshot } }

    // MARK: Running the core

    /// Calls the core under the lock, executes its outputs, then runs what must happen unlocked.
    private func run(_ body: (RaftCore) -> [RaftOutput]) {
        let after: [() -> Void] = lock.withLock {
            guard !fatal && !stopped else { return [] }
            return execute(body(core))
        }
        for a in after { a() }
    }

    /// Executes outputs in order (caller holds the lock); returns the unlocked part.
    private func execute(_ outputs: [RaftOutput]) -> [() -> Void] {
        var after: [() -> Void] = []
        do {
            for output in outputs {
                switch output {
                case .persistQuorumState(let state):
                    try store.persist(state)   // durable before anything after it
                case .append(let batches):
                    try store.append(batches)
                    requestSyncLocked()
                case .truncate(let offset):
                    try store.truncate(toOffset: offset)
                    truncatedSinceSync = min(truncatedSinceSync, offset)
                case .installSnapshot(let snapshot):
                    try store.installSnapshot(snapshot)   // durable before anything after it
                    logger.notice("installed a snapshot from the leader", metadata: [
                        "endOffset": "\(snapshot.id.endOffset)", "epoch": "\(snapshot.id.epoch)", "bytes": "\(snapshot.bytes.count)"])
                    truncatedSinceSync = min(truncatedSinceSync, snapshot.id.endOffset)
                    latestSnapshot = snapshot
                    applyQueue.async { self.loadInstalled(snapshot) }
                case .deleteBefore:
                    break   // adoptSnapshot already dropped the segments the snapshot covers
                case .send(let to, let message):
                    if KRaftWire.isRequest(message) {
                        let key = PendingKey(peer: to, kind: KRaftWire.kind(of: message))
                        sendSeq += 1
                        sent[key] = (sendSeq, false)
                        let seq = sendSeq
                        after.append { self.sendRequest(message, to: to, seq: seq) }
                    } else if let promise = pending.removeValue(forKey: PendingKey(peer: to, kind: KRaftWire.kind(of: message))) {
                        after.append { promise.succeed(message) }
                    }
                case .commit:
                    applyQueue.async { self.applyCommitted() }
                    after += wakeObserversLocked()
                case .roleChanged(let role):
                    logger.info("quorum role changed", metadata: ["role": "\(role)"])
                    applyQueue.async { self.applyCommitted() }
                    after += wakeObserversLocked()
                }
            }
        } catch {
            fatalLocked("metadata log write failed: \(error)")
        }
        return after
    }

    private func fatalLocked(_ reason: String) {
        guard !fatal else { return }
        fatal = true
        logger.critical("controller quorum: \(reason)")
        let f = onFatal
        DispatchQueue.global().async { f(reason) }
    }

    // MARK: Disk

    /// Schedules a group commit unless one is pending; one that is running gets a successor.
    private func requestSyncLocked() {
        if syncScheduled {
            syncWanted = true
            return
        }
        syncScheduled = true
        diskQueue.async { self.groupCommit() }
    }

    /// One fdatasync for every append made before it began, then `flushed(upTo:)`.
    private func groupCommit() {
        let handle: (fd: Int32, endOffset: Int64)? = lock.withLock {
            guard !stopped else { return nil }
            syncWanted = false
            truncatedSinceSync = .max
            do { return try store.syncHandle() } catch { fatalLocked("\(error)"); return nil }
        }
        guard let handle else { return }
        let ok = fdatasync(handle.fd) == 0
        let err = errno
        close(handle.fd)
        guard ok else {
            lock.withLock { fatalLocked("metadata log: fdatasync: \(String(cString: strerror(err)))") }
            return
        }
        run { core in
            // A truncation since the handle was taken may have cut below what it covered.
            let durable = min(handle.endOffset, self.truncatedSinceSync)
            let again = self.syncWanted
            self.syncScheduled = again
            if again { self.diskQueue.async { self.groupCommit() } }
            return core.flushed(upTo: durable, nowMs: QuorumDriver.nowMs())
        }
    }

    // MARK: Applying

    private func loadInstalled(_ snapshot: RaftSnapshot) {
        guard let sm = stateMachine else { return }
        do {
            try sm.loadSnapshot(snapshot)
            appliedOffset = snapshot.id.endOffset
        } catch {
            lock.withLock { fatalLocked("the installed snapshot \(snapshot.id) cannot be loaded: \(error)") }
        }
    }

    /// Hands newly committed batches to the state machine, then reports leadership changes.
    private func applyCommitted() {
        guard let sm = stateMachine else { return }
        let batches: [RaftBatch] = lock.withLock {
            let hw = core.highWatermark
            return appliedOffset < hw && appliedOffset >= core.logStartOffset ? core.batches(from: appliedOffset, upTo: hw) : []
        }
        if !batches.isEmpty {
            do {
                try sm.apply(batches)
                appliedOffset = batches.last!.endOffset
            } catch {
                lock.withLock { fatalLocked("\(error)") }
                return
            }
            // More may have committed meanwhile.
            applyQueue.async { self.applyCommitted() }
        }
        // Stop being active as soon as the core stops leading (or leads a newer epoch); become
        // active only once everything committed before this epoch's first batch is applied.
        let (readyEpoch, hw): (Int32?, Int64) = lock.withLock { (core.leaderReady ? core.epoch : nil, core.highWatermark) }
        if let active = activeEpoch, active != readyEpoch {
            activeEpoch = nil
            sm.activeChanged(false, epoch: active)
        }
        if activeEpoch == nil, let e = readyEpoch, appliedOffset >= hw {
            activeEpoch = e
            sm.activeChanged(true, epoch: e)
        }
    }

    // MARK: Network

    private func sendRequest(_ message: RaftMessage, to peer: Int32, seq: UInt64) {
        guard let client = peers[peer] else { return }
        let voterString = self.voterString
        let fut: EventLoopFuture<KRaftWire.Inbound>
        switch KRaftWire.request(message, clusterId: clusterId, voters: voterString, fetchMaxWaitMs: config.fetchMaxWaitMs) {
        case .vote(let r): fut = client.send(r, version: KRaftWire.voteVersion, timeout: .seconds(5)).flatMapThrowing { try KRaftWire.decode($0) }
        case .begin(let r): fut = client.send(r, version: KRaftWire.beginVersion, timeout: .seconds(5)).flatMapThrowing { try KRaftWire.decode($0) }
        case .end(let r): fut = client.send(r, version: KRaftWire.endVersion, timeout: .seconds(5)).flatMapThrowing { try KRaftWire.decode($0) }
        case .fetch(let r):
            fut = client.send(r, version: KRaftWire.fetchVersion, timeout: .milliseconds(config.fetchMaxWaitMs + 5000))
                .flatMapThrowing { try KRaftWire.decode($0) }
        case .fetchSnapshot(let r):
            fut = client.send(r, version: KRaftWire.fetchSnapshotVersion, timeout: .seconds(30)).flatMapThrowing { try KRaftWire.decode($0) }
        }
        fut.whenComplete { result in
            switch result {
            case .success(.inconsistent(let code, let theirs)):
                self.peerDisagrees(peer, code: code, detail: theirs)
            case .success(.message(let response)):
                self.run { core in
                    // Only the first answer to the latest request of its kind reaches the core.
                    let key = PendingKey(peer: peer, kind: KRaftWire.kind(of: response))
                    guard let latest = self.sent[key], latest.seq == seq, !latest.answered else { return [] }
                    self.sent[key] = (seq, true)
                    return core.receive(response, from: peer, nowMs: QuorumDriver.nowMs())
                }
            case .failure(let error):
                self.logger.trace("raft request to voter \(peer) failed: \(error)")
            }
        }
    }

    /// A peer refused us for a different voter set or cluster id. Stop once a majority of the
    /// other voters refuse: then this node's configuration is the odd one out.
    private func peerDisagrees(_ peer: Int32, code: Int16, detail: String) {
        let key = code == KafkaErrorCode.inconsistentClusterId ? "cluster id (from the s3url or meta.properties)"
            : "controller.quorum.voters"
        logger.error("voter \(peer) refuses this node: \(KRaftWire.errorName(code))", metadata: [
            "key": "\(key)", "ours": "\(code == KafkaErrorCode.inconsistentClusterId ? clusterId : voterString)",
            "theirs": "\(detail)"])
        lock.withLock {
            disagreeing[peer] = detail
            let others = voters.count - 1
            if disagreeing.count > others / 2 || others == 1 {
                fatalLocked("\(key) differs from the other voters' (\(KRaftWire.errorName(code))): this node has "
                    + "'\(code == KafkaErrorCode.inconsistentClusterId ? clusterId : voterString)', voter \(peer) has '\(detail)'")
            }
        }
    }
}
