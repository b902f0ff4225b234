import Foundation
import NIOCore
import SiltRecords
import XCTest
@testable import SiltStorage

final class PartitionLogTests: XCTestCase {
    func testAppendReadAndOffsets() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "orders", partition: 0)
        XCTAssertEqual(log.logEndOffset, 0)
        XCTAssertEqual(log.highWatermark, 0)
        let a = try appendDurably(log, makeRecords(count: 3))
        let b = try appendDurably(log, makeRecords(count: 5))
        XCTAssertEqual(a, AppendInfo(baseOffset: 0, lastOffset: 2, logAppendTimeMs: -1, logStartOffset: 0))
        XCTAssertEqual(b.baseOffset, 3)
        XCTAssertEqual(b.lastOffset, 7)
        XCTAssertEqual(log.logEndOffset, 8)
        XCTAssertEqual(log.highWatermark, 8)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path + "/orders-0/00000000000000000000.log"))

        let buffer = try log.read(from: 0, maxBytes: 1 << 20, minOneBatch: true)
        let headers = try parseBatchHeaders(buffer)
        XCTAssertEqual(headers.map(\.baseOffset), [0, 3])
        XCTAssertEqual(headers.map(\.lastOffset), [2, 7])
        XCTAssertEqual(headers.map(\.partitionLeaderEpoch), [0, 0])
        let records = try headers[1].records(in: buffer)
        XCTAssertEqual(records.map(\.offset), [3, 4, 5, 6, 7])
        XCTAssertEqual(records.first?.key.map { String(buffer: $0) }, "key--0")

        // At the high watermark: empty. Beyond: out of range.
        XCTAssertEqual(try log.read(from: 8, maxBytes: 1000, minOneBatch: true).readableBytes, 0)
        XCTAssertThrowsError(try log.read(from: 9, maxBytes: 1000, minOneBatch: true)) { error in
            XCTAssertEqual(error as? StorageError, .offsetOutOfRange(offset: 9, logStartOffset: 0, highWatermark: 8))
            XCTAssertEqual((error as? StorageError)?.kafkaErrorCode, 1)
        }
        XCTAssertThrowsError(try log.read(from: -1, maxBytes: 1000, minOneBatch: true))
    }

    func testMidBatchReadReturnsWholeBatch() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "t", partition: 1)
        for _ in 0..<20 { try appendDurably(log, makeRecords(count: 10)) }
        for offset: Int64 in [0, 5, 9, 10, 55, 199] {
            let buffer = try log.read(from: offset, maxBytes: 1, minOneBatch: true)
            let headers = try parseBatchHeaders(buffer)
            XCTAssertEqual(headers.count, 1)
            XCTAssertEqual(headers[0].baseOffset, offset / 10 * 10, "offset \(offset)")
            XCTAssertEqual(headers[0].lastOffset, offset / 10 * 10 + 9)
        }
    }

    func testMaxBytesAndMinOneBatch() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "t", partition: 0)
        let first = makeRecords(count: 4)
        let size = first.readableBytes
        try appendDurably(log, first)
        try appendDurably(log, makeRecords(count: 4))
        try appendDurably(log, makeRecords(count: 4))
        XCTAssertEqual(try parseBatchHeaders(log.read(from: 0, maxBytes: size + 10, minOneBatch: true)).count, 1)
        XCTAssertEqual(try parseBatchHeaders(log.read(from: 0, maxBytes: 2 * size, minOneBatch: false)).count, 2)
        XCTAssertEqual(try parseBatchHeaders(log.read(from: 0, maxBytes: 10 * size, minOneBatch: false)).count, 3)
        XCTAssertEqual(try log.read(from: 0, maxBytes: size - 1, minOneBatch: true).readableBytes, size)
        XCTAssertEqual(try log.read(from: 0, maxBytes: size - 1, minOneBatch: false).readableBytes, 0)
        XCTAssertEqual(try log.read(from: 4, maxBytes: 0, minOneBatch: true).readableBytes, size)
    }

    func testLogAppendTime() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "t", partition: 0)
        let info = try appendDurably(log, makeRecords(count: 2), logAppendTime: true)
        XCTAssertEqual(info.logAppendTimeMs, baseTimeMs + 999)
        let buffer = try log.read(from: 0, maxBytes: 1 << 20, minOneBatch: true)
        let header = try XCTUnwrap(parseBatchHeaders(buffer).first)
        XCTAssertEqual(header.timestampType, .logAppendTime)
        XCTAssertEqual(header.maxTimestamp, baseTimeMs + 999)
        XCTAssertTrue(header.isCRCValid(in: buffer))
    }

    func testSegmentRollAndReopen() throws {
        let dir = TestDirectory()
        var expected: [RecordBatchHeader] = []
        var bytes: [ByteBuffer] = []
        do {
            let manager = try makeManager(dir, segmentBytes: 4096)
            let log = try manager.openOrCreate(topic: "rolling.topic-x", partition: 3)
            for i in 0..<60 { try appendDurably(log, makeRecords(count: 1 + i % 5, valueBytes: 100, tag: "\(i)")) }
            XCTAssertGreaterThan(log.segmentCount, 5)
            let bases = log.segmentBaseOffsets
            XCTAssertEqual(bases.first, 0)
            XCTAssertEqual(bases, bases.sorted())
            expected = try readAll(log)
            XCTAssertEqual(expected.count, 60)
            XCTAssertEqual(expected.last?.nextOffset, log.logEndOffset)
            for h in expected { bytes.append(try log.read(from: h.baseOffset, maxBytes: 0, minOneBatch: true)) }
            // Offsets contiguous across segments.
            for (prev, next) in zip(expected, expected.dropFirst()) { XCTAssertEqual(prev.nextOffset, next.baseOffset) }
            // Reads never cross a segment boundary.
            for base in bases.dropFirst() {
                let buffer = try log.read(from: base - 1, maxBytes: 1 << 20, minOneBatch: true)
                XCTAssertLessThanOrEqual(try parseBatchHeaders(buffer).last!.nextOffset, base)
            }
            manager.shutdown()
            XCTAssertThrowsError(try log.append(makeRecords(count: 1), batches: try validateProducedRecords(
                makeRecords(count: 1), maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 0),
                logAppendTime: false, nowMs: 0, onDurable: { _ in }))
        }
        let manager = try makeManager(dir, segmentBytes: 4096)
        defer { manager.shutdown() }
        let log = try XCTUnwrap(manager.partitionLog(topic: "rolling.topic-x", partition: 3))
        XCTAssertEqual(log.logEndOffset, expected.last!.nextOffset)
        XCTAssertEqual(log.highWatermark, log.logEndOffset)
        let reread = try readAll(log)
        XCTAssertEqual(reread.map(\.baseOffset), expected.map(\.baseOffset))
        XCTAssertEqual(reread.map(\.crc), expected.map(\.crc))
        for (h, original) in zip(expected, bytes) {
            XCTAssertEqual(try log.read(from: h.baseOffset, maxBytes: 0, minOneBatch: true), original)
        }
        let info = try appendDurably(log, makeRecords(count: 2))
        XCTAssertEqual(info.baseOffset, expected.last!.nextOffset)
    }

    func testOffsetForTimestamp() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir, segmentBytes: 2048)
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "t", partition: 0)
        // Batch i holds 10 records with timestamps base + 100*i + 0..9.
        for i in 0..<30 { try appendDurably(log, makeRecords(count: 10, timestamp: baseTimeMs + 100 * Int64(i))) }
        XCTAssertGreaterThan(log.segmentCount, 2)
        XCTAssertEqual(log.offsetForTimestamp(0)?.offset, 0)
        XCTAssertEqual(log.offsetForTimestamp(baseTimeMs + 1005).map { [$0.offset, $0.timestamp] }, [105, baseTimeMs + 1005])
        XCTAssertEqual(log.offsetForTimestamp(baseTimeMs + 1050).map { [$0.offset, $0.timestamp] }, [110, baseTimeMs + 1100])
        XCTAssertEqual(log.offsetForTimestamp(baseTimeMs + 2909)?.offset, 299)
        XCTAssertNil(log.offsetForTimestamp(baseTimeMs + 2910))
        // A compressed batch is answered batch-granular.
        let compressed: ByteBuffer = {
            var b = RecordBatchBuilder()
            b.claimedCompression = .lz4
            for i in 0..<5 { b.append(key: nil as [UInt8]?, value: [1], timestamp: baseTimeMs + 5000 + Int64(i)) }
            return b.build()
        }()
        try appendDurably(log, compressed)
        XCTAssertEqual(log.offsetForTimestamp(baseTimeMs + 5002).map { [$0.offset, $0.timestamp] }, [300, baseTimeMs + 5004])
    }

    func testConcurrentAppendsAreContiguous() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir, segmentBytes: 64 * 1024)
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "c", partition: 0)
        let threads = 4
        let perThread = 150
        let waiter = DurableWaiter()
        let lock = NSLock()
        var infos: [AppendInfo] = []
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<perThread {
                let records = makeRecords(count: 1 + (t + i) % 3, tag: "\(t)-\(i)")
                let headers = try! validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: baseTimeMs)
                let info = try! log.append(records, batches: headers, logAppendTime: false, nowMs: baseTimeMs, onDurable: waiter.callback)
                lock.withLock { infos.append(info) }
                _ = (try? log.read(from: max(0, log.highWatermark - 1), maxBytes: 100, minOneBatch: true))
            }
        }
        let results = waiter.wait(for: threads * perThread)
        XCTAssertEqual(results.count, threads * perThread)
        XCTAssertTrue(results.allSatisfy { if case .success = $0 { return true } else { return false } })
        infos.sort { $0.baseOffset < $1.baseOffset }
        XCTAssertEqual(infos.first?.baseOffset, 0)
        for (prev, next) in zip(infos, infos.dropFirst()) { XCTAssertEqual(prev.lastOffset + 1, next.baseOffset) }
        XCTAssertEqual(log.logEndOffset, infos.last!.lastOffset + 1)
        XCTAssertEqual(log.highWatermark, log.logEndOffset)
        let stored = try readAll(log)
        XCTAssertEqual(stored.map(\.baseOffset), infos.map(\.baseOffset))
        XCTAssertGreaterThan(log.segmentCount, 1)
    }

    func testHighWatermarkListeners() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        let seen = DurableWaiter()
        let managerSeen = DurableWaiter()
        let log = try manager.openOrCreate(topic: "t", partition: 0)
        let token = log.addHighWatermarkListener { hw in if hw == 3 { seen.callback(.success(())) } }
        manager.addHighWatermarkListener { p, hw in if p === log && hw == 3 { managerSeen.callback(.success(())) } }
        try appendDurably(log, makeRecords(count: 3))
        XCTAssertEqual(seen.wait(for: 1).count, 1)
        XCTAssertEqual(managerSeen.wait(for: 1).count, 1)
        log.removeHighWatermarkListener(token)
    }

    func testDeletePartitions() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        let p0 = try manager.openOrCreate(topic: "gone", partition: 0)
        _ = try manager.openOrCreate(topic: "gone", partition: 1)
        let kept = try manager.openOrCreate(topic: "gone-2", partition: 0)
        try appendDurably(p0, makeRecords(count: 2))
        try appendDurably(kept, makeRecords(count: 2))
        try manager.deletePartitions(topic: "gone")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "/gone-0"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "/gone-1"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path + "/gone-2-0"))
        XCTAssertNil(manager.partitionLog(topic: "gone", partition: 0))
        XCTAssertNotNil(manager.partitionLog(topic: "gone-2", partition: 0))
        let records = makeRecords(count: 1)
        let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 0)
        XCTAssertThrowsError(try p0.append(records, batches: headers, logAppendTime: false, nowMs: 0, onDurable: { _ in })) {
            XCTAssertEqual($0 as? StorageError, .closed(topic: "gone", partition: 0))
        }
        let fresh = try manager.openOrCreate(topic: "gone", partition: 0)
        XCTAssertEqual(fresh.logEndOffset, 0)
    }

    func testInvalidTopicNames() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        for bad in ["", ".", "..", "a/b", "x y", String(repeating: "a", count: 250)] {
            XCTAssertThrowsError(try manager.openOrCreate(topic: bad, partition: 0)) {
                XCTAssertEqual(($0 as? StorageError)?.kafkaErrorCode, 17)
            }
        }
        XCTAssertThrowsError(try manager.openOrCreate(topic: "ok", partition: -1))
        XCTAssertEqual(LogManager.parseDirectoryName("my-topic-12"), PartitionKey(topic: "my-topic", partition: 12))
        XCTAssertNil(LogManager.parseDirectoryName("noPartition"))
    }
}

final class AppendEdgeTests: XCTestCase {
    func testMultiBatchAppend() throws {
        let dir = TestDirectory()
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "t", partition: 0)
        try appendDurably(log, makeRecords(count: 1))
        var records = ByteBuffer()
        for i in 0..<40 {
            var one = makeRecords(count: 1 + i % 4, valueBytes: 50, tag: "\(i)")
            records.writeBuffer(&one)
        }
        let info = try appendDurably(log, records)
        XCTAssertEqual(info.baseOffset, 1)
        let stored = try readAll(log)
        XCTAssertEqual(stored.count, 41)
        XCTAssertEqual(stored.last?.nextOffset, info.lastOffset + 1)
        for (prev, next) in zip(stored, stored.dropFirst()) { XCTAssertEqual(prev.nextOffset, next.baseOffset) }
        // The sparse index (256 bytes) has entries inside this single append: mid-append lookups work.
        for h in stored {
            let got = try parseBatchHeaders(log.read(from: h.lastOffset, maxBytes: 0, minOneBatch: true))
            XCTAssertEqual(got.first?.baseOffset, h.baseOffset)
        }
    }

    /// Consumers must not see data before it is fdatasync'ed: hold the flusher inside fsync.
    func testHighWatermarkWaitsForFsync() throws {
        let dir = TestDirectory()
        let gate = DispatchSemaphore(value: 0)
        let entered = DispatchSemaphore(value: 0)
        final class Flag: @unchecked Sendable { var armed = false; let lock = NSLock() }
        let flag = Flag()
        let manager = try makeManager(dir) { config in
            config.faultInjector = { point, _ in
                if point == .fsync && flag.lock.withLock({ flag.armed }) {
                    entered.signal()
                    gate.wait()
                }
                return nil
            }
        }
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "t", partition: 0)
        flag.lock.withLock { flag.armed = true }
        let records = makeRecords(count: 3)
        let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 0)
        let waiter = DurableWaiter()
        let first = try log.append(records, batches: headers, logAppendTime: false, nowMs: 0, onDurable: waiter.callback)
        XCTAssertEqual(entered.wait(timeout: .now() + 10), .success)
        // While the flusher is inside fsync, more appends arrive; they ride the next group commit.
        let second = try log.append(records, batches: headers, logAppendTime: false, nowMs: 0, onDurable: waiter.callback)
        let third = try log.append(records, batches: headers, logAppendTime: false, nowMs: 0, onDurable: waiter.callback)
        XCTAssertEqual([first.baseOffset, second.baseOffset, third.baseOffset], [0, 3, 6])
        XCTAssertEqual(log.logEndOffset, 9)
        XCTAssertEqual(log.highWatermark, 0)
        XCTAssertEqual(try log.read(from: 0, maxBytes: 1 << 20, minOneBatch: true).readableBytes, 0)
        XCTAssertNil(log.offsetForTimestamp(0))
        XCTAssertEqual(waiter.wait(for: 1, timeoutSeconds: 0.1).count, 0)
        flag.lock.withLock { flag.armed = false }
        gate.signal()
        XCTAssertEqual(waiter.wait(for: 3).count, 3)
        XCTAssertEqual(log.highWatermark, 9)
        XCTAssertEqual(try readAll(log).map(\.baseOffset), [0, 3, 6])
    }
}
