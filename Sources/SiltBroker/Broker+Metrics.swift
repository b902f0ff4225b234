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
/// Cost per request: a clock read, a few casts to find the response type, a walk over its
/// partitions' error codes, and ~17 atomic adds; no lock and no allocation (a Fetch
/// response at v13+ names topics by id, resolved through one read of the metadata image).
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
        metrics.recordRequest(apiKey: R.apiKey, seconds: seconds, errors: Broker.errorCount(response))
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

    /// Non-zero error codes in a response: one per failed partition (Produce, Fetch,
    /// ListOffsets, OffsetCommit, OffsetFetch), topic (Metadata, CreateTopics, DeleteTopics),
    /// group (DescribeGroups, DeleteGroups), or the top-level code. Other responses count 0.
    static func errorCount<T>(_ r: T) -> Int {
        func count<S: Sequence>(_ s: S, _ code: (S.Element) -> Int16) -> Int { s.reduce(0) { $0 + (code($1) != 0 ? 1 : 0) } }
        switch r {
        case let p as ProduceResponse: return p.responses.reduce(0) { $0 + count($1.partitionResponses, \.errorCode) }
        case let f as FetchResponse: return (f.errorCode != 0 ? 1 : 0) + f.responses.reduce(0) { $0 + count($1.partitions, \.errorCode) }
        case let l as ListOffsetsResponse: return l.topics.reduce(0) { $0 + count($1.partitions, \.errorCode) }
        case let m as MetadataResponse: return count(m.topics, \.errorCode)
        case let c as OffsetCommitResponse: return c.topics.reduce(0) { $0 + count($1.partitions, \.errorCode) }
        case let o as OffsetFetchResponse:
            return (o.errorCode != 0 ? 1 : 0) + count(o.groups, \.errorCode) + o.topics.reduce(0) { $0 + count($1.partitions, \.errorCode) }
                + o.groups.reduce(0) { g, group in g + group.topics.reduce(0) { $0 + count($1.partitions, \.errorCode) } }
        case let c as CreateTopicsResponse: return count(c.topics, \.errorCode)
        case let d as DeleteTopicsResponse: return count(d.responses, \.errorCode)
        case let d as DescribeGroupsResponse: return count(d.groups, \.errorCode)
        case let d as DeleteGroupsResponse: return count(d.results, \.errorCode)
        case let x as JoinGroupResponse: return x.errorCode != 0 ? 1 : 0
        case let x as SyncGroupResponse: return x.errorCode != 0 ? 1 : 0
        case let x as HeartbeatResponse: return x.errorCode != 0 ? 1 : 0
        case let x as LeaveGroupResponse: return x.errorCode != 0 ? 1 : 0
        case let x as FindCoordinatorResponse: return (x.errorCode != 0 ? 1 : 0) + count(x.coordinators, \.errorCode)
        case let x as ListGroupsResponse: return x.errorCode != 0 ? 1 : 0
        case let x as InitProducerIdResponse: return x.errorCode != 0 ? 1 : 0
        case let x as ApiVersionsResponse: return x.errorCode != 0 ? 1 : 0
        default: return 0
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
