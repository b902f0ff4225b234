import Foundation
import NIOCore
import SiltRecords
import XCTest
@testable import SiltStorage

/// Kafka's sequence rules for idempotent producers, on the table alone and through the
/// partitions' `append` (StreamLog), and the snapshot file.
final class ProducerStateTests: XCTestCase {
    /// A header as a producer sends it (offsets not assigned yet).
    func header(pid: Int64 = 7, epoch: Int16 = 0, seq: Int32, count: Int32 = 1, timestamp: Int64 = baseTimeMs) -> RecordBatchHeader {
        RecordBatchHeader(baseOffset: 0, batchLength: 100, partitionLeaderEpoch: -1, magic: 2, crc: 0, attributes: 0,
                          lastOffsetDelta: count - 1, baseTimestamp: timestamp, maxTimestamp: timestamp,
                          producerId: pid, producerEpoch: epoch, baseSequence: seq, recordCount: count)
    }

    /// Validates and records `h` at `offset` as the partition would; returns the duplicate, if any.
    @discardableResult
    func append(_ table: inout ProducerStateTable, _ h: RecordBatchHeader, at offset: Int64) throws -> ProducerBatch? {
        if let original = try table.validate([h]) { return original }
        var stored = h
        stored.baseOffset = offset
        table.record([stored])
        return nil
    }

    func assertError(_ expected: Int16, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual((error as? ProducerStateError)?.kafkaErrorCode, expected, "\(error)", file: file, line: line)
        }
    }

    func testInSequenceBatchesAreAcceptedAndGapsRefused() throws {
        var t = ProducerStateTable()
        XCTAssertNil(try append(&t, header(seq: 0, count: 3), at: 0))
        XCTAssertNil(try append(&t, header(seq: 3, count: 2), at: 3))
        assertError(45) { try self.append(&t, self.header(seq: 6), at: 5) }   // gap: 5 is next
        assertError(45) { try self.append(&t, self.header(seq: 4), at: 5) }   // overlaps, not a whole batch
        XCTAssertNil(try append(&t, header(seq: 5), at: 5))
        XCTAssertEqual(t.producers[7]?.batches.last?.lastSequence, 5)
    }

    func testDuplicateOfEachOfTheLastFiveBatchesGetsTheOriginalOffsets() throws {
        var t = ProducerStateTable()
        // Seven batches of two records; offsets interleave with other producers' data (gaps of 10).
        for i in 0..<7 { XCTAssertNil(try append(&t, header(seq: Int32(2 * i), count: 2), at: Int64(10 * i))) }
        for i in 2..<7 {
            let original = try XCTUnwrap(try t.validate([header(seq: Int32(2 * i), count: 2)]), "batch \(i)")
            XCTAssertEqual(original.firstOffset, Int64(10 * i))
            XCTAssertEqual(original.lastOffset, Int64(10 * i + 1))
        }
        // Older than the last five: no longer a known retry; out of order as in Kafka.
        assertError(45) { _ = try t.validate([self.header(seq: 2, count: 2)]) }
        // Same first sequence but another length is not the same batch.
        assertError(45) { _ = try t.validate([self.header(seq: 12, count: 1)]) }
        // A retry in an older epoch is fenced, not deduplicated.
        XCTAssertNil(try append(&t, header(epoch: 1, seq: 0), at: 100))
        assertError(47) { _ = try t.validate([self.header(epoch: 0, seq: 12, count: 2)]) }
    }

    func testEpochRules() throws {
        var t = ProducerStateTable()
        XCTAssertNil(try append(&t, header(epoch: 3, seq: 0, count: 5), at: 0))
        assertError(47) { try self.append(&t, self.header(epoch: 2, seq: 5), at: 5) }   // zombie
        assertError(45) { try self.append(&t, self.header(epoch: 4, seq: 5), at: 5) }   // a new epoch starts at 0
        XCTAssertNil(try append(&t, header(epoch: 4, seq: 0), at: 5))                    // epoch bump
        XCTAssertEqual(t.producers[7]?.epoch, 4)
        XCTAssertEqual(t.producers[7]?.batches.count, 1, "a bump forgets the old epoch's batches")
        assertError(47) { try self.append(&t, self.header(epoch: 3, seq: 5), at: 6) }
        XCTAssertNil(try append(&t, header(epoch: 4, seq: 1), at: 6))
    }

    func testUnknownProducerMayStartAtAnySequence() throws {
        // Kafka since KIP-360: its state may have expired or been trimmed away with its data.
        var t = ProducerStateTable()
        XCTAssertNil(try append(&t, header(pid: 9, epoch: 2, seq: 1234), at: 0))
        XCTAssertNil(try append(&t, header(pid: 9, epoch: 2, seq: 1235), at: 1))
        assertError(45) { try self.append(&t, self.header(pid: 9, epoch: 2, seq: 1237), at: 2) }
    }

    func testSequenceWrapsAroundAtInt32Max() throws {
        XCTAssertEqual(ProducerStateTable.lastSequence(base: Int32.max - 1, lastOffsetDelta: 3), 1)
        XCTAssertEqual(ProducerStateTable.lastSequence(base: Int32.max, lastOffsetDelta: 0), Int32.max)
        var t = ProducerStateTable()
        XCTAssertNil(try append(&t, header(seq: Int32.max - 2, count: 3), at: 0))   // ends at Int32.max
        XCTAssertNil(try append(&t, header(seq: 0, count: 2), at: 3))              // wraps to 0
        XCTAssertNil(try append(&t, header(seq: 2, count: 1), at: 5))
        var w = ProducerStateTable()
        XCTAssertNil(try append(&w, header(seq: Int32.max - 1, count: 4), at: 0))  // wraps inside the batch: 2147483646...1
        XCTAssertEqual(w.producers[7]?.batches.last?.lastSequence, 1)
        XCTAssertNotNil(try w.validate([header(seq: Int32.max - 1, count: 4)]), "a wrapped batch is found again")
        XCTAssertNil(try append(&w, header(seq: 2), at: 4))
    }

    func testSeveralBatchesOfOneAppendAreCheckedInOrder() throws {
        let t = ProducerStateTable()
        XCTAssertNil(try t.validate([header(seq: 0, count: 2), header(seq: 2, count: 2)]))
        assertError(45) { _ = try t.validate([self.header(seq: 0, count: 2), self.header(seq: 3)]) }
        XCTAssertTrue(t.producers.isEmpty, "validate changes nothing")
    }

    func testExpiry() throws {
        var t = ProducerStateTable()
        XCTAssertNil(try append(&t, header(pid: 1, seq: 0, timestamp: 1_000), at: 0))
        XCTAssertNil(try append(&t, header(pid: 2, seq: 0, timestamp: 5_000), at: 1))
        XCTAssertEqual(t.expire(nowMs: 10_000, expirationMs: 9_000), 1)
        XCTAssertEqual(Array(t.producers.keys), [2])
    }

    func testExpiryWithExtremeProducerTimestampsDoesNotOverflow() throws {
        var t = ProducerStateTable()
        XCTAssertNil(try append(&t, header(pid: 1, seq: 0, timestamp: .min), at: 0))   // long ago: expires
        XCTAssertNil(try append(&t, header(pid: 2, seq: 0, timestamp: .max), at: 1))   // far future: stays
        XCTAssertEqual(t.expire(nowMs: 1_700_000_000_000, expirationMs: 86_400_000), 1)
        XCTAssertEqual(Array(t.producers.keys), [2])
    }

    func testSnapshotRoundTripAndDamage() throws {
        var t = ProducerStateTable()
        for i in 0..<7 { XCTAssertNil(try append(&t, header(pid: 1, seq: Int32(i)), at: Int64(i))) }
        XCTAssertNil(try append(&t, header(pid: 2, epoch: 5, seq: 40, count: 3), at: 7))
        let snapshot = ProducerStateSnapshot(offset: 10, table: t)
        let bytes = snapshot.encode()
        let back = try XCTUnwrap(ProducerStateSnapshot.decode(bytes))
        XCTAssertEqual(back, snapshot)
        XCTAssertEqual(back.table, t)
        var damaged = bytes
        damaged[damaged.count / 2] ^= 0x40
        XCTAssertNil(ProducerStateSnapshot.decode(damaged), "CRC catches a flipped bit")
        XCTAssertNil(ProducerStateSnapshot.decode(Array(bytes.prefix(bytes.count - 3))), "a torn file is refused")

        let dir = TestDirectory()
        let path = dir.path + "/1.snapshot"
        try snapshot.write(to: path)
        XCTAssertEqual(ProducerStateSnapshot.read(from: path), snapshot)
        XCTAssertNil(ProducerStateSnapshot.read(from: dir.path + "/missing.snapshot"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp"))
    }

    // MARK: Through the partitions

    func idempotentRecords(pid: Int64 = 7, epoch: Int16 = 0, seq: Int32, count: Int) -> ByteBuffer {
        var b = RecordBatchBuilder(producerId: pid, producerEpoch: epoch, baseSequence: seq)
        for i in 0..<count { b.append(key: "k\(i)", value: "v\(seq)-\(i)", timestamp: baseTimeMs + Int64(i)) }
        return b.build()
    }

    func testStreamLogAnswersARetryWithTheOriginalOffsetsAndPublishesNothing() throws {
        let log = StreamLog(topic: "t", partition: 0, streamId: 1, streamEpoch: 1, startOffset: 0, endOffset: 0, maxBatchBytes: 1 << 20)
        var published = 0
        func append(_ records: ByteBuffer) throws -> AppendInfo {
            let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: baseTimeMs)
            return try log.append(records, batches: headers, logAppendTime: false, nowMs: baseTimeMs) { _, _ in published += 1 }
        }
        XCTAssertEqual(try append(makeRecords(count: 2)).baseOffset, 0)               // plain producer
        let first = try append(idempotentRecords(seq: 0, count: 3))
        XCTAssertEqual([first.baseOffset, first.lastOffset], [2, 4])
        XCTAssertFalse(first.duplicate)
        let retry = try append(idempotentRecords(seq: 0, count: 3))
        XCTAssertTrue(retry.duplicate)
        XCTAssertEqual([retry.baseOffset, retry.lastOffset], [2, 4])
        XCTAssertEqual(published, 2, "the retry was not published")
        XCTAssertEqual(log.logEndOffset, 5)
        XCTAssertThrowsError(try append(idempotentRecords(seq: 4, count: 1)))
        XCTAssertEqual(try append(idempotentRecords(seq: 3, count: 1)).baseOffset, 5)

        // A publish that fails leaves the state untouched: the same batch is not a duplicate.
        let records = idempotentRecords(seq: 4, count: 1)
        let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: baseTimeMs)
        struct Full: Error {}
        XCTAssertThrowsError(try log.append(records, batches: headers, logAppendTime: false, nowMs: baseTimeMs) { _, _ in throw Full() })
        XCTAssertFalse(try append(records).duplicate)

        // Snapshot out, load into a fresh log: the retry is still recognised.
        let snapshot = log.producerStateSnapshot()
        XCTAssertEqual(snapshot.offset, 7)
        let reopened = StreamLog(topic: "t", partition: 0, streamId: 1, streamEpoch: 1, startOffset: 0, endOffset: 7, maxBatchBytes: 1 << 20)
        reopened.loadProducerState(snapshot.table)
        let again = try reopened.append(records, batches: headers, logAppendTime: false, nowMs: baseTimeMs) { _, _ in }
        XCTAssertTrue(again.duplicate)
        XCTAssertEqual(again.baseOffset, 6)
    }
}
