import SiltRaft

/// A fault-free, synchronous harness for unit tests: messages are delivered in FIFO order,
/// appends are flushed at once (unless `autoFlush` is off), and nodes in `isolated` neither
/// send nor receive. Every output is kept per node for assertions.
final class RaftTestCluster {
    let voters: [Int32]
    private(set) var cores: [Int32: RaftCore] = [:]
    private(set) var nowMs: Int64 = 0
    private var inbox: [(from: Int32, to: Int32, message: RaftMessage)] = []
    /// Every output each node produced, in order.
    var outputs: [Int32: [RaftOutput]] = [:]
    var isolated: Set<Int32> = []
    var autoFlush = true

    init(voters: [Int32], persisted: [Int32: RaftPersisted] = [:], seed: UInt64 = 0,
         configure: (inout RaftConfig) -> Void = { _ in }) {
        self.voters = voters
        for id in voters {
            var config = RaftConfig(nodeId: id, voters: voters)
            configure(&config)
            cores[id] = RaftCore(config: config, persisted: persisted[id] ?? RaftPersisted(), nowMs: 0,
                                 random: SplitMix64(seed: seed &* 1000 &+ UInt64(id)))
        }
    }

    subscript(id: Int32) -> RaftCore { cores[id]! }

    var leaders: [Int32] {
        voters.filter { if case .leader = cores[$0]!.role { true } else { false } }
    }

    /// Records `outputs` of node `id`, queues its messages and flushes its appends.
    func absorb(_ produced: [RaftOutput], from id: Int32) {
        outputs[id, default: []] += produced
        var appended = false
        for output in produced {
            switch output {
            case .send(let to, let message): inbox.append((id, to, message))
            case .append: appended = true
            default: break
            }
        }
        if appended, autoFlush {
            absorb(self[id].flushed(upTo: self[id].logEndOffset, nowMs: nowMs), from: id)
        }
    }

    /// Delivers queued messages (and the ones they cause) until none is left.
    func deliverAll() {
        var delivered = 0
        while !inbox.isEmpty {
            let (from, to, message) = inbox.removeFirst()
            delivered += 1
            precondition(delivered < 100_000, "RaftTestCluster: message storm")
            guard !isolated.contains(from), !isolated.contains(to), let core = cores[to] else { continue }
            absorb(core.receive(message, from: from, nowMs: nowMs), from: to)
        }
    }

    /// Advances the clock in 10 ms ticks, delivering everything after each.
    func advance(byMs ms: Int64) {
        let end = nowMs + ms
        while nowMs < end {
            nowMs += 10
            for id in voters { absorb(self[id].tick(nowMs: nowMs), from: id) }
            deliverAll()
        }
    }

    /// Advances until exactly one leader is elected and ready (or fails after `limitMs`).
    @discardableResult
    func electLeader(limitMs: Int64 = 20_000) -> Int32? {
        let end = nowMs + limitMs
        while nowMs < end {
            advance(byMs: 10)
            if leaders.count == 1, self[leaders[0]].leaderReady { return leaders[0] }
        }
        return nil
    }

    func propose(_ payload: [UInt8], on id: Int32) -> ProposeResult {
        let (result, produced) = self[id].propose([payload], nowMs: nowMs)
        absorb(produced, from: id)
        return result
    }

    func sent(by id: Int32) -> [(to: Int32, message: RaftMessage)] {
        (outputs[id] ?? []).compactMap { if case let .send(to, m) = $0 { (to, m) } else { nil } }
    }

    func clearOutputs() { outputs = [:] }
}
