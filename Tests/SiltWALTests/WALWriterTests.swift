import Foundation
import SiltRing
import XCTest
@testable import SiltWAL

/// The WAL role's writer loop on a real log buffer: frames appended to the ring come back,
/// byte for byte, from the device after a reopen; durability is reported on both channels;
/// trim commands move the WAL's trim point; a writer attached after a restart hands the
/// recovered tail over.
final class WALWriterTests: XCTestCase {
    var fds: [Int32] = []
    var paths: [String] = []

    override func tearDown() {
        for fd in fds { close(fd) }
        for p in paths { unlink(p) }
    }

    func memfd(_ name: String) throws -> Int32 {
        let fd = try SharedMemory.createMemfd(name: name)
        fds.append(fd)
        return fd
    }

    /// Runs `writer` on a thread; the returned closure stops it and waits until it drained.
    func start(_ writer: WALWriter) -> () -> Void {
        let done = DispatchSemaphore(value: 0)
        Thread {
            do { try writer.run() } catch { XCTFail("WAL writer failed: \(error)") }
            done.signal()
        }.start()
        return {
            writer.stop()
            XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "the writer did not drain")
        }
    }

    func testFramesAreDurableReportedTrimmedAndRecoveredByteForByte() throws {
        let path = WALTestSupport.tempPath()
        paths.append(path)
        let config = WALConfig(maxRecordPayloadBytes: 256 << 10, maxInFlightWrites: 4, durability: .dsyncWrite)
        let ring = try LogRing.create(fd: try memfd("ring"), capacityBytes: 1 << 20)
        let durable = try ControlRing.create(fd: try memfd("durable"), slotCount: 64)
        let trims = try ControlRing.create(fd: try memfd("trim"), slotCount: 8)
        let state = try WALState.create(fd: try memfd("state"), tailBytesMax: 1 << 20)

        var (wal, recovered) = try WAL.open(path: path, capacityBytes: 1 << 20, nodeId: 3, config: config,
                                            logger: WALTestSupport.logger)
        var writer = WALWriter(wal: wal, ring: ring, durableNotices: durable, trimCommands: trims, state: state,
                               logger: WALTestSupport.logger)
        try writer.attach(recovered: recovered)
        XCTAssertEqual(state.recoveredFrames.count, 0, "a fresh WAL hands over nothing")
        var stop = start(writer)

        // Frames of two streams, some large enough to need several group commits.
        var sent: [(stream: UInt64, epoch: Int64, base: Int64, count: UInt32, payload: [UInt8])] = []
        var ends: [UInt64: Int64] = [:]
        for i in 0..<40 {
            let stream = UInt64(1 + i % 2)
            let payload = WALTestSupport.payload(seed: UInt64(i), count: i % 5 == 0 ? 20_000 : 100 + i)
            let base = ends[stream, default: 0]
            let count = UInt32(1 + i % 3)
            _ = try payload.withUnsafeBytes {
                try ring.append(streamId: stream, streamEpoch: Int64(7 + i), baseOffset: base, count: count, payload: $0,
                                timeout: .seconds(5))
            }
            ends[stream] = base + Int64(count)
            sent.append((stream, Int64(7 + i), base, count, payload))
        }
        let end = ring.writePosition
        let deadline = Date().addingTimeInterval(10)
        while ring.readPosition(0) < end && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        XCTAssertEqual(ring.readPosition(0), end, "the writer's cursor moves only past durable bytes")
        XCTAssertEqual(state.durableLSN, end)
        var lastNotice: UInt64 = 0
        while let m = durable.tryPop() {
            XCTAssertEqual(m.kind, ControlMessage.kindDurable)
            XCTAssertGreaterThan(m.value, lastNotice, "durable notices only move forward")
            lastNotice = m.value
        }
        XCTAssertEqual(lastNotice, end)
        stop()
        XCTAssertEqual(wal.durableLSN, end)
        try wal.close()

        // Reopened (a restart of the node): the records hold exactly the frames, in order.
        (wal, recovered) = try WAL.open(path: path, capacityBytes: 1 << 20, nodeId: 3, config: config,
                                        logger: WALTestSupport.logger)
        XCTAssertEqual(wal.headLSN, end)
        writer = WALWriter(wal: wal, ring: ring, durableNotices: durable, trimCommands: trims, state: state,
                           logger: WALTestSupport.logger)
        try writer.attach(recovered: recovered)
        XCTAssertEqual(state.recoveredEndLSN, end)
        let frames = try WALFrameCodec.decode(state.recoveredFrames)
        XCTAssertEqual(frames.count, sent.count)
        for (f, s) in zip(frames, sent) {
            XCTAssertEqual([f.streamId, UInt64(f.baseOffset), UInt64(f.count), UInt64(f.streamEpoch)],
                           [s.stream, UInt64(s.base), UInt64(s.count), UInt64(s.epoch)])
            XCTAssertEqual(Array(f.payload), s.payload)
        }

        // A trim command (the uploader's, after a commit) moves the trim point.
        stop = start(writer)
        XCTAssertTrue(trims.tryPush(ControlMessage(kind: ControlMessage.kindTrim, value: end)))
        let trimDeadline = Date().addingTimeInterval(10)
        while trims.count > 0 && Date() < trimDeadline { Thread.sleep(forTimeInterval: 0.005) }   // popped: applied
        stop()
        XCTAssertEqual(wal.trimLSN, end)
        XCTAssertEqual(state.usedBytes, 0)
        try wal.close()
        (wal, recovered) = try WAL.open(path: path, capacityBytes: 1 << 20, nodeId: 3, config: config,
                                        logger: WALTestSupport.logger)
        XCTAssertEqual(recovered, [], "nothing past the trim point")
        try wal.close()
    }
}
