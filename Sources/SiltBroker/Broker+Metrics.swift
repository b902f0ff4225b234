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

    /// Longest wait for another broker's log end offsets at a lag refresh: a series whose
    /// leader does not answer in time is left out of that refresh.
    static let consumerLagRemoteTimeoutMs: Int64 = 2_000

    /// Starts publishing consumer lag for the groups `coordinator` serves.
    func startConsumerLag(_ coordinator: GroupCoordinator, on loop: EventLoop) {
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(Broker.consumerLagRefreshMs),
                                  delay: .milliseconds(Broker.consumerLagRefreshMs)) { [weak self] _ in
            self?.publishConsumerLag(coordinator, on: loop)
        }
    }

    /// Lag of every committed offset of the groups this broker coordinates: the partition's
    /// log end offset (high watermark) minus the committed offset, never below 0. A partition
    /// this broker leads is read from its log; one led elsewhere from its leader, with one
    /// ListOffsets(latest) per leader per refresh (the metadata image knows only the stream's
    /// committed end, which trails the high watermark by up to the upload interval). Bounded by
    /// the region (`KafkaMetricsLayout.consumerLagSeriesMax`): groups in name order fill it
    /// first. Publishes once every leader answered or timed out (its series are left out).
    func publishConsumerLag(_ coordinator: GroupCoordinator, on loop: EventLoop) {
        struct Entry { var group: String; var partition: TopicPartition; var committed: Int64; var end: Int64? }
        var entries: [Entry] = []
        var remote: [Int32: [Int]] = [:]   // leader → indices into entries
        let image = metadata.image
        for g in coordinator.listGroups(states: nil).groups.map(\.groupId).sorted() {
            guard entries.count < KafkaMetricsLayout.consumerLagSeriesMax else { break }
            let (error, offsets) = coordinator.fetchOffsets(groupId: g, partitions: nil, requireStable: false)
            guard error == 0 else { continue }
            for o in offsets {
                guard entries.count < KafkaMetricsLayout.consumerLagSeriesMax, let committed = o.offset?.offset else { continue }
                let tp = o.partition
                if let log = logs.partition(topic: tp.topic, partition: tp.partition) {
                    entries.append(Entry(group: g, partition: tp, committed: committed, end: log.highWatermark))
                } else if let topic = image.topic(named: tp.topic), let leader = image.leadership(topic: topic, partition: tp.partition)?.leader,
                          leader >= 0, leader != nodeId {
                    remote[leader, default: []].append(entries.count)
                    entries.append(Entry(group: g, partition: tp, committed: committed, end: nil))
                }
            }
        }
        func publish(_ entries: [Entry]) {
            metrics.publishConsumerLag(entries.compactMap { e in
                e.end.map { ConsumerLagSample(group: e.group, topic: e.partition.topic, partition: e.partition.partition,
                                              committedOffset: e.committed, lag: max(0, $0 - e.committed)) }
            })
        }
        guard !remote.isEmpty else { return publish(entries) }
        let asks = remote.map { leader, indices in
            logEndOffsets(leader: leader, Set(indices.map { entries[$0].partition }), image, on: loop).map { (indices, $0) }
        }
        EventLoopFuture.whenAllComplete(asks, on: loop).whenSuccess { results in
            var filled = entries
            for case .success(let (indices, ends)) in results {
                for i in indices { filled[i].end = ends[filled[i].partition] }
            }
            publish(filled)
        }
    }

    /// The log end offsets of `partitions`, all led by broker `leader`, from a ListOffsets
    /// (latest, read-uncommitted: the high watermark) over the inter-broker listener. Partitions
    /// the leader answers with an error are left out.
    private func logEndOffsets(leader: Int32, _ partitions: Set<TopicPartition>, _ image: MetadataImage,
                               on loop: EventLoop) -> EventLoopFuture<[TopicPartition: Int64]> {
        let listenerName = config.value("inter.broker.listener.name").value ?? "PLAINTEXT"
        guard let registration = image.brokers[leader], !registration.fenced,
              let endpoint = registration.listeners.first(where: { $0.name == listenerName }) ?? registration.listeners.first else {
            return loop.makeSucceededFuture([:])
        }
        let key = "\(endpoint.host):\(endpoint.port)"
        let (client, replaced) = coordinatorState.withLockedValue { state -> (KafkaClient, KafkaClient?) in
            if let existing = state.lagClients[leader], existing.endpoint == key { return (existing.client, nil) }
            let client = KafkaClient(group: loop, host: endpoint.host, port: Int(endpoint.port),
                                     clientId: "silt-broker-\(nodeId)-consumer-lag", logger: logger)
            let old = state.lagClients[leader]?.client
            state.lagClients[leader] = (key, client)
            return (client, old)
        }
        replaced?.close()   // the broker registered again at another address
        var req = ListOffsetsRequest()
        req.replicaId = -1
        req.topics = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { topic, tps in
            var t = ListOffsetsRequest.ListOffsetsTopic()
            t.name = topic
            t.partitions = tps.map(\.partition).sorted().map { p in
                var lp = ListOffsetsRequest.ListOffsetsPartition()
                lp.partitionIndex = p
                lp.timestamp = -1   // latest
                return lp
            }
            return t
        }
        return client.send(req, version: Broker.consumerLagListOffsetsVersion, timeout: .milliseconds(Broker.consumerLagRemoteTimeoutMs))
            .map { resp in
                var ends: [TopicPartition: Int64] = [:]
                for t in resp.topics {
                    for p in t.partitions where p.errorCode == 0 && p.offset >= 0 { ends[TopicPartition(t.name, p.partitionIndex)] = p.offset }
                }
                return ends
            }
    }

    /// ListOffsets v4: topics by name, the current leader epoch, no tiered-storage fields;
    /// every Silt broker serves it.
    static let consumerLagListOffsetsVersion: Int16 = 4
}
