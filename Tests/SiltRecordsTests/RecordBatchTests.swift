import NIOCore
import XCTest
@testable import SiltRecords

func makeBatch(records count: Int = 3, timestamp: Int64 = 1_700_000_000_000, baseOffset: Int64 = 0,
               configure: (inout RecordBatchBuilder) -> Void = { _ in }) -> ByteBuffer {
    var builder = RecordBatchBuilder(baseOffset: baseOffset)
    configure(&builder)
    for i in 0..<count {
        builder.append(key: "k\(i)", value: "value-\(i)",
                       headers: i == 0 ? [RecordHeader(key: "h", value: [1, 2]), RecordHeader(key: "n", value: nil)] : [],
                       timestamp: timestamp + Int64(i))
    }
    return builder.build()
}

/// Recomputes the CRC after a test edits a batch's covered bytes.
func fixCRC(_ buffer: inout ByteBuffer, at index: Int = 0) {
    let header = try! RecordBatchHeader(parsing: buffer, at: index)
    buffer.setInteger(header.computeCRC(in: buffer), at: index + RecordBatchHeader.crcOffset)
}

final class RecordBatchTests: XCTestCase {
    let now: Int64 = 1_700_000_000_000

    func validate(_ buffer: ByteBuffer, max: Int = 1 << 20, type: TimestampType = .createTime,
                  diff: Int64 = .max) throws -> [RecordBatchHeader] {
        try validateProducedRecords(buffer, maxMessageBytes: max, timestampType: type,
                                    messageTimestampDifferenceMaxMs: diff, nowMs: now)
    }

    func assertError(_ buffer: ByteBuffer, max: Int = 1 << 20, diff: Int64 = .max, code: Int16,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try validate(buffer, max: max, diff: diff), file: file, line: line) { error in
            XCTAssertEqual((error as? RecordBatchError)?.kafkaErrorCode, code, "\(error)", file: file, line: line)
        }
    }

    func testVarintRoundTrip() {
        for value: Int64 in [0, 1, -1, 63, -64, 64, 300, -300, Int64(Int32.max), Int64(Int32.min), .max, .min] {
            var buffer = ByteBuffer()
            let n = Varint.write(value, to: &buffer)
            XCTAssertEqual(n, Varint.size(of: value))
            XCTAssertEqual(Varint.readLong(from: &buffer), value)
            XCTAssertEqual(buffer.readableBytes, 0)
        }
        var truncated = ByteBuffer(bytes: [0x80, 0x80])
        XCTAssertNil(Varint.readLong(from: &truncated))
        XCTAssertEqual(truncated.readerIndex, 0)
    }

    func testBuilderParseAndIterate() throws {
        let buffer = makeBatch(records: 3)
        let header = try RecordBatchHeader(parsing: buffer, at: 0)
        XCTAssertEqual(header.magic, 2)
        XCTAssertEqual(header.recordCount, 3)
        XCTAssertEqual(header.lastOffsetDelta, 2)
        XCTAssertEqual(header.totalSize, buffer.readableBytes)
        XCTAssertEqual(header.baseTimestamp, now)
        XCTAssertEqual(header.maxTimestamp, now + 2)
        XCTAssertEqual(header.compression, CompressionType.none)
        XCTAssertEqual(header.timestampType, .createTime)
        XCTAssertFalse(header.isControl)
        XCTAssertFalse(header.isTransactional)
        XCTAssertTrue(header.isCRCValid(in: buffer))
        XCTAssertEqual(header.producerId, -1)
        let records = try header.records(in: buffer)
        XCTAssertEqual(records.count, 3)
        XCTAssertEqual(records.map(\.offset), [0, 1, 2])
        XCTAssertEqual(records.map(\.timestamp), [now, now + 1, now + 2])
        XCTAssertEqual(records[1].key.map { String(buffer: $0) }, "k1")
        XCTAssertEqual(records[1].value.map { String(buffer: $0) }, "value-1")
        XCTAssertEqual(records[0].headers, [RecordHeader(key: "h", value: [1, 2]), RecordHeader(key: "n", value: nil)])

        var nulls = RecordBatchBuilder(isTransactional: true)
        nulls.producerId = 7
        nulls.baseSequence = 0
        nulls.append(key: nil as [UInt8]?, value: nil, timestamp: 5)
        let nullBuffer = nulls.build()
        let nullHeader = try RecordBatchHeader(parsing: nullBuffer, at: 0)
        XCTAssertTrue(nullHeader.isTransactional)
        let record = try XCTUnwrap(nullHeader.records(in: nullBuffer).first)
        XCTAssertNil(record.key)
        XCTAssertNil(record.value)
    }

    func testValidMultipleBatches() throws {
        var buffer = makeBatch(records: 2)
        var second = makeBatch(records: 5)
        buffer.writeBuffer(&second)
        let headers = try validate(buffer)
        XCTAssertEqual(headers.map(\.recordCount), [2, 5])
        XCTAssertEqual(headers[1].index, headers[0].totalSize)
        XCTAssertEqual(try validate(ByteBuffer()).count, 0)
    }

    func testBadCRC() {
        var buffer = makeBatch()
        let last = buffer.writerIndex - 1
        buffer.setInteger(buffer.getInteger(at: last, as: UInt8.self)! ^ 0x01, at: last)
        assertError(buffer, code: 2)
    }

    func testTruncatedAndTrailingGarbage() {
        let buffer = makeBatch()
        assertError(buffer.getSlice(at: 0, length: buffer.readableBytes - 1)!, code: 2)
        assertError(buffer.getSlice(at: 0, length: 30)!, code: 2)
        var garbage = buffer
        garbage.writeBytes([1, 2, 3, 4, 5])
        assertError(garbage, code: 2)
    }

    func testMagic() {
        var buffer = makeBatch()
        buffer.setInteger(Int8(1), at: RecordBatchHeader.magicOffset)
        assertError(buffer, code: 87)
        buffer.setInteger(Int8(3), at: RecordBatchHeader.magicOffset)
        assertError(buffer, code: 2)
    }

    func testBatchLengthTooSmall() {
        var buffer = makeBatch()
        buffer.setInteger(Int32(10), at: RecordBatchHeader.batchLengthOffset)
        assertError(buffer, code: 2)
    }

    func testNonZeroBaseOffset() {
        assertError(makeBatch(baseOffset: 5), code: 87)
    }

    func testControlBatchFromClient() {
        assertError(makeBatch { $0.isControl = true }, code: 87)
    }

    func testOffsetDeltaMismatchAndEmptyBatch() {
        var buffer = makeBatch(records: 3)
        buffer.setInteger(Int32(5), at: RecordBatchHeader.lastOffsetDeltaOffset)
        fixCRC(&buffer)
        assertError(buffer, code: 87)
        assertError(makeBatch(records: 0), code: 87)
    }

    func testRecordCountDisagreesWithRecords() {
        var buffer = makeBatch(records: 3)
        buffer.setInteger(Int32(4), at: RecordBatchHeader.recordCountOffset)
        buffer.setInteger(Int32(3), at: RecordBatchHeader.lastOffsetDeltaOffset)
        fixCRC(&buffer)
        assertError(buffer, code: 87)
        var fewer = makeBatch(records: 3)
        fewer.setInteger(Int32(2), at: RecordBatchHeader.recordCountOffset)
        fewer.setInteger(Int32(1), at: RecordBatchHeader.lastOffsetDeltaOffset)
        fixCRC(&fewer)
        assertError(fewer, code: 87)
    }

    func testProducerWithoutSequence() {
        assertError(makeBatch { $0.producerId = 3; $0.baseSequence = -1 }, code: 87)
        XCTAssertNoThrow(try validate(makeBatch { $0.producerId = 3; $0.producerEpoch = 0; $0.baseSequence = 0 }))
    }

    func testUnknownCompression() {
        var buffer = makeBatch()
        buffer.setInteger(Int16(6), at: RecordBatchHeader.attributesOffset)
        fixCRC(&buffer)
        assertError(buffer, code: 2)
    }

    func testMessageTooLarge() {
        let buffer = makeBatch(records: 10)
        assertError(buffer, max: buffer.readableBytes - 1, code: 10)
        XCTAssertNoThrow(try validate(buffer, max: buffer.readableBytes))
    }

    func testTimestamps() throws {
        let old = makeBatch(timestamp: now - 10_000)
        assertError(old, diff: 5_000, code: 32)
        let future = makeBatch(timestamp: now + 10_000)
        assertError(future, diff: 5_000, code: 32)
        XCTAssertNoThrow(try validate(old, diff: 20_000))
        XCTAssertNoThrow(try validate(old))  // disabled by default
        XCTAssertNoThrow(try validate(old, type: .logAppendTime, diff: 5_000))
        XCTAssertThrowsError(try validateProducedRecords(future, maxMessageBytes: 1 << 20, timestampType: .createTime,
                                                         messageTimestampBeforeMaxMs: .max,
                                                         messageTimestampAfterMaxMs: 1_000, nowMs: now))
        XCTAssertNoThrow(try validateProducedRecords(old, maxMessageBytes: 1 << 20, timestampType: .createTime,
                                                     messageTimestampBeforeMaxMs: .max,
                                                     messageTimestampAfterMaxMs: 1_000, nowMs: now))
        // A compressed batch is decoded and its records checked one by one.
        let compressedOld = makeBatch(timestamp: now - 10_000) { $0.compression = .zstd }
        assertError(compressedOld, diff: 5_000, code: 32)
        XCTAssertNoThrow(try validate(compressedOld))
    }

    func testAssignOffsetsCreateTime() throws {
        var buffer = ByteBuffer()
        buffer.writeBytes([0xAA, 0xBB])
        var batch = makeBatch(records: 4)
        buffer.writeBuffer(&batch)
        let before = try RecordBatchHeader(parsing: buffer, at: 2)
        let header = assignOffsets(&buffer, at: 2, baseOffset: 1000, partitionLeaderEpoch: 7, logAppendTimeMs: nil)
        let parsed = try RecordBatchHeader(parsing: buffer, at: 2)
        XCTAssertEqual(parsed, header)
        XCTAssertEqual(parsed.baseOffset, 1000)
        XCTAssertEqual(parsed.lastOffset, 1003)
        XCTAssertEqual(parsed.partitionLeaderEpoch, 7)
        XCTAssertEqual(parsed.crc, before.crc)
        XCTAssertTrue(parsed.isCRCValid(in: buffer))
        XCTAssertEqual(parsed.maxTimestamp, before.maxTimestamp)
        XCTAssertEqual(try parsed.records(in: buffer).map(\.offset), [1000, 1001, 1002, 1003])
        XCTAssertEqual(buffer.getBytes(at: 0, length: 2), [0xAA, 0xBB])
    }

    func testAssignOffsetsLogAppendTime() throws {
        var buffer = makeBatch(records: 3)
        let before = try RecordBatchHeader(parsing: buffer, at: 0)
        let appendTime: Int64 = now + 123_456
        assignOffsets(&buffer, at: 0, baseOffset: 42, partitionLeaderEpoch: 1, logAppendTimeMs: appendTime)
        let parsed = try RecordBatchHeader(parsing: buffer, at: 0)
        XCTAssertEqual(parsed.timestampType, .logAppendTime)
        XCTAssertEqual(parsed.maxTimestamp, appendTime)
        XCTAssertEqual(parsed.baseTimestamp, before.baseTimestamp)
        XCTAssertNotEqual(parsed.crc, before.crc)
        XCTAssertTrue(parsed.isCRCValid(in: buffer))
        XCTAssertEqual(try parsed.records(in: buffer).map(\.timestamp), [appendTime, appendTime, appendTime])
        XCTAssertEqual(try parseBatchHeaders(buffer).count, 1)
    }
}
