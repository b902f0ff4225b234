import CSupport

/// Kafka's broker metrics in the region (`KafkaMetricsLayout`). Recording is a few atomic
/// adds: no lock, no allocation. A topic's slot is found by hashing its name into an
/// open-addressed table in the region itself, so the broker needs no map of its own and a
/// restarted broker finds the slots its predecessor claimed.
extension MetricsRegion {
    // MARK: requests

    /// Records one request of `apiKey` that took `seconds`, with `errors` error codes in its
    /// response (or a failure). Api keys outside the table are not recorded.
    @inline(__always)
    public func recordRequest(apiKey: Int16, seconds: Double, errors: Int) {
        guard apiKey >= 0, Int(apiKey) < KafkaMetricsLayout.apiKeyCount, !seconds.isNaN else { return }
        let base = requestBase(Int(apiKey))
        if errors > 0 { _ = silt_atomic_fetch_add_u64(slot(base), UInt64(errors)) }
        observeHistogram(base: base + 1, bounds: KafkaMetricsLayout.requestBucketsSeconds, seconds: seconds)
    }

    /// Every API that served at least one request, by api key.
    public func requestStats() -> [RequestStats] {
        (0..<KafkaMetricsLayout.apiKeyCount).compactMap { key in
            let base = requestBase(key)
            let latency = readHistogram(base: base + 1, bounds: KafkaMetricsLayout.requestBucketsSeconds, name: "request \(key)")
            guard latency.count > 0 else { return nil }
            return RequestStats(apiKey: Int16(key), errors: silt_atomic_load_acquire_u64(slot(base)), latency: latency)
        }
    }

    private func requestBase(_ key: Int) -> Int {
        MetricsLayout.kafkaBase + KafkaMetricsLayout.requestsBase + key * KafkaMetricsLayout.requestSlots
    }

    // MARK: topics

    /// Adds produced bytes and records to `topic`'s series (when it has or gets a slot).
    @inline(__always)
    public func recordProduced(topic: String, bytes: Int, messages: Int) {
        guard let base = topicSlot(topic) else { return }
        let counters = base + 2 + KafkaMetricsLayout.nameWords
        _ = silt_atomic_fetch_add_u64(slot(counters), UInt64(max(0, bytes)))
        _ = silt_atomic_fetch_add_u64(slot(counters + 2), UInt64(max(0, messages)))
    }

    /// Adds fetched bytes (record bytes sent to consumers) to `topic`'s series.
    @inline(__always)
    public func recordFetched(topic: String, bytes: Int) {
        guard bytes > 0, let base = topicSlot(topic) else { return }
        _ = silt_atomic_fetch_add_u64(slot(base + 2 + KafkaMetricsLayout.nameWords + 1), UInt64(bytes))
    }

    /// Every topic with a slot, in slot order.
    public func topicTraffic() -> [TopicTraffic] {
        (0..<KafkaMetricsLayout.topicSeriesMax).compactMap { i in
            let base = topicEntry(i)
            guard silt_atomic_load_acquire_u64(slot(base)) == Self.published else { return nil }
            let length = Int(silt_atomic_load_acquire_u64(slot(base + 1)))
            let counters = base + 2 + KafkaMetricsLayout.nameWords
            return TopicTraffic(topic: readName(at: base + 2, length: length),
                                bytesIn: silt_atomic_load_acquire_u64(slot(counters)),
                                bytesOut: silt_atomic_load_acquire_u64(slot(counters + 1)),
                                messagesIn: silt_atomic_load_acquire_u64(slot(counters + 2)))
        }
    }

    /// Entry states: free, being written by the process that claimed it, published.
    static let free: UInt64 = 0
    static let claimed: UInt64 = 1
    static let published: UInt64 = 2

    private func topicEntry(_ i: Int) -> Int {
        MetricsLayout.kafkaBase + KafkaMetricsLayout.topicsBase + i * KafkaMetricsLayout.topicSlots
    }

    /// The first slot of `topic`'s entry: found by linear probing from the name's hash,
    /// claimed (CAS free → claimed, name written, then published with release) when absent.
    /// Nil when the table is full, the name too long, or another thread is mid-claim of the
    /// same slot (that one request goes uncounted per topic). Probing stops at a claimed
    /// slot rather than skip it, so a topic never gets two series; a broker killed inside
    /// the claim (a few stores long) leaves that slot claimed until the node restarts, and
    /// topics whose probe meets it go unlabelled.
    func topicSlot(_ topic: String) -> Int? {
        var name = topic
        return name.withUTF8 { bytes -> Int? in
            guard !bytes.isEmpty, bytes.count <= KafkaMetricsLayout.nameBytesMax else { return nil }
            let start = Int(Self.fnv1a(bytes) % UInt64(KafkaMetricsLayout.topicSeriesMax))
            for probe in 0..<KafkaMetricsLayout.topicSeriesMax {
                let base = topicEntry((start + probe) % KafkaMetricsLayout.topicSeriesMax)
                var state = silt_atomic_load_acquire_u64(slot(base))
                if state == Self.free {
                    var expected = Self.free
                    if silt_atomic_cas_u64(slot(base), &expected, Self.claimed) == 1 {
                        writeName(bytes, at: base + 2)
                        silt_atomic_store_release_u64(slot(base + 1), UInt64(bytes.count))
                        silt_atomic_store_release_u64(slot(base), Self.published)
                        return base
                    }
                    state = expected
                }
                if state == Self.claimed { return nil }
                if nameEquals(bytes, at: base + 2, length: Int(silt_atomic_load_acquire_u64(slot(base + 1)))) { return base }
            }
            return nil
        }
    }

    // MARK: consumer lag

    /// Replaces the published lag samples with `samples` (the first
    /// `consumerLagSeriesMax` of them; names over `nameBytesMax` are skipped). One writer:
    /// the broker's refresh. Each entry is a seqlock (odd while written), so a scrape reads
    /// either the old or the new sample, never a mix.
    public func publishConsumerLag(_ samples: [ConsumerLagSample]) {
        var n = 0
        for s in samples where n < KafkaMetricsLayout.consumerLagSeriesMax {
            guard s.group.utf8.count <= KafkaMetricsLayout.nameBytesMax, s.topic.utf8.count <= KafkaMetricsLayout.nameBytesMax else { continue }
            let base = lagEntry(n)
            let seq = silt_atomic_load_acquire_u64(slot(base))
            silt_atomic_store_release_u64(slot(base), seq | 1)
            var group = s.group, topic = s.topic
            group.withUTF8 { writeName($0, at: base + 6) }
            topic.withUTF8 { writeName($0, at: base + 6 + KafkaMetricsLayout.nameWords) }
            silt_atomic_store_release_u64(slot(base + 1), UInt64(s.group.utf8.count))
            silt_atomic_store_release_u64(slot(base + 2), UInt64(s.topic.utf8.count))
            silt_atomic_store_release_u64(slot(base + 3), UInt64(UInt32(bitPattern: s.partition)))
            silt_atomic_store_release_u64(slot(base + 4), UInt64(bitPattern: s.lag))
            silt_atomic_store_release_u64(slot(base + 5), UInt64(bitPattern: s.committedOffset))
            silt_atomic_store_release_u64(slot(base), (seq | 1) &+ 1)
            n += 1
        }
        silt_atomic_store_release_u64(slot(MetricsLayout.kafkaBase + KafkaMetricsLayout.lagCountSlot), UInt64(n))
    }

    /// The published lag samples (an entry being rewritten during the read is retried a few
    /// times, then left out of this scrape).
    public func consumerLag() -> [ConsumerLagSample] {
        let count = min(Int(silt_atomic_load_acquire_u64(slot(MetricsLayout.kafkaBase + KafkaMetricsLayout.lagCountSlot))),
                        KafkaMetricsLayout.consumerLagSeriesMax)
        var out: [ConsumerLagSample] = []
        for i in 0..<count {
            let base = lagEntry(i)
            for _ in 0..<4 {
                let before = silt_atomic_load_acquire_u64(slot(base))
                guard before & 1 == 0 else { continue }
                let groupLength = min(Int(silt_atomic_load_acquire_u64(slot(base + 1))), KafkaMetricsLayout.nameBytesMax)
                let topicLength = min(Int(silt_atomic_load_acquire_u64(slot(base + 2))), KafkaMetricsLayout.nameBytesMax)
                let sample = ConsumerLagSample(
                    group: readName(at: base + 6, length: groupLength),
                    topic: readName(at: base + 6 + KafkaMetricsLayout.nameWords, length: topicLength),
                    partition: Int32(bitPattern: UInt32(truncatingIfNeeded: silt_atomic_load_acquire_u64(slot(base + 3)))),
                    committedOffset: Int64(bitPattern: silt_atomic_load_acquire_u64(slot(base + 5))),
                    lag: Int64(bitPattern: silt_atomic_load_acquire_u64(slot(base + 4))))
                if silt_atomic_load_acquire_u64(slot(base)) == before {
                    out.append(sample)
                    break
                }
            }
        }
        return out
    }

    private func lagEntry(_ i: Int) -> Int {
        MetricsLayout.kafkaBase + KafkaMetricsLayout.lagBase + i * KafkaMetricsLayout.lagSlots
    }

    // MARK: names in slots

    /// Writes `bytes` into the name words at `base`, little-endian, zero-padded; each word
    /// with a release store, so a reader that saw the publish sees the whole name.
    private func writeName(_ bytes: UnsafeBufferPointer<UInt8>, at base: Int) {
        precondition(bytes.count <= KafkaMetricsLayout.nameBytesMax)
        for w in 0..<KafkaMetricsLayout.nameWords {
            var word: UInt64 = 0
            for b in 0..<8 where w * 8 + b < bytes.count { word |= UInt64(bytes[w * 8 + b]) << (8 * UInt64(b)) }
            silt_atomic_store_release_u64(slot(base + w), word)
        }
    }

    private func nameEquals(_ bytes: UnsafeBufferPointer<UInt8>, at base: Int, length: Int) -> Bool {
        guard length == bytes.count else { return false }
        for w in 0..<(length + 7) / 8 {
            let word = silt_atomic_load_acquire_u64(slot(base + w))
            for b in 0..<8 where w * 8 + b < length {
                if UInt8(truncatingIfNeeded: word >> (8 * UInt64(b))) != bytes[w * 8 + b] { return false }
            }
        }
        return true
    }

    private func readName(at base: Int, length: Int) -> String {
        let n = min(length, KafkaMetricsLayout.nameBytesMax)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(n)
        for w in 0..<(n + 7) / 8 {
            let word = silt_atomic_load_acquire_u64(slot(base + w))
            for b in 0..<8 where w * 8 + b < n { bytes.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(b)))) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func fnv1a(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return h
    }
}
