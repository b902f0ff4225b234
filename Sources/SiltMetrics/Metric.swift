// The metrics a node exports: one enum case per time series (a labelled family is several
// adjacent cases sharing a name), plus the latency histograms.
//
// Adding a metric: add a case and its line in `descriptor`. The shared-memory layout is
// derived from `allCases` (a counter's slot is its `rawValue`), and the region's header
// carries a hash of the whole catalogue, so a process built with another catalogue fails
// `MetricsRegion.attach` instead of writing into the wrong slots.

/// A Prometheus metric type (as written on the `# TYPE` line).
public enum MetricType: String, Sendable {
    /// Only goes up (until the node restarts: the region lives as long as the supervisor).
    case counter
    /// Set to the current value by its owner.
    case gauge
}

/// The `kind` label of object and compaction metrics.
public enum MetricObjectKind: String, Sendable, CaseIterable {
    /// A stream set object: data of many streams, written by the uploader from the WAL.
    case streamSet = "stream_set"
    /// A stream object: data of one stream, written by compaction.
    case stream
}

/// Static facts about one time series.
public struct MetricDescriptor: Sendable, Equatable {
    /// The Prometheus name, with its unit and `_total` suffix (`silt_s3_put_bytes_total`).
    public var name: String
    public var help: String
    public var type: MetricType
    /// Label pairs in the order written (`[("kind", "stream")]`); empty when unlabelled.
    public var labels: [Label]

    public struct Label: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    init(_ name: String, _ type: MetricType, _ help: String, labels: [(String, String)] = []) {
        self.name = name
        self.help = help
        self.type = type
        self.labels = labels.map { Label(name: $0.0, value: $0.1) }
    }
}

/// One counter or gauge time series: one u64 slot in the node's `MetricsRegion`.
///
/// Cases of one labelled family (same `name`) must be adjacent: the exporter writes one
/// `# HELP`/`# TYPE` header per run of equal names (checked by `MetricCatalogue.validate`).
/// Labelled cases also have a constructor, so call sites read `.objectsUploaded(.stream)`.
public enum Metric: Int, Sendable, CaseIterable {
    // Object storage requests (counted by `MeteredObjectStore`).
    case s3PutRequests
    case s3PutBytes
    case s3GetRequests
    case s3GetBytes
    case s3DeleteRequests
    case s3ListRequests
    case s3Errors
    // Uploads and compaction.
    case objectsUploadedStreamSet
    case objectsUploadedStream
    case objectsUploadedBytes
    case objectsCommitted
    case compactionsStreamSet
    case compactionsStream
    case compactionBytesRead
    case compactionBytesWritten
    case compactionBytesCopied
    // The WAL and the log buffer.
    case walPendingBytes
    case walUsedBytes
    case walCapacityBytes
    case logBufferUsedBytes
    case walFramesSuperseded
    // Reads.
    case blockCacheHits
    case blockCacheMisses
    case blockCacheUsedBytes
    case fetchObjectReads
    case fetchTailReads
    // Partitions and moves (the broker's view of the metadata log).
    case partitionsLed
    case partitionsOffline
    case partitionsReleased
    case walTakeovers
    // Load (the broker's report to the controller) and the auto balancer (active controller).
    case brokerBytesInPerSecond
    case brokerBytesOutPerSecond
    case autobalancerMoves
    case autobalancerMovesInFlight
    case autobalancerBytesInDeviationPercent
    case autobalancerBytesOutDeviationPercent

    /// `silt_objects_uploaded_total{kind=...}`.
    public static func objectsUploaded(_ kind: MetricObjectKind) -> Metric {
        switch kind {
        case .streamSet: return .objectsUploadedStreamSet
        case .stream: return .objectsUploadedStream
        }
    }

    /// `silt_compactions_total{kind=...}`.
    public static func compactions(_ kind: MetricObjectKind) -> Metric {
        switch kind {
        case .streamSet: return .compactionsStreamSet
        case .stream: return .compactionsStream
        }
    }

    public var name: String { descriptor.name }
    public var type: MetricType { descriptor.type }

    /// Name, help, type and labels (computed once per case; see `MetricCatalogue`).
    public var descriptor: MetricDescriptor { MetricCatalogue.counters[rawValue] }

    /// The table behind `descriptor`: one line per case.
    static func describe(_ m: Metric) -> MetricDescriptor {
        switch m {
        case .s3PutRequests:
            return .init("silt_s3_put_requests_total", .counter,
                         "PUT-class object storage requests: PutObject, CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload.")
        case .s3PutBytes:
            return .init("silt_s3_put_bytes_total", .counter, "Body bytes sent by PutObject and UploadPart requests.")
        case .s3GetRequests:
            return .init("silt_s3_get_requests_total", .counter, "GET-class object storage requests: GetObject and HeadObject.")
        case .s3GetBytes:
            return .init("silt_s3_get_bytes_total", .counter, "Body bytes received by GetObject requests.")
        case .s3DeleteRequests:
            return .init("silt_s3_delete_requests_total", .counter,
                         "DeleteObject, DeleteObjects (one per 1000 keys) and AbortMultipartUpload requests.")
        case .s3ListRequests:
            return .init("silt_s3_list_requests_total", .counter, "ListObjectsV2 requests.")
        case .s3Errors:
            return .init("silt_s3_errors_total", .counter, "Object storage calls that failed (after the store's own retries).")
        case .objectsUploadedStreamSet:
            return .init("silt_objects_uploaded_total", .counter, "Objects uploaded and committed.", labels: [("kind", "stream_set")])
        case .objectsUploadedStream:
            return .init("silt_objects_uploaded_total", .counter, "Objects uploaded and committed.", labels: [("kind", "stream")])
        case .objectsUploadedBytes:
            return .init("silt_objects_uploaded_bytes_total", .counter, "Bytes of the objects uploaded and committed.")
        case .objectsCommitted:
            return .init("silt_objects_committed", .gauge, "Live objects, as the uploader last saw them.")
        case .compactionsStreamSet:
            return .init("silt_compactions_total", .counter, "Compactions completed.", labels: [("kind", "stream_set")])
        case .compactionsStream:
            return .init("silt_compactions_total", .counter, "Compactions completed.", labels: [("kind", "stream")])
        case .compactionBytesRead:
            return .init("silt_compaction_bytes_read_total", .counter, "Bytes compaction read from object storage.")
        case .compactionBytesWritten:
            return .init("silt_compaction_bytes_written_total", .counter, "Bytes compaction uploaded (not counting server-side copies).")
        case .compactionBytesCopied:
            return .init("silt_compaction_bytes_copied_total", .counter, "Bytes compaction copied server-side (UploadPartCopy).")
        case .walPendingBytes:
            return .init("silt_wal_pending_bytes", .gauge, "Bytes durable in the WAL and not yet uploaded.")
        case .walUsedBytes:
            return .init("silt_wal_used_bytes", .gauge, "Bytes of the WAL in use (not yet trimmed).")
        case .walCapacityBytes:
            return .init("silt_wal_capacity_bytes", .gauge, "Capacity of the WAL in bytes.")
        case .logBufferUsedBytes:
            return .init("silt_log_buffer_used_bytes", .gauge, "Bytes in use in the shared log buffer.")
        case .walFramesSuperseded:
            return .init("silt_wal_frames_superseded_total", .counter,
                         "Frames the uploader dropped because their stream was reopened in a newer epoch (never committed).")
        case .blockCacheHits:
            return .init("silt_block_cache_hits_total", .counter, "Block cache lookups that found the block.")
        case .blockCacheMisses:
            return .init("silt_block_cache_misses_total", .counter, "Block cache lookups that had to read object storage.")
        case .blockCacheUsedBytes:
            return .init("silt_block_cache_used_bytes", .gauge, "Bytes held by the block cache.")
        case .fetchObjectReads:
            return .init("silt_fetch_object_reads_total", .counter, "Fetch reads served from object storage (through the block cache).")
        case .fetchTailReads:
            return .init("silt_fetch_tail_reads_total", .counter, "Fetch reads served from the log buffer or the WAL tail.")
        case .partitionsLed:
            return .init("silt_partitions_led", .gauge, "Partitions this broker leads and has open.")
        case .partitionsOffline:
            return .init("silt_partitions_offline", .gauge,
                         "Partitions of the cluster without a leader: their broker is fenced, and its WAL may hold their acknowledged tail.")
        case .partitionsReleased:
            return .init("silt_partitions_released_total", .counter, "Partitions this broker handed to another after committing their tail.")
        case .walTakeovers:
            return .init("silt_wal_takeovers_total", .counter,
                         "Dead brokers whose WAL this node committed, and whose partitions the controller then moved.")
        case .brokerBytesInPerSecond:
            return .init("silt_broker_bytes_in_per_second", .gauge,
                         "Produced bytes per second over the last load report (sent with each heartbeat).")
        case .brokerBytesOutPerSecond:
            return .init("silt_broker_bytes_out_per_second", .gauge,
                         "Fetched bytes per second over the last load report (sent with each heartbeat).")
        case .autobalancerMoves:
            return .init("silt_autobalancer_moves_total", .counter, "Partition moves the auto balancer started (active controller).")
        case .autobalancerMovesInFlight:
            return .init("silt_autobalancer_moves_in_flight", .gauge, "Partition moves in flight, anyone's, as of the balancer's last pass.")
        case .autobalancerBytesInDeviationPercent:
            return .init("silt_autobalancer_bytes_in_deviation_percent", .gauge,
                         "The largest distance of an active broker's bytes in from the mean, in percent of the mean.")
        case .autobalancerBytesOutDeviationPercent:
            return .init("silt_autobalancer_bytes_out_deviation_percent", .gauge,
                         "The largest distance of an active broker's bytes out from the mean, in percent of the mean.")
        }
    }
}

/// A latency histogram: cumulative Prometheus `le` buckets plus `_sum` and `_count`.
public enum HistogramMetric: Int, Sendable, CaseIterable {
    /// One object, from the start of its upload to its commit.
    case uploadLatency
    /// One partition moving away, from the stop of its appends to the controller's new leader.
    case partitionReleaseLatency
    /// One WAL takeover, from its start to the controller moving the dead broker's partitions.
    case walTakeoverLatency
    // The latency breakdown of a produce (acks=1/-1), stage by stage, and of a fetch: see
    // docs/benchmarks.md ("Where the time goes") and Benchmarks/latency-breakdown.py.
    case produceDecode, produceValidate, produceAppend, produceWALPickup, produceWALSubmit, produceDevice
    case produceDurableNotice, produceAck, produceResponseWrite, produceTotal
    case fetchDecode, fetchServe, fetchResponseWrite, fetchTotal

    public var name: String { descriptor.name }
    public var help: String { descriptor.help }
    /// Upper bounds in seconds, strictly increasing; `+Inf` is implicit.
    public var bucketsSeconds: [Double] { descriptor.bucketsSeconds }

    public var descriptor: HistogramDescriptor { MetricCatalogue.histograms[rawValue] }

    static func describe(_ h: HistogramMetric) -> HistogramDescriptor {
        switch h {
        case .uploadLatency:
            return .init(name: "silt_upload_latency_seconds",
                         help: "Time from the start of an upload round (a stream set object and the stream objects split off it) to its commit.",
                         bucketsSeconds: HistogramDescriptor.latencyBucketsSeconds)
        case .partitionReleaseLatency:
            return .init(name: "silt_partition_release_seconds",
                         help: "A partition moving away: from the stop of its appends to the controller naming its new leader.",
                         bucketsSeconds: HistogramDescriptor.latencyBucketsSeconds)
        case .walTakeoverLatency:
            return .init(name: "silt_wal_takeover_seconds",
                         help: "A dead broker's WAL taken over: from reading it to the controller moving its partitions.",
                         bucketsSeconds: HistogramDescriptor.latencyBucketsSeconds)
        case .produceDecode: return stage("produce_decode", "A produce: the whole frame read from the socket to the request decoded.")
        case .produceValidate: return stage("produce_validate", "A produce: its batches validated (CRC, sizes, sequences), all partitions.")
        case .produceAppend: return stage("produce_append", "A produce: validated to appended to the log buffer (partition locks, a wait for room).")
        case .produceWALPickup: return stage("produce_wal_pickup", "A produced batch: appended to the log buffer to picked up by the WAL writer (per batch).")
        case .produceWALSubmit: return stage("produce_wal_submit", "A produced batch: picked up to its WAL write submitted to io_uring (framing, copy, CRC).")
        case .produceDevice: return stage("produce_device", "A produced batch: its WAL write submitted to its completion reaped (the device).")
        case .produceDurableNotice: return stage("produce_durable_notice", "A produced batch: WAL completion to the broker's durable thread seeing the notice (wake-up between processes).")
        case .produceAck: return stage("produce_ack", "A produce: the last durable notice to the response encoded on the event loop.")
        case .produceResponseWrite: return stage("produce_response_write", "A produce: response encoded to written to the socket (waits for earlier answers of the connection).")
        case .produceTotal: return stage("produce_total", "A produce: the whole frame read to the response written (acks=1/-1).")
        case .fetchDecode: return stage("fetch_decode", "A fetch: the whole frame read from the socket to the request decoded.")
        case .fetchServe: return stage("fetch_serve", "A fetch: decoded to the response encoded (log buffer or objects, and any max.wait.ms).")
        case .fetchResponseWrite: return stage("fetch_response_write", "A fetch: response encoded to written to the socket.")
        case .fetchTotal: return stage("fetch_total", "A fetch: the whole frame read to the response written.")
        }
    }

    private static func stage(_ name: String, _ help: String) -> HistogramDescriptor {
        .init(name: "silt_\(name)_seconds", help: help, bucketsSeconds: HistogramDescriptor.stageBucketsSeconds)
    }
}

/// Static facts about one histogram.
public struct HistogramDescriptor: Sendable, Equatable {
    public var name: String
    public var help: String
    public var bucketsSeconds: [Double]

    /// 5 ms … 60 s: object storage requests take tens of milliseconds; a minute means
    /// retries or a stalled store.
    public static let latencyBucketsSeconds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    /// 5 µs … 1 s in 1-2-5 steps, for the stages of a request: a stage of the write path is
    /// microseconds (a copy, a wake-up) to milliseconds (the device); beyond a second it is a stall.
    public static let stageBucketsSeconds: [Double] = [
        0.000_005, 0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_2, 0.000_5, 0.001, 0.002, 0.005,
        0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]
}

/// The catalogue, computed once, and its checks.
enum MetricCatalogue {
    static let counters: [MetricDescriptor] = Metric.allCases.map(Metric.describe)
    static let histograms: [HistogramDescriptor] = HistogramMetric.allCases.map(HistogramMetric.describe)

    /// Broken catalogue rules (programmer errors), or an empty list.
    static func problems() -> [String] {
        var problems: [String] = []
        var seen = Set<String>()
        var previous: String?
        for (i, d) in counters.enumerated() {
            if d.name != previous {
                if !seen.insert(d.name).inserted { problems.append("\(d.name): cases of one family are not adjacent") }
                previous = d.name
            } else {
                let first = counters[i - 1]
                if first.type != d.type || first.help != d.help { problems.append("\(d.name): type or help differ within the family") }
                if first.labels.map(\.name) != d.labels.map(\.name) { problems.append("\(d.name): label names differ within the family") }
                if first.labels == d.labels { problems.append("\(d.name): duplicate series") }
            }
            if !isValidName(d.name) { problems.append("\(d.name): not a valid metric name") }
            if d.type == .counter && !d.name.hasSuffix("_total") { problems.append("\(d.name): a counter's name ends in _total") }
        }
        for h in histograms {
            if !seen.insert(h.name).inserted { problems.append("\(h.name): duplicate name") }
            if !isValidName(h.name) { problems.append("\(h.name): not a valid metric name") }
            if h.bucketsSeconds.isEmpty { problems.append("\(h.name): no buckets") }
            for (a, b) in zip(h.bucketsSeconds, h.bucketsSeconds.dropFirst()) where !(a < b) {
                problems.append("\(h.name): buckets not strictly increasing at \(b)")
            }
            if let first = h.bucketsSeconds.first, !(first > 0) || !h.bucketsSeconds.allSatisfy(\.isFinite) {
                problems.append("\(h.name): buckets must be finite and positive")
            }
        }
        return problems
    }

    private static func isValidName(_ s: String) -> Bool {
        guard let first = s.utf8.first else { return false }
        let isLetter = { (c: UInt8) in (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == UInt8(ascii: "_") || c == UInt8(ascii: ":") }
        let isDigit = { (c: UInt8) in c >= 0x30 && c <= 0x39 }
        return isLetter(first) && s.utf8.allSatisfy { isLetter($0) || isDigit($0) }
    }
}
