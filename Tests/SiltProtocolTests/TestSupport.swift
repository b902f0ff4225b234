import NIOCore
import XCTest
@testable import SiltProtocol

/// Encode `message` at `version`, decode it back, compare, re-encode and compare bytes.
/// With `truncations`, also checks that every strict prefix of the encoding fails to decode.
func assertRoundTrip<M: KafkaMessage>(
    _ message: M, version: Int16, expectNonDefault: Bool, truncations: Bool = false,
    file: StaticString = #filePath, line: UInt = #line
) throws {
    if expectNonDefault {
        XCTAssertNotEqual(message, M(), "\(M.self) v\(version) sample should differ from defaults", file: file, line: line)
    }
    var buf = ByteBuffer()
    message.encode(into: &buf, version: version)
    let bytes = Array(buf.readableBytesView)
    var readBuf = buf
    let decoded = try M(from: &readBuf, version: version)
    XCTAssertEqual(readBuf.readableBytes, 0, "\(M.self) v\(version): decoder left bytes unread", file: file, line: line)
    XCTAssertEqual(decoded, message, "\(M.self) v\(version) round trip", file: file, line: line)
    var again = ByteBuffer()
    decoded.encode(into: &again, version: version)
    XCTAssertEqual(Array(again.readableBytesView), bytes, "\(M.self) v\(version) re-encoding differs", file: file, line: line)
    if truncations {
        for cut in 0..<bytes.count {
            var t = ByteBuffer(bytes: bytes[0..<cut])
            XCTAssertThrowsError(try M(from: &t, version: version), "\(M.self) v\(version) truncated at \(cut) decoded", file: file, line: line)
        }
    }
}

func bytesOf(_ build: (inout ByteBuffer) -> Void) -> [UInt8] {
    var b = ByteBuffer()
    build(&b)
    return Array(b.readableBytesView)
}
