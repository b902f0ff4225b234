import Foundation

/// The planner's model of the cluster and its goals, one decision at a time
/// (`AutoBalancer.plan` drives it; the rules are in AutoBalancer.swift's header).
extension AutoBalancer {
    /// The placement the planner reasons about: moves in flight already count for their
    /// target, and each decision is applied before the next is chosen.
    struct Model {
        let config: Config
        let eligible: [Int32]            // active brokers, sorted
        let draining: [Int32]
        var parts: [Partition]           // by stream id
        var bytesIn: [Int32: Double] = [:]
        var bytesOut: [Int32: Double] = [:]
        var count: [Int32: Int] = [:]

        init(brokers: [Broker], partitions: [Partition], config: Config) {
            self.config = config
            eligible = brokers.filter { $0.state == .active }.map(\.id).sorted()
            draining = brokers.filter { $0.state == .draining }.map(\.id).sorted()
            parts = partitions.sorted { $0.streamId < $1.streamId }
            for p in parts { add(p, to: p.target ?? p.broker, sign: 1) }
        }

        mutating func add(_ p: Partition, to broker: Int32, sign: Double) {
            bytesIn[broker, default: 0] += sign * p.load.bytesIn
            bytesOut[broker, default: 0] += sign * p.load.bytesOut
            count[broker, default: 0] += Int(sign)
        }

        mutating func apply(_ d: Decision) {
            let i = parts.firstIndex { $0.streamId == d.streamId }!
            add(parts[i], to: d.from, sign: -1)
            add(parts[i], to: d.to, sign: 1)
            parts[i].target = d.to
        }

        var meanIn: Double { eligible.isEmpty ? 0 : eligible.reduce(0) { $0 + bytesIn[$1, default: 0] } / Double(eligible.count) }
        var meanOut: Double { eligible.isEmpty ? 0 : eligible.reduce(0) { $0 + bytesOut[$1, default: 0] } / Double(eligible.count) }
        var balancesIn: Bool { eligible.count > 1 && meanIn >= max(config.networkInThresholdBytes, 1) }
        var balancesOut: Bool { eligible.count > 1 && meanOut >= max(config.networkOutThresholdBytes, 1) }

        /// The broker with the least of (bytes in + out relative to the means, count), lowest id on ties.
        func leastLoaded() -> Int32? {
            let (mi, mo) = (max(meanIn, 1), max(meanOut, 1))
            return eligible.min { a, b in
                let la = bytesIn[a, default: 0] / mi + bytesOut[a, default: 0] / mo
                let lb = bytesIn[b, default: 0] / mi + bytesOut[b, default: 0] / mo
                return (la, count[a, default: 0], a) < (lb, count[b, default: 0], b)
            }
        }

        func coolingDown(_ p: Partition, nowMs: Int64) -> Bool {
            p.lastMovedMs.map { nowMs - $0 < config.partitionCooldownMs } ?? false
        }

        // MARK: Goal 1: drain

        func drainMove() -> Decision? {
            guard let p = parts.first(where: { $0.target == nil && draining.contains($0.broker) }),
                  let to = leastLoaded() else { return nil }
            return Decision(streamId: p.streamId, from: p.broker, to: to, goal: .drain,
                            reason: "broker \(p.broker) is draining; broker \(to) is the least loaded of the active ones")
        }

        // MARK: Goal 2: bytes in and out near the mean

        /// The brokers' summed squared distance from the means, each direction relative to its
        /// mean (0 for a direction below its threshold). Squared, so that a move between two
        /// brokers on the same side of the mean (an underloaded one to a new, empty one) also
        /// counts as progress when it narrows their gap.
        func spread(in bIn: [Int32: Double], out bOut: [Int32: Double]) -> Double {
            func sq(_ x: Double) -> Double { x * x }
            var s = 0.0
            for b in eligible {
                if balancesIn { s += sq((bIn[b, default: 0] - meanIn) / meanIn) }
                if balancesOut { s += sq((bOut[b, default: 0] - meanOut) / meanOut) }
            }
            return s
        }

        /// How much a move narrows the gap between its two brokers, summed over the balanced
        /// directions, each relative to its mean. Measured on the pair, not the cluster, so that
        /// a partition too hot for any broker elsewhere does not make every other move look small.
        func gapCut(_ a: Int32, _ b: Int32, in bIn: [Int32: Double], out bOut: [Int32: Double]) -> Double {
            func cut(_ before: [Int32: Double], _ after: [Int32: Double], _ mean: Double) -> Double {
                (abs(before[a, default: 0] - before[b, default: 0]) - abs(after[a, default: 0] - after[b, default: 0])) / mean
            }
            return (balancesIn ? cut(bytesIn, bIn, meanIn) : 0) + (balancesOut ? cut(bytesOut, bOut, meanOut) : 0)
        }

        func withinBand(_ broker: Int32, in bIn: [Int32: Double], out bOut: [Int32: Double]) -> Bool {
            (!balancesIn || abs(bIn[broker, default: 0] - meanIn) <= config.networkInDeviation * meanIn)
                && (!balancesOut || abs(bOut[broker, default: 0] - meanOut) <= config.networkOutDeviation * meanOut)
        }

        /// Whether the move raises `broker` in a direction and leaves it above the band there. A
        /// broker already above the band in bytes out may still take a bytes-in-only partition
        /// (refusing it kept a broker short of bytes in and long in bytes out for 11 minutes,
        /// until the reports' noise dipped under the band's edge, in the simulation).
        func raisedAboveBand(_ broker: Int32, in bIn: [Int32: Double], out bOut: [Int32: Double]) -> Bool {
            let (i, o) = (bIn[broker, default: 0], bOut[broker, default: 0])
            return (balancesIn && i > bytesIn[broker, default: 0] && i > (1 + config.networkInDeviation) * meanIn)
                || (balancesOut && o > bytesOut[broker, default: 0] && o > (1 + config.networkOutDeviation) * meanOut)
        }

        /// The best single move for load: the largest cut of `spread` among the moves that
        /// narrow the gap between their two brokers by `minImprovementRatio` of the mean, between
        /// two brokers at least one of which is outside the band (an overloaded source, or an
        /// underloaded target such as a new broker), such that the target does not end above the
        /// band and a source inside the band stays inside it.
        ///
        /// Cost: partitions × brokers candidates, each priced over the brokers: with 10,000
        /// partitions on 20 brokers about 4 M steps a decision, on the balancer's own task.
        func loadMove(nowMs: Int64) -> Decision? {
            guard balancesIn || balancesOut else { return nil }
            let outside = Set(eligible.filter { !withinBand($0, in: bytesIn, out: bytesOut) })
            guard !outside.isEmpty else { return nil }
            let before = spread(in: bytesIn, out: bytesOut)
            var best: (gain: Double, p: Partition, to: Int32)?
            for p in parts where p.target == nil && eligible.contains(p.broker) && !coolingDown(p, nowMs: nowMs) {
                for to in eligible where to != p.broker && (outside.contains(p.broker) || outside.contains(to))
                    && apart(p.broker, to) {
                    var bIn = bytesIn, bOut = bytesOut
                    bIn[p.broker, default: 0] -= p.load.bytesIn; bOut[p.broker, default: 0] -= p.load.bytesOut
                    bIn[to, default: 0] += p.load.bytesIn; bOut[to, default: 0] += p.load.bytesOut
                    guard !raisedAboveBand(to, in: bIn, out: bOut), !fillsOneSideFirst(to, in: bIn, out: bOut),
                          outside.contains(p.broker) || withinBand(p.broker, in: bIn, out: bOut),
                          (outside.contains(p.broker) && nearsBand(p.broker, in: bIn, out: bOut))
                            || (outside.contains(to) && nearsBand(to, in: bIn, out: bOut)) else { continue }
                    let gain = before - spread(in: bIn, out: bOut)
                    if gain > (best?.gain ?? 0), gapCut(p.broker, to, in: bIn, out: bOut) >= config.minImprovementRatio {
                        best = (gain, p, to)
                    }
                }
            }
            guard let best else { return nil }
            let p = best.p
            let off = outside.contains(p.broker) ? p.broker : best.to
            let goal: Goal = balancesIn && !withinBandIn(off) ? .networkIn : .networkOut
            let f = { (v: Double) in Self.rate(v) }
            return Decision(streamId: p.streamId, from: p.broker, to: best.to, goal: goal, reason:
                "broker \(off) is outside ±\(Self.percent(goal == .networkIn ? config.networkInDeviation : config.networkOutDeviation)) "
                + "of the mean (in \(f(bytesIn[off, default: 0])) vs \(f(meanIn)), out \(f(bytesOut[off, default: 0])) vs \(f(meanOut))); "
                + "partition in \(f(p.load.bytesIn)) out \(f(p.load.bytesOut)); broker \(p.broker) has in \(f(bytesIn[p.broker, default: 0])), "
                + "broker \(best.to) in \(f(bytesIn[best.to, default: 0])); spread \(String(format: "%.3f", before)) → \(String(format: "%.3f", before - best.gain))")
        }

        /// Whether two brokers are further apart than the band's width in a balanced direction.
        /// Two brokers closer than that are balanced with each other, even when both are outside
        /// the band (both short because one partition hotter than the mean sits elsewhere): load
        /// shifted between them would only follow the reports' noise, back and forth. (The
        /// simulation found such exchanges repeating between two short brokers.) A broker
        /// outside the band is always apart from some other: the mean lies between them.
        func apart(_ a: Int32, _ b: Int32) -> Bool {
            (balancesIn && abs(bytesIn[a, default: 0] - bytesIn[b, default: 0]) > config.networkInDeviation * meanIn)
                || (balancesOut && abs(bytesOut[a, default: 0] - bytesOut[b, default: 0]) > config.networkOutDeviation * meanOut)
        }

        /// Whether `broker`, outside the band, comes nearer the mean in a direction in which it is
        /// outside. A move made because a broker is outside the band must serve that: moving a
        /// bytes-in-only partition off a broker that is above the band only in bytes out cuts the
        /// spread a little, and the partition-count goal moved it back one cooldown later, and so
        /// on (the simulation found it).
        func nearsBand(_ broker: Int32, in bIn: [Int32: Double], out bOut: [Int32: Double]) -> Bool {
            let inOff = balancesIn && abs(bytesIn[broker, default: 0] - meanIn) > config.networkInDeviation * meanIn
            let outOff = balancesOut && abs(bytesOut[broker, default: 0] - meanOut) > config.networkOutDeviation * meanOut
            return (inOff && abs(bIn[broker, default: 0] - meanIn) < abs(bytesIn[broker, default: 0] - meanIn))
                || (outOff && abs(bOut[broker, default: 0] - meanOut) < abs(bytesOut[broker, default: 0] - meanOut))
        }

        /// A move that raises `broker` above the mean in one direction, adds nothing in the
        /// other, and leaves it below the band there. Refused: it spends the broker's room in one
        /// direction before the other is reachable; then every partition that would fill the
        /// other direction (most carry both) takes it above the band, and the partition that
        /// filled it is cooling down, so it cannot be exchanged either. (A new broker given
        /// bytes-in-only partitions first stayed short of bytes out for a whole cooldown in the
        /// simulation.)
        func fillsOneSideFirst(_ broker: Int32, in bIn: [Int32: Double], out bOut: [Int32: Double]) -> Bool {
            guard balancesIn && balancesOut else { return false }
            let (i, o) = (bIn[broker, default: 0], bOut[broker, default: 0])
            let (inRaised, outRaised) = (i > bytesIn[broker, default: 0], o > bytesOut[broker, default: 0])
            return (inRaised && i > meanIn && !outRaised && o < (1 - config.networkOutDeviation) * meanOut)
                || (outRaised && o > meanOut && !inRaised && i < (1 - config.networkInDeviation) * meanIn)
        }

        func withinBandIn(_ broker: Int32) -> Bool {
            abs(bytesIn[broker, default: 0] - meanIn) <= config.networkInDeviation * meanIn
        }

        /// When no single move qualifies: the best exchange of two partitions between a broker
        /// outside the band and another, under the same rules as a move (the spread falls, the
        /// gap narrows by the minimum, neither broker ends above the band, a broker inside the
        /// band stays inside). It fills a broker that is full in one direction and short in the
        /// other (a new broker that took bytes-in partitions first). Candidates: the
        /// `swapCandidatesMax` busiest partitions of each broker, so the cost stays bounded.
        func loadSwap(nowMs: Int64) -> [Decision]? {
            guard balancesIn || balancesOut else { return nil }
            let outside = Set(eligible.filter { !withinBand($0, in: bytesIn, out: bytesOut) })
            guard !outside.isEmpty else { return nil }
            let before = spread(in: bytesIn, out: bytesOut)
            var byBroker: [Int32: [Partition]] = [:]
            for p in parts where p.target == nil && eligible.contains(p.broker) && !coolingDown(p, nowMs: nowMs) {
                byBroker[p.broker, default: []].append(p)
            }
            for b in byBroker.keys {
                byBroker[b] = Array(byBroker[b]!.sorted { $0.load.bytesIn + $0.load.bytesOut > $1.load.bytesIn + $1.load.bytesOut }
                    .prefix(Self.swapCandidatesMax))
            }
            var best: (gain: Double, p: Partition, q: Partition)?
            for a in eligible.sorted() where outside.contains(a) {
                for b in eligible.sorted() where b != a && apart(a, b) {
                    for p in byBroker[a] ?? [] {
                        for q in byBroker[b] ?? [] {
                            var bIn = bytesIn, bOut = bytesOut
                            bIn[a, default: 0] += q.load.bytesIn - p.load.bytesIn
                            bOut[a, default: 0] += q.load.bytesOut - p.load.bytesOut
                            bIn[b, default: 0] += p.load.bytesIn - q.load.bytesIn
                            bOut[b, default: 0] += p.load.bytesOut - q.load.bytesOut
                            guard !raisedAboveBand(a, in: bIn, out: bOut), !raisedAboveBand(b, in: bIn, out: bOut),
                                  outside.contains(b) || withinBand(b, in: bIn, out: bOut),
                                  nearsBand(a, in: bIn, out: bOut) || (outside.contains(b) && nearsBand(b, in: bIn, out: bOut))
                            else { continue }
                            let gain = before - spread(in: bIn, out: bOut)
                            if gain > (best?.gain ?? 0), gapCut(a, b, in: bIn, out: bOut) >= config.minImprovementRatio {
                                best = (gain, p, q)
                            }
                        }
                    }
                }
            }
            guard let best else { return nil }
            let (p, q) = (best.p, best.q)
            let reason = "exchange: broker \(p.broker) (in \(Self.rate(bytesIn[p.broker, default: 0])), out "
                + "\(Self.rate(bytesOut[p.broker, default: 0]))) and broker \(q.broker) (in \(Self.rate(bytesIn[q.broker, default: 0])), "
                + "out \(Self.rate(bytesOut[q.broker, default: 0]))) swap partitions of in \(Self.rate(p.load.bytesIn)) / out "
                + "\(Self.rate(p.load.bytesOut)) and in \(Self.rate(q.load.bytesIn)) / out \(Self.rate(q.load.bytesOut)) (means in "
                + "\(Self.rate(meanIn)), out \(Self.rate(meanOut))); no single move qualified; spread "
                + "\(String(format: "%.3f", before)) → \(String(format: "%.3f", before - best.gain))"
            let goal: Goal = balancesOut && !withinBandOut(p.broker) ? .networkOut : .networkIn
            return [Decision(streamId: p.streamId, from: p.broker, to: q.broker, goal: goal, reason: reason),
                    Decision(streamId: q.streamId, from: q.broker, to: p.broker, goal: goal, reason: reason)]
        }

        static let swapCandidatesMax = 32

        func withinBandOut(_ broker: Int32) -> Bool {
            abs(bytesOut[broker, default: 0] - meanOut) <= config.networkOutDeviation * meanOut
        }

        // MARK: Goal 3: partition counts

        /// One partition from the broker with the most to the one with the fewest, when they
        /// differ by more than one and the move keeps both inside goal 2's band (the partition
        /// with the least load that does).
        func countMove(nowMs: Int64) -> Decision? {
            guard eligible.count > 1 else { return nil }
            let byCount = eligible.sorted { (count[$0, default: 0], $0) < (count[$1, default: 0], $1) }
            let (low, high) = (byCount.first!, byCount.last!)
            guard count[high, default: 0] - count[low, default: 0] > 1 else { return nil }
            let candidates = parts.filter { $0.target == nil && $0.broker == high && !coolingDown($0, nowMs: nowMs) }
                .sorted { ($0.load.bytesIn + $0.load.bytesOut, $0.streamId) < ($1.load.bytesIn + $1.load.bytesOut, $1.streamId) }
            for p in candidates {
                var bIn = bytesIn, bOut = bytesOut
                bIn[high, default: 0] -= p.load.bytesIn; bOut[high, default: 0] -= p.load.bytesOut
                bIn[low, default: 0] += p.load.bytesIn; bOut[low, default: 0] += p.load.bytesOut
                // Goal 2 first: the move keeps an in-band broker in the band, never pushes the
                // target above it, and never widens the spread (so load and count moves cannot
                // undo each other).
                let keeps = [high, low].allSatisfy { !withinBand($0, in: bytesIn, out: bytesOut) || withinBand($0, in: bIn, out: bOut) }
                guard keeps, !raisedAboveBand(low, in: bIn, out: bOut),
                      spread(in: bIn, out: bOut) <= spread(in: bytesIn, out: bytesOut) + 1e-9 else { continue }
                return Decision(streamId: p.streamId, from: high, to: low, goal: .partitionCount, reason:
                    "broker \(high) has \(count[high, default: 0]) partitions, broker \(low) has \(count[low, default: 0]); "
                    + "partition load in \(Self.rate(p.load.bytesIn)) out \(Self.rate(p.load.bytesOut)) keeps both within the load band")
            }
            return nil
        }

        static func rate(_ bytesPerSec: Double) -> String {
            bytesPerSec >= 1_048_576 ? String(format: "%.1f MiB/s", bytesPerSec / 1_048_576)
                : String(format: "%.1f KiB/s", bytesPerSec / 1024)
        }

        static func percent(_ v: Double) -> String { String(format: "%.0f%%", v * 100) }
    }
}
