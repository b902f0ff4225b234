import NIOCore
import SiltController
import SiltStorage

extension Broker {
    /// Replays the WAL's valid tail into the partition logs: every frame whose batches a
    /// partition log lacks (lost with the page cache in a power cut) is appended again at
    /// its original offsets. Frames the logs already hold are skipped; frames of deleted
    /// topics are dropped. Returns (frames replayed, frames skipped).
    @discardableResult
    public func replayWAL(_ tail: UnsafeRawBufferPointer) throws -> (replayed: Int, skipped: Int) {
        let image = metadata.image
        var replayed = 0
        var skipped = 0
        for frame in try WALFrameCodec.decode(tail) {
            guard let owner = image.streams[frame.streamId],
                  let log = logs.partition(topic: owner.topic, partition: owner.partition) else {
                skipped += 1
                continue
            }
            let end = log.logEndOffset
            let frameEnd = frame.baseOffset + Int64(frame.count)
            if frameEnd <= end {
                skipped += 1
                continue
            }
            guard frame.baseOffset == end else {
                // The WAL is trimmed only after the segments were synced, so this means the
                // partition's files lost data the WAL no longer has.
                logger.critical("WAL replay gap", metadata: [
                    "partition": "\(owner.topic)-\(owner.partition)", "logEnd": "\(end)", "frameBase": "\(frame.baseOffset)"])
                throw StorageError.corrupt(path: log.directory, positionBytes: 0,
                                           reason: "WAL replay gap: log ends at \(end), WAL frame starts at \(frame.baseOffset)")
            }
            var bytes = ByteBufferAllocator().buffer(capacity: frame.payload.count)
            bytes.writeBytes(frame.payload)
            let newEnd = try log.appendRecovered(bytes)
            log.advanceHighWatermark(to: newEnd)
            replayed += 1
        }
        if replayed > 0 { logs.flushAll() }
        logger.info("WAL replayed", metadata: ["replayed": "\(replayed)", "skipped": "\(skipped)"])
        return (replayed, skipped)
    }
}
