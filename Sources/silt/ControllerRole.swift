import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltAdmin
import SiltConfig
import SiltController
import SiltMetrics
import SiltNet

/// The controller role: a voter of the metadata quorum (KRaft's RPCs on the CONTROLLER
/// listener) whose log is in `log.dirs`. While it is the active controller it also runs the
/// object janitor on the data bucket, enforces retention and runs the auto balancer.
struct ControllerRole {
    let config: ServerConfig
    let logger: Logger

    func run() throws {
        let dir = config.logDirs[0] + "/__cluster_metadata"
        let snapshotBytes = Int(config.value("metadata.log.max.record.bytes.between.snapshots").value!)!
        let clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId,
                                                           clusterId: config.clusterId)
        let listener = config.listeners.first { config.controllerListenerNames.contains($0.name) }
        func ms(_ key: String) -> Int64 { Int64(config.value(key).value!)! }
        let setup = MetadataController.QuorumSetup(
            nodeId: config.nodeId,
            voters: config.quorumVoters.map { QuorumDriver.Voter(id: $0.id, host: $0.host, port: $0.port) },
            clusterId: clusterId, localHost: listener.flatMap { $0.host.isEmpty ? nil : $0.host },
            electionTimeoutMs: ms("controller.quorum.election.timeout.ms"),
            fetchTimeoutMs: ms("controller.quorum.fetch.timeout.ms"),
            electionBackoffMaxMs: ms("controller.quorum.election.backoff.max.ms"))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let logger = self.logger
        let controller = try MetadataController(
            directory: dir, logger: logger, snapshotIntervalBytes: snapshotBytes, quorum: setup, group: group,
            onFatal: { reason in
                logger.critical("controller stopping: \(reason)")
                Foundation.exit(3)
            }, brokerSessionTimeoutMs: ms("broker.session.timeout.ms"), validateConfigs: TopicConfig.validate)
        let sessionMonitor = BrokerSessionMonitor(controller: controller,
                                                  intervalMs: max(1, min(1000, ms("broker.session.timeout.ms") / 4)))
        let service = ControllerService(controller: controller, config: config, logger: logger)
        let metrics = try MetricsRegion.attach(fd: RoleFd.metrics)
        let dataStore = MeteredObjectStore(try NodeObjectStores.data(config: config, credentials: try CredentialsTransfer.read(),
                                                                     logger: logger), metrics: metrics)
        let janitor = ObjectJanitor(controller: controller, store: dataStore, clusterId: clusterId, config: config,
                                    logger: logger)
        let retention = RetentionEnforcer(controller: controller, config: config, logger: logger)
        let balancer = AutoBalancerService(controller: controller, config: AutoBalancer.Config(config), logger: logger,
                                           onPass: { stats in
            metrics.add(.autobalancerMoves, UInt64(stats.movesStarted))
            metrics.set(.autobalancerMovesInFlight, UInt64(stats.movesInFlight))
            metrics.set(.autobalancerBytesInDeviationPercent, UInt64((stats.bytesInDeviation * 100).rounded()))
            metrics.set(.autobalancerBytesOutDeviationPercent, UInt64((stats.bytesOutDeviation * 100).rounded()))
        })
        service.balancer = balancer
        let server = KafkaServer(group: group, service: service, frameBytesMax: config.socketRequestMaxBytes, logger: logger)
        let endpoints = config.listeners.filter { config.controllerListenerNames.contains($0.name) }
            .map { KafkaServer.Endpoint(name: $0.name, host: $0.host, port: $0.port) }
        try server.start(endpoints: endpoints)
        janitor.start()
        retention.start()
        sessionMonitor.start()
        balancer.start()
        logger.info("controller ready", metadata: ["voters": "\(setup.voters.map(\.id))",
                                                   "records": "\(controller.committedImage.nextOffset)"])
        waitForStopSignal()
        logger.info("controller stopping")
        balancer.stop()
        sessionMonitor.stop()
        retention.stop()
        janitor.stop()
        controller.close()   // a leader resigns first, so the others elect at once
        server.stop()
        try? group.syncShutdownGracefully()
        logger.info("controller stopped")
    }
}
