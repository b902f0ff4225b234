import Foundation
import NIOCore
import SiltProtocol

/// A group's committed offsets and the consumer protocol's embedded payloads, for the
/// console consumer and kafka-consumer-groups. Requests go to the group's coordinator.
public enum GroupOffsets {
    /// Committed offsets of `group` (every partition it committed when `partitions` is nil).
    /// Partitions without a committed offset are left out.
    public static func fetch(_ group: String, _ coordinator: AdminSession,
                             partitions: [PartitionKey]? = nil) throws -> [PartitionKey: Int64] {
        var req = OffsetFetchRequest()
        req.groupId = group
        let wanted: [(String, [Int32])]? = partitions.map { ps in
            Dictionary(grouping: ps, by: \.topic).sorted { $0.key < $1.key }.map { ($0.key, $0.value.map(\.partition).sorted()) }
        }
        req.topics = wanted?.map { name, indexes in
            var t = OffsetFetchRequest.OffsetFetchRequestTopic()
            (t.name, t.partitionIndexes) = (name, indexes)
            return t
        }
        // v8+ names the group in `groups`; older versions in the fields above.
        var g = OffsetFetchRequest.OffsetFetchRequestGroup()
        g.groupId = group
        g.topics = wanted?.map { name, indexes in
            var t = OffsetFetchRequest.OffsetFetchRequestTopics()
            (t.name, t.partitionIndexes) = (name, indexes)
            return t
        }
        req.groups = [g]
        let resp = try coordinator.send(req)
        var out: [PartitionKey: Int64] = [:]
        if let rg = resp.groups.first {
            guard rg.errorCode == 0 else { throw failure("OffsetFetch", group, rg.errorCode) }
            for t in rg.topics {
                for p in t.partitions where p.errorCode == 0 && p.committedOffset >= 0 {
                    out[PartitionKey(t.name, p.partitionIndex)] = p.committedOffset
                }
            }
        } else {
            guard resp.errorCode == 0 else { throw failure("OffsetFetch", group, resp.errorCode) }
            for t in resp.topics {
                for p in t.partitions where p.errorCode == 0 && p.committedOffset >= 0 {
                    out[PartitionKey(t.name, p.partitionIndex)] = p.committedOffset
                }
            }
        }
        return out
    }

    /// Commits `offsets` for `group`: as a member (`generation`, `memberId`) or, with
    /// generation -1 and an empty member id, as an admin client commits for an empty group.
    public static func commit(_ group: String, _ coordinator: AdminSession, _ offsets: [PartitionKey: Int64],
                              generation: Int32 = -1, memberId: String = "") throws {
        guard !offsets.isEmpty else { return }
        var req = OffsetCommitRequest()
        req.groupId = group
        req.generationIdOrMemberEpoch = generation
        req.memberId = memberId
        req.retentionTimeMs = -1
        req.topics = Dictionary(grouping: offsets.keys, by: \.topic).sorted { $0.key < $1.key }.map { topic, keys in
            var t = OffsetCommitRequest.OffsetCommitRequestTopic()
            t.name = topic
            t.partitions = keys.sorted().map { k in
                var p = OffsetCommitRequest.OffsetCommitRequestPartition()
                p.partitionIndex = k.partition
                p.committedOffset = offsets[k]!
                p.commitTimestamp = -1
                return p
            }
            return t
        }
        let resp = try coordinator.send(req)
        for t in resp.topics {
            for p in t.partitions where p.errorCode != 0 {
                throw failure("OffsetCommit \(t.name)-\(p.partitionIndex)", group, p.errorCode)
            }
        }
    }

    static func failure(_ what: String, _ group: String, _ code: Int16) -> AdminSession.Failure {
        AdminSession.Failure("\(what) for group '\(group)' failed with \(KafkaErrorCode.name(code))")
    }
}

/// The consumer protocol's payloads inside JoinGroup and SyncGroup: an int16 version, then
/// the generated struct in that version (Kafka's `ConsumerProtocol`).
public enum ConsumerProtocolPayload {
    /// The subscription a member sends in JoinGroup (version 0: topics, no user data).
    public static func subscription(topics: [String]) -> [UInt8] {
        var s = ConsumerProtocolSubscription()
        s.topics = topics
        s.userData = nil
        return encoded(s, version: 0)
    }

    /// The topics of a member's subscription; nil when it does not decode.
    public static func topics(ofSubscription bytes: [UInt8]) -> [String]? {
        var buffer = ByteBuffer(bytes: bytes)
        guard let v = try? buffer.readKafkaInt16("subscription version"), v >= 0 else { return nil }
        return (try? ConsumerProtocolSubscription(from: &buffer, version: min(v, ConsumerProtocolSubscription.highestSupportedVersion)))?.topics
    }

    /// The assignment the leader sends in SyncGroup (version 0).
    public static func assignment(_ partitions: [PartitionKey]) -> [UInt8] {
        var a = ConsumerProtocolAssignment()
        a.assignedPartitions = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { t, ps in
            var tp = ConsumerProtocolAssignment.TopicPartition()
            tp.topic = t
            tp.partitions = ps.map(\.partition).sorted()
            return tp
        }
        a.userData = nil
        return encoded(a, version: 0)
    }

    /// The partitions of an assignment (an empty payload, as Kafka sends to a member with
    /// nothing assigned, is no partitions); nil when it does not decode.
    public static func partitions(ofAssignment bytes: [UInt8]) -> [PartitionKey]? {
        if bytes.isEmpty { return [] }
        var buffer = ByteBuffer(bytes: bytes)
        guard let v = try? buffer.readKafkaInt16("assignment version"), v >= 0,
              let a = try? ConsumerProtocolAssignment(from: &buffer, version: min(v, ConsumerProtocolAssignment.highestSupportedVersion))
        else { return nil }
        return a.assignedPartitions.flatMap { tp in tp.partitions.map { PartitionKey(tp.topic, $0) } }.sorted()
    }

    /// Kafka's range assignor: for each topic, its partitions in order split into contiguous
    /// ranges over the members subscribed to it (sorted by member id), the first ones one
    /// partition longer when it does not divide.
    public static func rangeAssign(subscriptions: [String: [String]], partitionCounts: [String: Int]) -> [String: [PartitionKey]] {
        var out: [String: [PartitionKey]] = Dictionary(uniqueKeysWithValues: subscriptions.keys.map { ($0, []) })
        let topics = Set(subscriptions.values.flatMap { $0 })
        for topic in topics.sorted() {
            guard let count = partitionCounts[topic], count > 0 else { continue }
            let members = subscriptions.filter { $0.value.contains(topic) }.keys.sorted()
            let per = count / members.count
            let extra = count % members.count
            var next = 0
            for (i, m) in members.enumerated() {
                let n = per + (i < extra ? 1 : 0)
                out[m]! += (next..<next + n).map { PartitionKey(topic, Int32($0)) }
                next += n
            }
        }
        return out
    }

    static func encoded<M: KafkaMessage>(_ m: M, version: Int16) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(version)
        m.encode(into: &buffer, version: version)
        return Array(buffer.readableBytesView)
    }
}
