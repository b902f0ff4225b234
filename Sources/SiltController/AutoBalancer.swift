import Foundation
import SiltConfig

/// The auto balancer's decision function: given the cluster as the active controller sees it
/// (brokers, where each partition is, each partition's recent load, what moved lately), the
/// moves to make now. Pure and deterministic, so the unit tests and the seeded cluster
/// simulation drive exactly the code the controller runs (`AutoBalancerService` only feeds it
/// and records its answer as reassignments).
///
/// Goals, in priority order; a lower goal never undoes a higher one:
///
/// ```
///  1 drain           no partition on a draining broker (unfenced, in controlled shutdown)
///  2 network-in/out  each eligible broker's bytes in and bytes out within ±deviation of the
///                    mean of the eligible brokers (only once that mean is above the
///                    usage threshold: idle clusters are not balanced by noise); a single
///                    move, else an exchange of two partitions
///  3 partition-count each eligible broker within one of the mean count, when that keeps
///                    every broker inside goal 2's band
/// ```
///
/// Why it never flaps (the invariants `AutoBalancerTests` and the cluster simulation check):
/// - a load move is made only when its source or its target is outside the band, only when it
///   cuts the brokers' summed squared distance from the mean (in and out, each relative to its
///   mean) and narrows the gap between its two brokers by at least `minImprovementRatio` of
///   the mean, never raises its target above the band in a direction and never
///   takes a source inside the band out of it: under a stable load every load move lowers a
///   bounded quantity by a fixed step, so they stop;
/// - a move is only between two brokers further apart than the band's width, brings a broker
///   outside the band nearer the mean in a direction in which it is outside, and never fills
///   one direction of its target past the mean while adding nothing to the other, where the
///   target is short (rules the seeded simulation found: see `Model`);
/// - a partition moved for load or counts is not moved again for either before
///   `partitionCooldownMs`;
/// - moves in flight (anyone's) count against `executionConcurrency`, and a moving
///   partition is never planned again until its move completes.
///
/// A fenced broker's partitions are not moved: its WAL may hold their acknowledged tail, so
/// they wait for it (or a WAL takeover); a fenced broker receives nothing.
public enum AutoBalancer {
    /// The tunables, with their bounds enforced by the config keys (ServerConfig+Keys.swift).
    public struct Config: Sendable, Equatable {
        public var enabled = false
        public var detectIntervalMs: Int64 = 10_000
        public var networkInDeviation = 0.15
        public var networkOutDeviation = 0.15
        /// Mean bytes per second per broker below which that direction is not balanced.
        public var networkInThresholdBytes = 1_048_576.0
        public var networkOutThresholdBytes = 1_048_576.0
        public var executionConcurrency = 10
        public var partitionCooldownMs: Int64 = 300_000
        public var minImprovementRatio = 0.05
        public var loadWindowMs: Int64 = 60_000

        public init() {}

        /// The node's `autobalancer.controller.*` keys (validated at start-up).
        public init(_ config: ServerConfig) {
            func long(_ key: String) -> Int64 { Int64(config.value(key).value!)! }
            func double(_ key: String) -> Double { Double(config.value(key).value!)! }
            let p = "autobalancer.controller."
            enabled = config.value(p + "enable").value == "true"
            detectIntervalMs = long(p + "anomaly.detect.interval.ms")
            networkInDeviation = double(p + "network.in.distribution.detect.avg.deviation")
            networkOutDeviation = double(p + "network.out.distribution.detect.avg.deviation")
            networkInThresholdBytes = double(p + "network.in.usage.distribution.detect.threshold")
            networkOutThresholdBytes = double(p + "network.out.usage.distribution.detect.threshold")
            executionConcurrency = Int(long(p + "execution.concurrency"))
            partitionCooldownMs = long(p + "partition.cooldown.ms")
            minImprovementRatio = double(p + "move.min.improvement.ratio")
            loadWindowMs = long(p + "load.window.ms")
        }
    }

    public enum Goal: String, Sendable, CaseIterable {
        case drain
        case networkIn = "network-in"
        case networkOut = "network-out"
        case partitionCount = "partition-count"
    }

    /// A broker as the balancer sees it.
    public struct Broker: Sendable, Equatable {
        public enum State: String, Sendable { case active, draining, fenced }
        public var id: Int32
        public var state: State
        public init(id: Int32, state: State) { self.id = id; self.state = state }
    }

    /// A partition: where it is (`broker`), where it is going (`target`), its recent load, and
    /// when the balancer last moved it.
    public struct Partition: Sendable, Equatable {
        public var streamId: UInt64
        public var broker: Int32
        public var target: Int32?
        public var load: PartitionLoad
        public var lastMovedMs: Int64?
        public init(streamId: UInt64, broker: Int32, target: Int32? = nil, load: PartitionLoad = .zero,
                    lastMovedMs: Int64? = nil) {
            self.streamId = streamId; self.broker = broker; self.target = target; self.load = load
            self.lastMovedMs = lastMovedMs
        }
    }

    /// One move and why.
    public struct Decision: Sendable, Equatable {
        public var streamId: UInt64
        public var from: Int32
        public var to: Int32
        public var goal: Goal
        public var reason: String
    }

    /// The moves to make now (at most the concurrency left), in the order decided.
    public static func plan(brokers: [Broker], partitions: [Partition], config: Config, nowMs: Int64) -> [Decision] {
        var model = Model(brokers: brokers, partitions: partitions, config: config)
        var budget = config.executionConcurrency - partitions.filter { $0.target != nil }.count
        var out: [Decision] = []
        while budget > 0 {
            let next: [Decision]
            if let d = model.drainMove() ?? model.loadMove(nowMs: nowMs) {
                next = [d]
            } else if budget >= 2, let swap = model.loadSwap(nowMs: nowMs) {
                next = swap
            } else if let d = model.countMove(nowMs: nowMs) {
                next = [d]
            } else {
                break
            }
            for d in next { model.apply(d) }
            out += next
            budget -= next.count
        }
        return out
    }
}

/// A partition's recent load: bytes and requests per second.
public struct PartitionLoad: Sendable, Equatable {
    public var bytesIn: Double
    public var bytesOut: Double
    public var produceRequests: Double
    public var fetchRequests: Double
    public static let zero = PartitionLoad(bytesIn: 0, bytesOut: 0, produceRequests: 0, fetchRequests: 0)
    public init(bytesIn: Double, bytesOut: Double, produceRequests: Double, fetchRequests: Double) {
        self.bytesIn = bytesIn; self.bytesOut = bytesOut
        self.produceRequests = produceRequests; self.fetchRequests = fetchRequests
    }
}
