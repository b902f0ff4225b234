import Foundation
import Logging
import XCTest
@testable import SiltWAL

/// Shared helpers: temp devices on a real filesystem (O_DIRECT), deterministic payloads, a
/// model of what the log should hold, and plain-I/O corruption.
enum WALTestSupport {
    static let logger: Logger = {
        var l = Logger(label: "silt.wal.test")
        l.logLevel = .warning
        return l
    }()

    /// A fresh path under /var/tmp (a real filesystem; /tmp may be tmpfs elsewhere).
    static func tempPath(_ name: String = #function) -> String {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        return "/var/tmp/silt-wal-\(clean)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).wal"
    }

    static func payload(seed: UInt64, count: Int) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    static func smallConfig(_ durability: WALDurabilityMode = .dsyncWrite,
                            format: WALFormatPolicy = .formatIfBlank) -> WALConfig {
        WALConfig(maxRecordPayloadBytes: 64 << 10, maxInFlightWrites: 4, durability: durability,
                  formatPolicy: format)
    }

    /// Overwrites `bytes` at `offset` with plain (buffered) I/O and fsyncs.
    static func plainWrite(path: String, offset: UInt64, bytes: [UInt8]) throws {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { throw Errno(errno) }
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
        guard n == bytes.count else { throw Errno(errno) }
        guard fsync(fd) == 0 else { throw Errno(errno) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }

    static func plainRead(path: String, offset: UInt64, count: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Errno(errno) }
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, off_t(offset)) }
        guard n == count else { throw Errno(errno) }
        return out
    }
}

/// What the test expects the log to hold.
struct ModelRecord: Equatable {
    var startLSN: UInt64
    var endLSN: UInt64
    var payload: [UInt8]
    var ticket: WriteTicket?
}

extension WAL {
    /// Submits one record, reaping first when the in-flight bound is reached.
    @discardableResult
    func submitReaping(_ payload: [UInt8], span extra: UInt64 = 0) throws -> WriteTicket {
        while !canSubmit { _ = try reap(wait: true) }
        return try submit(bytes: payload, startLSN: headLSN, endLSN: headLSN + UInt64(payload.count) + extra)
    }

    /// Reaps until everything submitted is durable.
    func drain() throws {
        while durableLSN < headLSN { _ = try reap(wait: true) }
        XCTAssertEqual(inFlightWrites, 0)
    }
}

func assertRecovered(_ recovered: [RecoveredRecord], equal model: [ModelRecord],
                     file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(recovered.count, model.count, "record count", file: file, line: line)
    for (r, m) in zip(recovered, model) {
        XCTAssertEqual(r.startLSN, m.startLSN, file: file, line: line)
        XCTAssertEqual(r.endLSN, m.endLSN, file: file, line: line)
        XCTAssertTrue(r.payload == m.payload, "payload of [\(m.startLSN), \(m.endLSN))", file: file, line: line)
    }
    if let last = recovered.last, let prev = recovered.dropLast().last {
        XCTAssertEqual(last.startLSN, prev.endLSN, file: file, line: line)
    }
}
