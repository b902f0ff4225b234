import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltAdmin
import SiltController
import SiltMetrics
import SiltNet
import SiltNode

/// The controller role: owns the metadata log in `log.dirs`, serves it on the CONTROLLER
/// listener, runs the object janitor on the data bucket and enforces retention.
struct ControllerRole {
    let config: ServerConfig
    let logger: Logger

    func run() throws {
        let dir = config.logDirs[0] + "/__cluster_metadata"
        let snapshotBytes = Int(config.value("metadata.log.max.record.bytes.between.snapshots").value!)!
        let controller = try MetadataController(directory: dir, logger: logger, snapshotIntervalBytes: snapshotBytes,
                                                validateConfigs: TopicConfig.validate)
        let service = ControllerService(controller: controller, config: config, logger: logger)
        let clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId,
                                                           clusterId: config.clusterId)
        let metrics = try MetricsRegion.attach(fd: RoleFd.metrics)
        let dataStore = MeteredObjectStore(try NodeObjectStores.data(config: config, credentials: try CredentialsTransfer.read(),
                                                                     logger: logger), metrics: metrics)
        let janitor = ObjectJanitor(controller: controller, store: dataStore, clusterId: clusterId, config: config,
                                    logger: logger)
        let retention = RetentionEnforcer(controller: controller, config: config, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = KafkaServer(group: group, service: service, frameBytesMax: config.socketRequestMaxBytes, logger: logger)
        let endpoints = config.listeners.filter { config.controllerListenerNames.contains($0.name) }
            .map { KafkaServer.Endpoint(name: $0.name, host: $0.host, port: $0.port) }
        try server.start(endpoints: endpoints)
        janitor.start()
        retention.start()
        logger.info("controller ready", metadata: ["records": "\(controller.image.nextOffset)"])
        waitForStopSignal()
        logger.info("controller stopping")
        server.stop()
        retention.stop()
        janitor.stop()
        try? group.syncShutdownGracefully()
        logger.info("controller stopped")
    }
}
