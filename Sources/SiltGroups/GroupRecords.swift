import NIOCore
import SiltProtocol

/// One record for `__consumer_offsets`: a key and a value, or a tombstone (nil value).
public struct GroupRecord: Equatable, Sendable {
    public var key: [UInt8]
    public var value: [UInt8]?
    public init(key: [UInt8], value: [UInt8]?) { self.key = key; self.value = value }
}

/// Writes records to `__consumer_offsets` for the coordinator. The broker implements it
/// over its write path; tests implement it in memory.
public protocol GroupPersistence: AnyObject, Sendable {
    /// Appends `records` to partition `partition` of `__consumer_offsets` and calls
    /// `completion` once they are durable (nil) or failed to be. May call it at once.
    func append(partition: Int32, records: [GroupRecord], completion: @escaping @Sendable (Error?) -> Void)
}

/// Kafka's record formats in `__consumer_offsets`: an int16 version, then the generated
/// struct. Key version 0/1 is an offset commit, 2 is group metadata (Kafka's legacy
/// numbering, which Kafka still reads and writes for classic groups), 3-8 and 16 a KIP-848 consumer
/// group's state (`ConsumerRecordType`).
public enum GroupRecords {
    static let offsetKeyVersion: Int16 = 1
    static let groupKeyVersion: Int16 = 2
    /// v3: the newest non-flexible OffsetCommitValue (with the leader epoch), what Kafka
    /// writes when no explicit expiry is given.
    static let offsetValueVersion: Int16 = 3
    /// v3: the newest non-flexible GroupMetadataValue (with static members).
    static let groupValueVersion: Int16 = 3

    /// Kafka's `partitionFor`: `Utils.abs(groupId.hashCode) % partitions`, with Java's
    /// String.hashCode over UTF-16 code units, so a group lands where Kafka would put it.
    public static func partition(for groupId: String, partitions: Int32) -> Int32 {
        precondition(partitions > 0)
        var h: Int32 = 0
        for unit in groupId.utf16 { h = h &* 31 &+ Int32(unit) }
        let abs = h == Int32.min ? 0 : Swift.abs(h)
        return abs % partitions
    }

    static func encode<M: KafkaStruct>(_ version: Int16, _ message: M) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(version)
        message.encode(into: &buffer, version: version)
        return Array(buffer.readableBytesView)
    }

    public static func offsetKey(groupId: String, _ tp: TopicPartition) -> [UInt8] {
        var key = OffsetCommitKey()
        key.group = groupId
        key.topic = tp.topic
        key.partition = tp.partition
        return encode(offsetKeyVersion, key)
    }

    public static func offsetValue(_ o: CommittedOffset) -> [UInt8] {
        var value = OffsetCommitValue()
        value.offset = o.offset
        value.leaderEpoch = o.leaderEpoch
        value.metadata = o.metadata
        value.commitTimestamp = o.commitTimestampMs
        return encode(offsetValueVersion, value)
    }

    public static func groupKey(_ groupId: String) -> [UInt8] {
        var key = GroupMetadataKey()
        key.group = groupId
        return encode(groupKeyVersion, key)
    }

    static func groupValue(_ g: Group) -> [UInt8] {
        var value = GroupMetadataValue()
        value.protocolType = g.protocolType ?? ""
        value.generation = g.generationId
        value.protocol = g.protocolName
        value.leader = g.leaderId
        value.currentStateTimestamp = g.stateSinceMs
        value.members = g.memberOrder.compactMap { g.members[$0] }.map { m in
            var mm = GroupMetadataValue.MemberMetadata()
            mm.memberId = m.memberId
            mm.groupInstanceId = m.groupInstanceId
            mm.clientId = m.clientId
            mm.clientHost = m.clientHost
            mm.rebalanceTimeout = m.rebalanceTimeoutMs
            mm.sessionTimeout = m.sessionTimeoutMs
            mm.subscription = m.metadata(for: g.protocolName)
            mm.assignment = m.assignment
            return mm
        }
        return encode(groupValueVersion, value)
    }

    /// A decoded `__consumer_offsets` record.
    public enum Decoded: Equatable {
        case offset(groupId: String, TopicPartition, CommittedOffset?)
        case group(groupId: String, GroupMetadataValue?)
        /// A KIP-848 consumer group's record (key types 3-8 and 16).
        case consumer(groupId: String, ConsumerRecord)
    }

    /// Decodes a record as Kafka lays it out; values newer than we know are read as the
    /// newest version we know (Kafka's forward-compatible reading of these records).
    public static func decode(key: ByteBuffer, value: ByteBuffer?) throws -> Decoded {
        var k = key
        let keyVersion = try k.readKafkaInt16("record key version")
        var v = value
        let valueVersion = try v.map { b -> Int16 in var b = b; let ver = try b.readKafkaInt16("record value version"); v = b; return ver }
        switch keyVersion {
        case 0, 1:
            let ok = try OffsetCommitKey(from: &k, version: keyVersion)
            guard var v, let valueVersion else { return .offset(groupId: ok.group, TopicPartition(ok.topic, ok.partition), nil) }
            let ov = try OffsetCommitValue(from: &v, version: min(valueVersion, OffsetCommitValue.highestSupportedVersion))
            return .offset(groupId: ok.group, TopicPartition(ok.topic, ok.partition),
                           CommittedOffset(offset: ov.offset, leaderEpoch: ov.leaderEpoch, metadata: ov.metadata,
                                           commitTimestampMs: ov.commitTimestamp))
        case 2:
            let gk = try GroupMetadataKey(from: &k, version: keyVersion)
            guard var v, let valueVersion else { return .group(groupId: gk.group, nil) }
            return .group(groupId: gk.group,
                          try GroupMetadataValue(from: &v, version: min(valueVersion, GroupMetadataValue.highestSupportedVersion)))
        default:
            guard let type = ConsumerRecordType(rawValue: keyVersion) else {
                throw KafkaProtocolError.unsupportedVersion(apiKey: -1, version: keyVersion)
            }
            return try decodeConsumer(type, key: &k, value: value)
        }
    }
}

/// The topics in a consumer's JoinGroup metadata (ConsumerProtocolSubscription, with its
/// int16 version prefix).
enum ConsumerSubscription {
    static func topics(_ metadata: [UInt8]) -> [String]? {
        var buffer = ByteBuffer(bytes: metadata)
        guard let version = try? buffer.readKafkaInt16("subscription version"), version >= 0 else { return nil }
        let v = min(version, ConsumerProtocolSubscription.highestSupportedVersion)
        return (try? ConsumerProtocolSubscription(from: &buffer, version: v))?.topics
    }
}
