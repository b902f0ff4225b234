import NIOCore
import XCTest
@testable import SiltProtocol

final class HostileInputTests: XCTestCase {
    func testHugeArrayLengthThrows() {
        // MetadataRequest v1: topics array claims 2 GiB - 1 elements.
        var b = ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF, 0x00])
        XCTAssertThrowsError(try MetadataRequest(from: &b, version: 1)) { e in
            guard case KafkaProtocolError.invalidLength = e else { return XCTFail("\(e)") }
        }
        // compact form: uvarint 0xFFFFFFFF
        var c = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00])
        XCTAssertThrowsError(try MetadataRequest(from: &c, version: 12))
    }

    func testHugeBytesAndStringLengthsThrow() {
        var b = ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF, 0x01])
        XCTAssertThrowsError(try b.readKafkaBytes(compact: false))
        var r = ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF, 0x01])
        XCTAssertThrowsError(try r.readKafkaRecords(compact: false))
        var s = ByteBuffer(bytes: [0x7F, 0xFF, 0x61])
        XCTAssertThrowsError(try s.readKafkaString(compact: false))
        var n = ByteBuffer(bytes: [0x80, 0x00, 0x00, 0x00])
        XCTAssertThrowsError(try n.readKafkaNullableBytes(compact: false)) { e in
            XCTAssertEqual(e as? KafkaProtocolError, .invalidLength("bytes", Int(Int32.min)))
        }
        var t = ByteBuffer(bytes: [0x7F, 0xFF, 0xFF, 0xFF, 0x0F])  // tagged section count
        XCTAssertThrowsError(try t.readKafkaTaggedFields())
        var tf = ByteBuffer(bytes: [0x01, 0x00, 0x7F, 0x00])         // one field claiming 127 bytes
        XCTAssertThrowsError(try tf.readKafkaTaggedFields())
    }

    func testTruncatedFetchResponseAtEveryPosition() throws {
        var p = FetchResponse.PartitionData()
        p.partitionIndex = 3
        p.records = ByteBuffer(bytes: Array(repeating: 0x42, count: 40))
        var t = FetchResponse.FetchableTopicResponse()
        t.topic = "orders"
        t.topicId = KafkaUUID(high: 1, low: 2)
        t.partitions = [p]
        var resp = FetchResponse()
        resp.responses = [t]
        for v: Int16 in [4, 11, 12, 16, 17] {
            var buf = ByteBuffer()
            resp.encode(into: &buf, version: v)
            let bytes = Array(buf.readableBytesView)
            for cut in 0..<bytes.count {
                var part = ByteBuffer(bytes: bytes[0..<cut])
                XCTAssertThrowsError(try FetchResponse(from: &part, version: v), "v\(v) cut \(cut)")
            }
            var full = ByteBuffer(bytes: bytes)
            let decoded = try FetchResponse(from: &full, version: v)
            XCTAssertEqual(decoded.responses.first?.partitions.first?.records, p.records)
        }
    }

    func testRandomGarbageNeverTraps() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<64, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            for key in ApiKey.allCases where key.rawValue % 5 == 0 {
                var b = ByteBuffer(bytes: bytes)
                _ = try? key.requestType.init(from: &b, version: key.highestSupportedVersion)
                var c = ByteBuffer(bytes: bytes)
                _ = try? key.responseType.init(from: &c, version: key.lowestSupportedVersion)
            }
        }
        XCTAssertTrue(true)
    }

    func testRecordsAreSlicedNotCopied() throws {
        var req = ProduceRequest()
        var part = ProduceRequest.PartitionProduceData()
        part.index = 0
        part.records = ByteBuffer(bytes: Array(repeating: 0x11, count: 100))
        var topic = ProduceRequest.TopicProduceData()
        topic.name = "t"
        topic.partitionData = [part]
        req.topicData = [topic]
        var buf = ByteBuffer()
        req.encode(into: &buf, version: 9)
        let whole = buf  // shares storage with `buf`
        let decoded = try ProduceRequest(from: &buf, version: 9)
        let records = try XCTUnwrap(decoded.topicData.first?.partitionData.first?.records)
        let inside: Bool = whole.withUnsafeReadableBytes { w in
            records.withUnsafeReadableBytes { r in
                guard let wp = w.baseAddress, let rp = r.baseAddress else { return false }
                let wb = UInt(bitPattern: wp), rb = UInt(bitPattern: rp)
                return rb >= wb && rb + UInt(r.count) <= wb + UInt(w.count)
            }
        }
        XCTAssertTrue(inside, "records should be a slice of the request buffer")
        XCTAssertEqual(records.readableBytes, 100)
    }

    func testUnsupportedVersion() {
        var b = ByteBuffer()
        XCTAssertThrowsError(try ProduceRequest.decode(from: &b, version: 99)) { e in
            XCTAssertEqual(e as? KafkaProtocolError, .unsupportedVersion(apiKey: 0, version: 99))
        }
    }
}
