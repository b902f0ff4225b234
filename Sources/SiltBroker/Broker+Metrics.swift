import Foundation
import NIOCore
import SiltGroups
import SiltMetadata
import SiltMetrics
import SiltNet
import SiltProtocol

/// Kafka's broker metrics (see `PrometheusText+Kafka` for their names): every response is
/// observed as it is framed (latency, error codes; fetched bytes per topic), produced bytes
/// are counted where batches are appended, and consumer lag is published every
/// `consumerLagRefreshMs` from the group coordinator's committed offsets.
///
/// Errors: every API's response counts its non-zero error code fields, top level and nested
/// (one per failed partition, topic, group...), through `KafkaResponse.errorCodeCount`, which
/// tools/gen-protocol.py generates from the specs: an API added later is counted too.
///
/// Cost per request: a clock read, one cast (Fetch, for its bytes), a walk over the
/// response's structs that hold error codes, and ~17 atomic adds; no lock and no allocation
/// (a Fetch response at v13+ names topics by id, resolved through one read of the metadata
/// image).
extension Broker: ResponseObserver {
    /// How often consumer lag is recomputed and published.
    static let consumerLagRefreshMs: Int64 = 5_000

    public func responded<R: KafkaRequest>(_: R.Type, _ response: R.Response?, startedNs: UInt64) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds &- startedNs) / 1e9
        guard let response else {  // acks=0 produce: no response, no error seen
            metrics.recordRequest(apiKey: R.apiKey, seconds: seconds, errors: 0)
            return
        }
        if let fetch = response as? FetchResponse { recordFetched(fetch) }
        metrics.recordRequest(apiKey: R.apiKey, seconds: seconds, errors: response.errorCodeCount)
    }

    /// A request that failed instead of being answered (its connection is closed).
    func requestFailed(apiKey: Int16, startedNs: UInt64) {
        metrics.recordRequest(apiKey: apiKey, seconds: Double(DispatchTime.now().uptimeNanoseconds &- startedNs) / 1e9, errors: 1)
    }

    private func recordFetched(_ resp: FetchResponse) {
        var image: MetadataImage?
        for t in resp.responses {
            let bytes = t.partitions.reduce(0) { $0 + ($1.records?.readableBytes ?? 0) }
            guard bytes > 0 else { continue }
            if !t.topic.isEmpty {
                metrics.recordFetched(topic: t.topic, bytes: bytes)
            } else {
                if image == nil { image = metadata.image }
                if let name = image?.topic(id: t.topicId.foundation)?.name { metrics.recordFetched(topic: name, bytes: bytes) }
            }
        }
    }

    // MARK: - Consumer lag

    /// Starts publishing consumer lag for the groups `coordinator` serves.
    func startConsumerLag(_ coordinator: GroupCoordinator, on loop: EventLoop) {
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(Broker.consumerLagRefreshMs),
                                  delay: .milliseconds(Broker.consumerLagRefreshMs)) { [weak self] _ in
            self?.publishConsumerLag(coordinator)
        }
    }

    /// Lag of every committed offset whose partition this broker leads: its log end offset
    /// (high watermark) minus the committed offset, never below 0. Bounded by the region
    /// (`KafkaMetricsLayout.consumerLagSeriesMax`): groups in name order fill it first.
    func publishConsumerLag(_ coordinator: GroupCoordinator) {
        var samples: [ConsumerLagSample] = []
        for g in coordinator.listGroups(states: nil).groups.map(\.groupId).sorted() {
            guard samples.count < KafkaMetricsLayout.consumerLagSeriesMax else { break }
            let (error, offsets) = coordinator.fetchOffsets(groupId: g, partitions: nil, requireStable: false)
            guard error == 0 else { continue }
            for o in offsets {
                guard let committed = o.offset?.offset, let log = logs.partition(topic: o.partition.topic, partition: o.partition.partition)
                else { continue }
                samples.append(ConsumerLagSample(group: g, topic: o.partition.topic, partition: o.partition.partition,
                                                 committedOffset: committed, lag: max(0, log.highWatermark - committed)))
            }
        }
        metrics.publishConsumerLag(samples)
    }
}
