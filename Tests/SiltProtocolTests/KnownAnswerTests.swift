import NIOCore
import XCTest
@testable import SiltProtocol

/// Byte vectors assembled by hand from the Kafka protocol guide, to catch bugs that a
/// symmetric encoder/decoder pair would hide.
final class KnownAnswerTests: XCTestCase {
    func testUnsignedVarintVectors() throws {
        let vectors: [(UInt32, [UInt8])] = [
            (0, [0x00]), (1, [0x01]), (127, [0x7F]), (128, [0x80, 0x01]), (300, [0xAC, 0x02]),
            (16383, [0xFF, 0x7F]), (16384, [0x80, 0x80, 0x01]),
            (UInt32.max, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ]
        for (value, expected) in vectors {
            XCTAssertEqual(bytesOf { $0.writeUnsignedVarint(value) }, expected, "uvarint \(value)")
            var b = ByteBuffer(bytes: expected)
            XCTAssertEqual(try b.readUnsignedVarint(), value)
            XCTAssertEqual(b.readableBytes, 0)
            XCTAssertEqual(ByteBuffer.unsignedVarintSize(value), expected.count)
        }
    }

    func testZigZagVarintVectors() throws {
        let vectors: [(Int32, [UInt8])] = [
            (0, [0x00]), (-1, [0x01]), (1, [0x02]), (-2, [0x03]), (2, [0x04]), (-64, [0x7F]), (64, [0x80, 0x01]),
            (Int32.max, [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]), (Int32.min, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ]
        for (value, expected) in vectors {
            XCTAssertEqual(bytesOf { $0.writeVarint(value) }, expected, "varint \(value)")
            var b = ByteBuffer(bytes: expected)
            XCTAssertEqual(try b.readVarint(), value)
        }
        let longs: [(Int64, [UInt8])] = [
            (0, [0x00]), (-1, [0x01]), (1, [0x02]), (300, [0xD8, 0x04]),
            (Int64.max, [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            (Int64.min, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        ]
        for (value, expected) in longs {
            XCTAssertEqual(bytesOf { $0.writeVarlong(value) }, expected, "varlong \(value)")
            var b = ByteBuffer(bytes: expected)
            XCTAssertEqual(try b.readVarlong(), value)
        }
    }

    func testVarintTooLongThrows() {
        var b = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        XCTAssertThrowsError(try b.readUnsignedVarint()) { e in
            guard case KafkaProtocolError.invalidValue = e else { return XCTFail("\(e)") }
        }
        var t = ByteBuffer(bytes: [0x80, 0x80])
        XCTAssertThrowsError(try t.readUnsignedVarint()) { e in
            XCTAssertEqual(e as? KafkaProtocolError, .truncated("unsigned varint"))
        }
    }

    func testStringEncodings() throws {
        XCTAssertEqual(bytesOf { $0.writeKafkaString("abc", compact: true) }, [0x04, 0x61, 0x62, 0x63])
        XCTAssertEqual(bytesOf { $0.writeKafkaNullableString(nil, compact: true) }, [0x00])
        XCTAssertEqual(bytesOf { $0.writeKafkaString("", compact: true) }, [0x01])
        XCTAssertEqual(bytesOf { $0.writeKafkaString("abc", compact: false) }, [0x00, 0x03, 0x61, 0x62, 0x63])
        XCTAssertEqual(bytesOf { $0.writeKafkaNullableString(nil, compact: false) }, [0xFF, 0xFF])
        XCTAssertEqual(bytesOf { $0.writeKafkaNullableBytes(nil, compact: false) }, [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(bytesOf { $0.writeKafkaBytes([7], compact: true) }, [0x02, 0x07])
        XCTAssertEqual(bytesOf { $0.writeKafkaString("é", compact: true) }, [0x03, 0xC3, 0xA9])
        var b = ByteBuffer(bytes: [0x04, 0x61, 0x62, 0x63, 0x00])
        XCTAssertEqual(try b.readCompactString(), "abc")
        XCTAssertNil(try b.readCompactNullableString())
        var n = ByteBuffer(bytes: [0x00])
        XCTAssertThrowsError(try n.readCompactString())
        var bad = ByteBuffer(bytes: [0x00, 0x02, 0xC3, 0x28])
        XCTAssertThrowsError(try bad.readClassicString()) { e in
            guard case KafkaProtocolError.invalidValue = e else { return XCTFail("\(e)") }
        }
        var neg = ByteBuffer(bytes: [0xFF, 0xFE])
        XCTAssertThrowsError(try neg.readClassicNullableString()) { e in
            XCTAssertEqual(e as? KafkaProtocolError, .invalidLength("string", -2))
        }
    }

    /// ApiVersionsRequest v3 exactly as librdkafka sends it: request header v2 with a
    /// classic (int16) client id, then compact ClientSoftwareName/Version and an empty tag section.
    func testApiVersionsRequestV3Frame() throws {
        let frame: [UInt8] = [
            0x00, 0x12,             // api key 18
            0x00, 0x03,             // api version 3
            0x00, 0x00, 0x00, 0x2A, // correlation id 42
            0x00, 0x07, 0x72, 0x64, 0x6B, 0x61, 0x66, 0x6B, 0x61, // client id "rdkafka" (classic!)
            0x00,                   // header tagged fields
            0x0B, 0x6C, 0x69, 0x62, 0x72, 0x64, 0x6B, 0x61, 0x66, 0x6B, 0x61, // "librdkafka"
            0x06, 0x32, 0x2E, 0x33, 0x2E, 0x30, // "2.3.0"
            0x00,                   // body tagged fields
        ]
        var buf = ByteBuffer(bytes: frame)
        let hv = requestHeaderVersion(apiKey: 18, apiVersion: 3)
        XCTAssertEqual(hv, 2)
        let header = try RequestHeader(from: &buf, version: hv)
        XCTAssertEqual(header.requestApiKey, 18)
        XCTAssertEqual(header.requestApiVersion, 3)
        XCTAssertEqual(header.correlationId, 42)
        XCTAssertEqual(header.clientId, "rdkafka")
        let body = try ApiVersionsRequest(from: &buf, version: 3)
        XCTAssertEqual(body.clientSoftwareName, "librdkafka")
        XCTAssertEqual(body.clientSoftwareVersion, "2.3.0")
        XCTAssertEqual(buf.readableBytes, 0)

        var again = ByteBuffer(bytes: frame)
        let (h2, hv2) = try RequestHeader.read(from: &again)
        XCTAssertEqual(h2, header)
        XCTAssertEqual(hv2, 2)

        var out = ByteBuffer()
        header.encode(into: &out, version: hv)
        body.encode(into: &out, version: 3)
        XCTAssertEqual(Array(out.readableBytesView), frame)
    }

    func testApiVersionsResponseV0Bytes() throws {
        var r = ApiVersionsResponse()
        r.errorCode = 0
        var k = ApiVersionsResponse.ApiVersion()
        k.apiKey = 18
        k.minVersion = 0
        k.maxVersion = 3
        r.apiKeys = [k]
        let expected: [UInt8] = [
            0x00, 0x00,             // error code
            0x00, 0x00, 0x00, 0x01, // array length 1 (int32)
            0x00, 0x12, 0x00, 0x00, 0x00, 0x03,
        ]
        XCTAssertEqual(bytesOf { r.encode(into: &$0, version: 0) }, expected)
        var b = ByteBuffer(bytes: expected)
        XCTAssertEqual(try ApiVersionsResponse(from: &b, version: 0), r)
        XCTAssertEqual(responseHeaderVersion(apiKey: 18, apiVersion: 3), 0)
    }

    func testMetadataRequestV1Body() throws {
        var m = MetadataRequest()
        var t = MetadataRequest.MetadataRequestTopic()
        t.name = "foo"
        m.topics = [t]
        let expected: [UInt8] = [0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x66, 0x6F, 0x6F]
        XCTAssertEqual(bytesOf { m.encode(into: &$0, version: 1) }, expected)
        var b = ByteBuffer(bytes: expected)
        XCTAssertEqual(try MetadataRequest(from: &b, version: 1), m)
        // null topics = all topics
        m.topics = nil
        XCTAssertEqual(bytesOf { m.encode(into: &$0, version: 1) }, [0xFF, 0xFF, 0xFF, 0xFF])
        var n = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertNil(try MetadataRequest(from: &n, version: 1).topics)
    }

    func testUUIDBase64() throws {
        let u = KafkaUUID(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210)
        XCTAssertEqual(u.base64URL, "ASNFZ4mrze_-3LqYdlQyEA")
        XCTAssertEqual(u.description.count, 22)
        XCTAssertEqual(KafkaUUID(base64URL: "ASNFZ4mrze_-3LqYdlQyEA"), u)
        XCTAssertEqual(KafkaUUID.one.base64URL, "AAAAAAAAAAAAAAAAAAAAAQ")
        XCTAssertEqual(KafkaUUID.zero.base64URL, "AAAAAAAAAAAAAAAAAAAAAA")
        XCTAssertNil(KafkaUUID(base64URL: "too-short"))
        XCTAssertNil(KafkaUUID(base64URL: "ASNFZ4mrze_-3LqYdlQy!A"))
        XCTAssertEqual(bytesOf { $0.writeKafkaUUID(u) }, [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
                                                          0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10])
        for _ in 0..<200 {
            let r = KafkaUUID.random()
            XCTAssertNotEqual(r, .zero)
            XCTAssertNotEqual(r, .one)
            XCTAssertFalse(r.base64URL.hasPrefix("-"))
            XCTAssertEqual((r.high >> 12) & 0xF, 4)
            XCTAssertEqual(KafkaUUID(base64URL: r.base64URL), r)
        }
    }

    func testHeaderVersions() {
        XCTAssertEqual(requestHeaderVersion(apiKey: 0, apiVersion: 8), 1)   // Produce v8
        XCTAssertEqual(requestHeaderVersion(apiKey: 0, apiVersion: 9), 2)   // Produce v9 flexible
        XCTAssertEqual(requestHeaderVersion(apiKey: 7, apiVersion: 0), 0)   // ControlledShutdown v0
        XCTAssertEqual(requestHeaderVersion(apiKey: 18, apiVersion: 0), 1)
        XCTAssertEqual(responseHeaderVersion(apiKey: 0, apiVersion: 9), 1)
        XCTAssertEqual(responseHeaderVersion(apiKey: 0, apiVersion: 8), 0)
        XCTAssertEqual(responseHeaderVersion(apiKey: 18, apiVersion: 4), 0)
        XCTAssertEqual(ApiKey.produce.requestType == ProduceRequest.self, true)
        XCTAssertTrue(ProduceRequest.Response.self == ProduceResponse.self)
        XCTAssertEqual(ApiKey(rawValue: 18)?.name, "ApiVersions")
        XCTAssertEqual(ApiKey.fetch.flexibleVersionsStart, 12)
    }

    func testResponseHeaderBytes() throws {
        var h = ResponseHeader()
        h.correlationId = 7
        XCTAssertEqual(bytesOf { h.encode(into: &$0, version: 0) }, [0, 0, 0, 7])
        XCTAssertEqual(bytesOf { h.encode(into: &$0, version: 1) }, [0, 0, 0, 7, 0])
    }

    func testTaggedFieldsKnownAndUnknown() throws {
        // ApiVersionsResponse v3 with FinalizedFeaturesEpoch (tag 1) set plus an unknown tag 5.
        var r = ApiVersionsResponse()
        r.finalizedFeaturesEpoch = 1
        r.unknownTaggedFields = [5: [0xAA]]
        let bytes = bytesOf { r.encode(into: &$0, version: 3) }
        let expected: [UInt8] = [
            0x00, 0x00,       // error code
            0x01,             // compact array: 0 elements
            0x00, 0x00, 0x00, 0x00, // throttle time
            0x02,             // 2 tagged fields
            0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 1, // tag 1, size 8, int64 1
            0x05, 0x01, 0xAA, // tag 5, size 1
        ]
        XCTAssertEqual(bytes, expected)
        var b = ByteBuffer(bytes: expected)
        XCTAssertEqual(try ApiVersionsResponse(from: &b, version: 3), r)
    }

    func testNullableStructMarker() throws {
        var req = DescribeTopicPartitionsRequest()
        req.responsePartitionLimit = 1
        req.cursor = nil
        XCTAssertEqual(bytesOf { req.encode(into: &$0, version: 0) }, [0x01, 0, 0, 0, 1, 0xFF, 0x00])
        var c = DescribeTopicPartitionsRequest.Cursor()
        c.topicName = "t"
        c.partitionIndex = 2
        req.cursor = c
        XCTAssertEqual(bytesOf { req.encode(into: &$0, version: 0) },
                       [0x01, 0, 0, 0, 1, 0x01, 0x02, 0x74, 0, 0, 0, 2, 0x00, 0x00])
    }
}
