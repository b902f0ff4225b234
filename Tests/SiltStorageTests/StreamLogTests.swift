import Foundation
import Logging
import NIOCore
import SiltRecords
import XCTest
@testable import SiltStorage

/// `StreamLog` and `StreamLogManager` on their own: offsets assigned under the partition lock
/// and published in offset order, LogAppendTime stamping, the high watermark and its
/// listeners, deletion, and topic-name validation. (The engine-independent cases of the
/// segment-file engine's tests, which went with it.)
final class StreamLogTests: XCTestCase {
    let logger = Logger(label: "silt.storage.test")

    func headers(_ records: ByteBuffer) throws -> [RecordBatchHeader] {
        try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: baseTimeMs)
    }

    func testInvalidTopicNames() throws {
        let manager = StreamLogManager(maxBatchBytes: 1 << 20, logger: logger)
        for bad in ["", ".", "..", "a/b", "x y", String(repeating: "a", count: 250)] {
            XCTAssertThrowsError(try manager.openStream(topic: bad, partition: 0, streamId: 1, streamEpoch: 1, streamStart: 0, streamEnd: 0)) {
                XCTAssertEqual(($0 as? StorageError)?.kafkaErrorCode, 17)
            }
        }
        XCTAssertThrowsError(try manager.openStream(topic: "ok", partition: -1, streamId: 1, streamEpoch: 1, streamStart: 0, streamEnd: 0))
        XCTAssertNoThrow(try manager.openStream(topic: "my.topic_0-x", partition: 0, streamId: 1, streamEpoch: 1, streamStart: 0, streamEnd: 0))
    }

    /// Appends from several threads, several batches per append: offsets are contiguous and
    /// `publish` sees them in offset order (it runs under the partition lock).
    func testConcurrentMultiBatchAppendsAreContiguousAndPublishedInOrder() throws {
        let manager = StreamLogManager(maxBatchBytes: 1 << 20, logger: logger)
        let log = try manager.openStream(topic: "c", partition: 0, streamId: 7, streamEpoch: 1, streamStart: 5, streamEnd: 5)
        XCTAssertEqual([log.logStartOffset, log.logEndOffset, log.highWatermark], [5, 5, 5], "starts at the committed end")
        let lock = NSLock()
        var published: [RecordBatchHeader] = []
        var infos: [AppendInfo] = []
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<100 {
                var records = ByteBuffer()
                for b in 0..<(1 + (t + i) % 3) {
                    var one = makeRecords(count: 1 + (t + i + b) % 4, tag: "\(t)-\(i)-\(b)")
                    records.writeBuffer(&one)
                }
                let batches = try! headers(records)
                let info = try! log.append(records, batches: batches, logAppendTime: false, nowMs: baseTimeMs) { bytes, info in
                    let stored = try parseBatchHeaders(bytes)
                    XCTAssertEqual(stored.first?.baseOffset, info.baseOffset)
                    XCTAssertEqual(stored.last?.lastOffset, info.lastOffset)
                    XCTAssertTrue(stored.allSatisfy { $0.isCRCValid(in: bytes) })
                    lock.withLock { published += stored }
                }
                lock.withLock { infos.append(info) }
            }
        }
        XCTAssertEqual(published.first?.baseOffset, 5)
        for (prev, next) in zip(published, published.dropFirst()) { XCTAssertEqual(prev.nextOffset, next.baseOffset) }
        XCTAssertEqual(infos.count, 400)
        XCTAssertEqual(log.logEndOffset, published.last!.nextOffset)
        XCTAssertEqual(log.highWatermark, 5, "nothing is readable before it is durable")
    }

    func testLogAppendTimeIsStampedIntoThePublishedBatch() throws {
        let log = StreamLog(topic: "t", partition: 0, streamId: 1, streamEpoch: 1, startOffset: 0, endOffset: 0, maxBatchBytes: 1 << 20)
        let records = makeRecords(count: 2)
        var out: ByteBuffer?
        let info = try log.append(records, batches: try headers(records), logAppendTime: true, nowMs: baseTimeMs + 999) { b, _ in
            out = b
        }
        XCTAssertEqual(info.logAppendTimeMs, baseTimeMs + 999)
        let buffer = try XCTUnwrap(out)
        let header = try XCTUnwrap(parseBatchHeaders(buffer).first)
        XCTAssertEqual(header.timestampType, .logAppendTime)
        XCTAssertEqual(header.maxTimestamp, baseTimeMs + 999)
        XCTAssertTrue(header.isCRCValid(in: buffer))
        // A batch over the limit is refused whole; a failed publish appends nothing.
        let small = StreamLog(topic: "t", partition: 1, streamId: 2, streamEpoch: 1, startOffset: 0, endOffset: 0, maxBatchBytes: 100)
        let big = makeRecords(count: 3, valueBytes: 100)
        XCTAssertThrowsError(try small.append(big, batches: try headers(big), logAppendTime: false, nowMs: 0) { _, _ in }) {
            XCTAssertEqual(($0 as? StorageError)?.kafkaErrorCode, 10)
        }
        struct Full: Error {}
        XCTAssertThrowsError(try log.append(records, batches: try headers(records), logAppendTime: false, nowMs: 0) { _, _ in throw Full() })
        XCTAssertEqual(log.logEndOffset, 2)
    }

    func testHighWatermarkListenersAndDeletion() throws {
        let manager = StreamLogManager(maxBatchBytes: 1 << 20, logger: logger)
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var notices: [String] = []
        }
        let seen = Seen()
        manager.addHighWatermarkListener { p, hw in seen.lock.withLock { seen.notices.append("\(p.topic)@\(hw)") } }
        let p0 = try manager.openStream(topic: "gone", partition: 0, streamId: 1, streamEpoch: 1, streamStart: 0, streamEnd: 0)
        _ = try manager.openStream(topic: "gone", partition: 1, streamId: 2, streamEpoch: 1, streamStart: 0, streamEnd: 0)
        let kept = try manager.openStream(topic: "gone-2", partition: 0, streamId: 3, streamEpoch: 1, streamStart: 0, streamEnd: 0)
        let records = makeRecords(count: 3)
        _ = try p0.append(records, batches: try headers(records), logAppendTime: false, nowMs: 0) { _, _ in }
        p0.advanceHighWatermark(to: 3)
        p0.advanceHighWatermark(to: 2)   // never backwards, and no notice
        XCTAssertEqual(p0.highWatermark, 3)
        kept.recover(endOffset: 10)       // committed in objects: readable at once
        XCTAssertEqual([kept.logEndOffset, kept.highWatermark], [10, 10])
        XCTAssertEqual(seen.lock.withLock { seen.notices }, ["gone@3", "gone-2@10"])

        try manager.deletePartitions(topic: "gone")
        XCTAssertNil(manager.partition(topic: "gone", partition: 0))
        XCTAssertNil(manager.partition(topic: "gone", partition: 1))
        XCTAssertNotNil(manager.partition(topic: "gone-2", partition: 0))
        XCTAssertThrowsError(try p0.append(records, batches: try headers(records), logAppendTime: false, nowMs: 0) { _, _ in }) {
            XCTAssertEqual($0 as? StorageError, .closed(topic: "gone", partition: 0))
        }
        let fresh = try manager.openStream(topic: "gone", partition: 0, streamId: 4, streamEpoch: 1, streamStart: 0, streamEnd: 0)
        XCTAssertEqual(fresh.logEndOffset, 0)
    }
}
