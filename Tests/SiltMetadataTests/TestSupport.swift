import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol
import SiltStreams
import XCTest

/// Encode `message` at `version`, decode it back, compare, re-encode and compare bytes.
/// With `truncations`, also checks that every strict prefix of the encoding fails to decode.
/// (The generated round-trip tests call it; the same helper as SiltProtocolTests'.)
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

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

func unhex(_ s: String) -> [UInt8] {
    let chars = Array(s.utf8)
    return stride(from: 0, to: chars.count, by: 2).map { UInt8(String(decoding: chars[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}

/// Fixed values, so that golden bytes stay the same from run to run.
enum Samples {
    static let topicId = UUID(uuidString: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")!

    /// At least one record per case; optionals both nil and not.
    static let records: [MetadataRecord] = [
        .topic(.init(name: "orders", id: topicId, partitions: 2, configs: ["retention.ms": "1000", "cleanup.policy": "compact"],
                     streamIds: [1, UInt64.max])),
        .topic(.init(name: "é", id: topicId, partitions: 0, configs: [:], streamIds: [])),
        .partitionCount(topicId: topicId, count: 3, streamIds: [3]),
        .topicConfig(topicId: topicId, key: "retention.ms", value: "5"),
        .topicConfig(topicId: topicId, key: "retention.ms", value: nil),
        .removeTopic(topicId: topicId),
        .streamIdFloor(4),
        .nodeEpoch(nodeId: 7, epoch: 2),
        .prepareObjects(firstId: 10, count: 3, nodeId: 7, expiresAtMs: 1_700_000_000_000),
        .commitObjects(.init(objects: [
            .init(objectId: 10, size: 4096, kind: .streamSet,
                  ranges: [StreamRange(streamId: 1, startOffset: 0, endOffset: 5), StreamRange(streamId: 2, startOffset: 7, endOffset: 9)],
                  rangeStats: [RangeStats(bytes: 100, maxTimestampMs: 42), RangeStats(bytes: 0, maxTimestampMs: -1)]),
            .init(objectId: 11, size: 1, kind: .stream, ranges: [StreamRange(streamId: 3, startOffset: 0, endOffset: 1)]),
        ], compactedObjectIds: [], committedAtMs: 1_700_000_000_001)),
        .commitObjects(.init(objects: [], compactedObjectIds: [4, 5], committedAtMs: 9)),
        .trimStream(streamId: 1, newStartOffset: 3),
        .destroyObjects(objectIds: [4, 5]),
        .streamState(streamId: 1, epoch: 2, startOffset: 3, endOffset: 5),
        .committedObject(CommittedObject(objectId: 10, size: 4096, kind: .streamSet,
                                         ranges: [StreamRange(streamId: 1, startOffset: 0, endOffset: 5)], committedAtMs: 8,
                                         rangeStats: [RangeStats(bytes: 100, maxTimestampMs: 42)])),
        .committedObject(CommittedObject(objectId: 12, size: 1, kind: .stream, ranges: [], committedAtMs: 8)),
        .deadObjects(objectIds: [6]),
        .objectIdFloor(13),
        .brokerConfig(nodeId: MetadataRecord.clusterDefaultNode, key: "log.retention.ms", value: "60000"),
        .brokerConfig(nodeId: 3, key: "log.retention.ms", value: nil),
        .producerIds(brokerId: -1, nextProducerId: 1000),
        .brokerRegistration(BrokerRegistration(
            nodeId: 3, incarnationId: UUID(uuidString: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")!, brokerEpoch: 5, rack: "a",
            listeners: [BrokerEndpoint(name: "PLAINTEXT", host: "h", port: 9092)], fenced: true)),
        .brokerFence(nodeId: 3, brokerEpoch: 5, fenced: false),
        .partitionLeader(streamId: 1, PartitionLeadership(leader: 3, leaderEpoch: 2, replicas: [3], streamEpoch: 1)),
        .unregisterBroker(nodeId: 3, brokerEpoch: 5),
        .groupConfig(groupId: "g", key: "consumer.session.timeout.ms", value: "50000"),
        .groupConfig(groupId: "g", key: "consumer.session.timeout.ms", value: nil),
        .userScramCredential(name: "alice", mechanism: .sha256,
                             ScramCredential(salt: [1, 2], storedKey: [3], serverKey: [4], iterations: 4096)),
        .removeUserScramCredential(name: "alice", mechanism: .sha256),
        .accessControlEntry(id: UUID(uuidString: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")!,
                            AclBinding(resourceType: .topic, resourceName: "t", patternType: .prefixed, principal: "User:*",
                                       host: "*", operation: .read, permission: .deny)),
        .removeAccessControlEntry(id: UUID(uuidString: "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")!),
    ]

    /// The first sample of a record type (golden entries name their sample by type, not index).
    static func first(_ type: MetadataRecordType) -> MetadataRecord {
        records.first { MetadataRecordSerde.type(of: $0) == type }!
    }
}
