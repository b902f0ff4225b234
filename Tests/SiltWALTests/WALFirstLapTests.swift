import CSupport
import Foundation
import XCTest
@testable import SiltWAL

/// `FirstLapPreparer`: a file WAL's holes ahead of the head are zeroed on its own thread, and
/// no record is ever zeroed, however the writer races it.
final class WALFirstLapTests: XCTestCase {
    var paths: [String] = []
    override func tearDown() { for p in paths { unlink(p) } }
    func newPath(_ name: String = #function) -> String {
        let p = WALTestSupport.tempPath(name); paths.append(p); return p
    }

    static let waitS = 10.0

    func config(_ bounds: WALPrepareBounds?) -> WALConfig {
        var c = WALTestSupport.smallConfig()
        c.prepare = bounds
        return c
    }

    /// The first hole at or after `offset` (the file's size when there is none).
    func firstHole(_ path: String, from offset: UInt64) throws -> UInt64 {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Errno(errno) }
        defer { close(fd) }
        let r = silt_seek_hole_data(fd, offset, 1)
        guard r >= 0 else { throw Errno(Int32(-r)) }
        return UInt64(r)
    }

    func waitFor(_ what: String, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(Self.waitS)
        while try !condition() {
            guard Date() < deadline else { return XCTFail("not within \(Self.waitS) s: \(what)") }
            usleep(10_000)
        }
    }

    func testHolesAheadOfTheHeadAreZeroedAndTheMarginIsLeft() throws {
        let path = newPath()
        let bounds = WALPrepareBounds(lookaheadBytes: 1 << 20, marginBytes: 64 << 10, chunkBytes: 128 << 10)
        let capacity: UInt64 = 8 << 20
        let (wal, _) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 1, config: config(bounds),
                                    logger: WALTestSupport.logger)
        XCTAssertNotNil(wal.preparer, "a fresh (fallocated) file has holes")
        let a = WALLayout.areaStartOffset
        try waitFor("zeros from the margin to the lookahead before any record") {
            try firstHole(path, from: a + bounds.marginBytes) >= a + bounds.lookaheadBytes
        }
        XCTAssertEqual(try firstHole(path, from: a), a, "the margin after the head is left alone")
        var model: [ModelRecord] = []
        try WALRecoveryTests.writeRecords(wal, count: 8, seedBase: 1, into: &model)
        let head = wal.headOffset
        try waitFor("zeros up to the lookahead after the head moved") {
            try firstHole(path, from: head + bounds.marginBytes) >= head + bounds.lookaheadBytes
        }
        XCTAssertGreaterThan(try XCTUnwrap(wal.preparer).zeroedBytes, 0)
        XCTAssertLessThan(try firstHole(path, from: head + bounds.lookaheadBytes + UInt64(bounds.chunkBytes)), capacity,
                          "nothing beyond the lookahead")
        try wal.close()
        let (again, recovered) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 1, config: config(bounds),
                                              logger: WALTestSupport.logger)
        assertRecovered(recovered, equal: model)
        try again.close()
    }

    /// No margin, a small lookahead, small chunks each held 2 ms: the writer keeps running into
    /// the chunk being zeroed (and waits), around the file more than once with trims. Every record is
    /// recovered intact, and once every block was written the preparer ends by itself.
    func testRecordsRacingThePreparerAreNeverZeroedAndItEndsWhenTheFileIsWrittenThrough() throws {
        let path = newPath()
        let bounds = WALPrepareBounds(lookaheadBytes: 256 << 10, marginBytes: 0, chunkBytes: 16 << 10)
        let capacity: UInt64 = 2 << 20
        let (wal, _) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 2, config: config(bounds),
                                    logger: WALTestSupport.logger)
        let preparer = try XCTUnwrap(wal.preparer)
        preparer.holdEachClaim(ms: 2)   // every claim lasts long enough for the writer to run into
        var model: [ModelRecord] = []
        var written: UInt64 = 0
        var round: UInt64 = 0
        while written < 3 * capacity {   // three laps: the first prepares, the second zeroes any skipped tail
            var batch: [ModelRecord] = []
            try WALRecoveryTests.writeRecords(wal, count: 8, seedBase: 100 * round, into: &batch)
            written += batch.reduce(0) { $0 + WALLayout.recordBytes(payloadBytes: $1.payload.count) }
            model.append(contentsOf: batch)
            round += 1
            // Keep the last batch live, trim the rest: the head wraps round the file.
            if model.count > batch.count {
                let keepFrom = model.count - batch.count
                try wal.trim(to: model[keepFrom - 1].endLSN)
                model.removeFirst(keepFrom)
            }
        }
        XCTAssertGreaterThan(preparer.writerWaitCount, 0, "the writer ran into a chunk being zeroed (the race is exercised)")
        try waitFor("the preparer ends once the file has no hole") { !preparer.isRunning }
        XCTAssertEqual(try firstHole(path, from: WALLayout.areaStartOffset), capacity, "every block written")
        try wal.close()
        let (again, recovered) = try WAL.open(path: path, capacityBytes: capacity, nodeId: 2, config: config(bounds),
                                              logger: WALTestSupport.logger)
        XCTAssertNil(again.preparer, "a file written through needs no preparer")
        assertRecovered(recovered, equal: model)
        try again.close()
    }

    func testNoPreparerWhenOffOrWhenTheFileIsWrittenAlready() throws {
        let capacity: UInt64 = 4 << 20
        let off = newPath()
        let (a, _) = try WAL.open(path: off, capacityBytes: capacity, nodeId: 3, config: config(nil),
                                  logger: WALTestSupport.logger)
        XCTAssertNil(a.preparer)
        try a.close()

        let full = newPath()
        XCTAssertTrue(FileManager.default.createFile(atPath: full, contents: Data(count: Int(capacity))))
        let (b, _) = try WAL.open(path: full, capacityBytes: capacity, nodeId: 3, config: config(WALPrepareBounds()),
                                  logger: WALTestSupport.logger)
        XCTAssertNil(b.preparer, "no hole: nothing to prepare")
        try b.close()
    }
}
