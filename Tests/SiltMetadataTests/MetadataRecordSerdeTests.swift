import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol
import SiltRecords
import SiltStreams
import XCTest

final class MetadataRecordSerdeTests: XCTestCase {
    func testEveryCaseRoundTrips() throws {
        for r in Samples.records {
            let bytes = MetadataRecordSerde.encode(r)
            XCTAssertEqual(try MetadataRecordSerde.decode(bytes), r)
            XCTAssertEqual(MetadataRecordSerde.encode(try MetadataRecordSerde.decode(bytes)), bytes, "\(r)")
        }
        let types = Set(Samples.records.map { MetadataRecordSerde.type(of: $0) })
        XCTAssertEqual(types, Set(MetadataRecordType.allCases), "the samples cover every record type")
    }

    func testFrameIsKafkas() throws {
        let bytes = MetadataRecordSerde.encode(.streamIdFloor(4))
        var b = ByteBuffer(bytes: bytes)
        XCTAssertEqual(try b.readUnsignedVarint(), 1, "frame version")
        XCTAssertEqual(try b.readUnsignedVarint(), UInt32(StreamIdFloorRecord.apiKey), "record type")
        XCTAssertEqual(try b.readUnsignedVarint(), 0, "record version")
        XCTAssertEqual(try StreamIdFloorRecord(from: &b, version: 0).nextStreamId, 4)
        XCTAssertEqual(b.readableBytes, 0)
    }

    /// Version 0 of every record type, byte for byte. A change here changes what is on disk
    /// and on the wire: add a version (or a tagged field) instead.
    static let golden: [MetadataRecordType: (MetadataRecord, String)] = [
        .topicRecord: (Samples.records[0],
            "01e80700076f72646572730f1e2d3c4b5a69788796a5b4c3d2e1f000000002030f636c65616e75702e706f6c69637908636f6d70616374000d726574656e74696f6e2e6d73053130303000030000000000000001ffffffffffffffff00"),
        .partitionCountRecord: (Samples.records[2],
            "01e907000f1e2d3c4b5a69788796a5b4c3d2e1f00000000302000000000000000300"),
        .topicConfigRecord: (Samples.records[4],
            "01ea07000f1e2d3c4b5a69788796a5b4c3d2e1f00d726574656e74696f6e2e6d730000"),
        .removeTopicRecord: (Samples.records[5],
            "01eb07000f1e2d3c4b5a69788796a5b4c3d2e1f000"),
        .streamIdFloorRecord: (Samples.records[6],
            "01ec0700000000000000000400"),
        .nodeEpochRecord: (Samples.records[7],
            "01ed070000000007000000000000000200"),
        .prepareObjectsRecord: (Samples.records[8],
            "01ee0700000000000000000a00000003000000070000018bcfe5680000"),
        .commitObjectsRecord: (Samples.records[9],
            "01ef070003000000000000000a000000000000100000030000000000000001000000000000000000000000000000050000000000000000020000000000000007000000000000000900010023030000000000000064000000000000002a000000000000000000ffffffffffffffff00000000000000000b000000000000000101020000000000000003000000000000000000000000000000010000010000018bcfe5680100"),
        .trimStreamRecord: (Samples.records[11],
            "01f007000000000000000001000000000000000300"),
        .destroyObjectsRecord: (Samples.records[12],
            "01f10700030000000000000004000000000000000500"),
        .streamStateRecord: (Samples.records[13],
            "01f20700000000000000000100000000000000020000000000000003000000000000000500"),
        .committedObjectRecord: (Samples.records[14],
            "01f30700000000000000000a00000000000010000002000000000000000100000000000000000000000000000005000000000000000008010012020000000000000064000000000000002a00"),
        .deadObjectsRecord: (Samples.records[16],
            "01f4070002000000000000000600"),
        .objectIdFloorRecord: (Samples.records[17],
            "01f50700000000000000000d00"),
        .brokerConfigRecord: (Samples.records[18],
            "01f60700ffffffff116c6f672e726574656e74696f6e2e6d7306363030303000"),
        .producerIdsRecord: (Samples.records[20],
            "01f70700ffffffff00000000000003e800"),
        .brokerRegistrationRecord: (Samples.records[21],
            "01f80700000000030f1e2d3c4b5a69788796a5b4c3d2e1f000000000000000050261020a504c41494e544558540268000023840000000100"),
        .brokerFenceRecord: (Samples.records[22], "01f907000000000300000000000000050000"),
        .partitionLeaderRecord: (Samples.records[23],
            "01fa0700" + "0000000000000001" + "00000003" + "00000002" + "0200000003" + "0000000000000001" + "00"),
        .unregisterBrokerRecord: (Samples.records[24], "01fb0700" + "00000003" + "0000000000000005" + "00"),
        .groupConfigRecord: (Samples.records[25],
            "01fc0700" + "02" + "67" + "1c" + "636f6e73756d65722e73657373696f6e2e74696d656f75742e6d73" + "06" + "3530303030" + "00"),
        .userScramCredentialRecord: (Samples.records[27],
            "01fd0700" + "06616c696365" + "01" + "030102" + "0203" + "0204" + "00001000" + "00"),
        .removeUserScramCredentialRecord: (Samples.records[28], "01fe0700" + "06616c696365" + "01" + "00"),
        .accessControlEntryRecord: (Samples.first(.accessControlEntryRecord),
            "01ff0700" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0" + "02" + "0274" + "04" + "07557365723a2a" + "022a" + "03" + "02" + "00"),
        .removeAccessControlEntryRecord: (Samples.first(.removeAccessControlEntryRecord), "01800800" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0" + "00"),
    ]

    func testGoldenBytesOfVersion0() throws {
        XCTAssertEqual(Set(Self.golden.keys), Set(MetadataRecordType.allCases), "one golden record per type")
        for type in MetadataRecordType.allCases {
            guard let (record, expected) = Self.golden[type] else { continue }
            XCTAssertEqual(MetadataRecordSerde.type(of: record), type)
            XCTAssertEqual(hex(MetadataRecordSerde.encode(record)), expected, "\(type) v0 bytes changed")
            XCTAssertEqual(try MetadataRecordSerde.decode(unhex(expected)), record, "\(type) v0 bytes decode")
        }
    }

    func testUnknownTaggedFieldsAreIgnored() throws {
        // A newer Silt added tagged fields 5 (root) and 9 (in a nested struct) to version 0.
        let r = Samples.records[9]
        guard case .commitObjects(let c) = r else { return XCTFail() }
        var m = CommitObjectsRecord()
        m.objects = c.objects.map { o in
            var n = CommitObjectsRecord.NewObject()
            n.objectId = Int64(o.objectId); n.size = o.size; n.kind = o.kind.rawValue
            n.ranges = o.ranges.map { var w = CommitObjectsRecord.StreamRange(); w.streamId = Int64(bitPattern: $0.streamId)
                w.startOffset = $0.startOffset; w.endOffset = $0.endOffset; w.unknownTaggedFields = [9: [1, 2, 3]]; return w }
            n.rangeStats = o.rangeStats?.map { var w = CommitObjectsRecord.RangeStats(); w.bytes = $0.bytes; w.maxTimestampMs = $0.maxTimestampMs; return w }
            return n
        }
        m.compactedObjectIds = c.compactedObjectIds.map { Int64($0) }
        m.committedAtMs = c.committedAtMs
        m.unknownTaggedFields = [5: Array("a field from the future".utf8)]
        var b = ByteBuffer()
        b.writeUnsignedVarint(1); b.writeUnsignedVarint(UInt32(CommitObjectsRecord.apiKey)); b.writeUnsignedVarint(0)
        m.encode(into: &b, version: 0)
        let bytes = Array(b.readableBytesView)
        XCTAssertNotEqual(bytes, MetadataRecordSerde.encode(r))
        XCTAssertEqual(try MetadataRecordSerde.decode(bytes), r)
    }

    func testUnknownTypeAndFutureVersionNameBoth() {
        func frame(_ type: UInt32, _ version: UInt32, _ body: [UInt8]) -> [UInt8] {
            var b = ByteBuffer()
            b.writeUnsignedVarint(1); b.writeUnsignedVarint(type); b.writeUnsignedVarint(version); b.writeBytes(body)
            return Array(b.readableBytesView)
        }
        XCTAssertThrowsError(try MetadataRecordSerde.decode(frame(4242, 3, [0]))) { e in
            XCTAssertEqual(e as? MetadataRecordError, .unknownType(type: 4242, version: 3))
            let text = "\(e)"
            XCTAssertTrue(text.contains("4242") && text.contains("version 3"), text)
            XCTAssertEqual((e as? MetadataRecordError)?.isFromNewerRelease, true)
        }
        XCTAssertThrowsError(try MetadataRecordSerde.decode(frame(1_000_000, 0, []))) { e in
            XCTAssertEqual(e as? MetadataRecordError, .unknownType(type: 1_000_000, version: 0))
        }
        let body = Array(MetadataRecordSerde.encode(.streamIdFloor(4)).dropFirst(4))
        XCTAssertThrowsError(try MetadataRecordSerde.decode(frame(UInt32(StreamIdFloorRecord.apiKey), 1, body))) { e in
            XCTAssertEqual(e as? MetadataRecordError, .unsupportedVersion(
                type: UInt32(StreamIdFloorRecord.apiKey), name: "StreamIdFloorRecord", version: 1, highestKnown: 0))
            let text = "\(e)"
            XCTAssertTrue(text.contains("\(StreamIdFloorRecord.apiKey)") && text.contains("StreamIdFloorRecord")
                          && text.contains("version 1"), text)
            XCTAssertEqual((e as? MetadataRecordError)?.recordType, UInt32(StreamIdFloorRecord.apiKey))
            XCTAssertEqual((e as? MetadataRecordError)?.recordVersion, 1)
        }
        XCTAssertThrowsError(try MetadataRecordSerde.decode([2, 0xE8, 0x07, 0])) { e in
            XCTAssertEqual(e as? MetadataRecordError, .unsupportedFrameVersion(2))
        }
        XCTAssertThrowsError(try MetadataRecordSerde.decode(Array("{\"streamIdFloor\":{\"_0\":4}}".utf8)),
                             "JSON is not the binary form")
    }

    func testTruncatedPayloadsThrow() {
        for r in Samples.records {
            let bytes = MetadataRecordSerde.encode(r)
            for cut in 0..<bytes.count {
                XCTAssertThrowsError(try MetadataRecordSerde.decode(Array(bytes[0..<cut])), "\(r) cut at \(cut)")
            }
            XCTAssertThrowsError(try MetadataRecordSerde.decode(bytes + [0]), "a trailing byte")
        }
    }

    func testBitFlipsThrowOrDecodeButNeverTrap() {
        var threw = 0, decoded = 0
        for r in Samples.records {
            let bytes = MetadataRecordSerde.encode(r)
            for i in 0..<bytes.count {
                for bit in 0..<8 {
                    var b = bytes
                    b[i] ^= 1 << bit
                    // A flip inside an integer is a different valid record (the CRC of the log and
                    // the batch catches it); the decoder's part is to throw or decode, never to trap.
                    if let d = try? MetadataRecordSerde.decode(b) {
                        decoded += 1
                        XCTAssertEqual(try? MetadataRecordSerde.decode(MetadataRecordSerde.encode(d)), d)
                    } else {
                        threw += 1
                    }
                }
            }
            // The frame's own bytes: any flip of the frame version is refused.
            for bit in 0..<8 {
                var b = bytes
                b[0] ^= 1 << bit
                XCTAssertThrowsError(try MetadataRecordSerde.decode(b), "\(r): frame version flipped")
            }
        }
        XCTAssertGreaterThan(threw, 0)
        XCTAssertGreaterThan(decoded, 0)
    }

    func testMalformedBodiesThrowInsteadOfTrapping() throws {
        // Bodies that decode as structs but break MetadataRecord's invariants.
        func framed<M: MetadataRecordMessage>(_ m: M) -> [UInt8] {
            var b = ByteBuffer()
            b.writeUnsignedVarint(1); b.writeUnsignedVarint(UInt32(M.apiKey)); b.writeUnsignedVarint(0)
            m.encode(into: &b, version: 0)
            return Array(b.readableBytesView)
        }
        var topic = TopicRecord()
        topic.partitions = 2
        topic.streamIds = [1]
        XCTAssertThrowsError(try MetadataRecordSerde.decode(framed(topic)))
        topic.partitions = 1
        var e = TopicRecord.ConfigEntry(); e.key = "k"; e.value = "v"
        topic.configs = [e, e]
        XCTAssertThrowsError(try MetadataRecordSerde.decode(framed(topic)))
        var obj = CommittedObjectRecord()
        obj.kind = 7
        XCTAssertThrowsError(try MetadataRecordSerde.decode(framed(obj))) { e in
            XCTAssertTrue("\(e)".contains("CommittedObjectRecord"), "\(e)")
        }
        obj.kind = 0
        var range = CommittedObjectRecord.StreamRange(); range.startOffset = 5; range.endOffset = 4
        obj.ranges = [range]
        XCTAssertThrowsError(try MetadataRecordSerde.decode(framed(obj)))
        range.startOffset = 0
        obj.ranges = [range]
        obj.rangeStats = []
        XCTAssertThrowsError(try MetadataRecordSerde.decode(framed(obj)), "stats for some ranges only")
        var stats = CommittedObjectRecord.RangeStats(); stats.bytes = -1
        obj.rangeStats = [stats]
        XCTAssertThrowsError(try MetadataRecordSerde.decode(framed(obj)))
        stats.bytes = 1
        obj.rangeStats = [stats]
        XCTAssertNoThrow(try MetadataRecordSerde.decode(framed(obj)))
    }

    func testCodecBatchCarriesBinaryValuesAndTheEpoch() throws {
        let batch = MetadataRecordCodec.encodeBatch(Samples.records, baseOffset: 40, partitionLeaderEpoch: 6)
        let headers = try parseBatchHeaders(batch)
        XCTAssertEqual(headers.count, 1)
        XCTAssertEqual(headers[0].partitionLeaderEpoch, 6)
        let decoded = try MetadataRecordCodec.decode(batch)
        XCTAssertEqual(decoded.map(\.offset), (0..<Int64(Samples.records.count)).map { 40 + $0 })
        XCTAssertEqual(decoded.map(\.record), Samples.records)
        var reader = try RecordReader(batch: batch, header: headers[0])
        let first = try reader.next()!
        XCTAssertEqual(Array(first.value!.readableBytesView), MetadataRecordSerde.encode(Samples.records[0]))
        XCTAssertEqual(try parseBatchHeaders(MetadataRecordCodec.encodeBatch([.streamIdFloor(1)], baseOffset: 0))[0]
            .partitionLeaderEpoch, 0, "epoch 0 by default")
        XCTAssertEqual(try MetadataSnapshot.decode(MetadataSnapshot.encode(Samples.records)), Samples.records)
    }

    func testCodecRefusesARecordOfANewerRelease() throws {
        var builder = RecordBatchBuilder(baseOffset: 0, partitionLeaderEpoch: 0)
        builder.append(key: nil as [UInt8]?, value: MetadataRecordSerde.encode(.streamIdFloor(1)), timestamp: 0)
        builder.append(key: nil as [UInt8]?, value: [1, 0xF0, 0x0F, 0, 0], timestamp: 0)
        XCTAssertThrowsError(try MetadataRecordCodec.decode(builder.build())) { e in
            XCTAssertEqual(e as? MetadataRecordError, .unknownType(type: 0x7F0, version: 0))
        }
    }

    /// The JSON form stays readable (the legacy metadata log reads it through Codable).
    func testRecordsStillRoundTripAsJSON() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for rec in Samples.records {
            XCTAssertEqual(try JSONDecoder().decode(MetadataRecord.self, from: try encoder.encode(rec)), rec)
        }
    }
}
