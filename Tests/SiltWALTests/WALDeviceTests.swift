import Foundation
import XCTest
@testable import SiltWAL

/// Round trip and torn-write recovery on a real block device (a loop device over a file in
/// /var/tmp) when running as root with a working `losetup`; otherwise on a regular file. Prints
/// which one was used. The loop device is always detached in tearDown.
final class WALDeviceTests: XCTestCase {
    var loopDevice: String?
    var backingFiles: [String] = []

    static let capacity: UInt64 = 8 << 20

    override func tearDown() {
        if let dev = loopDevice {
            let (status, out) = Self.run("/usr/sbin/losetup", ["-d", dev])
            if status != 0 { print("WAL device test: losetup -d \(dev) failed: \(out)") }
            loopDevice = nil
        }
        for f in backingFiles { unlink(f) }
    }

    static func run(_ tool: String, _ args: [String]) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (-1, "\(error)") }
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (p.terminationStatus, out.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A fresh device path: a new loop device over a zeroed file, or the file itself.
    func makeDevice(_ name: String = #function) throws -> String {
        let file = WALTestSupport.tempPath(name)
        backingFiles.append(file)
        let fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(ftruncate(fd, off_t(Self.capacity)), 0)
        close(fd)
        let losetup = "/usr/sbin/losetup"
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: losetup) else {
            print("WAL device test: losetup unavailable (not root or no losetup): using a regular file \(file)")
            return file
        }
        let (status, out) = Self.run(losetup, ["-f", "--show", file])
        guard status == 0, out.hasPrefix("/dev/loop") else {
            print("WAL device test: losetup failed (\(out)): using a regular file \(file)")
            return file
        }
        loopDevice = out
        print("WAL device test: using loop device \(out) over \(file)")
        return out
    }

    func testRoundTripOnDevice() throws {
        let path = try makeDevice()
        try WALRecoveryTests.roundTrip(path: path, capacity: Self.capacity, test: self)
        if loopDevice != nil {
            let (wal, _) = try WAL.open(path: path, capacityBytes: Self.capacity, nodeId: 7,
                                        config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)
            XCTAssertTrue(wal.isBlockDevice)
            try wal.close()
            // Capacity beyond the device: typed refusal.
            XCTAssertThrowsError(try WAL.open(path: path, capacityBytes: Self.capacity * 2, nodeId: 7,
                                              config: WALTestSupport.smallConfig(), logger: WALTestSupport.logger)) { e in
                guard case WALError.deviceTooSmall = e else { return XCTFail("\(e)") }
            }
        }
    }

    func testTornWriteOnDevice() throws {
        let path = try makeDevice()
        try WALRecoveryTests.tornWrite(path: path, capacity: Self.capacity, damage: .tornLastBlock)
    }

    func testGarbageAfterLogOnDevice() throws {
        let path = try makeDevice()
        try WALRecoveryTests.tornWrite(path: path, capacity: Self.capacity, damage: .flipCRCByte)
    }
}

/// A quick latency probe (not a benchmark): sequential 4 KiB writes, one in flight, each made
/// durable, in both modes. Prints p50/p99/max; asserts every write became durable.
final class WALLatencyProbeTests: XCTestCase {
    func testSequentialDurableWriteLatency() throws {
        for mode in [WALDurabilityMode.dsyncWrite, .linkedFdatasync] {
            let path = WALTestSupport.tempPath("latency\(mode)")
            defer { unlink(path) }
            let (wal, _) = try WAL.open(path: path, capacityBytes: 16 << 20, nodeId: 1,
                                        config: WALTestSupport.smallConfig(mode), logger: WALTestSupport.logger)
            let bytes = WALTestSupport.payload(seed: 1, count: 4000)
            var samplesNs: [UInt64] = []
            for _ in 0..<300 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let ticket = try wal.submit(bytes: bytes, startLSN: wal.headLSN)
                while wal.durableLSN < ticket.endLSN { _ = try wal.reap(wait: true) }
                samplesNs.append(DispatchTime.now().uptimeNanoseconds - t0)
            }
            XCTAssertEqual(wal.writes, 300)
            XCTAssertEqual(wal.durableLSN, 300 * 4000)
            samplesNs.sort()
            func pct(_ p: Double) -> String {
                String(format: "%.1f", Double(samplesNs[min(samplesNs.count - 1, Int(Double(samplesNs.count) * p))]) / 1000)
            }
            print("WAL latency probe (\(mode), 4 KiB, QD1, file on /var/tmp): p50 \(pct(0.5)) us, p99 \(pct(0.99)) us, max \(pct(1.0)) us")
            try wal.close()
        }
    }
}
