import Foundation
import Logging
import NIOCore
import SiltMetadata
import SiltRecords
import SiltStorage

/// ListOffsets with timestamp -3 (MAX_TIMESTAMP, KIP-734, ListOffsets v7+): the offset and
/// timestamp of the record with the largest timestamp, the earliest such record on a tie,
/// as Kafka answers it. An empty partition answers offset -1, timestamp -1.
///
/// Streams keep no time index, so the stream is scanned from its log start to the high
/// watermark (memory, then objects), like a timestamp lookup: O(stream size).
extension Broker {
    static let listOffsetsMaxTimestamp: Int64 = -3

    func offsetOfMaxTimestamp(_ log: StreamLog, image: MetadataImage, logger: Logger) async -> (offset: Int64, timestamp: Int64)? {
        var next = log.logStartOffset
        let hw = log.highWatermark
        var fold = MaxTimestampFold()
        do {
            while next < hw {
                var data = writePath.readTail(log, streamId: log.streamId, from: next, maxBytes: 1 << 20, minOneBatch: true)
                if data == nil, let reader = objectReader {
                    data = try await reader.read(streamId: log.streamId, from: next, maxBytes: 1 << 20, minOneBatch: true, image: image)
                }
                guard let records = data, records.readableBytes > 0 else { break }
                let headers = try parseBatchHeaders(records)
                guard let last = headers.last else { break }
                for header in headers where header.nextOffset > next {
                    try fold.add(records, header, from: next, below: hw)
                }
                guard last.nextOffset > next else { break }
                next = last.nextOffset
            }
        } catch {
            logger.warning("max timestamp lookup failed", metadata: ["partition": "\(log.topic)-\(log.partition)", "error": "\(error)"])
            return nil
        }
        return fold.result
    }
}

/// The running answer of a MAX_TIMESTAMP scan, fed batch by batch in offset order. Only a
/// strictly larger timestamp replaces the answer, so a tie keeps the earliest record.
///
/// - A CreateTime batch: each record in `from..<below` (a compressed batch is decoded, as
///   Kafka 3.8+ does, so the answer is the record's own offset).
/// - A LogAppendTime batch: every record carries the batch's time; its first record counted.
struct MaxTimestampFold {
    private(set) var result: (offset: Int64, timestamp: Int64)?

    mutating func add(_ records: ByteBuffer, _ header: RecordBatchHeader, from: Int64, below: Int64) throws {
        guard header.nextOffset > from, header.baseOffset < below else { return }
        if let r = result, header.maxTimestamp <= r.timestamp { return }   // nothing in this batch can win
        if header.timestampType == .logAppendTime {
            offer(max(header.baseOffset, from), header.maxTimestamp)
        } else {
            var reader = try RecordReader(batch: records, header: header)
            while let record = try reader.next(), record.offset < below {
                if record.offset >= from { offer(record.offset, record.timestamp) }
            }
        }
    }

    private mutating func offer(_ offset: Int64, _ timestamp: Int64) {
        if let r = result, timestamp <= r.timestamp { return }
        result = (offset, timestamp)
    }
}
