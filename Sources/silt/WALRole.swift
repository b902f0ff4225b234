import Foundation
import Logging
import SiltAdmin
import SiltBroker
import SiltConfig
import SiltMetrics
import SiltRing
import SiltWAL

/// The WAL role: the only writer of `s3.wal.path`. It opens (recovers) the WAL (a device or file
/// through io_uring, or the S3 WAL) and runs a `WALWriter` (SiltWAL) on a thread until SIGTERM,
/// then drains it.
struct WALRole {
    let config: ServerConfig
    let logger: Logger

    func run() throws {
        let regions = try NodeRegions.attach()
        let (ring, durableNotices, trimCommands, state) =
            (regions.ring, regions.durableNotices, regions.trimCommands, regions.walState)
        let (wal, recovered) = try config.objectWAL == nil ? openDevice() : openObjectWAL()

        // Line the ring's LSNs up with the device's and hand the valid tail to the broker.
        let writer = WALWriter(wal: wal, ring: ring, durableNotices: durableNotices, trimCommands: trimCommands,
                               state: state, logger: logger)
        try writer.attach(recovered: recovered)

        let stop = StopFlag()
        let thread = Thread {
            do { try writer.run() } catch {
                logger.critical("WAL writer failed: \(error)")
                Foundation.exit(3)
            }
            stop.markDrained()
        }
        thread.name = "silt-wal"
        thread.start()
        waitForStopSignal()
        logger.info("WAL stopping: draining")
        writer.stop()
        while !stop.drained { Thread.sleep(forTimeInterval: 0.01) }
        try? wal.close()
        logger.info("WAL stopped")
    }

    /// S3 WAL mode: the node's records are objects in the `s3.wal.path` bucket.
    private func openObjectWAL() throws -> (WriteAheadLog, [RecoveredRecord]) {
        let settings = config.objectWAL!
        let metrics = try MetricsRegion.attach(fd: RoleFd.metrics)
        guard let bucket = try NodeObjectStores.wal(config: config, credentials: try CredentialsTransfer.read(), logger: logger) else {
            preconditionFailure("S3 WAL mode without a WAL bucket")
        }
        let store = MeteredObjectStore(bucket, metrics: metrics)
        let clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId,
                                                           clusterId: config.clusterId)
        let objectSettings = ObjectWAL.Settings(
            batchIntervalMs: settings.batchIntervalMs, maxBytesInBatch: settings.maxBytesInBatch,
            maxUnflushedBytes: settings.maxUnflushedBytes, maxInflightUploadCount: settings.maxInflightUploadCount,
            maxRecordPayloadBytes: max(settings.maxBytesInBatch, WALRole.recordPayloadBytesMax(config)))
        return try ObjectWAL.open(store: store, clusterId: clusterId, nodeId: Int(config.nodeId), settings: objectSettings,
                                  logger: logger)
    }

    /// A block device or a file, through io_uring.
    private func openDevice() throws -> (WriteAheadLog, [RecoveredRecord]) {
        let walConfig = WALConfig(maxRecordPayloadBytes: WALRole.recordPayloadBytesMax(config),
                                  maxInFlightWrites: 8, durability: .dsyncWrite)
        // A WAL file (development) lives under log.dirs, which may not exist yet on a first start.
        let parent = (config.walPath as NSString).deletingLastPathComponent
        if !parent.isEmpty && !config.walPath.hasPrefix("/dev/") {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        let (wal, recovered) = try WAL.open(path: config.walPath, capacityBytes: config.walCapacityBytes,
                                            nodeId: Int(config.nodeId), fitToDevice: !config.walCapacityExplicit,
                                            config: walConfig, logger: logger)
        try MetricsRegion.attach(fd: RoleFd.metrics).set(.walCapacityBytes, wal.capacityBytes)
        logger.info("WAL opened", metadata: [
            "path": "\(config.walPath)", "blockDevice": "\(wal.isBlockDevice)", "records": "\(recovered.count)",
            "trimLSN": "\(wal.trimLSN)", "headLSN": "\(wal.headLSN)"])
        return (wal, recovered)
    }

    /// A record must hold the largest frame the broker may append (a whole produce batch).
    static func recordPayloadBytesMax(_ config: ServerConfig) -> Int {
        max(4 << 20, Int(config.messageMaxBytes) + (64 << 10))
    }
}
