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
        // Dead brokers' WALs this node can reach (s3.wal.takeover.paths, or every node's in S3
        // WAL mode): committed, and their partitions moved, once the controller has fenced the broker.
        let walStore = try NodeObjectStores.wal(config: config, credentials: try CredentialsTransfer.read(), logger: logger)
            .map { MeteredObjectStore($0, metrics: metrics) }
        let takeover = config.walTakeoverPaths.isEmpty && walStore == nil ? nil
            : WALTakeover(nodeId: config.nodeId, paths: config.walTakeoverPaths, objectWALStore: walStore, client: client,
                          store: store, clusterId: clusterId, config: uploaderConfig,
                          fencedGraceMs: max(3000, 3 * Int64(config.value("broker.heartbeat.interval.ms").value!)!),
                          metrics: metrics, logger: logger)
        let loop = group.next()
        Task {
            do {
                try await uploader.openWithRetry()
                logger.info("uploader ready", metadata: ["position": "\(regions.ring.readPosition(1))"])
                let compacting = Task { await compaction.run(shouldStop: { stop.isSet }) }
                // A takeover of this node (while it was paused or cut off) moves its node epoch
                // on: the metadata log says so before any commit of ours is refused.
                let fenceWatch = Task {
                    while !stop.isSet {
                        try? await Task.sleep(nanoseconds: 1_000_000_000)
                        guard (try? await cache.catchUp(on: loop).get()) != nil, control.nodeEpoch >= 0,
                              let current = cache.image.nodeEpochs[config.nodeId], current > control.nodeEpoch else { continue }
                        logger.error("uploader fenced: exiting so that the supervisor restarts it with a new session",
                                     metadata: ["nodeEpoch": "\(current)", "ours": "\(control.nodeEpoch)"])
                        Foundation.exit(3)
                    }
                }
                let takingOver = Task {
                    await takeover?.run(image: { try await cache.catchUp(on: loop).get(); return cache.image },
                                        shouldStop: { stop.isSet })
                }
                await uploader.run(shouldStop: { stop.isSet })
                if uploader.wasFenced && !stop.isSet {
                    // Taken over while it was away (a pause, a partition): the role restarts,
                    // opens a new session, and drops the frames of the streams that moved.
                    logger.error("uploader fenced: exiting so that the supervisor restarts it with a new session")
                    Foundation.exit(3)
                }
                compacting.cancel()
                _ = await compacting.value
                _ = await takingOver.value
                fenceWatch.cancel()
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
