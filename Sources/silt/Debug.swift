import ArgumentParser
import CSupport
import Foundation
import SiltRing

/// Hidden developer commands; the test suites spawn these as child processes.
struct Debug: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Developer tools (hidden).",
        shouldDisplay: false,
        subcommands: [RingPeer.self, DebugObjects.self, DebugMetadataLog.self])
}

/// One side of the cross-process ring stress test (Tests/SiltRingTests).
///
/// The parent creates the memfd (LogRing.create or ControlRing.create), spawns this command
/// with the fd inherited at `--fd`, and compares the summary line each child prints on stdout:
///
///     role=<role> frames=<n> bytes=<payload bytes> lsn=<end lsn> digest=<hex> seconds=<s>
///
/// The frame sequence is a pure function of `--seed`: frame i has a pseudo-random payload size,
/// stream id 1...7, per-stream consecutive base offsets, count 1...5, and a payload whose first
/// 8 bytes are i (little-endian) followed by a slice of a seeded pattern. Readers verify all of
/// it, byte for byte, in order; any mismatch exits 1 with a message on stderr.
struct RingPeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring-peer",
        abstract: "Write or read a shared-memory ring for the cross-process stress test.")

    @Option(help: "writer | reader (LogRing), control-producer | control-consumer (ControlRing).")
    var role: String

    @Option(help: "The inherited memfd of the ring.")
    var fd: Int32

    @Option(help: "Frames (or control messages) to write / expect.")
    var frames: Int

    @Option(help: "Seed of the deterministic frame sequence.")
    var seed: UInt64 = 1

    @Option(name: .customLong("reader-index"), help: "LogRing reader index (0 or 1) for --role reader.")
    var readerIndex: Int = 0

    @Option(name: .customLong("timeout-ms"), help: "Longest single wait before failing.")
    var timeoutMs: Int = 20_000

    func run() throws {
        let start = ContinuousClock.now
        let line: String
        switch role {
        case "writer": line = try runWriter()
        case "reader": line = try runReader()
        case "control-producer": line = try runControlProducer()
        case "control-consumer": line = try runControlConsumer()
        default: throw ValidationError("unknown role '\(role)'")
        }
        let seconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - start).components.seconds)
        print("role=\(role) \(line) seconds=\(String(format: "%.3f", seconds))")
        fflush(stdout)
    }

    private var timeout: Duration { .milliseconds(timeoutMs) }

    private func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("ring-peer \(role): \(message)\n".utf8))
        return ExitCode(1)
    }

    private func runWriter() throws -> String {
        let ring = try LogRing.attach(fd: fd)
        let pattern = StressPattern(seed: seed, maxPayloadBytes: ring.maxPayloadBytes)
        var nextOffset = [Int64](repeating: 0, count: StressPattern.streamCount + 1)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: ring.maxPayloadBytes, alignment: 8)
        defer { scratch.deallocate() }
        var digest = StressDigest()
        var bytes = 0
        var end: UInt64 = ring.writePosition
        var fullWaits = 0
        for i in 0..<frames {
            let f = pattern.frame(UInt64(i))
            pattern.fillPayload(UInt64(i), size: f.size, into: scratch.baseAddress!)
            let payload = UnsafeRawBufferPointer(start: scratch.baseAddress!, count: f.size)
            let baseOffset = nextOffset[Int(f.streamId)]
            nextOffset[Int(f.streamId)] += Int64(f.count)
            do {
                if let r = try ring.tryAppend(streamId: f.streamId, streamEpoch: 1, baseOffset: baseOffset, count: f.count, payload: payload) {
                    end = r.endLSN
                } else {
                    fullWaits += 1  // back-pressure: block on the futex until a reader advances
                    end = try ring.append(streamId: f.streamId, streamEpoch: 1, baseOffset: baseOffset, count: f.count,
                                          payload: payload, timeout: timeout).endLSN
                }
            } catch {
                throw fail("append of frame \(i) failed: \(error) (write \(ring.writePosition), reads \(ring.readPosition(0))/\(ring.readPosition(1)))")
            }
            digest.add(streamId: f.streamId, baseOffset: baseOffset, count: f.count, payload: payload)
            bytes += f.size
        }
        return "frames=\(frames) bytes=\(bytes) lsn=\(end) digest=\(digest.hex) fullWaits=\(fullWaits)"
    }

    private func runReader() throws -> String {
        let ring = try LogRing.attach(fd: fd)
        let reader = ring.reader(readerIndex)
        let pattern = StressPattern(seed: seed, maxPayloadBytes: ring.maxPayloadBytes)
        var nextOffset = [Int64](repeating: 0, count: StressPattern.streamCount + 1)
        var digest = StressDigest()
        var bytes = 0
        var i = 0
        var batches = 0
        var waits = 0
        while i < frames {
            let batch = try reader.peek()
            if batch.isEmpty {
                waits += 1
                guard reader.waitForData(after: batch.startLSN, timeout: timeout) else {
                    throw fail("no data after \(batch.startLSN) within \(timeoutMs) ms (\(i) frames read)")
                }
                continue
            }
            batches += 1
            for frame in batch.frames {
                guard i < frames else { throw fail("more frames than the \(frames) expected") }
                let f = pattern.frame(UInt64(i))
                let expectedOffset = nextOffset[Int(f.streamId)]
                guard frame.streamId == f.streamId, frame.baseOffset == expectedOffset, frame.count == f.count,
                      frame.payload.count == f.size else {
                    throw fail("frame \(i) at lsn \(frame.startLSN): stream \(frame.streamId) offset \(frame.baseOffset) count \(frame.count) size \(frame.payload.count), expected \(f.streamId)/\(expectedOffset)/\(f.count)/\(f.size)")
                }
                guard pattern.payloadMatches(UInt64(i), frame.payload) else {
                    throw fail("frame \(i) at lsn \(frame.startLSN): payload differs")
                }
                nextOffset[Int(f.streamId)] += Int64(f.count)
                digest.add(streamId: frame.streamId, baseOffset: frame.baseOffset, count: frame.count, payload: frame.payload)
                bytes += frame.payload.count
                i += 1
            }
            reader.advance(to: batch.endLSN)
        }
        // Anything more would be a duplicate: the writer writes exactly `frames`.
        let rest = try reader.peek()
        guard rest.frames.isEmpty else { throw fail("\(rest.frames.count) unexpected extra frames") }
        reader.advance(to: rest.endLSN)
        return "frames=\(i) bytes=\(bytes) lsn=\(reader.position) digest=\(digest.hex) batches=\(batches) waits=\(waits)"
    }

    private func runControlProducer() throws -> String {
        let ring = try ControlRing.attach(fd: fd)
        var digest: UInt64 = 0
        for i in 0..<UInt64(frames) {
            let m = StressPattern.controlMessage(i)
            guard ring.push(m, timeout: timeout) else { throw fail("push \(i) timed out") }
            digest = StressDigest.mix(digest, m.value ^ UInt64(m.kind) << 32 ^ UInt64(m.flags))
        }
        return "frames=\(frames) digest=\(String(digest, radix: 16))"
    }

    private func runControlConsumer() throws -> String {
        let ring = try ControlRing.attach(fd: fd)
        var digest: UInt64 = 0
        for i in 0..<UInt64(frames) {
            guard let m = ring.pop(timeout: timeout) else { throw fail("pop \(i) timed out") }
            guard m == StressPattern.controlMessage(i) else { throw fail("message \(i) is \(m)") }
            digest = StressDigest.mix(digest, m.value ^ UInt64(m.kind) << 32 ^ UInt64(m.flags))
        }
        return "frames=\(frames) digest=\(String(digest, radix: 16))"
    }
}

/// The deterministic frame sequence of the stress test.
struct StressPattern {
    static let streamCount = 7
    static let patternBytes = 1 << 16

    let seed: UInt64
    let maxPayloadBytes: Int
    /// Seeded bytes that payloads are sliced from (patternBytes + maxPayloadBytes long).
    let bytes: [UInt8]

    init(seed: UInt64, maxPayloadBytes: Int) {
        self.seed = seed
        self.maxPayloadBytes = maxPayloadBytes
        var state = seed
        var b = [UInt8]()
        b.reserveCapacity(StressPattern.patternBytes + maxPayloadBytes + 8)
        while b.count < StressPattern.patternBytes + maxPayloadBytes {
            state = StressPattern.splitmix(state)
            withUnsafeBytes(of: state.littleEndian) { b.append(contentsOf: $0) }
        }
        self.bytes = b
    }

    static func splitmix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Frame i: payload size (mostly < 512 B, 1 in 32 up to 16 KiB or the ring maximum), stream, count.
    func frame(_ i: UInt64) -> (size: Int, streamId: UInt64, count: UInt32, patternOffset: Int) {
        let h = StressPattern.splitmix(seed ^ (i &* 0xD6E8_FEB8_6659_FD93))
        let size: Int
        if h & 31 == 0 {
            size = Int((h >> 8) % UInt64(min(16 * 1024, maxPayloadBytes) + 1))
        } else {
            size = Int((h >> 8) % 512)
        }
        return (size, (h >> 40) % UInt64(StressPattern.streamCount) + 1, UInt32((h >> 32) % 5 + 1),
                Int((h >> 16) % UInt64(StressPattern.patternBytes)))
    }

    func fillPayload(_ i: UInt64, size: Int, into p: UnsafeMutableRawPointer) {
        let f = frame(i)
        withUnsafeBytes(of: i.littleEndian) { p.copyMemory(from: $0.baseAddress!, byteCount: min(8, size)) }
        if size > 8 {
            bytes.withUnsafeBytes { (p + 8).copyMemory(from: $0.baseAddress! + f.patternOffset, byteCount: size - 8) }
        }
    }

    func payloadMatches(_ i: UInt64, _ payload: UnsafeRawBufferPointer) -> Bool {
        let f = frame(i)
        guard payload.count == f.size else { return false }
        let head = withUnsafeBytes(of: i.littleEndian) { memcmp(payload.baseAddress!, $0.baseAddress!, min(8, f.size)) }
        if f.size == 0 { return true }
        guard head == 0 else { return false }
        if f.size <= 8 { return true }
        return bytes.withUnsafeBytes {
            memcmp(payload.baseAddress! + 8, $0.baseAddress! + f.patternOffset, f.size - 8) == 0
        }
    }

    static func controlMessage(_ i: UInt64) -> ControlMessage {
        ControlMessage(kind: UInt32(i % 3) + 1, flags: UInt32(truncatingIfNeeded: i &* 7), value: i &* 0x1_0001)
    }
}

/// An order-sensitive digest of frames (CRC32C of the payload mixed with the header fields).
struct StressDigest {
    var value: UInt64 = 0

    mutating func add(streamId: UInt64, baseOffset: Int64, count: UInt32, payload: UnsafeRawBufferPointer) {
        let crc = payload.count == 0 ? 0 : silt_crc32c(0, payload.baseAddress!, payload.count)
        value = StressDigest.mix(value, streamId << 56 ^ UInt64(bitPattern: baseOffset) << 8 ^ UInt64(count))
        value = StressDigest.mix(value, UInt64(crc) << 32 | UInt64(payload.count))
    }

    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        StressPattern.splitmix(a ^ b) &* 0x100_0000_01B3
    }

    var hex: String { String(value, radix: 16) }
}
