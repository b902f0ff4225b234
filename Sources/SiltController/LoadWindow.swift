import Foundation

/// The brokers' load reports, a bounded recent window per partition: what the auto balancer
/// reasons about. Leader-only memory (like broker sessions): a new active controller starts
/// empty and has a full picture one window after its takeover.
///
/// ```
///  heartbeat(broker 3, interval 2 s, [stream 7: in 1.2 MB/s ...]) ──▶ samples[7] ⟵ (t, load, 2 s)
///  load(7, now) = Σ sample·interval / Σ interval over samples newer than now − windowMs
/// ```
///
/// A partition's load is its own, whichever broker reported it: a move does not reset it (the
/// new leader's reports simply continue the series), so the balancer sees the partition, not
/// the broker. Bounds: `samplesPerStreamMax` samples per stream, `streamsMax` streams; older
/// samples and streams not reported within the window are dropped by a report (at most one
/// such pass a second), and never counted by `load`.
final class LoadWindow: @unchecked Sendable {
    static let samplesPerStreamMax = 128
    static let streamsMax = Int(MetadataController.partitionsMax)
    static let purgeIntervalMs: Int64 = 1000

    struct Sample {
        var atMs: Int64
        var intervalMs: Int64
        var load: PartitionLoad
    }

    private let lock = NSLock()
    private var samples: [UInt64: [Sample]] = [:]
    private var lastPurgeMs: Int64?
    private(set) var windowMs: Int64

    init(windowMs: Int64) {
        precondition(windowMs > 0)
        self.windowMs = windowMs
    }

    func setWindow(ms: Int64) {
        precondition(ms > 0)
        lock.withLock { windowMs = ms }
    }

    func reset() { lock.withLock { samples = [:] } }

    /// One broker's report covering the last `intervalMs`. Rates that are negative or not
    /// finite are a broker's bug: the report is dropped whole.
    func record(_ loads: [(streamId: UInt64, load: PartitionLoad)], intervalMs: Int64, nowMs: Int64) {
        guard intervalMs > 0, !loads.isEmpty else { return }
        let valid = loads.allSatisfy { l in
            [l.load.bytesIn, l.load.bytesOut, l.load.produceRequests, l.load.fetchRequests].allSatisfy { $0.isFinite && $0 >= 0 }
        }
        guard valid else { return }
        lock.withLock {
            for (id, load) in loads {
                guard samples[id] != nil || samples.count < Self.streamsMax else { continue }
                var s = samples[id] ?? []
                s.append(Sample(atMs: nowMs, intervalMs: intervalMs, load: load))
                if s.count > Self.samplesPerStreamMax { s.removeFirst(s.count - Self.samplesPerStreamMax) }
                samples[id] = s
            }
            // Forgetting is a pass over every stream: at most once per `purgeIntervalMs`.
            guard lastPurgeMs.map({ nowMs - $0 >= Self.purgeIntervalMs }) ?? true else { return }
            lastPurgeMs = nowMs
            let oldest = nowMs - windowMs
            samples = samples.compactMapValues { s in
                let kept = s.filter { $0.atMs > oldest }
                return kept.isEmpty ? nil : kept
            }
        }
    }

    /// The partition's load averaged over the window (weighted by each report's interval);
    /// zero when it has no report in the window (idle, or new).
    func load(_ streamId: UInt64, nowMs: Int64) -> PartitionLoad {
        lock.withLock {
            let recent = (samples[streamId] ?? []).filter { $0.atMs > nowMs - windowMs }
            let total = Double(recent.reduce(0) { $0 + $1.intervalMs })
            guard total > 0 else { return .zero }
            func avg(_ f: (PartitionLoad) -> Double) -> Double {
                recent.reduce(0) { $0 + f($1.load) * Double($1.intervalMs) } / total
            }
            return PartitionLoad(bytesIn: avg(\.bytesIn), bytesOut: avg(\.bytesOut),
                                 produceRequests: avg(\.produceRequests), fetchRequests: avg(\.fetchRequests))
        }
    }
}
