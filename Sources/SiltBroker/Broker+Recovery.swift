import Foundation
import Logging
import NIOCore
import SiltController
import SiltStorage
import SiltWAL

extension Broker {
    /// After a whole-node restart the WAL hands over what it held past its trim point: data
    /// the uploader had not committed to object storage. The uploader commits that first;
    /// this waits until the metadata log shows it committed, so that every acknowledged
    /// offset is readable before a client can connect. Returns the streams waited for.
    public func awaitRecoveredCommitted(_ tail: UnsafeRawBufferPointer, timeout: Duration) throws -> Int {
        var ends: [UInt64: Int64] = [:]
        for frame in try WALFrameCodec.decode(tail) {
            ends[frame.streamId] = max(ends[frame.streamId] ?? 0, frame.baseOffset + Int64(frame.count))
        }
        let live = metadata.image
        ends = ends.filter { id, _ in live.streams[id] != nil }   // deleted topics' data is dead
        guard !ends.isEmpty else { return 0 }
        logger.info("waiting for the uploader to commit the WAL's recovered data", metadata: ["streams": "\(ends.count)"])
        let deadline = ContinuousClock.now + timeout
        var nextLog = ContinuousClock.now + .seconds(5)
        while true {
            let image = metadata.image
            let pending = ends.filter { id, end in
                image.streams[id] != nil && (image.streamStates[id]?.endOffset ?? 0) < end
            }
            if pending.isEmpty { break }
            if ContinuousClock.now > deadline {
                throw RecoveryError(description: "the uploader did not commit the WAL's recovered data of \(pending.count) streams "
                                    + "within \(timeout) (is object storage reachable?)")
            }
            if ContinuousClock.now > nextLog {
                logger.info("still waiting for recovered data to be committed", metadata: ["streams": "\(pending.count)"])
                nextLog = ContinuousClock.now + .seconds(5)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return ends.count
    }

    /// What an earlier broker process left in the log buffer becomes the tail of each stream.
    public func recoverLogBufferTail(_ path: LogBufferWritePath) throws {
        let ends = try path.recoverTail()
        var byStream: [UInt64: StreamLog] = [:]
        for log in logs.allStreams() { byStream[log.streamId] = log }
        for (id, end) in ends { byStream[id]?.recover(endOffset: end) }
        if !ends.isEmpty { logger.info("log buffer tail recovered", metadata: ["streams": "\(ends.count)"]) }
    }
}

public struct RecoveryError: Error, CustomStringConvertible {
    public var description: String
}
