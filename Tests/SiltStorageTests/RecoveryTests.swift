import Foundation
import NIOCore
import SiltRecords
import XCTest
@testable import SiltStorage

final class RecoveryTests: XCTestCase {
    enum Damage { case garbage, truncateMidBatch, flipByteInLastBatch, truncateMidHeader }

    /// Writes 5 batches, damages the end of the last segment, reopens: the log must hold exactly the
    /// batches before the damage, with the same offsets and bytes, and accept new appends after them.
    func checkRecovery(_ damage: Damage, segmentBytes: Int = 1 << 30) throws {
        let dir = TestDirectory()
        var before: [ByteBuffer] = []
        var headers: [RecordBatchHeader] = []
        let segmentPath: String
        do {
            let manager = try makeManager(dir, segmentBytes: segmentBytes)
            let log = try manager.openOrCreate(topic: "t", partition: 0)
            for i in 0..<5 { try appendDurably(log, makeRecords(count: 3, tag: "\(i)")) }
            headers = try readAll(log)
            for h in headers { before.append(try log.read(from: h.baseOffset, maxBytes: 0, minOneBatch: true)) }
            segmentPath = log.directory + "/" + Segment.fileName(baseOffset: log.segmentBaseOffsets.last!)
            manager.shutdown()
        }
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: segmentPath)[.size] as? Int)
        let lastSize = headers.last!.totalSize
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: segmentPath))
        var survivors = 5
        switch damage {
        case .garbage:
            handle.seekToEndOfFile()
            handle.write(Data([0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 1, 0, 1, 2, 3]))
        case .truncateMidBatch:
            handle.truncateFile(atOffset: UInt64(size - lastSize / 2))
            survivors = 4
        case .truncateMidHeader:
            handle.truncateFile(atOffset: UInt64(size - lastSize + 20))
            survivors = 4
        case .flipByteInLastBatch:
            handle.seek(toFileOffset: UInt64(size - 3))
            let byte = handle.readData(ofLength: 1)[0]
            handle.seek(toFileOffset: UInt64(size - 3))
            handle.write(Data([byte ^ 0x40]))
            survivors = 4
        }
        handle.closeFile()

        let manager = try makeManager(dir, segmentBytes: segmentBytes)
        defer { manager.shutdown() }
        let log = try XCTUnwrap(manager.partitionLog(topic: "t", partition: 0))
        let expectedEnd = headers[survivors - 1].nextOffset
        XCTAssertEqual(log.logEndOffset, expectedEnd, "\(damage)")
        XCTAssertEqual(log.highWatermark, expectedEnd)
        let after = try readAll(log)
        XCTAssertEqual(after.map(\.baseOffset), headers.prefix(survivors).map(\.baseOffset))
        for i in 0..<survivors {
            XCTAssertEqual(try log.read(from: headers[i].baseOffset, maxBytes: 0, minOneBatch: true), before[i])
        }
        let newSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: segmentPath)[.size] as? Int)
        XCTAssertEqual(newSize, size - (survivors == 5 ? 0 : lastSize), "file truncated to the last good batch")
        let info = try appendDurably(log, makeRecords(count: 2))
        XCTAssertEqual(info.baseOffset, expectedEnd)
        XCTAssertEqual(try readAll(log).count, survivors + 1)
    }

    func testGarbageTail() throws { try checkRecovery(.garbage) }
    func testTruncatedMidBatch() throws { try checkRecovery(.truncateMidBatch) }
    func testTruncatedMidHeader() throws { try checkRecovery(.truncateMidHeader) }
    func testFlippedByteInLastBatch() throws { try checkRecovery(.flipByteInLastBatch) }
    func testTornTailWithRolledSegments() throws { try checkRecovery(.flipByteInLastBatch, segmentBytes: 1024) }

    func testEmptyLogDirAndUnknownEntries() throws {
        let dir = TestDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/not_a_partition", withIntermediateDirectories: true)
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        XCTAssertTrue(manager.allPartitionLogs().isEmpty)
    }
}

final class FaultTests: XCTestCase {
    final class Faults: @unchecked Sendable {
        let lock = NSLock()
        var failWrite = false
        var failSync = false
        func inject(_ point: StorageFaultPoint, _ path: String) -> Int32? {
            lock.withLock {
                switch point {
                case .write where failWrite: failWrite = false; return ENOSPC
                case .fsync where failSync: return EIO
                default: return nil
                }
            }
        }
    }

    func testFailedWriteIsRolledBackAndLogStaysWritable() throws {
        let dir = TestDirectory()
        let faults = Faults()
        let manager = try makeManager(dir) { $0.faultInjector = { faults.inject($0, $1) } }
        defer { manager.shutdown() }
        let log = try manager.openOrCreate(topic: "t", partition: 0)
        try appendDurably(log, makeRecords(count: 3))
        faults.lock.withLock { faults.failWrite = true }
        let records = makeRecords(count: 4)
        let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 0)
        let called = DurableWaiter()
        XCTAssertThrowsError(try log.append(records, batches: headers, logAppendTime: false, nowMs: 0, onDurable: called.callback)) {
            XCTAssertEqual($0 as? StorageError, .io(errno: ENOSPC, operation: "pwrite", path: log.directory + "/00000000000000000000.log"))
        }
        XCTAssertEqual(log.logEndOffset, 3)
        let info = try appendDurably(log, makeRecords(count: 2))
        XCTAssertEqual(info.baseOffset, 3)
        XCTAssertEqual(try readAll(log).map(\.baseOffset), [0, 3])
        XCTAssertEqual(called.wait(for: 1, timeoutSeconds: 0.2).count, 0, "onDurable must not be called for a thrown append")
    }

    func testFailedFsyncFailsAppendAndTakesPartitionOffline() throws {
        let dir = TestDirectory()
        let faults = Faults()
        do {
            let manager = try makeManager(dir) { $0.faultInjector = { faults.inject($0, $1) } }
            defer { manager.shutdown() }
            let log = try manager.openOrCreate(topic: "t", partition: 0)
            try appendDurably(log, makeRecords(count: 3))
            faults.lock.withLock { faults.failSync = true }
            let records = makeRecords(count: 4)
            let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 0)
            let waiter = DurableWaiter()
            _ = try log.append(records, batches: headers, logAppendTime: false, nowMs: 0, onDurable: waiter.callback)
            let results = waiter.wait(for: 1)
            XCTAssertEqual(results.count, 1)
            guard case .failure(let error)? = results.first else { return XCTFail("expected failure") }
            XCTAssertEqual((error as? StorageError)?.kafkaErrorCode, 56)
            XCTAssertEqual(log.highWatermark, 3, "high watermark must not pass unsynced data")
            XCTAssertThrowsError(try log.read(from: 4, maxBytes: 100, minOneBatch: true))
            XCTAssertEqual(try readAll(log).map(\.baseOffset), [0])
            XCTAssertThrowsError(try log.append(records, batches: headers, logAppendTime: false, nowMs: 0, onDurable: { _ in }))
            faults.lock.withLock { faults.failSync = false }
        }
        // Recovery serves at least what was acknowledged, with the same offsets.
        let manager = try makeManager(dir)
        defer { manager.shutdown() }
        let log = try XCTUnwrap(manager.partitionLog(topic: "t", partition: 0))
        XCTAssertGreaterThanOrEqual(log.logEndOffset, 3)
        XCTAssertEqual(try readAll(log).first?.lastOffset, 2)
    }
}
