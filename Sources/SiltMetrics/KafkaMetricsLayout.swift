/// The part of the metrics region that holds Kafka's broker metrics, after Silt's own slots:
/// per-API request metrics, per-topic traffic and per-group consumer lag. Label values
/// (topic and group names) live in the region too, so the supervisor's exporter renders
/// what the broker process recorded.
///
///     requests: apiKeyCount × [ errors | bucket counts × N | +Inf | sum µs | count ]
///     topics:   topicSeriesMax × [ state | name length | name (32 words) | bytes in | bytes out | messages in ]
///     lag:      [ entries in use ] + consumerLagSeriesMax × [ seq | group len | topic len | partition |
///                                                            lag | committed | group (32 words) | topic (32 words) ]
///
/// Bounds on label cardinality: API keys below `apiKeyCount` (Kafka's are below 100); the
/// first `topicSeriesMax` topics a node's broker sees (a topic keeps its slot until the node
/// restarts; later topics count only in Silt's totals); `consumerLagSeriesMax` (group,
/// partition) pairs, refreshed as a whole. Names longer than `nameBytesMax` are not
/// labelled. Size: (128 × 18 + 256 × 37 + 1 + 512 × 70) × 8 bytes ≈ 380 KiB.
public enum KafkaMetricsLayout {
    public static let apiKeyCount = 128
    public static let topicSeriesMax = 256
    public static let consumerLagSeriesMax = 512
    /// Topic names are at most 249 bytes in Kafka; group ids this long are not labelled.
    public static let nameBytesMax = 256
    static let nameWords = nameBytesMax / 8

    /// Request latency buckets, in seconds (rendered in ms): Kafka's request times run from
    /// under a millisecond (Metadata) to the fetch wait (500 ms by default) and beyond.
    public static let requestBucketsSeconds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    static let requestSlots = 1 + MetricsLayout.histogramSlots(bucketCount: requestBucketsSeconds.count)
    static let topicSlots = 2 + nameWords + 3
    static let lagSlots = 6 + 2 * nameWords

    static let requestsBase = 0
    static let topicsBase = requestsBase + apiKeyCount * requestSlots
    static let lagCountSlot = topicsBase + topicSeriesMax * topicSlots
    static let lagBase = lagCountSlot + 1
    static let slotCount = lagBase + consumerLagSeriesMax * lagSlots

    /// Mixed into the region's catalogue hash: a binary with other bounds refuses the region.
    static var fingerprint: String {
        "kafka:\(apiKeyCount):\(topicSeriesMax):\(consumerLagSeriesMax):\(nameBytesMax):"
            + requestBucketsSeconds.map { String($0.bitPattern) }.joined(separator: ",")
    }
}

/// One (group, topic, partition) consumer lag sample, as the broker publishes them.
public struct ConsumerLagSample: Sendable, Equatable {
    public var group: String
    public var topic: String
    public var partition: Int32
    public var committedOffset: Int64
    public var lag: Int64
    public init(group: String, topic: String, partition: Int32, committedOffset: Int64, lag: Int64) {
        self.group = group
        self.topic = topic
        self.partition = partition
        self.committedOffset = committedOffset
        self.lag = lag
    }
}

/// One topic's traffic, as read from the region.
public struct TopicTraffic: Sendable, Equatable {
    public var topic: String
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    public var messagesIn: UInt64
}

/// One API's request metrics, as read from the region.
public struct RequestStats: Sendable, Equatable {
    public var apiKey: Int16
    public var errors: UInt64
    public var latency: HistogramSnapshot
}
