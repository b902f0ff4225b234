import SiltRaft

/// A broken invariant or a missed liveness bound; the message names the seed and step.
struct SimulationFailure: Error, CustomStringConvertible {
    let description: String
}

/// Knobs of a run. The defaults are what CI runs; `tools/raft-sim` may lengthen the fault phase.
struct SimulationOptions {
    /// Faults (crashes, partitions, loss) happen only before this simulated time.
    var faultPhaseMs: Int64 = 3000
    /// Every node's driver ticks its core this often.
    var tickIntervalMs: Int64 = 10
    /// Print every event (for replaying one seed).
    var verbose = false
}

/// What one seed did, for the summary and the determinism check.
struct SimulationResult {
    var steps = 0
    var traceHash: UInt64 = fnvOffsetBasis
    var committedOffset: Int64 = 0
    var elections = 0
    var crashes = 0
    var snapshotInstalls = 0
    var livenessAfterHealMs: Int64 = -1
}

let fnvOffsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325

@inline(__always) func fnv(_ h: UInt64, _ v: UInt64) -> UInt64 {
    var h = h
    var v = v
    for _ in 0..<8 {
        h = (h ^ (v & 0xFF)) &* 0x100_0000_01B3
        v >>= 8
    }
    return h
}

/// A deterministic simulation of a voter quorum: one seeded PRNG drives a simulated clock,
/// a network that loses, duplicates, delays and reorders messages and partitions nodes,
/// crashes and restarts with torn unflushed writes, a disk whose flushes complete later
/// (group commit), clients proposing on the leader, periodic local snapshots, and an
/// observer (a broker fetching with its own code).
///
/// Phases: faults until `faultPhaseMs`, then everything heals (all nodes up, no partition,
/// no loss; delays and duplicates remain). After the heal a new proposal must commit within
/// `livenessBoundMs`, and every node (and the observer) must have it within `catchUpBoundMs`.
///
/// Invariants checked as outputs are applied and after every step:
/// 1. at most one leader per epoch, ever;
/// 2. the committed log (offset → epoch, payload, seen by any node's high watermark) never
///    changes: every record a node commits, and every snapshot it installs or loads, matches it;
/// 3. every state machine's (applied offset, hash) equals the committed log's prefix hash,
///    and every node's high watermark is exactly what its state machine applied;
/// 4. the observer is only ever sent committed records and snapshots, never a divergence;
/// plus: a vote is never changed within an epoch, epochs never go back, a truncation never
/// cuts below the high watermark, and the core's log equals the simulated disk.
final class RaftSimulation {
    let seed: UInt64
    let options: SimulationOptions
    private var rng: SplitMix64
    private(set) var result = SimulationResult()
    private var nowMs: Int64 = 0
    private var queue = EventQueue()
    private var nodes: [SimNode] = []
    private let observer: SimObserver
    /// The observer's index in `Envelope`s and correlation keys: after the voters.
    private var observerIndex: Int { nodes.count }
    private let voters: [Int32]
    private let electionTimeoutMs: Int64 = 100

    /// The network: node i reaches node j iff `group[i] == group[j]`.
    private var group: [Int]
    private var lossPercent: UInt64
    private let duplicatePercent: UInt64
    private var nextCorrelation: UInt64 = 1

    /// The committed log as any node's high watermark revealed it, and its prefix hashes:
    /// `prefixHashes[o]` is the hash of the records below offset o.
    private var committed: [CommittedRecord] = []
    private var prefixHashes: [UInt64] = [fnvOffsetBasis]
    private var leaderOfEpoch: [Int32: Int32] = [:]

    private var nextPayload: UInt64 = 1
    private var healedAtMs: Int64?
    private var firstPayloadAfterHeal: UInt64 = .max
    private var livenessOffset: Int64?
    private var livenessBoundMs: Int64 { 10 * electionTimeoutMs }
    private var catchUpBoundMs: Int64 { 20 * electionTimeoutMs }

    init(seed: UInt64, options: SimulationOptions = SimulationOptions()) {
        self.seed = seed
        self.options = options
        var rng = SplitMix64(seed: seed)
        let count = rng.next() % 5 == 0 ? 5 : 3
        voters = (1...Int32(count)).map { $0 }
        group = Array(repeating: 0, count: count)
        lossPercent = rng.next() % 16
        duplicatePercent = rng.next() % 6
        self.rng = rng
        observer = SimObserver(leaderGuess: voters[0])
        for id in voters { nodes.append(SimNode(id: id)) }
    }

    private func config(_ id: Int32) -> RaftConfig {
        RaftConfig(nodeId: id, voters: voters, electionTimeoutMs: electionTimeoutMs, fetchTimeoutMs: 200,
                   electionBackoffMaxMs: 100, fetchMaxWaitMs: 40, requestTimeoutMs: 100, fetchBatchesMax: 4,
                   fetchBytesMax: 64, observersMax: 4)
    }

    // MARK: Running

    func run() throws -> SimulationResult {
        for i in nodes.indices {
            try restart(i)
            schedule(Int64(random(Int(options.tickIntervalMs))), .tick(i))
            schedule(100 + Int64(random(200)), .snapshot(i))
        }
        schedule(5, .propose)
        schedule(7, .observerTick)
        schedule(100 + Int64(random(400)), .crash)
        schedule(100 + Int64(random(400)), .partition)
        schedule(options.faultPhaseMs, .heal)
        while let (time, event) = queue.pop() {
            nowMs = time
            result.steps += 1
            trace(Int64(result.steps), time, event.code)
            if options.verbose { print("[\(result.steps) t=\(time)] \(event)") }
            try handle(event)
            try checkStep()
            if let offset = livenessOffset, observer.endOffset >= offset,
               nodes.allSatisfy({ $0.machine.appliedOffset >= offset }) { break }
        }
        try checkFinal()
        result.committedOffset = Int64(committed.count)
        return result
    }

    private func handle(_ event: SimEvent) throws {
        switch event {
        case .observerTick:
            schedule(nowMs + options.tickIntervalMs, .observerTick)
            observerFetch()
        case .tick(let i):
            schedule(nowMs + options.tickIntervalMs, .tick(i))
            if let core = nodes[i].core { try apply(core.tick(nowMs: nowMs), at: i) }
        case .deliver(let envelope):
            try deliver(envelope)
        case .flushDone(let i, let generation):
            try flushDone(i, generation: generation)
        case .propose:
            schedule(nowMs + 5 + Int64(random(25)), .propose)
            try propose()
        case .snapshot(let i):
            schedule(nowMs + 100 + Int64(random(200)), .snapshot(i))
            try takeSnapshot(i)
        case .crash:
            guard healedAtMs == nil else { return }
            schedule(nowMs + 50 + Int64(random(400)), .crash)
            let i = random(nodes.count)
            if nodes[i].core != nil {
                crash(i)
                schedule(nowMs + 10 + Int64(random(300)), .restart(i, generation: nodes[i].generation))
            }
        case .restart(let i, let generation):
            if nodes[i].core == nil, nodes[i].generation == generation { try restart(i) }
        case .partition:
            guard healedAtMs == nil else { return }
            schedule(nowMs + 300 + Int64(random(600)), .partition)
            if random(2) == 0 {
                let isolated = random(nodes.count)
                group = nodes.indices.map { $0 == isolated ? 1 : 0 }
            } else {
                group = nodes.indices.map { _ in random(2) }
            }
            schedule(nowMs + 100 + Int64(random(400)), .healPartition)
        case .healPartition:
            group = Array(repeating: 0, count: nodes.count)
        case .heal:
            healedAtMs = nowMs
            firstPayloadAfterHeal = nextPayload
            lossPercent = 0
            group = Array(repeating: 0, count: nodes.count)
            for i in nodes.indices where nodes[i].core == nil { try restart(i) }
        }
    }

    // MARK: Nodes: crash, restart, disk

    private func crash(_ i: Int) {
        result.crashes += 1
        let node = nodes[i]
        node.core = nil
        node.generation += 1
        node.flushPendingUpTo = nil
        node.awaiting = [:]
        node.lastRequest = [:]
        // What was flushed survives, plus a torn prefix of what was not (never acknowledged).
        let durable = node.log.prefix { $0.endOffset <= node.durableEnd }.count
        let keep = durable + random(node.log.count - durable + 1)
        node.log.removeSubrange(keep...)
        node.durableEnd = node.diskEnd
    }

    private func restart(_ i: Int) throws {
        let node = nodes[i]
        let persisted = RaftPersisted(quorum: node.quorum, snapshot: node.snapshot, batches: node.log)
        node.core = RaftCore(config: config(node.id), persisted: persisted, nowMs: nowMs,
                             random: SplitMix64(seed: rng.next()))
        node.machine = try loadMachine(from: node.snapshot, node: i)
    }

    private func scheduleFlushIfIdle(_ i: Int) {
        let node = nodes[i]
        guard node.flushPendingUpTo == nil, node.diskEnd > node.durableEnd else { return }
        node.flushPendingUpTo = node.diskEnd
        let delayMs = random(4) == 0 ? 10 + random(50) : 1 + random(8)
        schedule(nowMs + Int64(delayMs), .flushDone(i, generation: node.generation))
    }

    private func flushDone(_ i: Int, generation: Int) throws {
        let node = nodes[i]
        guard node.generation == generation, let upTo = node.flushPendingUpTo, let core = node.core else { return }
        node.flushPendingUpTo = nil
        node.durableEnd = max(node.durableEnd, upTo)
        try apply(core.flushed(upTo: node.durableEnd, nowMs: nowMs), at: i)
        scheduleFlushIfIdle(i)
    }

    // MARK: Clients and snapshots

    private func propose() throws {
        var i = random(nodes.count)
        guard let first = nodes[i].core else { return }
        if case .leader = first.role {} else if let hint = first.leaderId, let j = voters.firstIndex(of: hint) {
            i = j
        }
        guard let core = nodes[i].core, case .leader = core.role else { return }
        let records = (0...random(3)).map { _ -> [UInt8] in
            defer { nextPayload += 1 }
            return withUnsafeBytes(of: nextPayload.littleEndian) { Array($0) }
        }
        let (proposed, outputs) = core.propose(records, nowMs: nowMs)
        guard case .accepted = proposed else { throw failure("a leader refused a proposal: \(proposed)") }
        try apply(outputs, at: i)
    }

    private func takeSnapshot(_ i: Int) throws {
        let node = nodes[i]
        guard let core = node.core, node.machine.appliedOffset > core.logStartOffset else { return }
        let snapshot = RaftSnapshot(id: SnapshotId(endOffset: node.machine.appliedOffset, epoch: node.machine.lastEpoch),
                                    bytes: node.machine.encoded())
        node.snapshot = snapshot
        try apply(core.snapshotTaken(snapshot), at: i)
    }

    private func loadMachine(from snapshot: RaftSnapshot?, node i: Int) throws -> SimStateMachine {
        guard let snapshot else { return SimStateMachine() }
        let machine = SimStateMachine(decoding: snapshot)
        try check(machine.appliedOffset == snapshot.id.endOffset && machine.appliedOffset <= committed.count
                  && prefixHashes[Int(machine.appliedOffset)] == machine.hash,
                  "node \(voters[i]) snapshot \(snapshot.id) is not a committed prefix (committed \(committed.count))")
        return machine
    }

    // MARK: Network

    private func index(of id: Int32) -> Int? {
        id == SimObserver.id ? observerIndex : voters.firstIndex(of: id)
    }

    private func id(of index: Int) -> Int32 { index == observerIndex ? SimObserver.id : voters[index] }

    /// The observer is never partitioned (it still loses messages).
    private func connected(_ i: Int, _ j: Int) -> Bool {
        i == observerIndex || j == observerIndex || group[i] == group[j]
    }

    private func send(_ message: RaftMessage, from i: Int, to id: Int32) throws {
        guard let j = index(of: id) else { throw failure("node \(voters[i]) sent to unknown node \(id)") }
        let (kind, isRequest) = RpcKind.of(message)
        let node = nodes[i]
        let correlation: UInt64
        if isRequest {
            correlation = nextCorrelation
            nextCorrelation += 1
            node.awaiting[kind.key(j)] = correlation
        } else {
            guard let c = node.lastRequest[kind.key(j)] else {
                throw failure("node \(voters[i]) answered \(kind) to \(id) without a request")
            }
            correlation = c
        }
        transmit(Envelope(from: i, to: j, message: message, correlation: correlation, isRequest: isRequest, kind: kind))
    }

    private func transmit(_ envelope: Envelope) {
        let copies = random(100) < duplicatePercent ? 2 : 1
        for _ in 0..<copies where connected(envelope.from, envelope.to) && random(100) >= lossPercent {
            let delayMs = random(10) == 0 ? 1 + random(40) : 1 + random(5)
            schedule(nowMs + Int64(delayMs), .deliver(envelope))
        }
    }

    /// The receiving driver's correlation: requests from a peer in order, a response only
    /// for the latest request of its kind, once.
    private func deliver(_ e: Envelope) throws {
        guard connected(e.from, e.to) else { return }
        if e.to == observerIndex { return try observerReceive(e) }
        let node = nodes[e.to]
        guard let core = node.core else { return }
        let key = e.kind.key(e.from)
        if e.isRequest {
            if let last = node.lastRequest[key], e.correlation < last { return }
            node.lastRequest[key] = e.correlation
        } else {
            guard node.awaiting[key] == e.correlation else { return }
            node.awaiting[key] = nil
        }
        try apply(core.receive(e.message, from: id(of: e.from), nowMs: nowMs), at: e.to)
    }

    // MARK: The observer

    /// Fetches from the voter it believes leads (from its end, or its pending snapshot) when
    /// nothing is outstanding or the last request is 100 ms old.
    private func observerFetch() {
        if let sent = observer.sentMs, nowMs - sent < 100 { return }
        let message: RaftMessage
        let kind: RpcKind
        if let snapshotId = observer.wantedSnapshot {
            message = .fetchSnapshotRequest(replicaId: SimObserver.id, currentLeaderEpoch: observer.epoch, snapshotId: snapshotId)
            kind = .fetchSnapshot
        } else {
            message = .fetchRequest(replicaId: SimObserver.id, currentLeaderEpoch: observer.epoch,
                                    fetchOffset: observer.endOffset, lastFetchedEpoch: observer.lastEpoch)
            kind = .fetch
        }
        let to = voters.firstIndex(of: observer.leaderGuess)!
        observer.sentMs = nowMs
        observer.awaiting = [kind.key(to): nextCorrelation]
        transmit(Envelope(from: observerIndex, to: to, message: message, correlation: nextCorrelation, isRequest: true, kind: kind))
        nextCorrelation += 1
    }

    /// An observer must only ever be sent committed data: it never truncates.
    private func observerReceive(_ e: Envelope) throws {
        guard observer.awaiting[e.kind.key(e.from)] == e.correlation else { return }
        observer.awaiting = [:]
        observer.sentMs = nil
        switch e.message {
        case let .fetchResponse(errorCode, leaderId, leaderEpoch, _, _, batches, diverging, snapshotId):
            guard errorCode == RaftErrorCode.none else {
                observer.epoch = max(observer.epoch, leaderEpoch)
                observer.leaderGuess = leaderId >= 0 ? leaderId : voters[random(voters.count)]
                return
            }
            try check(diverging == nil, "the observer was told it diverges: \(diverging!)")
            observer.epoch = leaderEpoch
            observer.wantedSnapshot = snapshotId
            for batch in batches {
                try check(batch.baseOffset == observer.endOffset, "observer got a batch at \(batch.baseOffset), its end is \(observer.endOffset)")
                for (k, payload) in batch.records.enumerated() {
                    let offset = Int(batch.baseOffset) + k
                    try check(offset < committed.count
                              && committed[offset] == CommittedRecord(epoch: batch.epoch, isControl: batch.isControl, payload: payload),
                              "the observer was sent an uncommitted record at \(offset) (committed \(committed.count))")
                }
                observer.endOffset = batch.endOffset
                observer.lastEpoch = batch.epoch
            }
        case let .fetchSnapshotResponse(errorCode, _, _, snapshot?) where errorCode == RaftErrorCode.none:
            let machine = SimStateMachine(decoding: snapshot)
            try check(machine.appliedOffset <= committed.count && prefixHashes[Int(machine.appliedOffset)] == machine.hash,
                      "the observer was sent snapshot \(snapshot.id) that is not a committed prefix")
            observer.wantedSnapshot = nil
            observer.endOffset = snapshot.id.endOffset
            observer.lastEpoch = snapshot.id.epoch
        default:
            observer.wantedSnapshot = nil
        }
        observerFetch()
    }

    // MARK: Outputs and invariants

    private func apply(_ outputs: [RaftOutput], at i: Int) throws {
        let node = nodes[i]
        for output in outputs {
            switch output {
            case .persistQuorumState(let q):
                trace(1, Int64(q.epoch), Int64(q.votedFor ?? -1), Int64(q.leaderId ?? -1))
                try check(q.epoch >= node.quorum.epoch, "node \(node.id) epoch went back \(node.quorum.epoch) → \(q.epoch)")
                try check(q.epoch > node.quorum.epoch || node.quorum.votedFor == nil || q.votedFor == node.quorum.votedFor,
                          "node \(node.id) changed its vote in epoch \(q.epoch): \(node.quorum) → \(q)")
                node.quorum = q
            case .append(let batches):
                trace(2, batches[0].baseOffset, batches.last!.endOffset, Int64(batches[0].epoch))
                for batch in batches {
                    try check(batch.baseOffset == node.diskEnd,
                              "node \(node.id) append at \(batch.baseOffset), disk ends at \(node.diskEnd)")
                    node.log.append(batch)
                }
                scheduleFlushIfIdle(i)
            case .truncate(let offset):
                trace(3, offset)
                try check(offset >= node.machine.appliedOffset,
                          "node \(node.id) truncates to \(offset) below applied \(node.machine.appliedOffset)")
                node.log.removeAll { $0.endOffset > offset }
                try check(node.diskEnd == offset, "node \(node.id) truncate to \(offset) is not a batch boundary")
                node.durableEnd = min(node.durableEnd, offset)
                node.flushPendingUpTo = node.flushPendingUpTo.map { min($0, offset) }
            case .installSnapshot(let snapshot):
                trace(4, snapshot.id.endOffset, Int64(snapshot.id.epoch))
                result.snapshotInstalls += 1
                try check(snapshot.id.endOffset >= node.machine.appliedOffset, "node \(node.id) installs an older snapshot")
                node.snapshot = snapshot
                node.log = []
                node.durableEnd = snapshot.id.endOffset
                node.flushPendingUpTo = node.flushPendingUpTo.map { min($0, snapshot.id.endOffset) }
                node.machine = try loadMachine(from: snapshot, node: i)
            case .deleteBefore(let offset):
                trace(5, offset)
                try check(node.snapshot?.id.endOffset == offset, "node \(node.id) deletes below \(offset) without that snapshot")
                node.log.removeAll { $0.endOffset <= offset }
                node.durableEnd = max(node.durableEnd, offset)
            case .send(let to, let message):
                trace(6, Int64(to), Int64(RpcKind.of(message).kind.rawValue))
                try checkDurableBeforeSend(message, from: node, to: to)
                try send(message, from: i, to: to)
            case .commit(let highWatermark):
                trace(7, highWatermark)
                try commit(node: i, upTo: highWatermark)
            case .roleChanged(let role):
                trace(8, Int64(role.epoch))
                if case .leader(let epoch) = role {
                    result.elections += 1
                    try check(leaderOfEpoch[epoch] == nil, "two leaders in epoch \(epoch): \(leaderOfEpoch[epoch]!) and \(node.id)")
                    leaderOfEpoch[epoch] = node.id
                }
            }
        }
    }

    /// The driver contract seen from the disk: what a message claims is already durable.
    private func checkDurableBeforeSend(_ message: RaftMessage, from node: SimNode, to: Int32) throws {
        switch message {
        case let .voteResponse(_, _, epoch, true, false):
            try check(node.quorum.epoch == epoch && node.quorum.votedFor == to,
                      "node \(node.id) granted its vote in epoch \(epoch) to \(to) before persisting it (\(node.quorum))")
        case let .voteRequest(epoch, _, _, _, false), let .beginQuorumEpoch(_, epoch):
            try check(node.quorum.epoch == epoch && node.quorum.votedFor == node.id,
                      "node \(node.id) campaigns or leads epoch \(epoch) without a persisted self-vote (\(node.quorum))")
        case let .fetchRequest(_, _, fetchOffset, _):
            try check(fetchOffset <= node.durableEnd, "node \(node.id) fetches at \(fetchOffset), durable only to \(node.durableEnd)")
        default:
            return
        }
    }

    /// Applies newly committed batches to the node's state machine, extending or checking
    /// the global committed log record by record.
    private func commit(node i: Int, upTo highWatermark: Int64) throws {
        let node = nodes[i]
        guard let core = node.core else { return }
        for batch in core.batches(from: node.machine.appliedOffset, upTo: highWatermark) {
            for (k, payload) in batch.records.enumerated() {
                let offset = Int(batch.baseOffset) + k
                let record = CommittedRecord(epoch: batch.epoch, isControl: batch.isControl, payload: payload)
                if offset < committed.count {
                    try check(committed[offset] == record,
                              "node \(node.id) committed \(record) at \(offset), but \(committed[offset]) was committed there")
                } else {
                    try check(offset == committed.count, "node \(node.id) committed offset \(offset) past \(committed.count)")
                    committed.append(record)
                    prefixHashes.append(record.hash(after: prefixHashes[offset]))
                    if livenessOffset == nil, !record.isControl, record.payloadId >= firstPayloadAfterHeal {
                        livenessOffset = Int64(offset + 1)
                        result.livenessAfterHealMs = nowMs - healedAtMs!
                    }
                }
                node.machine.apply(record)
            }
            node.machine.lastEpoch = batch.epoch
        }
        try check(node.machine.appliedOffset == highWatermark && prefixHashes[Int(highWatermark)] == node.machine.hash,
                  "node \(node.id) state machine at \(node.machine.appliedOffset) is not the committed prefix to \(highWatermark)")
    }

    private func checkStep() throws {
        for node in nodes {
            guard let core = node.core else { continue }
            try check(core.highWatermark == node.machine.appliedOffset,
                      "node \(node.id) high watermark \(core.highWatermark), applied \(node.machine.appliedOffset)")
            try check(core.logEndOffset == node.diskEnd, "node \(node.id) log end \(core.logEndOffset), disk \(node.diskEnd)")
            try check(core.epoch == node.quorum.epoch, "node \(node.id) epoch \(core.epoch) but persisted \(node.quorum.epoch)")
        }
        guard let healed = healedAtMs else { return }
        if livenessOffset == nil {
            try check(nowMs - healed <= livenessBoundMs, "no proposal committed within \(livenessBoundMs) ms after the heal")
        } else {
            try check(nowMs - healed <= catchUpBoundMs,
                      "not every node and the observer got the post-heal proposal within \(catchUpBoundMs) ms")
        }
    }

    /// At the end: each core's log equals its disk, and everything below its high watermark
    /// equals the committed log.
    private func checkFinal() throws {
        try check(livenessOffset != nil, "the run ended before a post-heal proposal committed")
        for node in nodes {
            guard let core = node.core else { throw failure("node \(node.id) is down at the end") }
            try check(core.batches(from: core.logStartOffset, upTo: core.logEndOffset) == node.log,
                      "node \(node.id) core log differs from its disk")
            for batch in core.batches(from: core.logStartOffset, upTo: core.highWatermark) {
                for (k, payload) in batch.records.enumerated() {
                    let record = CommittedRecord(epoch: batch.epoch, isControl: batch.isControl, payload: payload)
                    let offset = Int(batch.baseOffset) + k
                    try check(committed[offset] == record, "node \(node.id) committed record changed at \(offset)")
                }
            }
        }
    }

    // MARK: Helpers

    private func schedule(_ time: Int64, _ event: SimEvent) { queue.push(time, event) }

    private func random(_ bound: Int) -> Int { Int(rng.next() % UInt64(bound)) }
    private func random(_ bound: UInt64) -> UInt64 { rng.next() % bound }

    private func trace(_ values: Int64...) {
        for v in values { result.traceHash = fnv(result.traceHash, UInt64(bitPattern: v)) }
    }

    private func failure(_ message: String) -> SimulationFailure {
        SimulationFailure(description: "seed \(seed) step \(result.steps) t=\(nowMs)ms: \(message)")
    }

    private func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw failure(message()) }
    }
}

/// One simulated node: the core (nil while down), its disk, its state machine and the
/// driver's correlation tables.
final class SimNode {
    let id: Int32
    var core: RaftCore?
    /// Bumped on every crash; stale flush and restart events carry an older one.
    var generation = 0
    // Disk: quorum state and snapshots are durable when written; the log below durableEnd.
    var quorum = QuorumState(epoch: 0)
    var snapshot: RaftSnapshot?
    var log: [RaftBatch] = []
    var durableEnd: Int64 = 0
    /// The one flush in flight covers the log up to here (clamped by truncations).
    var flushPendingUpTo: Int64?
    var machine = SimStateMachine()
    /// Correlation of the latest request sent, per (peer, kind); of the latest received.
    var awaiting: [Int: UInt64] = [:]
    var lastRequest: [Int: UInt64] = [:]

    init(id: Int32) { self.id = id }

    var diskEnd: Int64 { log.last?.endOffset ?? snapshot?.id.endOffset ?? 0 }
}

/// A broker observing the metadata log with its own simple code (id 100): it fetches from
/// the voter it believes leads, follows leader hints, installs snapshots, never truncates.
final class SimObserver {
    static let id: Int32 = 100
    var leaderGuess: Int32
    var epoch: Int32 = 0
    var endOffset: Int64 = 0
    var lastEpoch: Int32 = 0
    var wantedSnapshot: SnapshotId?
    /// The one outstanding request: its correlation (by voter and kind) and send time.
    var awaiting: [Int: UInt64] = [:]
    var sentMs: Int64?

    init(leaderGuess: Int32) { self.leaderGuess = leaderGuess }
}

/// The test's replicated state machine: a running hash of every committed record (control
/// records included) and the count applied. Its snapshot is those two numbers.
struct SimStateMachine {
    var appliedOffset: Int64 = 0
    var hash: UInt64 = fnvOffsetBasis
    var lastEpoch: Int32 = 0

    init() {}

    init(decoding snapshot: RaftSnapshot) {
        precondition(snapshot.bytes.count == 16, "SimStateMachine: snapshot of \(snapshot.bytes.count) bytes")
        var offset: UInt64 = 0, hash: UInt64 = 0
        for k in 0..<8 {
            offset |= UInt64(snapshot.bytes[k]) << (8 * k)
            hash |= UInt64(snapshot.bytes[8 + k]) << (8 * k)
        }
        appliedOffset = Int64(offset)
        self.hash = hash
        lastEpoch = snapshot.id.epoch
    }

    func encoded() -> [UInt8] {
        withUnsafeBytes(of: UInt64(appliedOffset).littleEndian) { Array($0) } + withUnsafeBytes(of: hash.littleEndian) { Array($0) }
    }

    mutating func apply(_ record: CommittedRecord) {
        hash = record.hash(after: hash)
        appliedOffset += 1
    }
}

struct CommittedRecord: Equatable, CustomStringConvertible {
    var epoch: Int32
    var isControl: Bool
    var payload: [UInt8]

    func hash(after h: UInt64) -> UInt64 {
        var h = fnv(h, UInt64(epoch) << 1 | (isControl ? 1 : 0))
        for byte in payload { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return h
    }

    /// Proposals carry an 8-byte little-endian id; control records the leader's id.
    var payloadId: UInt64 {
        payload.count == 8 ? payload.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) } : 0
    }

    var description: String { "(epoch \(epoch)\(isControl ? " control" : "") \(payload))" }
}

enum RpcKind: Int {
    case vote, beginQuorumEpoch, endQuorumEpoch, fetch, fetchSnapshot

    static func of(_ message: RaftMessage) -> (kind: RpcKind, isRequest: Bool) {
        switch message {
        case .voteRequest: return (.vote, true)
        case .voteResponse: return (.vote, false)
        case .beginQuorumEpoch: return (.beginQuorumEpoch, true)
        case .beginQuorumEpochResponse: return (.beginQuorumEpoch, false)
        case .endQuorumEpoch: return (.endQuorumEpoch, true)
        case .endQuorumEpochResponse: return (.endQuorumEpoch, false)
        case .fetchRequest: return (.fetch, true)
        case .fetchResponse: return (.fetch, false)
        case .fetchSnapshotRequest: return (.fetchSnapshot, true)
        case .fetchSnapshotResponse: return (.fetchSnapshot, false)
        }
    }

    func key(_ peer: Int) -> Int { peer * 8 + rawValue }
}

struct Envelope {
    var from: Int
    var to: Int
    var message: RaftMessage
    var correlation: UInt64
    var isRequest: Bool
    var kind: RpcKind
}

enum SimEvent {
    case tick(Int)
    case observerTick
    case deliver(Envelope)
    case flushDone(Int, generation: Int)
    case propose
    case snapshot(Int)
    case crash
    case restart(Int, generation: Int)
    case partition
    case healPartition
    case heal

    var code: Int64 {
        switch self {
        case .tick(let i): return 100 + Int64(i)
        case .observerTick: return 150
        case .deliver(let e): return 200 + Int64(e.to * 16 + e.kind.rawValue)
        case .flushDone(let i, _): return 300 + Int64(i)
        case .propose: return 400
        case .snapshot(let i): return 500 + Int64(i)
        case .crash: return 600
        case .restart(let i, _): return 700 + Int64(i)
        case .partition: return 800
        case .healPartition: return 900
        case .heal: return 1000
        }
    }
}

/// A binary min-heap of events by (time, insertion order): ties run in the order scheduled.
struct EventQueue {
    private var heap: [(time: Int64, seq: Int, event: SimEvent)] = []
    private var nextSeq = 0

    mutating func push(_ time: Int64, _ event: SimEvent) {
        heap.append((time, nextSeq, event))
        nextSeq += 1
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (Int64, SimEvent)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, less(l, m) { m = l }
            if r < heap.count, less(r, m) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return (top.time, top.event)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        (heap[a].time, heap[a].seq) < (heap[b].time, heap[b].seq)
    }
}
