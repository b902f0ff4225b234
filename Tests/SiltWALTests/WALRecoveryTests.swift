import Foundation
import XCTest
@testable import SiltWAL

final class WALRecoveryTests: XCTestCase {
    var paths: [String] = []
    override func tearDown() { for p in paths { unlink(p) } }
    func newPath(_ name: String = #function) -> String {
        let p = WALTestSupport.tempPath(name); paths.append(p); return p
    }

    static let capacity: UInt64 = 8 << 20

    /// Writes `count` records (sizes vary, some with LSN spans larger than the payload).
    static func writeRecords(_ wal: WAL, count: Int, seedBase: UInt64, into model: inout [ModelRecord]) throws {
        for i in 0..<count {
            let size = [0, 1, 100, 4032, 4033, 9000, 65536, 20000][i % 8]
            let bytes = WALTestSupport.payload(seed: seedBase + UInt64(i), count: size)
            let extra: UInt64 = i % 3 == 0 ? 17 : (size == 0 ? 1 : 0)  // a span is never empty
            let start = wal.headLSN
            let t = try wal.submitReaping(bytes, span: extra)
            model.append(ModelRecord(startLSN: start, endLSN: t.endLSN, payload: bytes, ticket: t))
        }
        try wal.drain()
    }

    static func roundTrip(path: String, capacity: UInt64, test: XCTestCase) throws {
        let cfg = WALTestSupport.smallConfig()
        var model: [ModelRecord] = []
        do {
            let (wal, rec) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 7, config: cfg,
                                          logger: WALTestSupport.logger)
            XCTAssertTrue(rec.isEmpty)
            try writeRecords(wal, count: 40, seedBase: 1, into: &model)
            XCTAssertEqual(wal.durableLSN, model.last!.endLSN)
            XCTAssertEqual(wal.writes, 40)
            XCTAssertGreaterThanOrEqual(wal.bytesWritten, 40 * 4096)
            try wal.close()
        }
        let (wal, rec) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 7, config: cfg,
                                      logger: WALTestSupport.logger)
        assertRecovered(rec, equal: model)
        XCTAssertEqual(wal.durableLSN, model.last!.endLSN)
        XCTAssertEqual(wal.headLSN, model.last!.endLSN)
        try wal.close()
    }

    enum Damage: CaseIterable { case flipCRCByte, tornLastBlock, garbageAtNext, zeroedHeader }

    static func tornWrite(path: String, capacity: UInt64, damage: Damage) throws {
        let cfg = WALTestSupport.smallConfig()
        var model: [ModelRecord] = []
        var victim: WriteTicket
        do {
            let (wal, _) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 1, config: cfg,
                                        logger: WALTestSupport.logger)
            try writeRecords(wal, count: 10, seedBase: 100, into: &model)
            if damage == .garbageAtNext {
                let next = model.last!.ticket!
                victim = WriteTicket(sequence: next.sequence + 1, startLSN: next.endLSN, endLSN: next.endLSN + 1,
                                     deviceOffset: next.deviceOffset + next.recordBytes, recordBytes: 4096)
            } else {
                // The final write: 3 blocks, so "torn" can mean its last block never landed.
                victim = try wal.submitReaping(WALTestSupport.payload(seed: 999, count: 10000))
                try wal.drain()
            }
            try wal.close()
        }
        let o = victim.deviceOffset
        switch damage {
        case .flipCRCByte:
            var b = try WALTestSupport.plainRead(path: path, offset: o + 4, count: 1)
            b[0] ^= 0x5A
            try WALTestSupport.plainWrite(path: path, offset: o + 4, bytes: b)
        case .tornLastBlock:
            try WALTestSupport.plainWrite(path: path, offset: o + 8192, bytes: [UInt8](repeating: 0, count: 4096))
        case .garbageAtNext:
            try WALTestSupport.plainWrite(path: path, offset: o, bytes: WALTestSupport.payload(seed: 4242, count: 4096))
        case .zeroedHeader:
            try WALTestSupport.plainWrite(path: path, offset: o, bytes: [UInt8](repeating: 0, count: 2048))
        }
        do {
            let (wal, rec) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 1, config: cfg,
                                          logger: WALTestSupport.logger)
            assertRecovered(rec, equal: model)
            XCTAssertEqual(wal.headLSN, model.last!.endLSN, "\(damage)")
            // New writes continue right where the valid log ended, over the damage.
            try writeRecords(wal, count: 5, seedBase: 500, into: &model)
            XCTAssertEqual(model[10].ticket!.deviceOffset, o, "next write reuses the damaged position")
            try wal.close()
        }
        let (wal, rec) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 1, config: cfg,
                                      logger: WALTestSupport.logger)
        assertRecovered(rec, equal: model)
        try wal.close()
    }

    func testRoundTrip() throws {
        try Self.roundTrip(path: newPath(), capacity: Self.capacity, test: self)
    }

    func testTornFinalWriteIsNotRecovered() throws {
        for damage in Damage.allCases {
            try Self.tornWrite(path: newPath("torn\(damage)"), capacity: Self.capacity, damage: damage)
        }
    }

    /// Writes that complete out of order before a crash: record N torn, N+1 intact. Recovery
    /// stops at N. A new N' of the same size puts the old N+1 exactly where N'+1 is expected,
    /// with the expected sequence and LSN; the generation rule must still reject it.
    func testRecordLeftOverFromEarlierOpenIsNotAContinuation() throws {
        let path = newPath()
        let cfg = WALTestSupport.smallConfig()
        var model: [ModelRecord] = []
        var tickets: [WriteTicket] = []
        do {
            let (wal, _) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1, config: cfg,
                                        logger: WALTestSupport.logger)
            for i in 0..<12 {
                let bytes = WALTestSupport.payload(seed: UInt64(i), count: 5000)
                let start = wal.headLSN
                let t = try wal.submitReaping(bytes)
                tickets.append(t)
                if i < 10 { model.append(ModelRecord(startLSN: start, endLSN: t.endLSN, payload: bytes)) }
            }
            try wal.drain()
            try wal.close()
        }
        var b = try WALTestSupport.plainRead(path: path, offset: tickets[10].deviceOffset + 100, count: 1)
        b[0] ^= 1
        try WALTestSupport.plainWrite(path: path, offset: tickets[10].deviceOffset + 100, bytes: b)
        do {
            let (wal, rec) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1, config: cfg,
                                          logger: WALTestSupport.logger)
            assertRecovered(rec, equal: model)
            let bytes = WALTestSupport.payload(seed: 777, count: 5000)  // same size and LSN span as old #10
            let t = try wal.submitReaping(bytes)
            XCTAssertEqual(t.deviceOffset, tickets[10].deviceOffset)
            XCTAssertEqual(t.endLSN, tickets[10].endLSN)
            model.append(ModelRecord(startLSN: t.startLSN, endLSN: t.endLSN, payload: bytes))
            try wal.drain()
            try wal.close()
        }
        let (wal, rec) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1, config: cfg,
                                      logger: WALTestSupport.logger)
        assertRecovered(rec, equal: model)  // old #11 is not returned
        XCTAssertEqual(rec.count, 11)
        try wal.close()
    }

    func testHeaderSlotsAndCorruptHeaders() throws {
        let path = newPath()
        let cfg = WALTestSupport.smallConfig()
        var model: [ModelRecord] = []
        var trims: [UInt64] = []
        var newestSlot: UInt64 = 0
        do {
            let (wal, _) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 3, config: cfg,
                                        logger: WALTestSupport.logger)
            try Self.writeRecords(wal, count: 30, seedBase: 10, into: &model)
            for k in [5, 11, 17] {
                trims.append(try wal.trim(to: model[k].endLSN))
                XCTAssertEqual(wal.trimLSN, model[k + 1].startLSN)
            }
            newestSlot = wal.header.sequence % 2
            try wal.close()
        }
        XCTAssertEqual(trims, [model[6].startLSN, model[12].startLSN, model[18].startLSN])
        // Corrupt the newest slot: the older one (the previous trim) is used, still consistent.
        try WALTestSupport.plainWrite(path: path, offset: newestSlot * 4096 + 20, bytes: [0xFF, 0xEE])
        do {
            let (wal, rec) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 3, config: cfg,
                                          logger: WALTestSupport.logger)
            XCTAssertEqual(wal.trimLSN, trims[1])
            assertRecovered(rec, equal: Array(model[12...]))
            try wal.close()
        }
        // Wrong capacity / node id: typed refusals.
        XCTAssertThrowsError(try WAL.open(path: path, capacityBytes: Self.capacity - 4096, nodeId: 3, config: cfg,
                                          logger: WALTestSupport.logger)) { error in
            guard case WALError.capacityMismatch = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 4, config: cfg,
                                          logger: WALTestSupport.logger)) { error in
            guard case WALError.nodeIdMismatch = error else { return XCTFail("\(error)") }
        }
        // Both slots corrupt, device not blank: refused unless the caller asks to format.
        try WALTestSupport.plainWrite(path: path, offset: 20, bytes: [1, 2, 3])
        try WALTestSupport.plainWrite(path: path, offset: 4096 + 20, bytes: [1, 2, 3])
        XCTAssertThrowsError(try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 3, config: cfg,
                                          logger: WALTestSupport.logger)) { error in
            XCTAssertEqual(error as? WALError, .headersCorrupt(path: path))
        }
        let (wal, rec) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 3,
                                      config: WALTestSupport.smallConfig(format: .formatIfNoValidHeader),
                                      logger: WALTestSupport.logger)
        XCTAssertTrue(rec.isEmpty, "a new format id: the old records are not this log's")
        XCTAssertEqual(wal.trimLSN, 0)
        XCTAssertEqual(wal.headLSN, 0)
        try wal.close()
    }
}
