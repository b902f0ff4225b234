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
            XCTAssertTrue(e.description.contains("Compacted topic cannot accept message without key in topic partition t-0."))
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
