#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import SiltRecords

extension PartitionLog {
    /// Opens (or, with `create`, first creates) the partition directory and recovers it:
    /// every segment is scanned with buffered reads and each batch's framing, offsets and CRC32C
    /// are checked. At the first bad batch (a torn write: truncated, bad CRC, impossible length)
    /// the file is truncated there and any later segments are deleted (nothing in them can have
    /// been acknowledged: acks need an fsync of every earlier segment). Then everything kept is
    /// fdatasync'ed, so the recovered log end is also the high watermark.
    static func open(topic: String, partition: Int32, directory: String, config: StorageConfig,
                     logger: Logger, create: Bool) throws -> PartitionLog {
        let label = "\(topic)-\(partition)"
        if create {
            if mkdir(directory, 0o755) != 0 && errno != EEXIST {
                throw StorageError.io(errno: errno, operation: "mkdir", path: directory)
            }
            try Sys.syncDirectory(config.logDir, faults: config)
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw StorageError.io(errno: ENOENT, operation: "readdir", path: directory)
        }
        let baseOffsets = names.compactMap { Segment.baseOffset(fileName: $0) }.sorted()

        var segments: [Segment] = []
        var truncatedAt: (path: String, position: Int, reason: String)? = nil
        for baseOffset in baseOffsets {
            let path = directory + "/" + Segment.fileName(baseOffset: baseOffset)
            if truncatedAt != nil {
                logger.error("deleting segment after a torn write in an earlier segment",
                             metadata: ["partition": "\(label)", "segment": "\(path)"])
                if unlink(path) != 0 { throw StorageError.io(errno: errno, operation: "unlink", path: path) }
                continue
            }
            if let previous = segments.last, baseOffset < previous.nextOffset {
                throw StorageError.corrupt(path: path, positionBytes: 0,
                                           reason: "segment base \(baseOffset) overlaps previous segment ending at \(previous.nextOffset)")
            }
            let fd = try Sys.openFile(path, O_RDWR)
            let fileBytes = try Sys.fileSize(fd, path)
            let segment = Segment(baseOffset: baseOffset, path: path, fd: fd, sizeBytes: fileBytes)
            var scanner = BatchScanner(segment: segment, from: 0, limitBytes: fileBytes,
                                       chunkBytes: config.recoveryReadBufferBytes, maxBatchBytes: config.maxBatchBytes)
            var expectedOffset = baseOffset
            var goodBytes = 0
            scan: while true {
                switch try scanner.next(loadBody: false, verifyCRC: true) {
                case .batch(let batch):
                    if batch.header.baseOffset < expectedOffset {
                        truncatedAt = (path, batch.positionBytes,
                                       "batch base offset \(batch.header.baseOffset) below expected \(expectedOffset)")
                        break scan
                    }
                    segment.noteBatch(batch.header, at: batch.positionBytes, indexIntervalBytes: config.indexIntervalBytes)
                    expectedOffset = batch.header.nextOffset
                    goodBytes = batch.positionBytes + batch.header.totalSize
                case .end:
                    break scan
                case .torn(let position, let reason):
                    truncatedAt = (path, position, reason)
                    break scan
                }
            }
            if let torn = truncatedAt {
                assert(torn.position == goodBytes)
                logger.warning("truncating torn tail of segment",
                               metadata: ["partition": "\(label)", "segment": "\(path)", "position": "\(torn.position)",
                                          "droppedBytes": "\(fileBytes - torn.position)", "reason": "\(torn.reason)"])
                try Sys.truncate(fd, path, toBytes: goodBytes)
                segment.sizeBytes = goodBytes
            }
            assert(segment.sizeBytes == goodBytes)
            segments.append(segment)
        }
        if segments.isEmpty {
            let path = directory + "/" + Segment.fileName(baseOffset: 0)
            let fd = try Sys.openFile(path, O_RDWR | O_CREAT)
            segments.append(Segment(baseOffset: 0, path: path, fd: fd, sizeBytes: try Sys.fileSize(fd, path)))
            precondition(segments[0].sizeBytes == 0, "new segment not empty")
        }
        for segment in segments { try Sys.datasync(segment.fd, segment.path, faults: config) }
        try Sys.syncDirectory(directory, faults: config)

        let log = PartitionLog(topic: topic, partition: partition, directory: directory, config: config,
                               logger: logger, segments: segments, logStartOffset: segments[0].baseOffset)
        logger.debug("opened partition", metadata: ["partition": "\(label)", "segments": "\(segments.count)",
                                                    "logEndOffset": "\(log.logEndOffsetStorage)"])
        return log
    }
}
