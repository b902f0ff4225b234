import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// Errors of the metrics region. Operating errors are thrown; programmer errors (a gauge
/// operation on a counter, a NaN latency) are preconditions.
public enum MetricsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed: `operation` names it, `errno` is the value it set.
    case system(operation: String, errno: Int32)
    /// The region does not start with the metrics magic number.
    case badMagic(found: UInt64)
    /// The region was formatted by another layout version.
    case badVersion(found: UInt32)
    /// The region was formatted by a binary with another metric catalogue, or is too small.
    case badLayout(String)
    /// The region was never completely formatted (the creator died during `create`).
    case notInitialized
    /// `s3.telemetry.metrics.exporter.uri` (or another exporter URI) is not usable.
    case invalidExporterURI(String, reason: String)
    /// The exporter could not bind its address.
    case bindFailed(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case .system(let op, let e): return "\(op) failed: \(String(cString: strerror(e))) (errno \(e))"
        case .badMagic(let m): return "not a metrics region (magic 0x\(String(m, radix: 16)))"
        case .badVersion(let v): return "metrics region layout version \(v), expected \(MetricsLayout.version)"
        case .badLayout(let why): return "metrics region layout mismatch: \(why)"
        case .notInitialized: return "metrics region not initialized"
        case .invalidExporterURI(let uri, let reason): return "invalid metrics exporter URI '\(uri)': \(reason)"
        case .bindFailed(let host, let port, let reason): return "metrics exporter cannot bind \(host):\(port): \(reason)"
        }
    }
}

/// Where everything lives in a metrics region. All words are native-endian u64 (every
/// process of a node is the same binary on the same machine).
///
///     0         8         12          16            24          64
///     +---------+---------+-----------+-------------+-----------+---------------------------+
///     | magic   | version | slotCount | catalogue   | reserved  | slots: u64 × slotCount    |
///     | u64     | u32     | u32       | hash u64    | (zero)    |                           |
///     +---------+---------+-----------+-------------+-----------+---------------------------+
///
///     slots:  [ Metric.allCases (slot = rawValue) ]
///             [ per HistogramMetric: one count per finite bucket (NOT cumulative), the +Inf
///               bucket's count, sum in microseconds, count ]
///             [ Kafka's broker metrics: requests, topics, consumer lag (`KafkaMetricsLayout`) ]
///
/// `magic` is written last with release order: an attacher that sees it sees the rest.
/// Size: 64 + 8 × slots, rounded up to a page (~380 KiB, nearly all of it Kafka's labelled series).
enum MetricsLayout {
    static let magic: UInt64 = 0x5349_4C54_4D45_5452  // "SILTMETR"
    static let version: UInt32 = 1
    static let magicOffset = 0
    static let versionOffset = 8
    static let slotCountOffset = 12
    static let catalogueHashOffset = 16
    static let headerBytes = 64
    static let pageBytes = 4096

    static let counterSlots = Metric.allCases.count

    /// The first slot of each histogram (indexed by `HistogramMetric.rawValue`).
    static let histogramBase: [Int] = {
        var base: [Int] = []
        var next = counterSlots
        for h in MetricCatalogue.histograms {
            base.append(next)
            next += histogramSlots(bucketCount: h.bucketsSeconds.count)
        }
        return base
    }()

    /// Finite buckets + the +Inf bucket + sum + count.
    static func histogramSlots(bucketCount: Int) -> Int { bucketCount + 3 }

    /// The first slot of Kafka's broker metrics (`KafkaMetricsLayout`), after the histograms.
    static let kafkaBase: Int = counterSlots + MetricCatalogue.histograms.reduce(0) {
        $0 + histogramSlots(bucketCount: $1.bucketsSeconds.count)
    }

    static let slotCount: Int = {
        let n = kafkaBase + KafkaMetricsLayout.slotCount
        precondition(n <= Int(UInt32.max))
        return n
    }()

    static let regionBytes: Int = {
        let raw = headerBytes + 8 * slotCount
        return (raw + pageBytes - 1) / pageBytes * pageBytes
    }()

    /// FNV-1a over every name, label, type and bucket bound, in slot order: two binaries
    /// agree on the layout exactly when they agree on this hash.
    static let catalogueHash: UInt64 = {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ s: String) {
            for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
            h = (h ^ 0xff) &* 0x0000_0100_0000_01b3
        }
        for d in MetricCatalogue.counters {
            mix(d.name); mix(d.type.rawValue)
            for l in d.labels { mix(l.name); mix(l.value) }
        }
        for d in MetricCatalogue.histograms {
            mix(d.name)
            for b in d.bucketsSeconds { mix(String(b.bitPattern)) }
        }
        mix(KafkaMetricsLayout.fingerprint)
        return h
    }()
}

/// The node's metrics: a fixed array of u64 slots in shared memory (a memfd the supervisor
/// creates and every role maps), updated with atomic instructions, so any process adds to
/// a counter without locks or messages and the supervisor's exporter reads them all.
///
/// Counters use a sequentially consistent fetch-add; gauges a release store; reads an
/// acquire load. A read of several slots (a histogram) is not a snapshot; see
/// `histogram(_:)` for the one ordering it does guarantee.
///
/// Cost: one `lock xadd` (~20 ns uncontended, more when processes share the cache line) per
/// `add`. Hot paths count per batch or per request, never per record.
public final class MetricsRegion: @unchecked Sendable {
    // @unchecked Sendable: the only state is the mapping, immutable after init, and every
    // access to the shared words inside it is atomic.
    private let storage: Storage
    private let slots: UnsafeMutablePointer<UInt64>

    /// The mapping (or the anonymous allocation) behind a region; released on deinit.
    private final class Storage {
        let base: UnsafeMutableRawPointer
        let length: Int
        let mapped: Bool

        init(base: UnsafeMutableRawPointer, length: Int, mapped: Bool) {
            self.base = base
            self.length = length
            self.mapped = mapped
        }

        static func map(fd: Int32, length: Int) throws -> Storage {
            var err: Int32 = 0
            guard let p = silt_shm_map(fd, length, &err) else { throw MetricsError.system(operation: "mmap", errno: err) }
            return Storage(base: p, length: length, mapped: true)
        }

        deinit {
            if mapped {
                let e = silt_shm_unmap(base, length)
                precondition(e == 0, "munmap failed: \(e)")
            } else {
                base.deallocate()
            }
        }

        /// A typed pointer to a naturally aligned header word.
        func word<T>(_ offset: Int, _: T.Type) -> UnsafeMutablePointer<T> {
            precondition(offset % MemoryLayout<T>.alignment == 0 && offset + MemoryLayout<T>.size <= length)
            return (base + offset).assumingMemoryBound(to: T.self)
        }
    }

    private init(storage: Storage) {
        precondition(storage.length >= MetricsLayout.regionBytes)
        self.storage = storage
        // Safe: the slots are inside the mapping (checked above), 8-byte aligned (the header
        // is 64 bytes, the mapping page-aligned), and live as long as `storage`.
        self.slots = (storage.base + MetricsLayout.headerBytes).bindMemory(to: UInt64.self, capacity: MetricsLayout.slotCount)
    }

    /// Formats the memfd `fd` as a zeroed metrics region and maps it. The caller (the
    /// supervisor) keeps owning `fd` and hands it to every role.
    public static func create(fd: Int32) throws -> MetricsRegion {
        precondition(fd >= 0, "bad fd \(fd)")
        precondition(MetricCatalogue.problems().isEmpty, "metric catalogue: \(MetricCatalogue.problems())")
        // Truncating to 0 first zero-fills every slot even if the file held an older region.
        for length in [0, MetricsLayout.regionBytes] {
            let e = silt_shm_resize(fd, UInt64(length))
            guard e == 0 else { throw MetricsError.system(operation: "ftruncate", errno: e) }
        }
        let region = MetricsRegion(storage: try Storage.map(fd: fd, length: MetricsLayout.regionBytes))
        region.format()
        return region
    }

    /// Maps the region the supervisor created in `fd` (a role passes `RoleFd.metrics`).
    /// Throws when the fd holds no region or one laid out by another binary.
    public static func attach(fd: Int32) throws -> MetricsRegion {
        precondition(fd >= 0, "bad fd \(fd)")
        let size = silt_shm_size(fd)
        guard size >= 0 else { throw MetricsError.system(operation: "fstat", errno: Int32(-size)) }
        guard size >= MetricsLayout.regionBytes else {
            if size == 0 { throw MetricsError.notInitialized }
            throw MetricsError.badLayout("region is \(size) bytes, this binary needs \(MetricsLayout.regionBytes)")
        }
        let region = MetricsRegion(storage: try Storage.map(fd: fd, length: MetricsLayout.regionBytes))
        try region.validateHeader()
        return region
    }

    /// A region in this process's own memory, for tests and for a process started without
    /// the metrics fd. Same layout; nothing else sees it.
    public static func local() -> MetricsRegion {
        let length = MetricsLayout.regionBytes
        let p = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: MetricsLayout.pageBytes)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        let region = MetricsRegion(storage: Storage(base: p, length: length, mapped: false))
        region.format()
        return region
    }

    private func format() {
        storage.word(MetricsLayout.versionOffset, UInt32.self).pointee = MetricsLayout.version
        storage.word(MetricsLayout.slotCountOffset, UInt32.self).pointee = UInt32(MetricsLayout.slotCount)
        storage.word(MetricsLayout.catalogueHashOffset, UInt64.self).pointee = MetricsLayout.catalogueHash
        // Publish: everything above happens before an attacher's acquire load of the magic.
        silt_atomic_store_release_u64(storage.word(MetricsLayout.magicOffset, UInt64.self), MetricsLayout.magic)
    }

    private func validateHeader() throws {
        let magic = silt_atomic_load_acquire_u64(storage.word(MetricsLayout.magicOffset, UInt64.self))
        if magic == 0 { throw MetricsError.notInitialized }
        guard magic == MetricsLayout.magic else { throw MetricsError.badMagic(found: magic) }
        let version = storage.word(MetricsLayout.versionOffset, UInt32.self).pointee
        guard version == MetricsLayout.version else { throw MetricsError.badVersion(found: version) }
        let slotCount = storage.word(MetricsLayout.slotCountOffset, UInt32.self).pointee
        let hash = storage.word(MetricsLayout.catalogueHashOffset, UInt64.self).pointee
        guard slotCount == UInt32(MetricsLayout.slotCount), hash == MetricsLayout.catalogueHash else {
            throw MetricsError.badLayout("region has \(slotCount) slots (catalogue 0x\(String(hash, radix: 16))), "
                + "this binary \(MetricsLayout.slotCount) (0x\(String(MetricsLayout.catalogueHash, radix: 16)))")
        }
    }

    // MARK: counters and gauges

    @inline(__always)
    func slot(_ index: Int) -> UnsafeMutablePointer<UInt64> {
        precondition(index >= 0 && index < MetricsLayout.slotCount, "metrics slot \(index) out of range")
        return slots + index
    }

    /// Adds `delta` (a counter's increment, or a gauge's). Wraps on overflow, which at 2^64
    /// bytes does not happen.
    @inline(__always)
    public func add(_ m: Metric, _ delta: UInt64 = 1) {
        _ = silt_atomic_fetch_add_u64(slot(m.rawValue), delta)
    }

    /// Subtracts `delta` from a gauge (for gauges several processes move, e.g. bytes pending).
    /// The caller keeps the gauge from going below zero.
    @inline(__always)
    public func subtract(_ m: Metric, _ delta: UInt64) {
        precondition(m.type == .gauge, "\(m.name) is a counter: counters only go up")
        _ = silt_atomic_fetch_add_u64(slot(m.rawValue), 0 &- delta)
    }

    /// Sets a gauge to its current value (one writer per gauge: the owner of the quantity).
    @inline(__always)
    public func set(_ m: Metric, _ value: UInt64) {
        precondition(m.type == .gauge, "\(m.name) is a counter: use add")
        silt_atomic_store_release_u64(slot(m.rawValue), value)
    }

    /// The current value.
    @inline(__always)
    public func value(_ m: Metric) -> UInt64 {
        silt_atomic_load_acquire_u64(slot(m.rawValue))
    }
}
