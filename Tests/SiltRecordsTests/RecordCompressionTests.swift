import Foundation
import NIOCore
import XCTest
@testable import SiltRecords

/// Kafka's four codecs through the C libraries: round trips, streams made by the reference
/// libraries decode, and decoding is bounded (zip bombs are refused, not allocated).
final class RecordCompressionTests: XCTestCase {
    /// The payload of every reference stream below.
    static let payload: [UInt8] = Array(String(repeating: "silt ", count: 200).utf8) + (0...255).map { UInt8($0) }

    /// `payload` encoded by Python's reference bindings (gzip.compress(mtime=0); python-snappy
    /// 0.7.3's snappy.compress, raw and in snappy-java's xerial framing; lz4 4.4.5's
    /// lz4.frame.compress; zstandard 0.25.0 at level 3), base64.
    static let reference: [(name: String, codec: CompressionType, base64: String)] = [
        ("gzip", .gzip, "H4sIAAAAAAACAyvOzClRKB4lRolRYjgTDIxMzCysbOwcnFzcPLx8/AKCQsIiomLiEpJS0jKycvIKikrKKqpq6hqaWto6unr6BoZGxiamZuYWllbWNrZ29g6OTs4urm7uHp5e3j6+fv4BgUHBIaFh4RGRUdExsXHxCYlJySmpaekZmVnZObl5+QWFRcUlpWXlFZVV1TW1dfUNjU3NLa1t7R2dXd09vX39EyZOmjxl6rTpM2bOmj1n7rz5CxYuWrxk6bLlK1auWr1m7br1GzZu2rxl67btO3bu2r1n7779Bw4eOnzk6LHjJ06eOn3m7LnzFy5eunzl6rXrN27eun3n7r37Dx4+evzk6bPnL16+ev3m7bv3Hz5++vzl67fvP37++v3n77//AArN12LoBAAA"),
        ("snappy xerial (Kafka's Java client)", .snappy, "glNOQVBQWQAAAAABAAAAAQAAATroCRBzaWx0IP4FAP4FAP4FAP4FAP4FAP4FAP4FAP4FAP4FAP4FAP4FAP4FAP4FAP4FAP4FAIoFAPD/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w=="),
        ("snappy raw (librdkafka)", .snappy, "6AkQc2lsdCD+BQD+BQD+BQD+BQD+BQD+BQD+BQD+BQD+BQD+BQD+BQD+BQD+BQD+BQD+BQCKBQDw/wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6vsLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8="),
        ("lz4 frame", .lz4, "BCJNGGhA6AQAAAAAAABgDgEAAF9zaWx0IAUA////0/DxAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/wAAAAA="),
        ("zstd", .zstd, "KLUv/WDoA20IAFQQc2lsdCAAAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKTlJWWl5iZmpucnZ6foKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr/AwcLDxMXGx8jJysvMzc7P0NHS09TV1tfY2drb3N3e3+Dh4uPk5ebn6Onq6+zt7u/w8fLz9PX29/j5+vv8/f7/AQDgURUt"),
    ]

    static let codecs: [CompressionType] = [.gzip, .snappy, .lz4, .zstd]

    func testReferenceStreamsDecode() throws {
        for r in Self.reference {
            let bytes = ByteBuffer(bytes: try XCTUnwrap(Data(base64Encoded: r.base64), r.name))
            let decoded = try RecordCompression.decompress(bytes, codec: r.codec, maxBytes: 1 << 20)
            XCTAssertEqual(Array(decoded.readableBytesView), Self.payload, r.name)
            // Exactly the payload's size as the bound is enough; one byte less is refused.
            XCTAssertNoThrow(try RecordCompression.decompress(bytes, codec: r.codec, maxBytes: Self.payload.count), r.name)
            XCTAssertThrowsError(try RecordCompression.decompress(bytes, codec: r.codec, maxBytes: Self.payload.count - 1), r.name) { e in
                guard case .decompressedTooLarge = e as! RecordBatchError else { return XCTFail("\(r.name): \(e)") }
            }
        }
    }

    func testRoundTripEachCodecAndSize() throws {
        var rng = SystemRandomNumberGenerator()
        // Empty, tiny, several snappy chunks (32 KiB) and lz4 blocks (64 KiB), incompressible.
        let inputs: [[UInt8]] = [[], [42], Array(repeating: 7, count: 100_000),
                                 (0..<200_000).map { UInt8(truncatingIfNeeded: $0 * 31 + $0 / 1000) },
                                 (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &rng) }]
        for codec in Self.codecs {
            for input in inputs {
                let encoded = RecordCompression.compress(ByteBuffer(bytes: input), codec: codec)
                let decoded = try RecordCompression.decompress(encoded, codec: codec, maxBytes: max(1, input.count))
                XCTAssertEqual(Array(decoded.readableBytesView), input, "\(codec), \(input.count) bytes")
            }
        }
    }

    /// The framings Kafka's clients expect: xerial's magic for snappy, an LZ4 frame with 64 KiB
    /// independent blocks, the gzip and zstd magic numbers.
    func testEncodedFraming() {
        let encoded = { (codec: CompressionType) in Array(RecordCompression.compress(ByteBuffer(bytes: Self.payload), codec: codec).readableBytesView) }
        XCTAssertEqual(Array(encoded(.snappy).prefix(16)), [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0, 0, 0, 0, 1, 0, 0, 0, 1])
        let lz4 = encoded(.lz4)
        XCTAssertEqual(Array(lz4.prefix(4)), [0x04, 0x22, 0x4D, 0x18])
        XCTAssertEqual(lz4[4] & 0x20, 0x20, "FLG: independent blocks")
        XCTAssertEqual(lz4[5] >> 4 & 0x7, 4, "BD: 64 KiB blocks")
        XCTAssertEqual(Array(encoded(.gzip).prefix(2)), [0x1F, 0x8B])
        XCTAssertEqual(Array(encoded(.zstd).prefix(4)), [0x28, 0xB5, 0x2F, 0xFD])
    }

    /// 64 MiB of zeros compress to a few KiB; decoding with a 1 MiB bound is refused without
    /// holding more than the bound.
    func testZipBombIsRefusedAtTheBound() throws {
        let zeros = ByteBuffer(repeating: 0, count: 64 << 20)
        for codec in Self.codecs {
            let bomb = RecordCompression.compress(zeros, codec: codec)
            XCTAssertLessThan(bomb.readableBytes, 4 << 20, "\(codec)")
            XCTAssertThrowsError(try RecordCompression.decompress(bomb, codec: codec, maxBytes: 1 << 20)) { e in
                guard case .decompressedTooLarge(let c, let compressed, let max) = e as! RecordBatchError else { return XCTFail("\(codec): \(e)") }
                XCTAssertEqual(c, codec)
                XCTAssertEqual(compressed, bomb.readableBytes)
                XCTAssertEqual(max, 1 << 20)
                XCTAssertEqual((e as! RecordBatchError).kafkaErrorCode, 10)
            }
        }
    }

    func testCorruptAndTruncatedStreamsAreCorruptMessage() {
        for codec in Self.codecs {
            let good = Array(RecordCompression.compress(ByteBuffer(bytes: Self.payload), codec: codec).readableBytesView)
            for bad in [Array(good.prefix(good.count / 2)), [0xDE, 0xAD, 0xBE, 0xEF] + good] {
                XCTAssertThrowsError(try RecordCompression.decompress(ByteBuffer(bytes: bad), codec: codec, maxBytes: 1 << 20)) { e in
                    XCTAssertEqual((e as! RecordBatchError).kafkaErrorCode, 2, "\(codec): \(e)")
                }
            }
        }
    }

    /// A whole batch: built compressed, validated (records walked inside), read back, and
    /// recompressed to each other codec with every header field kept.
    func testCompressedBatchValidatesReadsAndRecompresses() throws {
        let now: Int64 = 1_700_000_000_000
        for codec in Self.codecs {
            var b = RecordBatchBuilder(producerId: 5, producerEpoch: 1, baseSequence: 10, baseTimestamp: now)
            b.compression = codec
            for i in 0..<50 { b.append(key: "k\(i % 7)", value: String(repeating: "v\(i)", count: 20), timestamp: now + Int64(i)) }
            let batch = b.build()
            let headers = try validateProducedRecords(batch, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: now)
            XCTAssertEqual(headers[0].compression, codec)
            XCTAssertLessThan(batch.readableBytes, 50 * 40, "\(codec) compresses")
            let records = try headers[0].records(in: batch)
            XCTAssertEqual(records.map { String(buffer: $0.value!) }, (0..<50).map { String(repeating: "v\($0)", count: 20) })
            for target in CompressionType.allCases {
                let out = try headers[0].recompressed(in: batch, to: target, maxDecompressedBytes: 1 << 20)
                let h = try validateProducedRecords(out, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: now)[0]
                XCTAssertEqual(h.compression, target)
                XCTAssertEqual([h.producerId, Int64(h.producerEpoch), Int64(h.baseSequence), h.baseTimestamp, h.maxTimestamp,
                                Int64(h.recordCount), Int64(h.lastOffsetDelta)],
                               [5, 1, 10, now, now + 49, 50, 49])
                XCTAssertEqual(try h.records(in: out).map(\.value), records.map(\.value), "\(codec) → \(target)")
            }
        }
    }

    /// A record in the middle of a compressed batch older than the allowed window is caught
    /// (the batch's base and max timestamps are in range).
    func testTimestampInsideACompressedBatchIsChecked() {
        let now: Int64 = 1_700_000_000_000
        var b = RecordBatchBuilder(baseTimestamp: now)
        b.compression = .lz4
        b.append(key: "a", value: "1", timestamp: now)
        b.append(key: "b", value: "2", timestamp: now - 60_000)
        b.append(key: "c", value: "3", timestamp: now)
        XCTAssertThrowsError(try validateProducedRecords(b.build(), maxMessageBytes: 1 << 20, timestampType: .createTime,
                                                         messageTimestampDifferenceMaxMs: 10_000, nowMs: now)) { e in
            XCTAssertEqual((e as! RecordBatchError).kafkaErrorCode, 32)
            // KIP-467: the one record out of range is named, with Kafka's wording.
            XCTAssertEqual(e as! RecordBatchError, .invalidTimestamps([RecordError(batchIndex: 1, message:
                "Timestamp \(now - 60_000) of message with offset 1 is out of range. The timestamp should be within [\(now - 10_000), \(now + 10_000)]")]))
        }
    }

    /// A produced batch whose records inflate past max.message.bytes is MESSAGE_TOO_LARGE
    /// although its compressed size is far below.
    func testProducedZipBombBatchIsRefused() {
        var b = RecordBatchBuilder(baseTimestamp: 1_000)
        b.compression = .zstd
        b.append(key: nil, value: [UInt8](repeating: 0, count: 4 << 20), timestamp: 1_000)
        let batch = b.build()
        XCTAssertLessThan(batch.readableBytes, 4096)
        XCTAssertThrowsError(try validateProducedRecords(batch, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 1_000)) { e in
            XCTAssertEqual((e as! RecordBatchError).kafkaErrorCode, 10)
            XCTAssertTrue("\(e)".contains("inflate past max.message.bytes"), "\(e)")
        }
    }

    /// A topic's compression.type: batches in another codec are re-encoded, the ones already in
    /// it are copied, the headers point into the new buffer; a batch that grows past
    /// max.message.bytes by being decompressed is MESSAGE_TOO_LARGE (as in Kafka).
    func testRecompressProducedRecords() throws {
        var records = ByteBuffer()
        for codec in [CompressionType.none, .zstd, .gzip] {
            var b = RecordBatchBuilder(baseTimestamp: 1_000)
            b.compression = codec
            for i in 0..<10 { b.append(key: "k\(i)", value: String(repeating: "\(codec)", count: 100), timestamp: 1_000) }
            b.build(into: &records)
        }
        let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 1_000)
        let (out, outHeaders) = try recompressProducedRecords(records, headers: headers, to: .zstd, level: 3, maxMessageBytes: 1 << 20)
        XCTAssertEqual(outHeaders.map(\.compression), [.zstd, .zstd, .zstd])
        XCTAssertEqual(try validateProducedRecords(out, maxMessageBytes: 1 << 20, timestampType: .createTime, nowMs: 1_000), outHeaders)
        XCTAssertEqual(out.getSlice(at: outHeaders[1].index, length: outHeaders[1].totalSize),
                       records.getSlice(at: headers[1].index, length: headers[1].totalSize), "a zstd batch is copied unchanged")
        for (h, o) in zip(headers, outHeaders) {
            XCTAssertEqual(try o.records(in: out).map(\.value), try h.records(in: records).map(\.value))
        }

        var big = RecordBatchBuilder(baseTimestamp: 1_000)
        big.compression = .gzip
        big.append(key: nil, value: [UInt8](repeating: 1, count: 2000), timestamp: 1_000)
        let batch = big.build()
        let bigHeaders = try validateProducedRecords(batch, maxMessageBytes: 2050, timestampType: .createTime, nowMs: 1_000)
        XCTAssertThrowsError(try recompressProducedRecords(batch, headers: bigHeaders, to: .none, level: nil, maxMessageBytes: 2050)) { e in
            guard case .messageTooLarge = e as! RecordBatchError else { return XCTFail("\(e)") }
        }
    }

    /// Fuzzing in the small: random bytes, and valid streams with bytes flipped, cut or
    /// appended, either decode within the bound or throw; none crashes or writes past it.
    func testGarbageNeverCrashesTheDecoders() {
        var rng = SystemRandomNumberGenerator()
        for codec in Self.codecs {
            let good = Array(RecordCompression.compress(ByteBuffer(bytes: Self.payload), codec: codec).readableBytesView)
            for round in 0..<2000 {
                var bytes: [UInt8]
                switch round % 4 {
                case 0: bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                case 1:
                    bytes = good
                    for _ in 0..<Int.random(in: 1...4, using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng) }
                case 2: bytes = Array(good.prefix(Int.random(in: 0..<good.count, using: &rng)))
                default: bytes = good + (0..<Int.random(in: 1...20, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
                let bound = Int.random(in: 0...4096, using: &rng)
                if let out = try? RecordCompression.decompress(ByteBuffer(bytes: bytes), codec: codec, maxBytes: bound) {
                    XCTAssertLessThanOrEqual(out.readableBytes, bound, "\(codec)")
                }
            }
        }
    }
}
