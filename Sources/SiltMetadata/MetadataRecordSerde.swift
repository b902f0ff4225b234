import Foundation
import NIOCore
import SiltProtocol
import SiltStreams

/// One `MetadataRecord` as bytes, framed as Kafka frames its metadata records
/// (`AbstractApiMessageSerde`), the body being the generated struct of the record's schema
/// in `specs/metadata/`:
///
/// ```
///  +----------------------+---------------------+------------------------+---------------------+
///  | frame version: uvar  | record type: uvar   | record version: uvar   | body: the schema in |
///  | (always 1)           | (the schema apiKey) | (the schema version)   | that version        |
///  +----------------------+---------------------+------------------------+---------------------+
/// ```
/// Every schema is flexible: compact strings and arrays, and a tagged-field section at the
/// end of every struct. Rules (docs/metadata-records.md):
/// - a record of an older version decodes (fields it lacks take their defaults);
/// - an unknown type, or a version newer than this build, throws `MetadataRecordError` naming
///   both; the caller stops, it never skips or truncates;
/// - tagged fields this build does not know are ignored (forward compatible);
/// - bytes after the body are corruption and throw.
/// Records are written in the newest version this build knows.
public enum MetadataRecordSerde {
    /// The frame version; the only one Kafka and Silt have.
    public static let frameVersion: UInt32 = 1

    /// The record type `record` is written as.
    public static func type(of record: MetadataRecord) -> MetadataRecordType {
        switch record {
        case .topic: return .topicRecord
        case .partitionCount: return .partitionCountRecord
        case .topicConfig: return .topicConfigRecord
        case .removeTopic: return .removeTopicRecord
        case .streamIdFloor: return .streamIdFloorRecord
        case .nodeEpoch: return .nodeEpochRecord
        case .prepareObjects: return .prepareObjectsRecord
        case .commitObjects: return .commitObjectsRecord
        case .trimStream: return .trimStreamRecord
        case .destroyObjects: return .destroyObjectsRecord
        case .streamState: return .streamStateRecord
        case .committedObject: return .committedObjectRecord
        case .deadObjects: return .deadObjectsRecord
        case .objectIdFloor: return .objectIdFloorRecord
        case .brokerConfig: return .brokerConfigRecord
        case .groupConfig: return .groupConfigRecord
        case .accessControlEntry: return .accessControlEntryRecord
        case .removeAccessControlEntry: return .removeAccessControlEntryRecord
        case .producerIds: return .producerIdsRecord
        case .brokerRegistration: return .brokerRegistrationRecord
        case .brokerFence: return .brokerFenceRecord
        case .unregisterBroker: return .unregisterBrokerRecord
        case .partitionLeader: return .partitionLeaderRecord
        case .userScramCredential: return .userScramCredentialRecord
        case .removeUserScramCredential: return .removeUserScramCredentialRecord
        }
    }

    // MARK: - Encode

    /// The framed bytes of `record`, in the newest version of its schema.
    public static func encode(_ record: MetadataRecord) -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        switch record {
        case .topic(let t):
            var m = TopicRecord()
            m.name = t.name
            m.topicId = t.id.kafka
            m.partitions = t.partitions
            m.configs = t.configs.sorted { $0.key < $1.key }.map { k, v in
                var e = TopicRecord.ConfigEntry()
                e.key = k
                e.value = v
                return e
            }
            m.streamIds = t.streamIds.map { Int64(bitPattern: $0) }
            frame(m, into: &buffer)
        case .partitionCount(let topicId, let count, let streamIds):
            var m = PartitionCountRecord()
            m.topicId = topicId.kafka
            m.count = count
            m.streamIds = streamIds.map { Int64(bitPattern: $0) }
            frame(m, into: &buffer)
        case .topicConfig(let topicId, let key, let value):
            var m = TopicConfigRecord()
            m.topicId = topicId.kafka
            m.key = key
            m.value = value
            frame(m, into: &buffer)
        case .removeTopic(let topicId):
            var m = RemoveTopicRecord()
            m.topicId = topicId.kafka
            frame(m, into: &buffer)
        case .streamIdFloor(let floor):
            var m = StreamIdFloorRecord()
            m.nextStreamId = Int64(bitPattern: floor)
            frame(m, into: &buffer)
        case .nodeEpoch(let nodeId, let epoch):
            var m = NodeEpochRecord()
            m.nodeId = nodeId
            m.epoch = epoch
            frame(m, into: &buffer)
        case .prepareObjects(let firstId, let count, let nodeId, let expiresAtMs):
            var m = PrepareObjectsRecord()
            m.firstObjectId = Int64(bitPattern: firstId)
            m.count = count
            m.nodeId = nodeId
            m.expiresAtMs = expiresAtMs
            frame(m, into: &buffer)
        case .commitObjects(let c):
            var m = CommitObjectsRecord()
            m.objects = c.objects.map { o in
                var n = CommitObjectsRecord.NewObject()
                n.objectId = Int64(bitPattern: o.objectId)
                n.size = o.size
                n.kind = o.kind.rawValue
                n.ranges = o.ranges.map { r in
                    var w = CommitObjectsRecord.StreamRange()
                    w.streamId = Int64(bitPattern: r.streamId)
                    w.startOffset = r.startOffset
                    w.endOffset = r.endOffset
                    return w
                }
                n.rangeStats = o.rangeStats?.map { s in
                    var w = CommitObjectsRecord.RangeStats()
                    w.bytes = s.bytes
                    w.maxTimestampMs = s.maxTimestampMs
                    return w
                }
                return n
            }
            m.compactedObjectIds = c.compactedObjectIds.map { Int64(bitPattern: $0) }
            m.committedAtMs = c.committedAtMs
            frame(m, into: &buffer)
        case .trimStream(let streamId, let newStartOffset):
            var m = TrimStreamRecord()
            m.streamId = Int64(bitPattern: streamId)
            m.newStartOffset = newStartOffset
            frame(m, into: &buffer)
        case .destroyObjects(let ids):
            var m = DestroyObjectsRecord()
            m.objectIds = ids.map { Int64(bitPattern: $0) }
            frame(m, into: &buffer)
        case .streamState(let streamId, let epoch, let startOffset, let endOffset):
            var m = StreamStateRecord()
            m.streamId = Int64(bitPattern: streamId)
            m.epoch = epoch
            m.startOffset = startOffset
            m.endOffset = endOffset
            frame(m, into: &buffer)
        case .committedObject(let o):
            var m = CommittedObjectRecord()
            m.objectId = Int64(bitPattern: o.objectId)
            m.size = o.size
            m.kind = o.kind.rawValue
            m.ranges = o.ranges.map { r in
                var w = CommittedObjectRecord.StreamRange()
                w.streamId = Int64(bitPattern: r.streamId)
                w.startOffset = r.startOffset
                w.endOffset = r.endOffset
                return w
            }
            m.committedAtMs = o.committedAtMs
            m.rangeStats = o.rangeStats?.map { s in
                var w = CommittedObjectRecord.RangeStats()
                w.bytes = s.bytes
                w.maxTimestampMs = s.maxTimestampMs
                return w
            }
            frame(m, into: &buffer)
        case .deadObjects(let ids):
            var m = DeadObjectsRecord()
            m.objectIds = ids.map { Int64(bitPattern: $0) }
            frame(m, into: &buffer)
        case .objectIdFloor(let floor):
            var m = ObjectIdFloorRecord()
            m.nextObjectId = Int64(bitPattern: floor)
            frame(m, into: &buffer)
        case .brokerConfig(let nodeId, let key, let value):
            var m = BrokerConfigRecord()
            m.nodeId = nodeId
            m.key = key
            m.value = value
            frame(m, into: &buffer)
        case .groupConfig(let groupId, let key, let value):
            var m = GroupConfigRecord()
            m.groupId = groupId
            m.key = key
            m.value = value
            frame(m, into: &buffer)
        case .userScramCredential(let name, let mechanism, let c):
            var m = UserScramCredentialRecord()
            m.name = name
            m.mechanism = mechanism.rawValue
            m.salt = c.salt
            m.storedKey = c.storedKey
            m.serverKey = c.serverKey
            m.iterations = c.iterations
            frame(m, into: &buffer)
        case .removeUserScramCredential(let name, let mechanism):
            var m = RemoveUserScramCredentialRecord()
            m.name = name
            m.mechanism = mechanism.rawValue
            frame(m, into: &buffer)
        case .accessControlEntry(let id, let b):
            var m = AccessControlEntryRecord()
            m.id = id.kafka
            m.resourceType = b.resourceType.rawValue
            m.resourceName = b.resourceName
            m.patternType = b.patternType.rawValue
            m.principal = b.principal
            m.host = b.host
            m.operation = b.operation.rawValue
            m.permissionType = b.permission.rawValue
            frame(m, into: &buffer)
        case .removeAccessControlEntry(let id):
            var m = RemoveAccessControlEntryRecord()
            m.id = id.kafka
            frame(m, into: &buffer)
        case .producerIds(let brokerId, let nextProducerId):
            var m = ProducerIdsRecord()
            m.brokerId = brokerId
            m.nextProducerId = nextProducerId
            frame(m, into: &buffer)
        case .brokerRegistration(let b):
            var m = BrokerRegistrationRecord()
            m.nodeId = b.nodeId
            m.incarnationId = b.incarnationId.kafka
            m.brokerEpoch = b.brokerEpoch
            m.rack = b.rack
            m.listeners = b.listeners.map { l in
                var e = BrokerRegistrationRecord.BrokerEndpoint()
                e.name = l.name
                e.host = l.host
                e.port = l.port
                e.securityProtocol = l.securityProtocol
                return e
            }
            m.fenced = b.fenced
            frame(m, into: &buffer)
        case .brokerFence(let nodeId, let brokerEpoch, let fenced):
            var m = BrokerFenceRecord()
            m.nodeId = nodeId
            m.brokerEpoch = brokerEpoch
            m.fenced = fenced
            frame(m, into: &buffer)
        case .unregisterBroker(let nodeId, let brokerEpoch):
            var m = UnregisterBrokerRecord()
            m.nodeId = nodeId
            m.brokerEpoch = brokerEpoch
            frame(m, into: &buffer)
        case .partitionLeader(let streamId, let p):
            var m = PartitionLeaderRecord()
            m.streamId = Int64(bitPattern: streamId)
            m.leader = p.leader
            m.leaderEpoch = p.leaderEpoch
            m.replicas = p.replicas
            m.streamEpoch = p.streamEpoch
            m.targetReplicas = p.target.map { [$0] }
            frame(m, into: &buffer)
        }
        return Array(buffer.readableBytesView)
    }

    private static func frame<M: MetadataRecordMessage>(_ message: M, into buffer: inout ByteBuffer) {
        precondition(M.apiKey >= 0, "record type \(M.apiKey) is negative")
        buffer.writeUnsignedVarint(frameVersion)
        buffer.writeUnsignedVarint(UInt32(M.apiKey))
        buffer.writeUnsignedVarint(UInt32(M.highestSupportedVersion))
        message.encode(into: &buffer, version: M.highestSupportedVersion)
    }

    // MARK: - Decode

    /// The record in `bytes` (one whole frame). Throws `MetadataRecordError`, never traps,
    /// whatever the bytes.
    public static func decode(_ bytes: [UInt8]) throws -> MetadataRecord {
        var buffer = ByteBuffer(bytes: bytes)
        let frameVersion: UInt32, rawType: UInt32, version: UInt32
        do {
            frameVersion = try buffer.readUnsignedVarint("frame version")
            guard frameVersion == Self.frameVersion else { throw MetadataRecordError.unsupportedFrameVersion(frameVersion) }
            rawType = try buffer.readUnsignedVarint("record type")
            version = try buffer.readUnsignedVarint("record version")
        } catch let e as MetadataRecordError {
            throw e
        } catch {
            throw MetadataRecordError.malformed(type: nil, version: nil, reason: "\(error)")
        }
        guard rawType <= UInt32(Int16.max), let type = MetadataRecordType(rawValue: Int16(rawType)) else {
            throw MetadataRecordError.unknownType(type: rawType, version: version)
        }
        guard version <= UInt32(type.highestSupportedVersion) else {
            throw MetadataRecordError.unsupportedVersion(type: rawType, name: type.name, version: version,
                                                         highestKnown: type.highestSupportedVersion)
        }
        guard version >= UInt32(type.lowestSupportedVersion) else {
            throw MetadataRecordError.malformed(type: rawType, version: version,
                                                reason: "below the lowest version \(type.lowestSupportedVersion)")
        }
        do {
            let record = try body(type, from: &buffer, version: Int16(version))
            guard buffer.readableBytes == 0 else { throw Malformed("\(buffer.readableBytes) bytes after the body") }
            return record
        } catch let e as Malformed {
            throw MetadataRecordError.malformed(type: rawType, version: version, reason: e.reason)
        } catch {
            throw MetadataRecordError.malformed(type: rawType, version: version, reason: "\(error)")
        }
    }

    /// A decoded body that breaks an invariant of `MetadataRecord`'s types.
    private struct Malformed: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private static func check(_ condition: Bool, _ reason: @autoclosure () -> String) throws {
        if !condition { throw Malformed(reason()) }
    }

    private static func makeKind(_ raw: Int8) throws -> ObjectKind {
        guard let k = ObjectKind(rawValue: raw) else { throw Malformed("object kind \(raw)") }
        return k
    }

    private static func makeRange(_ streamId: Int64, _ start: Int64, _ end: Int64) throws -> StreamRange {
        try check(start <= end, "stream range \(start)..<\(end) ends before it starts")
        return StreamRange(streamId: UInt64(bitPattern: streamId), startOffset: start, endOffset: end)
    }

    private static func makeStats(_ bytes: Int64, _ maxTimestampMs: Int64) throws -> RangeStats {
        try check(bytes >= 0, "range stats of \(bytes) bytes")
        return RangeStats(bytes: bytes, maxTimestampMs: maxTimestampMs)
    }

    private static func body(_ type: MetadataRecordType, from buffer: inout ByteBuffer, version: Int16) throws -> MetadataRecord {
        switch type {
        case .topicRecord:
            let m = try TopicRecord(from: &buffer, version: version)
            try check(m.partitions >= 0 && m.streamIds.count == Int(m.partitions),
                      "topic \(m.name): \(m.streamIds.count) streams for \(m.partitions) partitions")
            var configs: [String: String] = [:]
            for e in m.configs {
                try check(configs.updateValue(e.value, forKey: e.key) == nil, "topic \(m.name): config \(e.key) repeats")
            }
            return .topic(.init(name: m.name, id: m.topicId.foundation, partitions: m.partitions, configs: configs,
                                streamIds: m.streamIds.map { UInt64(bitPattern: $0) }))
        case .partitionCountRecord:
            let m = try PartitionCountRecord(from: &buffer, version: version)
            return .partitionCount(topicId: m.topicId.foundation, count: m.count,
                                   streamIds: m.streamIds.map { UInt64(bitPattern: $0) })
        case .topicConfigRecord:
            let m = try TopicConfigRecord(from: &buffer, version: version)
            return .topicConfig(topicId: m.topicId.foundation, key: m.key, value: m.value)
        case .removeTopicRecord:
            let m = try RemoveTopicRecord(from: &buffer, version: version)
            return .removeTopic(topicId: m.topicId.foundation)
        case .streamIdFloorRecord:
            let m = try StreamIdFloorRecord(from: &buffer, version: version)
            return .streamIdFloor(UInt64(bitPattern: m.nextStreamId))
        case .nodeEpochRecord:
            let m = try NodeEpochRecord(from: &buffer, version: version)
            return .nodeEpoch(nodeId: m.nodeId, epoch: m.epoch)
        case .prepareObjectsRecord:
            let m = try PrepareObjectsRecord(from: &buffer, version: version)
            return .prepareObjects(firstId: UInt64(bitPattern: m.firstObjectId), count: m.count, nodeId: m.nodeId,
                                   expiresAtMs: m.expiresAtMs)
        case .commitObjectsRecord:
            let m = try CommitObjectsRecord(from: &buffer, version: version)
            let objects = try m.objects.map { o -> MetadataRecord.NewObject in
                let ranges = try o.ranges.map { try makeRange($0.streamId, $0.startOffset, $0.endOffset) }
                let stats = try o.rangeStats?.map { try makeStats($0.bytes, $0.maxTimestampMs) }
                try check(stats == nil || stats!.count == ranges.count,
                          "object \(UInt64(bitPattern: o.objectId)): \(stats?.count ?? 0) range stats for \(ranges.count) ranges")
                return MetadataRecord.NewObject(objectId: UInt64(bitPattern: o.objectId), size: o.size, kind: try makeKind(o.kind),
                                                ranges: ranges, rangeStats: stats)
            }
            return .commitObjects(.init(objects: objects, compactedObjectIds: m.compactedObjectIds.map { UInt64(bitPattern: $0) },
                                        committedAtMs: m.committedAtMs))
        case .trimStreamRecord:
            let m = try TrimStreamRecord(from: &buffer, version: version)
            return .trimStream(streamId: UInt64(bitPattern: m.streamId), newStartOffset: m.newStartOffset)
        case .destroyObjectsRecord:
            let m = try DestroyObjectsRecord(from: &buffer, version: version)
            return .destroyObjects(objectIds: m.objectIds.map { UInt64(bitPattern: $0) })
        case .streamStateRecord:
            let m = try StreamStateRecord(from: &buffer, version: version)
            return .streamState(streamId: UInt64(bitPattern: m.streamId), epoch: m.epoch, startOffset: m.startOffset,
                                endOffset: m.endOffset)
        case .committedObjectRecord:
            let m = try CommittedObjectRecord(from: &buffer, version: version)
            let ranges = try m.ranges.map { try makeRange($0.streamId, $0.startOffset, $0.endOffset) }
            let stats = try m.rangeStats?.map { try makeStats($0.bytes, $0.maxTimestampMs) }
            try check(stats == nil || stats!.count == ranges.count,
                      "object \(UInt64(bitPattern: m.objectId)): \(stats?.count ?? 0) range stats for \(ranges.count) ranges")
            return .committedObject(CommittedObject(objectId: UInt64(bitPattern: m.objectId), size: m.size, kind: try makeKind(m.kind),
                                                    ranges: ranges, committedAtMs: m.committedAtMs, rangeStats: stats))
        case .deadObjectsRecord:
            let m = try DeadObjectsRecord(from: &buffer, version: version)
            return .deadObjects(objectIds: m.objectIds.map { UInt64(bitPattern: $0) })
        case .objectIdFloorRecord:
            let m = try ObjectIdFloorRecord(from: &buffer, version: version)
            return .objectIdFloor(UInt64(bitPattern: m.nextObjectId))
        case .brokerConfigRecord:
            let m = try BrokerConfigRecord(from: &buffer, version: version)
            return .brokerConfig(nodeId: m.nodeId, key: m.key, value: m.value)
        case .groupConfigRecord:
            let m = try GroupConfigRecord(from: &buffer, version: version)
            return .groupConfig(groupId: m.groupId, key: m.key, value: m.value)
        case .userScramCredentialRecord:
            let m = try UserScramCredentialRecord(from: &buffer, version: version)
            guard let mechanism = ScramMechanism(rawValue: m.mechanism) else {
                throw Malformed("SCRAM credential of user \(m.name) with unknown mechanism \(m.mechanism)")
            }
            return .userScramCredential(name: m.name, mechanism: mechanism, ScramCredential(
                salt: m.salt, storedKey: m.storedKey, serverKey: m.serverKey, iterations: m.iterations))
        case .removeUserScramCredentialRecord:
            let m = try RemoveUserScramCredentialRecord(from: &buffer, version: version)
            guard let mechanism = ScramMechanism(rawValue: m.mechanism) else {
                throw Malformed("SCRAM credential removal of user \(m.name) with unknown mechanism \(m.mechanism)")
            }
            return .removeUserScramCredential(name: m.name, mechanism: mechanism)
        case .accessControlEntryRecord:
            let m = try AccessControlEntryRecord(from: &buffer, version: version)
            let b = AclBinding(resourceType: AclResourceType(code: m.resourceType), resourceName: m.resourceName,
                               patternType: AclPatternType(code: m.patternType), principal: m.principal, host: m.host,
                               operation: KafkaAclOperation(code: m.operation), permission: AclPermissionType(code: m.permissionType))
            if let why = b.refusal { throw Malformed("ACL \(m.id.foundation): \(why)") }
            return .accessControlEntry(id: m.id.foundation, b)
        case .removeAccessControlEntryRecord:
            let m = try RemoveAccessControlEntryRecord(from: &buffer, version: version)
            return .removeAccessControlEntry(id: m.id.foundation)
        case .producerIdsRecord:
            let m = try ProducerIdsRecord(from: &buffer, version: version)
            return .producerIds(brokerId: m.brokerId, nextProducerId: m.nextProducerId)
        case .brokerRegistrationRecord:
            let m = try BrokerRegistrationRecord(from: &buffer, version: version)
            try check(m.nodeId >= 0, "broker registration of node \(m.nodeId)")
            let listeners = try m.listeners.map { l -> BrokerEndpoint in
                try check((0...65535).contains(l.port), "broker \(m.nodeId) listener \(l.name) port \(l.port)")
                return BrokerEndpoint(name: l.name, host: l.host, port: l.port, securityProtocol: l.securityProtocol)
            }
            return .brokerRegistration(BrokerRegistration(nodeId: m.nodeId, incarnationId: m.incarnationId.foundation,
                                                          brokerEpoch: m.brokerEpoch, rack: m.rack, listeners: listeners,
                                                          fenced: m.fenced))
        case .brokerFenceRecord:
            let m = try BrokerFenceRecord(from: &buffer, version: version)
            return .brokerFence(nodeId: m.nodeId, brokerEpoch: m.brokerEpoch, fenced: m.fenced)
        case .unregisterBrokerRecord:
            let m = try UnregisterBrokerRecord(from: &buffer, version: version)
            return .unregisterBroker(nodeId: m.nodeId, brokerEpoch: m.brokerEpoch)
        case .partitionLeaderRecord:
            let m = try PartitionLeaderRecord(from: &buffer, version: version)
            try check(m.leader >= -1 && m.leaderEpoch >= 0 && m.streamEpoch >= 0,
                      "partition leader \(m.leader) epoch \(m.leaderEpoch) stream epoch \(m.streamEpoch)")
            try check(m.targetReplicas.map { $0.count == 1 && $0[0] >= 0 } ?? true,
                      "partition target replicas \(String(describing: m.targetReplicas))")
            return .partitionLeader(streamId: UInt64(bitPattern: m.streamId),
                                    PartitionLeadership(leader: m.leader, leaderEpoch: m.leaderEpoch, replicas: m.replicas,
                                                        streamEpoch: m.streamEpoch, target: m.targetReplicas?.first))
        }
    }
}
