import Foundation
import Logging
import SiltBroker
import SiltConfig
import SiltRing
import SiltWAL

/// The WAL role: the only writer of `s3.wal.path`. It persists the log buffer with
/// io_uring and O_DIRECT, group-committing whatever is waiting into one write with several
/// writes in flight, and reports the durable LSN back; its reader position in the ring is
/// advanced only after a write is durable, so a crash of this process loses nothing that
/// was acknowledged and re-writes nothing that was not.
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

        // Line the ring's LSNs up with the device's.
        let reader = ring.reader(0)
        let ringIsFresh = ring.writePosition == 0 && ring.readPosition(0) == 0 && ring.readPosition(1) == 0
        if ringIsFresh {
            ring.initializePositions(to: wal.headLSN)
        } else if wal.headLSN > reader.position {
            // Written and durable, but this process died before it moved its cursor.
            reader.advance(to: wal.headLSN)
        } else if wal.headLSN < reader.position {
            if recovered.isEmpty {
                try wal.rebase(nextLSN: reader.position)
            } else {
                throw RoleError("the WAL device ends at LSN \(wal.headLSN) but the log buffer says \(reader.position) is durable: the device lost data")
            }
        }

        // Hand the valid tail to the broker.
        var tail: [UInt8] = []
        for r in recovered { tail += r.payload }
        state.publishRecovery(startLSN: recovered.first?.startLSN ?? wal.headLSN, endLSN: wal.headLSN, frames: tail)
        logger.info("WAL ready", metadata: ["recoveredBytes": "\(tail.count)", "position": "\(reader.position)"])

        let stop = StopFlag()
        let thread = Thread { WALRole.writeLoop(wal: wal, ring: ring, reader: reader, durableNotices: durableNotices,
                                                trimCommands: trimCommands, state: state, stop: stop, logger: logger) }
        thread.name = "silt-wal"
        thread.start()
        waitForStopSignal()
        logger.info("WAL stopping: draining")
        stop.set()
        while !stop.drained { Thread.sleep(forTimeInterval: 0.01) }
        try? wal.close()
        logger.info("WAL stopped")
    }

    /// A record must hold the largest frame the broker may append (a whole produce batch).
    static func recordPayloadBytesMax(_ config: ServerConfig) -> Int {
        max(4 << 20, Int(config.messageMaxBytes) + (64 << 10))
    }

    static func writeLoop(wal: WAL, ring: LogRing, reader: LogRingReader, durableNotices: ControlRing,
                          trimCommands: ControlRing, state: WALState, stop: StopFlag, logger: Logger) {
        var submitted = reader.position
        var walFull = false
        var headers = [UInt8](repeating: 0, count: 0)
        let maxPayload = wal.config.maxRecordPayloadBytes
        func handleTrims() throws {
            while let m = trimCommands.tryPop() {
                guard m.kind == ControlMessage.kindTrim else { continue }
                let trimmed = try wal.trim(to: min(m.value, wal.durableLSN))
                walFull = false
                state.storeUsage(usedBytes: wal.usedBytes, capacityBytes: wal.capacityBytes)
                logger.trace("WAL trimmed", metadata: ["trimLSN": "\(trimmed)"])
            }
        }
        do {
            while true {
                try handleTrims()
                // Submit everything waiting, one record per group commit, while writes may be added.
                while wal.canSubmit && !walFull {
                    let batch = try reader.peek(from: submitted, maxBytes: maxPayload - 64 * 1024)
                    if batch.isEmpty { break }
                    headers = [UInt8](repeating: 0, count: batch.frames.count * WALFrameCodec.headerBytes)
                    var parts: [UnsafeRawBufferPointer] = []
                    parts.reserveCapacity(batch.frames.count * 2)
                    do {
                        try headers.withUnsafeMutableBytes { h in
                            for (i, f) in batch.frames.enumerated() {
                                let slot = UnsafeMutableRawBufferPointer(rebasing: h[(i * WALFrameCodec.headerBytes)..<((i + 1) * WALFrameCodec.headerBytes)])
                                WALFrameCodec.encodeHeader(streamId: f.streamId, baseOffset: f.baseOffset, count: f.count,
                                                           payloadLength: f.payload.count, into: slot)
                                parts.append(UnsafeRawBufferPointer(slot))
                                parts.append(f.payload)
                            }
                            _ = try wal.submit(payloads: parts, startLSN: batch.startLSN, endLSN: batch.endLSN)
                        }
                        submitted = batch.endLSN
                    } catch WALError.full {
                        walFull = true   // back-pressure: wait for a trim; the ring fills, producers slow down
                        logger.debug("WAL full; waiting for a trim")
                    }
                }
                if wal.inFlightWrites > 0 {
                    if let durable = try wal.reap(wait: true) {
                        reader.advance(to: durable)
                        state.storeDurable(durable)
                        state.storeUsage(usedBytes: wal.usedBytes, capacityBytes: wal.capacityBytes)
                        _ = durableNotices.tryPush(ControlMessage(kind: ControlMessage.kindDurable, value: durable))
                    }
                } else if stop.isSet {
                    if reader.position == ring.writePosition || walFull { break }
                } else if walFull {
                    if let m = trimCommands.pop(timeout: .milliseconds(50)) {
                        if m.kind == ControlMessage.kindTrim {
                            _ = try wal.trim(to: min(m.value, wal.durableLSN))
                            walFull = false
                            state.storeUsage(usedBytes: wal.usedBytes, capacityBytes: wal.capacityBytes)
                        }
                    }
                } else {
                    _ = reader.waitForData(after: submitted, timeout: .milliseconds(50))
                }
            }
        } catch {
            logger.critical("WAL writer failed: \(error)")
            Foundation.exit(3)
        }
        stop.markDrained()
    }
}
