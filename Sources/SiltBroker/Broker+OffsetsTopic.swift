import Foundation
import NIOCore
import SiltController
import SiltGroups
import SiltNode
import SiltProtocol
import SiltRecords

/// `__consumer_offsets`: the internal compacted topic holding committed offsets and group
/// metadata, in Kafka's record formats. It is an ordinary Silt topic, so its records take
/// the normal write path (log buffer → WAL → object storage) and survive restarts.
extension Broker {
    public static let offsetsTopic = "__consumer_offsets"
    /// How often the coordinator's deadlines (sessions, rebalances) are checked.
    static let groupTickInterval: TimeAmount = .milliseconds(100)

    static func groupCoordinatorConfig(_ config: ServerConfig, partitions: Int32) -> GroupCoordinatorConfig {
        func int(_ key: String) -> Int { Int(config.value(key).value!)! }
        var c = GroupCoordinatorConfig()
        c.initialRebalanceDelayMs = Int64(int("group.initial.rebalance.delay.ms"))
        c.minSessionTimeoutMs = Int32(clamping: int("group.min.session.timeout.ms"))
        c.maxSessionTimeoutMs = Int32(clamping: int("group.max.session.timeout.ms"))
        c.maxSize = int("group.max.size")
        c.offsetMetadataMaxBytes = int("offset.metadata.max.bytes")
        c.offsetsPartitions = partitions
        return c
    }

    /// Creates `__consumer_offsets` if it is missing (through the controller, like any
    /// topic), starts the coordinator with every partition loading, and loads them in the
    /// background. Call after `start` and the log buffer's recovery, before listening.
    public func startGroupCoordinator(on loop: EventLoop, timeout: TimeAmount = .seconds(60)) throws {
        if metadata.image.topic(named: Broker.offsetsTopic) == nil {
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
            let resp = try controllerChannel.send(req, version: Broker.controllerCreateTopicsVersion, timeout: timeout).wait()
            if let r = resp.topics.first, r.errorCode != 0 && r.errorCode != 36 {   // 36: created meanwhile
                throw RecoveryError(description: "cannot create \(Broker.offsetsTopic): \(r.errorMessage ?? "error \(r.errorCode)")")
            }
            try metadata.catchUp(on: loop).wait()
            logger.info("created \(Broker.offsetsTopic)", metadata: ["partitions": "\(t.numPartitions)"])
        }
        guard let topic = metadata.image.topic(named: Broker.offsetsTopic) else {
            throw RecoveryError(description: "\(Broker.offsetsTopic) is missing after its creation")
        }
        let partitions = topic.partitionCount
        let writer = OffsetsTopicWriter(broker: self, eventLoop: loop)
        let coordinator = GroupCoordinator(config: Broker.groupCoordinatorConfig(config, partitions: partitions),
                                           persistence: writer, loading: Set(0..<partitions), clock: { Broker.nowMs() })
        groupCoordinator = coordinator
        loop.scheduleRepeatedTask(initialDelay: Broker.groupTickInterval, delay: Broker.groupTickInterval) { _ in
            coordinator.tick()
        }
        Task.detached { [self] in await loadGroups(coordinator, partitions: partitions) }
    }

    /// Replays every partition of `__consumer_offsets` into the coordinator. A partition
    /// that cannot be read is retried: its groups stay COORDINATOR_LOAD_IN_PROGRESS (which
    /// clients retry) rather than coming up without their offsets.
    private func loadGroups(_ coordinator: GroupCoordinator, partitions: Int32) async {
        let started = ContinuousClock.now
        for p in 0..<partitions {
            while true {
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
                } catch {
                    logger.warning("loading \(Broker.offsetsTopic)-\(p) failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        logger.info("group coordinator loaded", metadata: ["partitions": "\(partitions)",
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
            let (_, durable) = try writePath.append(log, streamId: topic.streamIds[Int(partition)], records: batch,
                                                    batches: headers, logAppendTime: false, nowMs: nowMs, eventLoop: eventLoop)
            durable.whenComplete { result in
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
