import Foundation
import SiltRing
@testable import SiltWAL
import XCTest

/// The WAL's hand-off region and its frame encoding, as the WAL writer publishes them and a
/// broker or uploader (another process, another mapping) reads them.
final class WALStateTests: XCTestCase {
    func frame(stream: UInt64, epoch: Int64 = 1, base: Int64, count: UInt32, payload: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: WALFrameCodec.headerBytes)
        out.withUnsafeMutableBytes {
            WALFrameCodec.encodeHeader(streamId: stream, streamEpoch: epoch, baseOffset: base, count: count,
                                       payloadLength: payload.count, into: $0)
        }
        return out + payload
    }

    func testARecoveryIsPublishedToAnotherMapping() throws {
        let fd = try SharedMemory.createMemfd(name: "t-walstate")
        defer { close(fd) }
        let wal = try WALState.create(fd: fd, tailBytesMax: 4096)
        let reader = try WALState.attach(fd: fd)
        XCTAssertEqual(reader.readyGeneration, 0)
        XCTAssertFalse(reader.waitReady(timeout: .milliseconds(20)), "not ready before a publication")

        let frames = frame(stream: 7, epoch: 3, base: 10, count: 2, payload: [1, 2, 3])
            + frame(stream: 8, epoch: 1 << 40, base: 0, count: 1, payload: [])
        wal.publishRecovery(startLSN: 4096, endLSN: 8192, frames: frames)
        XCTAssertTrue(reader.waitReady(timeout: .seconds(1)))
        XCTAssertEqual(reader.readyGeneration, 1)
        XCTAssertEqual(reader.recoveredStartLSN, 4096)
        XCTAssertEqual(reader.recoveredEndLSN, 8192)
        XCTAssertEqual(reader.durableLSN, 8192, "everything recovered is durable")
        let decoded = try WALFrameCodec.decode(reader.recoveredFrames)
        XCTAssertEqual(decoded.map(\.streamId), [7, 8])
        XCTAssertEqual(decoded.map(\.baseOffset), [10, 0])
        XCTAssertEqual(decoded.map(\.streamEpoch), [3, 1 << 40], "each frame keeps the epoch it was appended in")
        XCTAssertEqual(decoded.map(\.count), [2, 1])
        XCTAssertEqual(decoded.map { Array($0.payload) }, [[1, 2, 3], []])

        wal.storeDurable(12288)
        wal.storeUsage(usedBytes: 5, capacityBytes: 10)
        XCTAssertEqual(reader.durableLSN, 12288)
        XCTAssertEqual(reader.usedBytes, 5)
        XCTAssertEqual(reader.capacityBytes, 10)
    }

    func testAttachRefusesARegionWithoutTheMagic() throws {
        let fd = try SharedMemory.createMemfd(name: "t-walstate-bad")
        defer { close(fd) }
        _ = try LogRing.create(fd: fd, capacityBytes: 1 << 16)   // some other region
        XCTAssertThrowsError(try WALState.attach(fd: fd))
    }

    func testDecodeRefusesFramesThatDoNotFit() throws {
        let good = frame(stream: 1, base: 0, count: 1, payload: [9, 9, 9, 9])
        let negativeEpoch = frame(stream: 1, epoch: -1, base: 0, count: 1, payload: [9])
        for bad in [Array(good.dropLast()), Array(good.prefix(WALFrameCodec.headerBytes - 1)), negativeEpoch] {
            XCTAssertThrowsError(try bad.withUnsafeBytes { try WALFrameCodec.decode($0) }) {
                XCTAssertTrue($0 is WALFrameCodec.DecodeError, "\($0)")
            }
        }
        XCTAssertEqual(try [UInt8]().withUnsafeBytes { try WALFrameCodec.decode($0) }.count, 0)
    }
}
