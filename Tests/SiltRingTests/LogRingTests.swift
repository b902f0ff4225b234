import CSupport
import XCTest
@testable import SiltRing

/// A memfd-backed ring for one test; closes the fd at the end.
final class RingFixture {
    let fd: Int32
    let ring: LogRing

    init(capacityBytes: Int = 64 * 1024) throws {
        fd = try SharedMemory.createMemfd(name: "silt-test-ring")
        ring = try LogRing.create(fd: fd, capacityBytes: capacityBytes)
    }

    deinit { close(fd) }
}

func bytes(_ n: Int, seed: UInt8) -> [UInt8] {
    (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

extension LogRing {
    @discardableResult
    func tryAppend(_ payload: [UInt8], stream: UInt64 = 1, epoch: Int64 = 1, offset: Int64 = 0, count: UInt32 = 1) throws -> (startLSN: UInt64, endLSN: UInt64)? {
        try payload.withUnsafeBytes { try tryAppend(streamId: stream, streamEpoch: epoch, baseOffset: offset, count: count, payload: $0) }
    }

    @discardableResult
    func append(_ payload: [UInt8], stream: UInt64 = 1, epoch: Int64 = 1, offset: Int64 = 0, count: UInt32 = 1,
                timeout: Duration?) throws -> (startLSN: UInt64, endLSN: UInt64) {
        try payload.withUnsafeBytes {
            try append(streamId: stream, streamEpoch: epoch, baseOffset: offset, count: count, payload: $0, timeout: timeout)
        }
    }
}

final class LogRingTests: XCTestCase {
    func testFramesRoundTripWithPositions() throws {
        let f = try RingFixture()
        let ring = f.ring
        XCTAssertEqual(ring.writePosition, 0)
        XCTAssertEqual(ring.freeBytes, 64 * 1024)
        XCTAssertEqual(ring.maxPayloadBytes, 16 * 1024)

        var expected: [(UInt64, Int64, UInt32, [UInt8], UInt64, UInt64)] = []
        for i in 0..<20 {
            let p = bytes(i * 13, seed: UInt8(i))
            let r = try XCTUnwrap(try ring.tryAppend(p, stream: UInt64(i % 3 + 1), epoch: Int64(i) << 33, offset: Int64(i * 10),
                                                     count: UInt32(i + 1)))
            XCTAssertEqual(r.endLSN - r.startLSN, UInt64((LogRing.frameHeaderBytes + p.count + 7) & ~7))
            XCTAssertEqual(r.startLSN % 8, 0)
            expected.append((UInt64(i % 3 + 1), Int64(i * 10), UInt32(i + 1), p, r.startLSN, r.endLSN))
        }
        XCTAssertEqual(ring.writePosition, expected.last!.5)
        XCTAssertEqual(ring.usedBytes, Int(ring.writePosition))

        for index in 0..<2 {
            let reader = ring.reader(index)
            XCTAssertEqual(reader.position, 0)
            let batch = try reader.peek()
            XCTAssertEqual(batch.frames.count, 20)
            XCTAssertEqual(batch.endLSN, ring.writePosition)
            for (frame, e) in zip(batch.frames, expected) {
                XCTAssertEqual(frame.streamId, e.0)
                XCTAssertEqual(frame.baseOffset, e.1)
                XCTAssertEqual(frame.streamEpoch, Int64(e.1 / 10) << 33, "the epoch travels with the frame")
                XCTAssertEqual(frame.count, e.2)
                XCTAssertEqual(Array(frame.payload), e.3)
                XCTAssertEqual(frame.startLSN, e.4)
                XCTAssertEqual(frame.endLSN, e.5)
            }
            // maxBytes bounds the batch but always yields one frame.
            let small = try reader.peek(maxBytes: 1)
            XCTAssertEqual(small.frames.count, 1)
            XCTAssertEqual(small.endLSN, expected[0].5)
            reader.advance(to: batch.endLSN)
            XCTAssertEqual(reader.position, ring.writePosition)
            XCTAssertTrue(try reader.peek().isEmpty)
        }
        XCTAssertEqual(ring.freeBytes, ring.capacityBytes)
    }

    func testPaddingAtWrapAndFramesNeverWrap() throws {
        let f = try RingFixture()
        let ring = f.ring
        let reader0 = ring.reader(0), reader1 = ring.reader(1)
        // 1000-byte payloads: 1040-byte frames; 63 fill 65520 bytes, leaving 16 at the end.
        var sequence: UInt64 = 0
        var sawPadding = false
        for round in 0..<5 {
            for _ in 0..<40 {
                let p = bytes(1000, seed: UInt8(truncatingIfNeeded: sequence))
                let r = try XCTUnwrap(try ring.tryAppend(p, stream: 9, offset: Int64(sequence)), "round \(round)")
                XCTAssertLessThanOrEqual(Int(r.startLSN & UInt64(ring.capacityBytes - 1)) + 1040, ring.capacityBytes, "a frame never wraps")
                sequence += 1
            }
            let before = reader0.position
            let batch = try reader0.peek()
            XCTAssertEqual(batch.frames.count, 40)
            let dataBytes = batch.frames.reduce(0) { $0 + Int($1.endLSN - $1.startLSN) }
            if Int(batch.endLSN - before) > dataBytes { sawPadding = true }
            for (k, frame) in batch.frames.enumerated() {
                XCTAssertEqual(frame.baseOffset, Int64(sequence) - 40 + Int64(k))
                XCTAssertEqual(Array(frame.payload), bytes(1000, seed: UInt8(truncatingIfNeeded: frame.baseOffset)))
            }
            reader0.advance(to: batch.endLSN)
            let b1 = try reader1.peek()
            XCTAssertEqual(b1.frames.map(\.baseOffset), batch.frames.map(\.baseOffset))
            reader1.advance(to: b1.endLSN)
        }
        XCTAssertTrue(sawPadding, "a padding frame was written and skipped")
        XCTAssertGreaterThan(ring.writePosition, UInt64(ring.capacityBytes * 3))
    }

    func testSmallGapAtEndIsSkippedByRule() throws {
        let f = try RingFixture()
        let ring = f.ring
        // Leave exactly 16 bytes before the end: too small for a padding header.
        let first = ring.capacityBytes - 16 - 1000 * 0
        // Frames of 8152 payload = 8192 bytes; 7 of them = 57344; then fill to cap - 16.
        for _ in 0..<7 { _ = try XCTUnwrap(try ring.tryAppend(bytes(8152, seed: 1))) }
        let rest = first - 7 * 8192 - LogRing.frameHeaderBytes  // payload that leaves 16 bytes
        _ = try XCTUnwrap(try ring.tryAppend(bytes(rest, seed: 2)))
        XCTAssertEqual(Int(ring.writePosition), ring.capacityBytes - 16)
        for i in 0..<2 { ring.reader(i).advance(to: ring.writePosition) }
        let r = try XCTUnwrap(try ring.tryAppend(bytes(40, seed: 3), stream: 5))
        XCTAssertEqual(Int(r.startLSN), ring.capacityBytes, "the 16-byte gap is skipped")
        let batch = try ring.reader(0).peek()
        XCTAssertEqual(batch.frames.count, 1)
        XCTAssertEqual(batch.frames[0].streamId, 5)
        XCTAssertEqual(Array(batch.frames[0].payload), bytes(40, seed: 3))
    }

    func testBackPressure() throws {
        let f = try RingFixture()
        let ring = f.ring
        let p = bytes(4056, seed: 7)  // 4096-byte frames: exactly 16 fill the ring
        for _ in 0..<16 { XCTAssertNotNil(try ring.tryAppend(p)) }
        XCTAssertEqual(ring.freeBytes, 0)
        XCTAssertNil(try ring.tryAppend(p), "tryAppend fails when full")
        XCTAssertNil(try ring.tryAppend([]), "even an empty frame needs 40 bytes")

        let t0 = ContinuousClock.now
        XCTAssertThrowsError(try ring.append(p, timeout: .milliseconds(100))) { XCTAssertEqual($0 as? RingError, .full) }
        let waited = ContinuousClock.now - t0
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(95))
        XCTAssertLessThan(waited, .seconds(5))

        // Reader 0 far ahead does not help: reader 1 holds the space.
        let r0 = ring.reader(0)
        r0.advance(to: try r0.peek().endLSN)
        XCTAssertEqual(ring.freeBytes, 0)
        XCTAssertNil(try ring.tryAppend(p), "slow reader 1 holds the space")

        // A blocked append succeeds as soon as reader 1 advances (from another thread).
        let r1 = ring.reader(1)
        let releaseTo = try r1.peek(maxBytes: 8192).endLSN
        XCTAssertEqual(releaseTo, 8192)
        let done = expectation(description: "reader advanced")
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) {
            r1.advance(to: releaseTo)
            done.fulfill()
        }
        let r = try ring.append(p, timeout: .seconds(10))
        XCTAssertEqual(r.startLSN, 16 * 4096)
        wait(for: [done], timeout: 10)
        XCTAssertEqual(ring.freeBytes, 4096)
        XCTAssertNotNil(try ring.tryAppend(p))
        XCTAssertNil(try ring.tryAppend(p))
    }

    func testPayloadTooLargeIsRejected() throws {
        let f = try RingFixture()
        XCTAssertThrowsError(try f.ring.tryAppend(bytes(16 * 1024 + 1, seed: 0))) {
            XCTAssertEqual($0 as? RingError, .payloadTooLarge(bytes: 16 * 1024 + 1, max: 16 * 1024))
        }
        XCTAssertNotNil(try f.ring.tryAppend(bytes(16 * 1024, seed: 0)))
        XCTAssertEqual(f.ring.writePosition, UInt64(16 * 1024 + LogRing.frameHeaderBytes))
    }

    func testAttachSeesTheSameState() throws {
        let f = try RingFixture(capacityBytes: 128 * 1024)
        for i in 0..<10 { _ = try XCTUnwrap(try f.ring.tryAppend(bytes(100 + i, seed: UInt8(i)), stream: 3, offset: Int64(i))) }
        let r0 = f.ring.reader(0)
        let firstFour = try r0.peek().frames[3].endLSN
        r0.advance(to: firstFour)

        let other = try LogRing.attach(fd: f.fd)
        XCTAssertEqual(other.capacityBytes, 128 * 1024)
        XCTAssertEqual(other.writePosition, f.ring.writePosition)
        XCTAssertEqual(other.readPosition(0), firstFour)
        XCTAssertEqual(other.readPosition(1), 0)
        XCTAssertEqual(other.freeBytes, f.ring.freeBytes)
        let batch = try other.reader(0).peek()
        XCTAssertEqual(batch.frames.map(\.baseOffset), [4, 5, 6, 7, 8, 9])
        XCTAssertEqual(Array(batch.frames[0].payload), bytes(104, seed: 4))
        // A write through the attached mapping is visible through the first.
        let r = try XCTUnwrap(try other.tryAppend(bytes(5, seed: 9), stream: 4, offset: 10))
        XCTAssertEqual(f.ring.writePosition, r.endLSN)
        XCTAssertEqual(try f.ring.reader(1).peek().frames.last?.streamId, 4)
    }

    func testAttachRejectsForeignRegions() throws {
        let fd = try SharedMemory.createMemfd(name: "silt-test-bad")
        defer { close(fd) }
        XCTAssertEqual(silt_shm_resize(fd, UInt64(LogRing.regionBytes(capacityBytes: 64 * 1024))), 0)
        XCTAssertThrowsError(try LogRing.attach(fd: fd)) { XCTAssertEqual($0 as? RingError, .notInitialized) }
        _ = try ControlRing.create(fd: fd, slotCount: 8)
        XCTAssertThrowsError(try LogRing.attach(fd: fd))
        XCTAssertThrowsError(try ControlRing.attach(fd: try SharedMemory.createMemfd(name: "empty")))
    }

    /// Any process may ask the uploader to upload up to a position; the largest ask stands,
    /// and another mapping (the uploader's process) sees it.
    func testUploadRequestsKeepTheLargest() throws {
        let f = try RingFixture()
        XCTAssertEqual(f.ring.uploadRequestPosition, 0)
        f.ring.requestUpload(through: 4096)
        f.ring.requestUpload(through: 1024)
        let other = try LogRing.attach(fd: f.fd)
        XCTAssertEqual(other.uploadRequestPosition, 4096, "a smaller request never lowers it")
        other.requestUpload(through: 8192)
        XCTAssertEqual(f.ring.uploadRequestPosition, 8192)
    }

    /// Stream upload requests: one slot per stream (asking twice takes one), seen by another
    /// mapping, cleared per stream; when every slot is taken the caller is told to fall back.
    func testStreamUploadRequestsTakeOneSlotEach() throws {
        let f = try RingFixture()
        XCTAssertTrue(f.ring.requestStreamUpload(0))
        XCTAssertTrue(f.ring.requestStreamUpload(0))
        XCTAssertTrue(f.ring.requestStreamUpload(UInt64.max - 1))
        let other = try LogRing.attach(fd: f.fd)
        XCTAssertEqual(Set(other.requestedStreamUploads), [0, UInt64.max - 1])
        other.completeStreamUpload(0)
        XCTAssertEqual(f.ring.requestedStreamUploads, [UInt64.max - 1])
        for id in 100..<UInt64(100 + LogRing.streamUploadSlotCount - 1) { XCTAssertTrue(f.ring.requestStreamUpload(id)) }
        XCTAssertFalse(f.ring.requestStreamUpload(7), "every slot taken")
        XCTAssertEqual(f.ring.requestedStreamUploads.count, LogRing.streamUploadSlotCount)
    }

    func testInitializePositions() throws {
        let f = try RingFixture()
        let lsn: UInt64 = 1_000_000_000_012 * 8
        f.ring.initializePositions(to: lsn)
        XCTAssertEqual(f.ring.writePosition, lsn)
        XCTAssertEqual(f.ring.readPosition(0), lsn)
        XCTAssertEqual(f.ring.readPosition(1), lsn)
        XCTAssertEqual(f.ring.freeBytes, f.ring.capacityBytes)
        let r = try XCTUnwrap(try f.ring.tryAppend(bytes(24, seed: 1), stream: 2, offset: 77))
        XCTAssertEqual(r.startLSN, lsn)
        XCTAssertEqual(r.endLSN, lsn + UInt64(LogRing.frameHeaderBytes + 24))
        let batch = try f.ring.reader(1).peek()
        XCTAssertEqual(batch.frames.count, 1)
        XCTAssertEqual(batch.frames[0].baseOffset, 77)
        XCTAssertEqual(try LogRing.attach(fd: f.fd).writePosition, lsn + UInt64(LogRing.frameHeaderBytes + 24))
    }

    func testCopyIfStillPresent() throws {
        let f = try RingFixture()
        let ring = f.ring
        let p = bytes(1000, seed: 42)
        let r = try XCTUnwrap(try ring.tryAppend(p, stream: 1, offset: 5))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ring.capacityBytes, alignment: 8)
        defer { buffer.deallocate() }

        XCTAssertTrue(ring.copyIfStillPresent(startLSN: r.startLSN, endLSN: r.endLSN, into: buffer))
        XCTAssertEqual(Array(buffer[40..<1040]), p)
        XCTAssertFalse(ring.copyIfStillPresent(startLSN: r.startLSN, endLSN: r.endLSN + 8, into: buffer),
                       "not yet written")

        // Overwrite: both readers move on, the writer laps the ring.
        let filler = bytes(4056, seed: 1)
        while ring.writePosition < UInt64(ring.capacityBytes) - 4096 {
            for i in 0..<2 { ring.reader(i).advance(to: ring.writePosition) }
            _ = try XCTUnwrap(try ring.tryAppend(filler))
        }
        XCTAssertTrue(ring.copyIfStillPresent(startLSN: r.startLSN, endLSN: r.endLSN, into: buffer),
                      "still intact just before the lap")
        for i in 0..<2 { ring.reader(i).advance(to: ring.writePosition) }
        _ = try XCTUnwrap(try ring.tryAppend(filler))
        _ = try XCTUnwrap(try ring.tryAppend(filler))
        XCTAssertGreaterThan(ring.writePosition, r.startLSN + UInt64(ring.capacityBytes))
        XCTAssertFalse(ring.copyIfStillPresent(startLSN: r.startLSN, endLSN: r.endLSN, into: buffer))

        // A range that wraps the end of the data area is copied in two pieces.
        let w = ring.writePosition
        let start = w - 100
        XCTAssertTrue(ring.copyIfStillPresent(startLSN: start, endLSN: w, into: buffer))
    }

    func testCorruptFrameIsDetected() throws {
        let f = try RingFixture()
        let ring = f.ring
        let r = try XCTUnwrap(try ring.tryAppend(bytes(200, seed: 3)))
        _ = try XCTUnwrap(try ring.tryAppend(bytes(10, seed: 4)))
        // Flip one payload bit through an independent mapping of the memfd.
        let other = try LogRing.attach(fd: f.fd)
        let at = other.data + Int(r.startLSN) + LogRing.frameHeaderBytes + 150
        at.storeBytes(of: at.load(as: UInt8.self) ^ 0x10, as: UInt8.self)
        XCTAssertThrowsError(try ring.reader(0).peek()) {
            guard case .corruptFrame(let lsn, let reason)? = $0 as? RingError else { return XCTFail("\($0)") }
            XCTAssertEqual(lsn, r.startLSN)
            XCTAssertTrue(reason.contains("CRC"), reason)
        }
        at.storeBytes(of: at.load(as: UInt8.self) ^ 0x10, as: UInt8.self)
        XCTAssertEqual(try ring.reader(0).peek().frames.count, 2)
        // A length that points past the write position.
        let len = other.data + Int(r.startLSN) + 4
        len.storeBytes(of: UInt32(64 * 1024), as: UInt32.self)
        XCTAssertThrowsError(try ring.reader(1).peek()) {
            guard case .corruptFrame(let lsn, _)? = $0 as? RingError else { return XCTFail("\($0)") }
            XCTAssertEqual(lsn, r.startLSN)
        }
    }

    func testWaitForDataWakesAndTimesOut() throws {
        let f = try RingFixture()
        let reader = f.ring.reader(0)
        let t0 = ContinuousClock.now
        XCTAssertFalse(reader.waitForData(after: 0, timeout: .milliseconds(50)))
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - t0, .milliseconds(45))
        let ring = f.ring
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(30)) {
            _ = try? ring.tryAppend(bytes(10, seed: 0))
        }
        XCTAssertTrue(reader.waitForData(after: 0, timeout: .seconds(10)))
        XCTAssertEqual(try reader.peek().frames.count, 1)
    }
}

final class ControlRingTests: XCTestCase {
    func testPushPopAndBounds() throws {
        let fd = try SharedMemory.createMemfd(name: "silt-test-control")
        defer { close(fd) }
        let ring = try ControlRing.create(fd: fd, slotCount: 4)
        XCTAssertNil(ring.tryPop())
        for i in 0..<4 { XCTAssertTrue(ring.tryPush(ControlMessage(kind: ControlMessage.kindDurable, flags: UInt32(i), value: UInt64(i) * 100))) }
        XCTAssertFalse(ring.tryPush(ControlMessage(kind: 9, value: 9)))
        let t0 = ContinuousClock.now
        XCTAssertFalse(ring.push(ControlMessage(kind: 9, value: 9), timeout: .milliseconds(50)))
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - t0, .milliseconds(45))
        XCTAssertEqual(ring.count, 4)

        let attached = try ControlRing.attach(fd: fd)
        XCTAssertEqual(attached.slotCount, 4)
        XCTAssertEqual(attached.pop(timeout: nil), ControlMessage(kind: 1, flags: 0, value: 0))
        XCTAssertTrue(ring.tryPush(ControlMessage(kind: ControlMessage.kindTrim, value: 400)))
        for i in 1..<4 { XCTAssertEqual(attached.tryPop()?.value, UInt64(i) * 100) }
        XCTAssertEqual(attached.tryPop(), ControlMessage(kind: ControlMessage.kindTrim, value: 400))
        XCTAssertNil(attached.pop(timeout: .milliseconds(20)))
        XCTAssertEqual(ring.pushedCount, 5)
        XCTAssertEqual(ring.poppedCount, 5)
    }
}
