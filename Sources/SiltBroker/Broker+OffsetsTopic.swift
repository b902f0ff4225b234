import Foundation
import NIOCore
import SiltConfig
import SiltController
import SiltGroups
import SiltMetadata
import SiltProtocol
import SiltRecords

/// `__consumer_offsets`: the internal compacted topic holding committed offsets and group
/// metadata, in Kafka's record formats. It is an ordinary Silt topic, so its records take
/// the normal write path (log buffer → WAL → object storage) and survive restarts.
extension Broker {
    public static let offsetsTopic = "__consumer_offsets"
    /// How often the coordinator's deadlines (sessions, rebalances) are checked.
    static let groupTickInterval: TimeAmount = .milliseconds(100)
    /// How often a group load looks again for a partition that is still opening.
    static let offsetsOpenPollMs = 10

    static func groupCoordinatorConfig(_ config: ServerConfig, partitions: Int32) -> GroupCoordinatorConfig {
        func int(_ key: String) -> Int { Int(config.value(key).value!)! }
        var c = GroupCoordinatorConfig()
        c.initialRebalanceDelayMs = Int64(int("group.initial.rebalance.delay.ms"))
        c.minSessionTimeoutMs = Int32(clamping: int("group.min.session.timeout.ms"))
        c.maxSessionTimeoutMs = Int32(clamping: int("group.max.session.timeout.ms"))
        c.maxSize = int("group.max.size")
        c.consumerSessionTimeoutMs = Int32(clamping: int("group.consumer.session.timeout.ms"))
        c.consumerHeartbeatIntervalMs = Int32(clamping: int("group.consumer.heartbeat.interval.ms"))
        c.consumerMaxSize = int("group.consumer.max.size")
        c.consumerAssignors = (try? ServerConfig.parseConsumerAssignors(config.value("group.consumer.assignors").value ?? "")) ?? c.consumerAssignors
        c.offsetMetadataMaxBytes = int("offset.metadata.max.bytes")
        c.offsetsPartitions = partitions
        return c
    }

    /// The coordinator's config with the groups' own timeouts read from this broker's copy
    /// of the metadata log (`MetadataCache.image` takes only its own short lock).
    func groupCoordinatorConfig(partitions: Int32) -> GroupCoordinatorConfig {
        var c = Broker.groupCoordinatorConfig(config, partitions: partitions)
        let (metadata, config) = (metadata, config)
        c.consumerGroupTimeouts = { groupId in
            GroupConfigKeys.timeouts(overrides: metadata.image.groupConfigs[groupId], config: config)
        }
        return c
    }

    /// Starts the group coordinator once `__consumer_offsets` exists (now, or when the
    /// metadata log first shows it: the first FindCoordinator creates it, as in Kafka, so that
    /// its partitions spread over the brokers registered by then). The coordinator serves the
    /// partitions this broker leads, and follows leadership: see `offsetsLeadershipChanged`.
    /// Call after `start` and the log buffer's recovery, before listening.
    public func startGroupCoordinator(on loop: EventLoop) throws {
        coordinatorState.withLockedValue { $0.loop = loop }
        if let topic = metadata.image.topic(named: Broker.offsetsTopic) { installGroupCoordinator(topic, image: metadata.image) }
    }

    /// Creates `__consumer_offsets` through the controller (at most one request in flight).
    func createOffsetsTopic() {
        let start = coordinatorState.withLockedValue { state -> Bool in
            guard !state.creating else { return false }
            state.creating = true
            return true
        }
        guard start else { return }
        var req = CreateTopicsRequest()
        var t = CreateTopicsRequest.CreatableTopic()
        t.name = Broker.offsetsTopic
        t.numPartitions = Int32(config.value("offsets.topic.num.partitions").value!)!
        t.replicationFactor = -1
        var policy = CreateTopicsRequest.CreatableTopicConfig()
        policy.name = "cleanup.policy"
        policy.value = "compact"
        t.configs = [policy]
        req.topics = [t]
        controllerChannel.send(req, version: Broker.controllerCreateTopicsVersion, timeout: Broker.controllerTimeout)
            .whenComplete { [self] result in
                coordinatorState.withLockedValue { $0.creating = false }
                switch result {
                case .success(let resp):
                    if let r = resp.topics.first, r.errorCode != 0 && r.errorCode != 36 {   // 36: created meanwhile
                        logger.warning("cannot create \(Broker.offsetsTopic): \(r.errorMessage ?? "error \(r.errorCode)")")
                    } else {
                        logger.info("created \(Broker.offsetsTopic)", metadata: ["partitions": "\(t.numPartitions)"])
                    }
                case .failure(let error):
                    logger.warning("cannot create \(Broker.offsetsTopic): \(error)")
                }
            }
    }

    /// Creates the coordinator for `topic` (once), serving the partitions this broker leads.
    private func installGroupCoordinator(_ topic: TopicInfo, image: MetadataImage) {
        let created = coordinatorState.withLockedValue { state -> (GroupCoordinator, EventLoop, Set<Int32>)? in
            guard state.coordinator == nil, let loop = state.loop else { return nil }
            let led = Set((0..<topic.partitionCount).filter { image.leadership(topic: topic, partition: $0)?.leader == nodeId })
            let coordinator = GroupCoordinator(config: groupCoordinatorConfig(partitions: topic.partitionCount),
                                               persistence: OffsetsTopicWriter(broker: self, eventLoop: loop),
                                               loading: led, owned: led, clock: { Broker.nowMs() })
            state.coordinator = coordinator
            return (coordinator, loop, led)
        }
        guard let (coordinator, loop, led) = created else { return }
        loop.scheduleRepeatedTask(initialDelay: Broker.groupTickInterval, delay: Broker.groupTickInterval) { _ in
            coordinator.tick()
        }
        startConsumerLag(coordinator, on: loop)
        logger.info("group coordinator started", metadata: ["partitions": "\(topic.partitionCount)", "led": "\(led.count)"])
        Task.detached { [self] in await loadGroups(coordinator, partitions: led.sorted()) }
    }

    /// Follows leadership of `__consumer_offsets`: a partition this broker now leads is
    /// loaded (its groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile), one it no longer
    /// leads is unloaded (NOT_COORDINATOR from then on, and clients find the new leader).
    func offsetsLeadershipChanged(from old: MetadataImage, to new: MetadataImage) {
        guard let topic = new.topic(named: Broker.offsetsTopic) else { return }
        guard let coordinator = groupCoordinator else {
            installGroupCoordinator(topic, image: new)
            return
        }
        let before = old.topic(named: Broker.offsetsTopic).flatMap { $0.id == topic.id ? $0 : nil }
        var gained: [Int32] = []
        for p in 0..<topic.partitionCount {
            // A partition moving away counts as lost from the start: its groups answer
            // NOT_COORDINATOR until the new leader has loaded them.
            let leadsNow = new.leadership(topic: topic, partition: p).map { $0.leader == nodeId && !$0.isMoving } ?? false
            let ledBefore = before.map { t in old.leadership(topic: t, partition: p).map { $0.leader == nodeId && !$0.isMoving } ?? false } ?? false
            // `owns` guards against a change the coordinator was installed after (it already
            // loaded from the newer image).
            if leadsNow && !ledBefore && !coordinator.owns(partition: p) {
                coordinator.beginLoading(partition: p)
                gained.append(p)
            } else if ledBefore && !leadsNow && coordinator.owns(partition: p) {
                let dropped = coordinator.unload(partition: p)
                logger.info("group coordinator unloaded a partition", metadata: ["partition": "\(p)", "groups": "\(dropped)"])
            }
        }
        if !gained.isEmpty {
            logger.info("group coordinator loading partitions", metadata: ["partitions": "\(gained)"])
            Task.detached { [self] in await loadGroups(coordinator, partitions: gained) }
        }
    }

    /// Replays `partitions` of `__consumer_offsets` into the coordinator. A partition that
    /// cannot be read is retried while it is still loading: its groups stay
    /// COORDINATOR_LOAD_IN_PROGRESS (which clients retry) rather than coming up without their
    /// offsets.
    private func loadGroups(_ coordinator: GroupCoordinator, partitions: [Int32]) async {
        let started = ContinuousClock.now
        for p in partitions {
            // Stop retrying a partition this broker gave up meanwhile (unloaded).
            while coordinator.isLoading(partition: p) {
                do {
                    var groupsSeen = 0
                    try await scanPartition(topic: Broker.offsetsTopic, partition: p, from: 0) { header, batch in
                        guard !header.isControl else { return }
                        let decoded = try header.records(in: batch).compactMap { record -> GroupRecords.Decoded? in
                            guard let key = record.key else { return nil }
                            do {
                                return try GroupRecords.decode(key: key, value: record.value)
                            } catch {
                                // A record this coordinator cannot read (a newer key type) must not
                                // keep the partition's groups loading forever: skip it, loudly.
                                logger.warning("skipping an unreadable record", metadata: [
                                    "partition": "\(Broker.offsetsTopic)-\(p)", "offset": "\(record.offset)", "error": "\(error)"])
                                return nil
                            }
                        }
                        groupsSeen += decoded.count
                        coordinator.replay(partition: p, decoded)
                    }
                    coordinator.finishLoading(partition: p)
                    if groupsSeen > 0 { logger.debug("loaded \(Broker.offsetsTopic)-\(p)", metadata: ["records": "\(groupsSeen)"]) }
                    break
                } catch PartitionReadError.unknownPartition {
                    // Not open here yet: a partition this broker just came to lead opens
                    // asynchronously (OpenStreams, then its producer state). Look again soon.
                    try? await Task.sleep(for: .milliseconds(Broker.offsetsOpenPollMs))
                } catch {
                    logger.warning("loading \(Broker.offsetsTopic)-\(p) failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        logger.info("group coordinator loaded", metadata: ["partitions": "\(partitions.count)",
                                                          "ms": "\((ContinuousClock.now - started).components.seconds * 1000)"])
    }

    /// Appends coordinator records to a partition of `__consumer_offsets` as one batch.
    func appendGroupRecords(partition: Int32, records: [GroupRecord], eventLoop: EventLoop,
                            completion: @escaping @Sendable (Error?) -> Void) {
        let image = metadata.image
        guard let topic = image.topic(named: Broker.offsetsTopic), partition < topic.partitionCount,
              let log = logs.partition(topic: Broker.offsetsTopic, partition: partition) else {
            completion(PartitionReadError.unknownPartition(topic: Broker.offsetsTopic, partition: partition))
            return
        }
        let nowMs = Broker.nowMs()
        var builder = RecordBatchBuilder()
        for r in records { builder.append(key: r.key, value: r.value, timestamp: nowMs) }
        let batch = builder.build()
        do {
            // Checked as a produced batch would be, before it is written.
            let headers = try validateProducedRecords(batch, maxMessageBytes: Int.max, timestampType: .createTime,
                                                      messageTimestampBeforeMaxMs: .max, messageTimestampAfterMaxMs: .max,
                                                      nowMs: nowMs)
            writePath.append(log, streamId: topic.streamIds[Int(partition)], records: batch,
                             batches: headers, logAppendTime: false, nowMs: nowMs, eventLoop: eventLoop)
                .flatMap { $0.durable }
                .whenComplete { result in
                    if case .failure(let error) = result { completion(error) } else { completion(nil) }
                }
        } catch {
            completion(error)
        }
    }
}

/// The coordinator's persistence over `__consumer_offsets`.
final class OffsetsTopicWriter: GroupPersistence, @unchecked Sendable {
    private weak var broker: Broker?
    private let eventLoop: EventLoop

    init(broker: Broker, eventLoop: EventLoop) {
        self.broker = broker
        self.eventLoop = eventLoop
    }

    func append(partition: Int32, records: [GroupRecord], completion: @escaping @Sendable (Error?) -> Void) {
        guard let broker else { return completion(RecoveryError(description: "the broker is gone")) }
        broker.appendGroupRecords(partition: partition, records: records, eventLoop: eventLoop, completion: completion)
    }
}
