import Foundation
import Logging
import SiltBroker
import SiltConfig
import SiltRing
import SiltWAL

/// The WAL role: the only writer of `s3.wal.path`. It opens (recovers) the WAL and runs a
/// `WALWriter` (SiltWAL) on a thread until SIGTERM, then drains it.
struct WALRole {
    let config: ServerConfig
    let logger: Logger

    func run() throws {
        let regions = try NodeRegions.attach()
        let (ring, durableNotices, trimCommands, state) =
            (regions.ring, regions.durableNotices, regions.trimCommands, regions.walState)
        let walConfig = WALConfig(maxRecordPayloadBytes: WALRole.recordPayloadBytesMax(config),
                                  maxInFlightWrites: 8, durability: .dsyncWrite)
        // A WAL file (development) lives under log.dirs, which may not exist yet on a first start.
        let parent = (config.walPath as NSString).deletingLastPathComponent
        if !parent.isEmpty && !config.walPath.hasPrefix("/dev/") {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        let (wal, recovered) = try WAL.open(path: config.walPath, capacityBytes: config.walCapacityBytes,
                                            nodeId: Int(config.nodeId), config: walConfig, logger: logger)
        logger.info("WAL opened", metadata: [
            "path": "\(config.walPath)", "blockDevice": "\(wal.isBlockDevice)", "records": "\(recovered.count)",
            "trimLSN": "\(wal.trimLSN)", "headLSN": "\(wal.headLSN)"])

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

    /// A record must hold the largest frame the broker may append (a whole produce batch).
    static func recordPayloadBytesMax(_ config: ServerConfig) -> Int {
        max(4 << 20, Int(config.messageMaxBytes) + (64 << 10))
    }
}
