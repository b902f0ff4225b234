import Foundation
import Logging
import SiltBroker
import SiltNode
import SiltRing

/// The uploader role: the log buffer's second reader. Today it takes part in the buffer
/// protocol only (reads every frame, verifies it, releases the space); the S3 storage
/// issue gives it objects to build and upload.
struct UploaderRole {
    let config: ServerConfig
    let logger: Logger

    func run() throws {
        let ring = try LogRing.attach(fd: RoleFd.logRing)
        let state = try WALState.attach(fd: RoleFd.walState)
        guard state.waitReady(timeout: .seconds(600)) else { throw RoleError("the WAL never became ready") }
        let reader = ring.reader(1)
        let stop = StopFlag()
        let thread = Thread {
            var frames: UInt64 = 0
            var bytes: UInt64 = 0
            var lastLog = ContinuousClock.now
            while !stop.isSet {
                guard reader.waitForData(after: reader.position, timeout: .milliseconds(200)) else { continue }
                do {
                    let batch = try reader.peek(maxBytes: 4 << 20)
                    for f in batch.frames { bytes += UInt64(f.payload.count) }
                    frames += UInt64(batch.frames.count)
                    reader.advance(to: batch.endLSN)
                } catch {
                    logger.critical("corrupt frame in the log buffer: \(error)")
                    Foundation.exit(2)
                }
                if ContinuousClock.now - lastLog > .seconds(30) {
                    logger.debug("uploader consumed", metadata: ["frames": "\(frames)", "bytes": "\(bytes)"])
                    lastLog = ContinuousClock.now
                }
            }
        }
        thread.start()
        logger.info("uploader ready", metadata: ["position": "\(reader.position)"])
        waitForStopSignal()
        stop.set()
        logger.info("uploader stopped")
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private var done = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
    var drained: Bool { lock.withLock { done } }
    func markDrained() { lock.withLock { done = true } }
}

struct RoleError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
