import NIOCore
import SiltRecords
import XCTest

/// A compacted topic accepts only keyed records (Kafka: INVALID_RECORD).
final class CompactedTopicValidationTests: XCTestCase {
    func validated(_ records: [(String?, String?)], compression: CompressionType = .none) throws -> (ByteBuffer, [RecordBatchHeader]) {
        var b = RecordBatchBuilder(baseTimestamp: 1_000)
        b.compression = compression
        for (k, v) in records { b.append(key: k, value: v, timestamp: 1_000) }
        let buf = b.build()
        return (buf, try validateProducedRecords(buf, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 1_000))
    }

    func testKeylessRecordIsInvalidRecord() throws {
        let (buf, headers) = try validated([("a", "1"), (nil, "2")])
        XCTAssertThrowsError(try requireRecordKeys(buf, headers: headers, topicPartition: "t-0")) { e in
            let e = e as! RecordBatchError
            XCTAssertEqual(e.kafkaErrorCode, 87)
            XCTAssertEqual(e, .invalidRecords([RecordError(batchIndex: 1, message:
                "Compacted topic cannot accept message without key in topic partition t-0.")]))
            XCTAssertTrue(e.description.contains("rejected due to 1 record errors in total"), e.description)
        }
    }

    /// KIP-467: every keyless record is named by its index among the produce's records, across batches.
    func testEveryKeylessRecordIsNamed() throws {
        var records = ByteBuffer()
        for batch in 0..<2 {
            var b = RecordBatchBuilder(baseTimestamp: 1_000)
            for i in 0..<10 { b.append(key: i % 4 == 0 ? nil : "k\(batch)-\(i)", value: "v", timestamp: 1_000) }
            b.build(into: &records)
        }
        let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 1_000)
        XCTAssertThrowsError(try requireRecordKeys(records, headers: headers, topicPartition: "t-0")) { e in
            guard case .invalidRecords(let errors) = e as! RecordBatchError else { return XCTFail("\(e)") }
            XCTAssertEqual(errors.map(\.batchIndex), [0, 4, 8, 10, 14, 18])
        }
    }

    func testKeyedRecordsAndTombstonesPass() throws {
        let (buf, headers) = try validated([("a", "1"), ("a", nil)])
        XCTAssertNoThrow(try requireRecordKeys(buf, headers: headers, topicPartition: "t-0"))
    }

    /// Keys are checked inside compressed batches too (they are decoded), with every codec.
    func testKeylessRecordInsideACompressedBatchIsInvalidRecord() throws {
        for codec in CompressionType.allCases where codec != .none {
            let (buf, headers) = try validated([("a", "1"), (nil, "2")], compression: codec)
            XCTAssertEqual(headers[0].compression, codec)
            XCTAssertThrowsError(try requireRecordKeys(buf, headers: headers, topicPartition: "t-0"), "\(codec)") { e in
                XCTAssertEqual((e as! RecordBatchError).kafkaErrorCode, 87)
            }
            let (keyed, keyedHeaders) = try validated([("a", "1"), ("b", nil)], compression: codec)
            XCTAssertNoThrow(try requireRecordKeys(keyed, headers: keyedHeaders, topicPartition: "t-0"), "\(codec)")
        }
    }
}
