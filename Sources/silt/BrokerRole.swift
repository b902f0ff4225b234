import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltAdmin
import SiltBroker
import SiltConfig
import SiltMetrics
import SiltNet
import SiltRing
import SiltStorage

/// The broker role: Kafka listeners, partitions, and the writer of the log buffer.
struct BrokerRole {
    let config: ServerConfig
    let logger: Logger

    func run() throws {
        let regions = try NodeRegions.attach()
        let (ring, durableNotices, state) = (regions.ring, regions.durableNotices, regions.walState)
        logger.info("waiting for the WAL to recover")
        guard state.waitReady(timeout: .seconds(600)) else { throw RoleError("the WAL never became ready") }

        let logs = StreamLogManager(maxBatchBytes: max(64 << 20, Int(config.messageMaxBytes)), logger: logger)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: config.eventLoopCount ?? System.coreCount)
        let controller = try controllerQuorumClient(config: config, group: group, clientId: "silt-broker-\(config.nodeId)",
                                                    logger: logger)
        // The metadata log's long polls on a connection of their own: a connection answers in
        // order, so requests queued behind a parked poll (heartbeats, forwarded admin
        // requests, stream opens and releases) would wait for it.
        // Same client id: the controllers list a broker's metadata fetches as that observer.
        let metadataLink = try controllerQuorumClient(config: config, group: group,
                                                      clientId: "silt-broker-\(config.nodeId)", logger: logger)
        let metrics = try MetricsRegion.attach(fd: RoleFd.metrics)
        let writePath = LogBufferWritePath(ring: ring, durableNotices: durableNotices, metrics: metrics, walTimings: state,
                                           logger: logger)
        let clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId,
                                                           clusterId: config.clusterId)
        let store = MeteredObjectStore(try NodeObjectStores.data(config: config, credentials: try CredentialsTransfer.read(),
                                                                 logger: logger), metrics: metrics)
        let objectReader = ObjectStreamReader(store: store, clusterId: clusterId, cacheBytes: config.blockCacheBytes,
                                              bandwidthBytesPerSecond: Int64(config.objectStorage.networkBaselineBytesPerSecond),
                                              metrics: metrics, logger: logger)
        let broker = Broker(config: config, clusterId: clusterId, controllerChannel: controller, logs: logs,
                            writePath: writePath, objectReader: objectReader, metrics: metrics,
                            metadataChannel: metadataLink, logger: logger)
        try broker.start(on: group.next())
        // After a node restart: what the WAL still held must reach object storage first.
        _ = try broker.awaitRecoveredCommitted(state.recoveredFrames, timeout: .seconds(600))
        writePath.start()
        // Whatever an earlier incarnation of this process put in the buffer becomes durable,
        // then committed, before its streams reopen in a new epoch (Broker+Recovery.swift).
        guard writePath.waitUntilDurable(timeout: .seconds(120)) else {
            throw RoleError("the WAL did not catch up with the log buffer")
        }
        try broker.awaitLogBufferCommitted(writePath, timeout: .seconds(600))
        try broker.openAssignedPartitions(timeout: .seconds(120))
        // Idempotent producers' state, complete before the first produce can arrive.
        let producerStates = ProducerStateKeeper(broker: broker, config: config, logger: logger)
        try producerStates.recover()
        producerStates.start()
        try broker.startGroupCoordinator(on: group.next())
        let server = KafkaServer(group: group, service: broker, frameBytesMax: config.socketRequestMaxBytes, logger: logger)
        try server.start(endpoints: config.clientListeners.map { KafkaServer.Endpoint(name: $0.name, host: $0.host, port: $0.port) })
        logger.info("broker ready")

        waitForStopSignal()
        // Controlled shutdown first, with the listeners open: partitions move to other
        // brokers and clients are told where (NOT_LEADER_OR_FOLLOWER with the new leader).
        logger.info("broker stopping: controlled shutdown")
        broker.stop()
        logger.info("broker stopping: closing listeners")
        server.stop()
        if !writePath.waitUntilDurable(timeout: .seconds(10)) {
            logger.warning("broker stopping: the WAL did not drain within 10 s")
        }
        producerStates.stop()
        producerStates.snapshotAll()
        writePath.stop()
        controller.close()
        metadataLink.close()
        logs.shutdown()
        try? group.syncShutdownGracefully()
        logger.info("broker stopped")
    }
}
