import Foundation
import Logging
import NIOPosix
import SiltAdmin
import SiltBroker
import SiltConfig
import SiltMetrics
import SiltUploader

/// The uploader role: the log buffer's second reader. It builds stream set objects (and
/// stream objects for big streams) from what the WAL has made durable, uploads them,
/// commits them through the controller, then frees the buffer and trims the WAL. It also
/// runs compaction and the log cleaner on their schedules. The logic is in `SiltUploader`
/// (`Uploader`, `CompactionLoop`); this wires it to the node's regions and configuration.
struct UploaderRole {
    let config: ServerConfig
    let logger: Logger

    func run() throws {
        let regions = try NodeRegions.attach()
        let state = regions.walState
        guard state.waitReady(timeout: .seconds(600)) else { throw RoleError("the WAL never became ready") }
        let metrics = try MetricsRegion.attach(fd: RoleFd.metrics)
        let clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId,
                                                           clusterId: config.clusterId)
        let store = MeteredObjectStore(try NodeObjectStores.data(config: config, credentials: try CredentialsTransfer.read(),
                                                                 logger: logger), metrics: metrics)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = try controllerQuorumClient(config: config, group: group, clientId: "silt-uploader-\(config.nodeId)",
                                                logger: logger)
        let control = ControllerUploaderControl(client: client, nodeId: config.nodeId)
        let uploaderConfig = UploaderConfig(config)
        let uploader = Uploader(ring: regions.ring, walState: state, trimCommands: regions.trimCommands, store: store,
                                control: control, clusterId: clusterId, config: uploaderConfig, metrics: metrics,
                                logger: logger)
        // The metadata image, followed like a broker follows it: the compactor's catalog.
        let cache = MetadataCache(channel: client, clusterId: clusterId, logger: logger)
        let config = self.config
        let compaction = CompactionLoop(store: store, control: control, cache: cache, clusterId: clusterId, loop: group.next(),
                                        config: uploaderConfig,
                                        topicCleanerSettings: { TopicCleanerSettings(config: config, image: $0, topic: $1) },
                                        metrics: metrics, logger: logger)
        let stop = StopFlag()
        let done = DispatchSemaphore(value: 0)
        let logger = self.logger
        Task {
            do {
                try await uploader.openWithRetry()
                logger.info("uploader ready", metadata: ["position": "\(regions.ring.readPosition(1))"])
                let compacting = Task { await compaction.run(shouldStop: { stop.isSet }) }
                await uploader.run(shouldStop: { stop.isSet })
                compacting.cancel()
                _ = await compacting.value
            } catch {
                logger.critical("uploader failed: \(error)")
                Foundation.exit(2)
            }
            done.signal()
        }
        waitForStopSignal()
        logger.info("uploader stopping: uploading what is pending")
        stop.set()
        done.wait()
        cache.stop()
        client.close()
        try? group.syncShutdownGracefully()
        logger.info("uploader stopped", metadata: ["objects": "\(uploader.objectsCommitted)"])
    }
}

extension MetadataCache: MetadataFollower {}
