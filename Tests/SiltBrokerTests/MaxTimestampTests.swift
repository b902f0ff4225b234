import Foundation
import NIOCore
@testable import SiltBroker
import SiltProtocol
import SiltRecords
import XCTest

/// ListOffsets MAX_TIMESTAMP (-3, KIP-734): the fold over batches, and ListOffsets v7 on the wire.
final class MaxTimestampFoldTests: XCTestCase {
    func batch(base: Int64, _ timestamps: [Int64], logAppendTime: Bool = false,
               compression: CompressionType = .none) -> (ByteBuffer, RecordBatchHeader) {
        var b = RecordBatchBuilder(baseOffset: base, timestampType: logAppendTime ? .logAppendTime : .createTime)
        b.compression = compression
        for (i, ts) in timestamps.enumerated() { b.append(key: nil as String?, value: "v\(i)", timestamp: ts) }
        let buf = b.build()
        return (buf, try! parseBatchHeaders(buf)[0])
    }

    func fold(_ batches: [(ByteBuffer, RecordBatchHeader)], from: Int64 = 0, below: Int64 = .max) throws
        -> (offset: Int64, timestamp: Int64)? {
        var f = MaxTimestampFold()
        for (buf, h) in batches { try f.add(buf, h, from: from, below: below) }
        return f.result
    }

    func testLargestTimestampEarliestOnATie() throws {
        // librdkafka's 0081 fixture: 100, 400, 250 → offset 1.
        let r = try XCTUnwrap(try fold([batch(base: 0, [100, 400, 250])]))
        XCTAssertTrue(r == (1, 400), "\(r)")
        // Across batches, a tie keeps the earlier record; a later larger one wins.
        let tie = try XCTUnwrap(try fold([batch(base: 0, [5, 9]), batch(base: 2, [9, 1])]))
        XCTAssertTrue(tie == (1, 9), "\(tie)")
        let later = try XCTUnwrap(try fold([batch(base: 0, [5, 9]), batch(base: 2, [1, 10])]))
        XCTAssertTrue(later == (3, 10), "\(later)")
        XCTAssertNil(try fold([]), "an empty partition has no answer")
    }

    func testLogStartAndHighWatermarkBoundTheScan() throws {
        let b = batch(base: 0, [100, 400, 250, 50])
        let trimmed = try XCTUnwrap(try fold([b], from: 2))
        XCTAssertTrue(trimmed == (2, 250), "records below the log start do not count: \(trimmed)")
        let unacked = try XCTUnwrap(try fold([b], below: 1))
        XCTAssertTrue(unacked == (0, 100), "records at or past the high watermark do not count: \(unacked)")
    }

    func testLogAppendTimeAndCompressedBatches() throws {
        let lat = try XCTUnwrap(try fold([batch(base: 0, [1]), batch(base: 1, [700, 700, 700], logAppendTime: true)]))
        XCTAssertTrue(lat.offset == 1, "a LogAppendTime batch answers its first record: \(lat)")
        // A compressed CreateTime batch is decoded: the record's own offset (Kafka 3.8+).
        let compressed = try XCTUnwrap(try fold([batch(base: 0, [1]), batch(base: 10, [3, 8, 5], compression: .zstd)]))
        XCTAssertTrue(compressed == (11, 8), "\(compressed)")
    }
}

extension BrokerTests {
    func testListOffsetsMaxTimestamp() throws {
        try createTopic("maxts", partitions: 2)
        XCTAssertEqual(try produce("maxts", batch(["a", "b"], timestamp: 10_000_100)).errorCode, 0)
        XCTAssertEqual(try produce("maxts", batch(["c"], timestamp: 10_000_400)).errorCode, 0)
        XCTAssertEqual(try produce("maxts", batch(["d", "e"], timestamp: 10_000_250)).errorCode, 0)
        func list(_ partition: Int32, version: Int16 = 7) throws -> ListOffsetsResponse.ListOffsetsPartitionResponse {
            var req = ListOffsetsRequest()
            req.replicaId = -1
            var t = ListOffsetsRequest.ListOffsetsTopic()
            t.name = "maxts"
            var p = ListOffsetsRequest.ListOffsetsPartition()
            p.partitionIndex = partition
            p.timestamp = -3
            t.partitions = [p]
            req.topics = [t]
            return try call(req, version: version).topics[0].partitions[0]
        }
        let r = try list(0)
        XCTAssertEqual(r.errorCode, 0)
        XCTAssertEqual(r.offset, 2)
        XCTAssertEqual(r.timestamp, 10_000_400)
        XCTAssertEqual(r.leaderEpoch, 0)
        let empty = try list(1)
        XCTAssertEqual(empty.errorCode, 0)
        XCTAssertEqual(empty.offset, -1)
        XCTAssertEqual(empty.timestamp, -1)
    }
}
