import CSupport

/// A histogram as read from the region: Prometheus-style cumulative buckets.
public struct HistogramSnapshot: Sendable, Equatable {
    /// `(le, observations <= le)` for every finite bound, ascending; cumulative.
    public var buckets: [(le: Double, count: UInt64)]
    /// Sum of the observations, in seconds (kept in whole microseconds).
    public var sumSeconds: Double
    /// All observations: the `+Inf` bucket.
    public var count: UInt64

    public static func == (a: HistogramSnapshot, b: HistogramSnapshot) -> Bool {
        a.buckets.map(\.le) == b.buckets.map(\.le) && a.buckets.map(\.count) == b.buckets.map(\.count)
            && a.sumSeconds == b.sumSeconds && a.count == b.count
    }
}

extension MetricsRegion {
    /// The index of the bucket `seconds` falls in: the first bound `>= seconds` (Prometheus
    /// `le` semantics), or `bounds.count` for the `+Inf` bucket.
    static func bucketIndex(seconds: Double, bounds: [Double]) -> Int {
        // Linear: 13 bounds, and the common case (fast uploads) exits early.
        for (i, le) in bounds.enumerated() where seconds <= le { return i }
        return bounds.count
    }

    /// `seconds` in whole microseconds, rounded; negative → 0, capped at ~31 years.
    static func microseconds(_ seconds: Double) -> UInt64 {
        let clamped = min(max(seconds, 0), 1e9)
        return UInt64((clamped * 1_000_000).rounded())
    }

    /// Records one observation. `seconds` must not be NaN; a negative value (a clock step)
    /// counts as 0.
    ///
    /// Write order: count, then sum, then the bucket (each sequentially consistent), while
    /// `histogram(_:)` reads buckets, then sum, then count. So a reader never sees more
    /// bucketed observations than `count`: the cumulative buckets stay <= `+Inf`.
    public func observe(_ h: HistogramMetric, seconds: Double) {
        precondition(!seconds.isNaN, "\(h.name): NaN observation")
        observeHistogram(base: MetricsLayout.histogramBase[h.rawValue], bounds: h.bucketsSeconds, seconds: seconds)
    }

    /// `observe` for the histogram whose slots start at `base`.
    func observeHistogram(base: Int, bounds: [Double], seconds: Double) {
        let bucket = Self.bucketIndex(seconds: seconds, bounds: bounds)
        _ = silt_atomic_fetch_add_u64(slot(base + bounds.count + 2), 1)
        _ = silt_atomic_fetch_add_u64(slot(base + bounds.count + 1), Self.microseconds(seconds))
        _ = silt_atomic_fetch_add_u64(slot(base + bucket), 1)
    }

    /// Observes the interval [`fromNs`, `toNs`) of `silt_monotonic_ns` times (taken in any
    /// process of the node); an interval that runs backwards counts as 0.
    @inline(__always)
    public func observe(_ h: HistogramMetric, fromNs: UInt64, toNs: UInt64) {
        observe(h, seconds: toNs > fromNs ? Double(toNs - fromNs) / 1e9 : 0)
    }

    /// Observes the time since `start` (a `ContinuousClock` instant).
    public func observe(_ h: HistogramMetric, since start: ContinuousClock.Instant) {
        let d = ContinuousClock.now - start
        let c = d.components
        observe(h, seconds: Double(c.seconds) + Double(c.attoseconds) / 1e18)
    }

    /// The histogram's current buckets (cumulative), sum and count.
    public func histogram(_ h: HistogramMetric) -> HistogramSnapshot {
        readHistogram(base: MetricsLayout.histogramBase[h.rawValue], bounds: h.bucketsSeconds, name: h.name)
    }

    /// `histogram` for the histogram whose slots start at `base`.
    func readHistogram(base: Int, bounds: [Double], name: String) -> HistogramSnapshot {
        var cumulative: UInt64 = 0
        var buckets: [(le: Double, count: UInt64)] = []
        buckets.reserveCapacity(bounds.count)
        for (i, le) in bounds.enumerated() {
            cumulative &+= silt_atomic_load_acquire_u64(slot(base + i))
            buckets.append((le, cumulative))
        }
        let inf = cumulative &+ silt_atomic_load_acquire_u64(slot(base + bounds.count))
        let sumMicros = silt_atomic_load_acquire_u64(slot(base + bounds.count + 1))
        let count = silt_atomic_load_acquire_u64(slot(base + bounds.count + 2))
        assert(inf <= count, "\(name): bucketed \(inf) > count \(count)")
        return HistogramSnapshot(buckets: buckets, sumSeconds: Double(sumMicros) / 1e6, count: max(count, inf))
    }
}
