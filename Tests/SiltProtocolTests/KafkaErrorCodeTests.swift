import Foundation
import SiltProtocol
import XCTest

/// `KafkaErrorCode`'s named constants agree with Kafka's `Errors` table beside them: each
/// constant's name, spelled as Kafka spells it (camelCase ─▶ UPPER_SNAKE, Kafka's occasional
/// `_EXCEPTION` suffix allowed), is the table's name for its code. Every constant in the file
/// is checked, including ones added later, by reading the source (constants cannot be listed
/// at run time).
final class KafkaErrorCodeTests: XCTestCase {
    func testEveryConstantNamesItsCodeAsKafkaDoes() throws {
        let source = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/SiltProtocol/KafkaErrorCode.swift")
        let text = try String(contentsOf: source, encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"public static let (\w+): Int16 = (-?\d+)"#)
        let matches = pattern.matches(in: text, range: NSRange(text.startIndex..., in: text))
        XCTAssertGreaterThan(matches.count, 40, "the constants were found")
        var seen: [Int16: String] = [:]
        for m in matches {
            let name = String(text[Range(m.range(at: 1), in: text)!])
            let code = Int16(text[Range(m.range(at: 2), in: text)!])!
            let snake = name.unicodeScalars.map { CharacterSet.uppercaseLetters.contains($0) ? "_\($0)" : "\($0)" }
                .joined().uppercased()
            let kafka = KafkaErrorCode.name(code)
            XCTAssertTrue(kafka == snake || kafka == snake + "_EXCEPTION", "\(name) = \(code) is \(kafka) in Kafka's table")
            XCTAssertNil(seen[code], "\(name) and \(seen[code] ?? "") share code \(code)")
            seen[code] = name
        }
    }

    func testTheTableIsKafkasNumbering() {
        XCTAssertEqual(KafkaErrorCode.names.count, 134, "codes 0 through 133 (Kafka 4.1)")
        XCTAssertEqual(KafkaErrorCode.name(0), "NONE")
        XCTAssertEqual(KafkaErrorCode.name(29), "TOPIC_AUTHORIZATION_FAILED")
        XCTAssertEqual(KafkaErrorCode.name(87), "INVALID_RECORD")
        XCTAssertEqual(KafkaErrorCode.name(133), KafkaErrorCode.names.last)
        XCTAssertEqual(KafkaErrorCode.name(-1), "UNKNOWN_SERVER_ERROR")
        XCTAssertEqual(KafkaErrorCode.name(500), "UNKNOWN_SERVER_ERROR")
    }
}
