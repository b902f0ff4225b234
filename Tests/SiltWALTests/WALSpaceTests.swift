import Foundation
import XCTest
@testable import SiltWAL

final class WALSpaceTests: XCTestCase {
    var paths: [String] = []
    override func tearDown() { for p in paths { unlink(p) } }
    func newPath(_ name: String = #function) -> String {
        let p = WALTestSupport.tempPath(name); paths.append(p); return p
    }

    static let capacity: UInt64 = 1 << 20

    /// Head wraps several times with trims in between; reopening after each wrap recovers
    /// exactly the live records (stale ones from the previous lap follow the head on disk).
    func testWrapAroundRecoversExactlyTheLiveRecords() throws {
        let path = newPath()
        let cfg = WALTestSupport.smallConfig()
        var (wal, rec) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1, config: cfg,
                                      logger: WALTestSupport.logger)
        XCTAssertTrue(rec.isEmpty)
        var live: [ModelRecord] = []
        var wraps = 0
        var reopens = 0
        var lastOffset: UInt64 = 0
        var seed: UInt64 = 0
        var rng = SystemRandomNumberGenerator()
        while wraps < 5 {
            seed += 1
            let bytes = WALTestSupport.payload(seed: seed, count: Int.random(in: 0...40_000, using: &rng))
            let start = wal.headLSN
            let t: WriteTicket
            do {
                t = try wal.submitReaping(bytes, span: seed % 4 == 0 ? 3 : 0)
            } catch WALError.full {
                try wal.drain()
                let dropCount = max(1, live.count / 2)
                let trimmed = try wal.trim(to: live[dropCount - 1].endLSN)
                live.removeFirst(dropCount)
                XCTAssertEqual(trimmed, live.first?.startLSN ?? wal.headLSN)
                continue
            }
            XCTAssertEqual(t.startLSN, start)
            live.append(ModelRecord(startLSN: start, endLSN: t.endLSN, payload: bytes, ticket: t))
            if t.deviceOffset < lastOffset {
                wraps += 1
                XCTAssertEqual(t.deviceOffset, WALLayout.areaStartOffset)
                // Reopen after a wrap (twice with a write in between, to exercise both ends).
                try wal.drain()
                try wal.close()
                (wal, rec) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1, config: cfg,
                                          logger: WALTestSupport.logger)
                reopens += 1
                assertRecovered(rec, equal: live)
                XCTAssertEqual(wal.headLSN, live.last!.endLSN)
                XCTAssertEqual(wal.trimLSN, live.first!.startLSN)
            }
            lastOffset = t.deviceOffset
            XCTAssertLessThanOrEqual(wal.usedBytes, Self.capacity - 8192)
        }
        // Trim everything: an empty log reopens empty, positioned at the head.
        try wal.drain()
        try wal.trim(to: wal.durableLSN)
        let head = wal.headLSN
        XCTAssertEqual(wal.usedBytes, 0)
        try wal.close()
        (wal, rec) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1, config: cfg,
                                  logger: WALTestSupport.logger)
        XCTAssertTrue(rec.isEmpty)
        XCTAssertEqual(wal.headLSN, head)
        XCTAssertEqual(reopens, 5)
        try wal.close()
    }

    func testFullThrowsAndTrimFreesSpace() throws {
        let path = newPath()
        let cfg = WALTestSupport.smallConfig()
        var (wal, _) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1, config: cfg,
                                    logger: WALTestSupport.logger)
        var model: [ModelRecord] = []
        var sawFull = false
        for i in 0..<1000 {
            let bytes = WALTestSupport.payload(seed: UInt64(i), count: 30_000)
            let start = wal.headLSN
            do {
                let t = try wal.submitReaping(bytes)
                model.append(ModelRecord(startLSN: start, endLSN: t.endLSN, payload: bytes, ticket: t))
            } catch WALError.full(let needed, let free) {
                XCTAssertEqual(needed, 32768)
                XCTAssertLessThan(free, needed)
                XCTAssertEqual(wal.headLSN, start, "a refused submit changes nothing")
                sawFull = true
                break
            }
        }
        XCTAssertTrue(sawFull)
        XCTAssertEqual(model.count, Int((Self.capacity - 8192) / 32768))  // 31 records, 24 KiB left
        // Fill the remainder with 1-block records until even those are refused.
        while true {
            let bytes = WALTestSupport.payload(seed: 9000 + UInt64(model.count), count: 100)
            let start = wal.headLSN
            do {
                let t = try wal.submitReaping(bytes)
                model.append(ModelRecord(startLSN: start, endLSN: t.endLSN, payload: bytes, ticket: t))
            } catch WALError.full { break }
        }
        XCTAssertEqual(wal.freeBytes, 0)
        XCTAssertEqual(wal.usedBytes, Self.capacity - 8192)
        try wal.drain()
        XCTAssertThrowsError(try wal.trim(to: wal.durableLSN + 1)) { e in
            guard case WALError.trimBeyondDurable = e else { return XCTFail("\(e)") }
        }
        // Trim a third: submits succeed again and wrap into the freed space.
        let drop = 10
        let freed = model[..<drop].reduce(UInt64(0)) { $0 + $1.ticket!.recordBytes }
        try wal.trim(to: model[drop - 1].endLSN)
        XCTAssertEqual(wal.freeBytes, freed)
        model.removeFirst(drop)
        var added = 0
        while true {
            let bytes = WALTestSupport.payload(seed: 5000 + UInt64(added), count: 4000)
            let start = wal.headLSN
            do {
                let t = try wal.submitReaping(bytes)
                model.append(ModelRecord(startLSN: start, endLSN: t.endLSN, payload: bytes, ticket: t))
                added += 1
            } catch WALError.full { break }
        }
        XCTAssertEqual(UInt64(added) * 4096, freed, "every freed byte is reused")
        try wal.drain()
        try wal.close()
        var rec: [RecoveredRecord]
        (wal, rec) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1, config: cfg,
                                  logger: WALTestSupport.logger)
        assertRecovered(rec, equal: model)  // nothing already written was harmed
        try wal.close()
    }

    /// Completions arrive out of order (fault point parks the first records' completions);
    /// the durable LSN must advance only contiguously.
    func testOutOfOrderCompletionsAdvanceDurableContiguously() throws {
        for mode in [WALDurabilityMode.dsyncWrite, .linkedFdatasync] {
            let path = newPath("ooo\(mode)")
            let (wal, _) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 1,
                                        config: WALTestSupport.smallConfig(mode), logger: WALTestSupport.logger)
            let base = wal.headLSN
            let first = wal.nextSequence
            wal.faults.parkedSequences = [first, first + 2]
            var tickets: [WriteTicket] = []
            for i in 0..<4 {
                tickets.append(try wal.submit(bytes: WALTestSupport.payload(seed: UInt64(i), count: 5000),
                                              startLSN: wal.headLSN))
            }
            XCTAssertThrowsError(try wal.submit(bytes: [1], startLSN: wal.headLSN)) { e in
                XCTAssertEqual(e as? WALError, .inFlightLimitReached(limit: 4))
            }
            // Reap every completion the kernel delivers: records 1 and 3 complete, 0 and 2 are parked.
            while wal.outstandingCompletions > 0 {
                XCTAssertNil(try wal.reap(wait: true), "durable must not pass the parked record 0")
            }
            XCTAssertEqual(wal.durableLSN, base)
            XCTAssertTrue(wal.inFlight[first + 1]!.completed)
            XCTAssertTrue(wal.inFlight[first + 3]!.completed)
            XCTAssertFalse(wal.inFlight[first]!.completed)
            // Release only record 0: durable advances to the end of record 1, not beyond 2.
            let keep = wal.parkedCompletions.filter { $0.userData >> 1 == first + 2 }
            wal.parkedCompletions = wal.parkedCompletions.filter { $0.userData >> 1 == first }
            wal.faults.parkedSequences = []
            XCTAssertEqual(try wal.reap(wait: false), tickets[1].endLSN)
            XCTAssertEqual(wal.durableLSN, tickets[1].endLSN)
            wal.parkedCompletions = keep
            XCTAssertEqual(try wal.reap(wait: false), tickets[3].endLSN)
            XCTAssertEqual(wal.durableLSN, tickets[3].endLSN)
            XCTAssertEqual(wal.inFlightWrites, 0)
            XCTAssertEqual(wal.fsyncs, mode == .linkedFdatasync ? 5 : 1)  // 1 = header at open
            try wal.close()
        }
    }
}
