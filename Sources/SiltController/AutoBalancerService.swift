import Foundation
import Logging

/// Runs the auto balancer on the active controller (`autobalancer.controller.enable=true`):
/// every `autobalancer.controller.anomaly.detect.interval.ms` it takes the controller's view,
/// asks `AutoBalancer.plan` for moves, records them as reassignments and logs each with its
/// goal and reason. Every controller runs the timer; only the active one plans (leader-only
/// work, as DESIGN.md §5 says), so a failover moves the balancer with the leadership.
///
/// Memory, all bounded: when it last moved each partition (entries older than the cooldown
/// are dropped), and its last `decisionsMax` decisions (DescribeBalancer, `silt admin balancer`).
/// Runs on its own task, never on a network event loop.
public final class AutoBalancerService: @unchecked Sendable {
    public static let decisionsMax = 100

    /// One recorded decision.
    public struct Record: Sendable, Equatable {
        public var atMs: Int64
        public var decision: AutoBalancer.Decision
    }

    /// What one pass saw, for metrics.
    public struct PassStats: Sendable, Equatable {
        public var movesStarted: Int
        public var movesInFlight: Int
        /// The largest distance of an active broker from the mean, as a share of the mean (0 when idle).
        public var bytesInDeviation: Double
        public var bytesOutDeviation: Double
    }

    public let controller: MetadataController
    public let config: AutoBalancer.Config
    let logger: Logger
    let nowMs: @Sendable () -> Int64
    let onPass: @Sendable (PassStats) -> Void
    private let lock = NSLock()
    private var lastMovedMs: [UInt64: Int64] = [:]
    private var recent: [Record] = []
    private var task: Task<Void, Never>?

    public init(controller: MetadataController, config: AutoBalancer.Config, logger: Logger,
                nowMs: @escaping @Sendable () -> Int64 = { MetadataController.wallClockMs() },
                onPass: @escaping @Sendable (PassStats) -> Void = { _ in }) {
        precondition(config.detectIntervalMs >= 1 && config.executionConcurrency >= 1 && config.loadWindowMs >= 1)
        self.controller = controller
        self.config = config
        self.logger = logger
        self.nowMs = nowMs
        self.onPass = onPass
        controller.loads.setWindow(ms: config.loadWindowMs)
    }

    /// Starts the loop when the balancer is enabled (a pass every detect interval).
    public func start() {
        guard config.enabled else { return }
        lock.withLock {
            precondition(task == nil, "auto balancer started twice")
            task = Task { [self] in
                logger.info("auto balancer started", metadata: [
                    "intervalMs": "\(config.detectIntervalMs)", "concurrency": "\(config.executionConcurrency)",
                    "cooldownMs": "\(config.partitionCooldownMs)", "deviationIn": "\(config.networkInDeviation)",
                    "deviationOut": "\(config.networkOutDeviation)", "windowMs": "\(config.loadWindowMs)"])
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: UInt64(config.detectIntervalMs) * 1_000_000)
                    if Task.isCancelled { break }
                    if controller.isActive { runOnce() }
                }
            }
        }
    }

    public func stop() {
        lock.withLock {
            task?.cancel()
            task = nil
        }
    }

    /// One pass: plan on the current view, record the moves, log and remember each decision.
    /// Returns the moves recorded.
    @discardableResult
    public func runOnce() -> [AutoBalancer.Decision] {
        let now = nowMs()
        var (brokers, partitions) = controller.balancerView(nowMs: now)
        let moved = lock.withLock { () -> [UInt64: Int64] in
            lastMovedMs = lastMovedMs.filter { now - $0.value < config.partitionCooldownMs }
            return lastMovedMs
        }
        for i in partitions.indices { partitions[i].lastMovedMs = moved[partitions[i].streamId] }
        let planned = AutoBalancer.plan(brokers: brokers, partitions: partitions, config: config, nowMs: now)
        var started: [AutoBalancer.Decision] = []
        if !planned.isEmpty {
            do {
                started = try controller.startBalancerMoves(planned)
            } catch {
                logger.info("auto balancer: moves not recorded (leadership changed?)", metadata: ["error": "\(error)"])
            }
        }
        let streams = controller.image.streams
        lock.withLock {
            for d in started {
                lastMovedMs[d.streamId] = now
                recent.append(Record(atMs: now, decision: d))
            }
            if recent.count > Self.decisionsMax { recent.removeFirst(recent.count - Self.decisionsMax) }
        }
        for d in started {
            logger.info("auto balancer: moving partition", metadata: [
                "partition": "\(streams[d.streamId].map { "\($0.topic)-\($0.partition)" } ?? "stream \(d.streamId)")", "from": "\(d.from)", "to": "\(d.to)",
                "goal": "\(d.goal.rawValue)", "reason": "\(d.reason)"])
        }
        let inFlight = partitions.filter { $0.target != nil }.count + started.count
        onPass(Self.stats(brokers: brokers, partitions: partitions, started: started.count, inFlight: inFlight))
        return started
    }

    /// The last decisions, oldest first (at most `limit`).
    public func decisions(limit: Int = AutoBalancerService.decisionsMax) -> [Record] {
        lock.withLock { Array(recent.suffix(max(0, limit))) }
    }

    static func stats(brokers: [AutoBalancer.Broker], partitions: [AutoBalancer.Partition], started: Int,
                      inFlight: Int) -> PassStats {
        let loads = AutoBalancer.brokerLoads(brokers: brokers, partitions: partitions)
        let active = brokers.filter { $0.state == .active }.map(\.id)
        func deviation(_ f: (AutoBalancer.BrokerLoad) -> Double) -> Double {
            let values = active.map { f(loads[$0]!) }
            let mean = values.reduce(0, +) / Double(max(1, values.count))
            return mean <= 0 ? 0 : values.map { abs($0 - mean) / mean }.max() ?? 0
        }
        return PassStats(movesStarted: started, movesInFlight: inFlight, bytesInDeviation: deviation(\.bytesIn),
                         bytesOutDeviation: deviation(\.bytesOut))
    }
}

extension AutoBalancer {
    /// A broker's load: its partitions (a move in flight counts for its target).
    public struct BrokerLoad: Sendable, Equatable {
        public var partitions = 0
        public var bytesIn = 0.0
        public var bytesOut = 0.0
    }

    /// Every broker's load, from the partitions' (brokers without partitions: zero).
    public static func brokerLoads(brokers: [Broker], partitions: [Partition]) -> [Int32: BrokerLoad] {
        var out = Dictionary(uniqueKeysWithValues: brokers.map { ($0.id, BrokerLoad()) })
        for p in partitions {
            let b = p.target ?? p.broker
            out[b, default: BrokerLoad()].partitions += 1
            out[b]!.bytesIn += p.load.bytesIn
            out[b]!.bytesOut += p.load.bytesOut
        }
        return out
    }
}
