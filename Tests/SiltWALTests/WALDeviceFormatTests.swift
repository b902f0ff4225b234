import CSupport
import Foundation
import XCTest
import SiltRing
@testable import SiltWAL

/// The device as a user meets it (issue 15): a device smaller than the default capacity is
/// taken whole, a blank one is formatted, anything else is refused with how to format it on
/// purpose, and `formatOnPurpose` (silt admin format-wal) erases only what it may. On a loop
/// device when root (see `makeDevice`), else on a regular file where the size rule does not apply.
extension WALDeviceTests {
    func testASmallerDeviceIsTakenWholeUnlessTheCapacityWasExplicit() throws {
        let path = try makeDevice()
        try XCTSkipIf(loopDevice == nil, "needs a loop device (root and losetup)")
        let defaultCapacity: UInt64 = 2 << 30
        XCTAssertEqual(try WAL.contents(path: path), .blank)
        do {
            let (wal, _) = try WAL.open(path: path, capacityBytes: defaultCapacity, nodeId: 7, fitToDevice: true,
                                        config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)
            XCTAssertEqual(wal.capacityBytes, Self.capacity, "the whole 8 MiB device")
            let ticket = try wal.submit(bytes: WALTestSupport.payload(seed: 3, count: 5000), startLSN: 0)
            while wal.durableLSN < ticket.endLSN { _ = try wal.reap(wait: true) }
            try wal.close()
        }
        // Reopened the same way: the same capacity, the record recovered.
        let (wal, recovered) = try WAL.open(path: path, capacityBytes: defaultCapacity, nodeId: 7, fitToDevice: true,
                                            config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)
        XCTAssertEqual(wal.capacityBytes, Self.capacity)
        XCTAssertEqual(recovered.map(\.endLSN), [5000])
        try wal.close()
        XCTAssertEqual(try WAL.contents(path: path), .siltWAL(nodeId: 7, capacityBytes: Self.capacity))
        // An explicit capacity beyond the device is refused, saying both sizes.
        XCTAssertThrowsError(try WAL.open(path: path, capacityBytes: defaultCapacity, nodeId: 7, fitToDevice: false,
                                          config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)) { e in
            XCTAssertEqual("\(e)", "block device \(path) has \(Self.capacity) bytes, capacity \(defaultCapacity) configured")
        }
    }

    func testADeviceHoldingSomethingElseIsRefusedUntilFormattedOnPurpose() throws {
        let path = try makeDevice()
        // What fio leaves: pseudo-random bytes from offset 0.
        try WALTestSupport.plainWrite(path: path, offset: 0, bytes: WALTestSupport.payload(seed: 9, count: 64 << 10))
        XCTAssertEqual(try WAL.contents(path: path), .other)
        XCTAssertThrowsError(try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 7,
                                          config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)) { e in
            XCTAssertEqual(e as? WALError, .headersCorrupt(path: path))
            XCTAssertEqual((e as? WALError)?.isConfigurationError, true)
            XCTAssertEqual("\(e)", "\(path) holds something other than a Silt WAL (no valid WAL header, and its first "
                           + "8 KiB are not zero: a filesystem, fio's data, or a WAL whose headers were damaged); refusing "
                           + "to format it. If nothing on it is needed, format it on purpose with "
                           + "`silt admin format-wal --path \(path)`, then start the node again")
        }
        // The refusal changed nothing.
        XCTAssertEqual(try WALTestSupport.plainRead(path: path, offset: 0, count: 64 << 10),
                       WALTestSupport.payload(seed: 9, count: 64 << 10))

        XCTAssertEqual(try WAL.formatOnPurpose(path: path, force: false),
                       "\(path): header slots erased (it held something other than a Silt WAL); "
                       + "the node formats it at its next start")
        XCTAssertEqual(try WAL.contents(path: path), .blank)
        XCTAssertEqual(try WAL.formatOnPurpose(path: path, force: false),
                       "\(path) is blank: the node formats it at its next start")
        let (wal, recovered) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 7,
                                            config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)
        XCTAssertTrue(recovered.isEmpty)
        XCTAssertEqual(wal.headLSN, 0)
        try wal.close()

        // A Silt WAL is erased only with force.
        XCTAssertThrowsError(try WAL.formatOnPurpose(path: path, force: false)) { e in
            XCTAssertEqual("\(e)", "\(path) holds the Silt WAL of node 7 (capacity \(Self.capacity) bytes); its records "
                           + "may not all be in object storage yet. Stop that node with SIGTERM (its uploader empties "
                           + "the WAL) before erasing it, or add --force to erase it anyway")
        }
        XCTAssertEqual(try WAL.contents(path: path), .siltWAL(nodeId: 7, capacityBytes: Self.capacity))
        _ = try WAL.formatOnPurpose(path: path, force: true)
        XCTAssertEqual(try WAL.contents(path: path), .blank)
    }

    func testAnOlderFormatVersionKeepsItsRefusalAndIsErasedOnlyWithForce() throws {
        let path = try makeDevice()
        let (wal, _) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 7,
                                    config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)
        try wal.close()
        // Both slots rewritten as version 1, with valid CRCs.
        for slot in 0..<2 {
            var bytes = try WALTestSupport.plainRead(path: path, offset: UInt64(slot) * 4096, count: 4096)
            bytes.withUnsafeMutableBytes { b in
                b.baseAddress!.storeLE(UInt32(1), at: 8)
                b.baseAddress!.storeLE(silt_crc32c(0, b.baseAddress!, WALHeader.crcOffset), at: WALHeader.crcOffset)
            }
            try WALTestSupport.plainWrite(path: path, offset: UInt64(slot) * 4096, bytes: bytes)
        }
        XCTAssertEqual(try WAL.contents(path: path), .siltWALOfVersion(1))
        XCTAssertThrowsError(try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 7,
                                          config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)) { e in
            XCTAssertEqual(e as? WALError, .unsupportedFormatVersion(path: path, version: 1))
            XCTAssertTrue("\(e)".hasPrefix("WAL \(path) has format version 1; this Silt reads and writes version 2 "
                                           + "(version 1 frames carry no stream epoch)"), "\(e)")
            XCTAssertTrue("\(e)".hasSuffix("then format it: `silt admin format-wal --path \(path) --force`"), "\(e)")
        }
        XCTAssertThrowsError(try WAL.formatOnPurpose(path: path, force: false)) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(path) holds a Silt WAL of format version 1; "), "\(e)")
        }
        XCTAssertEqual(try WAL.contents(path: path), .siltWALOfVersion(1))
        _ = try WAL.formatOnPurpose(path: path, force: true)
        let (reformatted, recovered) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 7,
                                                    config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)
        XCTAssertTrue(recovered.isEmpty)
        try reformatted.close()
    }
}

/// The WAL writer's stage times in the WAL state region, as the broker reads them.
final class WALStateTimingsTests: XCTestCase {
    func testAWriteIsFoundByAnyLSNItCoversOnceCompleteAndForgottenAfterTheTableWraps() throws {
        let fd = try SharedMemory.createMemfd(name: "t-wal-state")
        defer { close(fd) }
        let state = try WALState.create(fd: fd, tailBytesMax: 4096)
        state.recordSubmitted(write: 0, startLSN: 0, endLSN: 100, pickupNs: 10, submitNs: 20)
        state.recordSubmitted(write: 1, startLSN: 100, endLSN: 250, pickupNs: 30, submitNs: 40)
        XCTAssertNil(state.writeTimes(coveringEnd: 100), "not complete yet")
        state.recordCompleted(write: 0, completeNs: 50)
        state.recordCompleted(write: 1, completeNs: 60)
        XCTAssertEqual(state.writeTimes(coveringEnd: 1), .init(pickupNs: 10, submitNs: 20, completeNs: 50))
        XCTAssertEqual(state.writeTimes(coveringEnd: 100), .init(pickupNs: 10, submitNs: 20, completeNs: 50))
        XCTAssertEqual(state.writeTimes(coveringEnd: 101), .init(pickupNs: 30, submitNs: 40, completeNs: 60))
        XCTAssertNil(state.writeTimes(coveringEnd: 251))
        // 64 writes later write 0's slot holds write 64: LSN 100 is no longer found.
        for w in 2...WALState.timingSlots {
            state.recordSubmitted(write: w, startLSN: UInt64(w) * 1000, endLSN: UInt64(w) * 1000 + 10, pickupNs: 1, submitNs: 2)
            state.recordCompleted(write: w, completeNs: 3)
        }
        XCTAssertNil(state.writeTimes(coveringEnd: 100))
        XCTAssertEqual(state.writeTimes(coveringEnd: 101)?.completeNs, 60)
        XCTAssertEqual(state.recordedEndLSN(write: WALState.timingSlots), UInt64(WALState.timingSlots) * 1000 + 10)
    }
}
