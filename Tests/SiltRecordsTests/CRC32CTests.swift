import CSupport
import NIOCore
import XCTest
@testable import SiltRecords

final class CRC32CTests: XCTestCase {
    /// RFC 3720 (iSCSI) appendix B.4 vectors plus the classic check value.
    static let vectors: [([UInt8], UInt32)] = [
        (Array("123456789".utf8), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
        ([], 0),
    ]

    func testSoftwareVectors() {
        for (bytes, expected) in Self.vectors {
            let crc = bytes.withUnsafeBytes { silt_crc32c_software(0, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }
            XCTAssertEqual(crc, expected, "software \(bytes.prefix(4))")
        }
    }

    func testHardwareVectors() throws {
        try XCTSkipUnless(silt_crc32c_hardware() == 1, "no SSE4.2 on this machine")
        for (bytes, expected) in Self.vectors {
            let crc = bytes.withUnsafeBytes { silt_crc32c_sse42(0, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }
            XCTAssertEqual(crc, expected, "hardware \(bytes.prefix(4))")
        }
    }

    func testDispatchAndSwiftWrappers() {
        XCTAssertEqual(crc32cUsesHardware, silt_crc32c_hardware() == 1)
        for (bytes, expected) in Self.vectors {
            XCTAssertEqual(crc32c(bytes), expected)
            var buffer = ByteBuffer()
            buffer.writeBytes([9, 9, 9])
            buffer.writeBytes(bytes)
            buffer.moveReaderIndex(forwardBy: 3)
            XCTAssertEqual(crc32c(buffer), expected)
            XCTAssertEqual(crc32c(buffer, at: 3, length: bytes.count), expected)
        }
    }

    func testChainingAndUnalignedRandomAgreeBetweenImplementations() {
        var rng = SystemRandomNumberGenerator()
        for length in [1, 7, 8, 9, 63, 64, 65, 1000, 4096 + 13] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            for start in 0..<min(8, length) {
                let slice = Array(bytes[start...])
                let sw = slice.withUnsafeBytes { silt_crc32c_software(0, $0.baseAddress!, $0.count) }
                let hw = slice.withUnsafeBytes { silt_crc32c_sse42(0, $0.baseAddress!, $0.count) }
                XCTAssertEqual(sw, hw, "length \(length) start \(start)")
                XCTAssertEqual(crc32c(slice), sw)
            }
            let split = length / 3
            XCTAssertEqual(crc32c(Array(bytes[split...]), crc: crc32c(Array(bytes[..<split]))), crc32c(bytes))
        }
    }
}
