import NIOCore
import SiltProtocol

/// KIP-848 consumer groups in `__consumer_offsets`, as Kafka's group coordinator keeps them:
/// one record per piece of state, so a heartbeat writes only what it changed.
///
/// ```
///  key type  key                       value
///  3         group                     ConsumerGroupMetadataValue           group epoch
///  4         group                     ConsumerGroupPartitionMetadataValue  partition counts seen
///  5         group, member             ConsumerGroupMemberMetadataValue     subscription
///  6         group                     ConsumerGroupTargetAssignmentMetadataValue  assignment epoch
///  7         group, member             ConsumerGroupTargetAssignmentMemberValue    target partitions
///  8         group, member             ConsumerGroupCurrentMemberAssignmentValue   epochs, owned
///  16        group, regex              ConsumerGroupRegularExpressionValue  the topics a regex matched
/// ```
///
/// Keys are an int16 record type then the key struct (version 0); values an int16 version (0)
/// then the value struct; a null value (tombstone) deletes. Kafka's numbering and fields, with
/// topic names where Kafka has topic ids (Silt's coordinator works in names).
public enum ConsumerRecordType: Int16, CaseIterable, Sendable {
    case metadata = 3, partitionMetadata = 4, memberMetadata = 5, targetMetadata = 6, targetMember = 7, currentAssignment = 8
    case regularExpression = 16

    /// Whether the key names a member as well as the group.
    var hasMember: Bool { self == .memberMetadata || self == .targetMember || self == .currentAssignment }
}

/// One decoded consumer-group record (nil payload: a tombstone).
public enum ConsumerRecord: Equatable, Sendable {
    case metadata(epoch: Int32?)
    case partitionMetadata([String: Int32]?)
    case member(memberId: String, ConsumerGroupMemberMetadataValue?)
    case targetMetadata(assignmentEpoch: Int32?)
    case targetMember(memberId: String, Set<TopicPartition>?)
    case currentAssignment(memberId: String, ConsumerGroupCurrentMemberAssignmentValue?)
    case regularExpression(String, ResolvedRegex?)
}

extension GroupRecords {
    static let consumerValueVersion: Int16 = 0

    /// The key structs are version 0; the int16 before them is the record type.
    static let consumerKeyVersion: Int16 = 0

    /// The key of a record of `groupId`: `memberId` for the member records, `regex` for a
    /// regular expression's.
    static func consumerKey(_ type: ConsumerRecordType, _ groupId: String, memberId: String? = nil, regex: String? = nil) -> [UInt8] {
        precondition((memberId != nil) == type.hasMember, "record type \(type) and member id disagree")
        precondition((regex != nil) == (type == .regularExpression), "record type \(type) and regex disagree")
        var buffer = ByteBuffer()
        buffer.writeInteger(type.rawValue)
        func put<K: KafkaStruct>(_ key: K) { key.encode(into: &buffer, version: consumerKeyVersion) }
        switch type {
        case .metadata: var k = ConsumerGroupMetadataKey(); k.groupId = groupId; put(k)
        case .partitionMetadata: var k = ConsumerGroupPartitionMetadataKey(); k.groupId = groupId; put(k)
        case .targetMetadata: var k = ConsumerGroupTargetAssignmentMetadataKey(); k.groupId = groupId; put(k)
        case .memberMetadata: var k = ConsumerGroupMemberMetadataKey(); k.groupId = groupId; k.memberId = memberId!; put(k)
        case .targetMember: var k = ConsumerGroupTargetAssignmentMemberKey(); k.groupId = groupId; k.memberId = memberId!; put(k)
        case .currentAssignment: var k = ConsumerGroupCurrentMemberAssignmentKey(); k.groupId = groupId; k.memberId = memberId!; put(k)
        case .regularExpression: var k = ConsumerGroupRegularExpressionKey(); k.groupId = groupId; k.regularExpression = regex!; put(k)
        }
        return Array(buffer.readableBytesView)
    }

    static func consumerValue<M: KafkaStruct>(_ message: M) -> [UInt8] { encode(consumerValueVersion, message) }

    static func partitionsByTopic(_ partitions: Set<TopicPartition>) -> [(topic: String, partitions: [Int32])] {
        Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { ($0.key, $0.value.map(\.partition).sorted()) }
    }

    static func topicPartitions(_ pairs: [(String, [Int32])]) -> Set<TopicPartition> {
        Set(pairs.flatMap { t, ps in ps.map { TopicPartition(t, $0) } })
    }

    static func metadataValue(_ cg: ConsumerGroup) -> [UInt8] {
        var v = ConsumerGroupMetadataValue()
        v.epoch = cg.groupEpoch
        return consumerValue(v)
    }

    static func partitionMetadataValue(_ cg: ConsumerGroup) -> [UInt8] {
        var v = ConsumerGroupPartitionMetadataValue()
        v.topics = cg.topicPartitions.sorted { $0.key < $1.key }.map { name, count in
            var t = ConsumerGroupPartitionMetadataValue.TopicMetadata()
            t.topicName = name
            t.numPartitions = count
            return t
        }
        return consumerValue(v)
    }

    static func memberValue(_ m: ConsumerMember) -> [UInt8] {
        var v = ConsumerGroupMemberMetadataValue()
        v.instanceId = m.instanceId
        v.rackId = m.rackId
        v.clientId = m.clientId
        v.clientHost = m.clientHost
        v.subscribedTopicNames = m.subscribedTopics
        v.subscribedTopicRegex = m.subscribedRegex?.pattern
        v.rebalanceTimeoutMs = m.rebalanceTimeoutMs
        v.serverAssignor = m.serverAssignor
        return consumerValue(v)
    }

    static func regexValue(_ r: ResolvedRegex) -> [UInt8] {
        var v = ConsumerGroupRegularExpressionValue()
        v.topics = r.topics.sorted()
        v.version = 0   // Silt resolves on every heartbeat, against the broker's topics at that moment
        v.timestamp = r.resolvedAtMs
        return consumerValue(v)
    }

    static func targetMetadataValue(_ cg: ConsumerGroup) -> [UInt8] {
        var v = ConsumerGroupTargetAssignmentMetadataValue()
        v.assignmentEpoch = cg.assignmentEpoch
        return consumerValue(v)
    }

    static func targetMemberValue(_ partitions: Set<TopicPartition>) -> [UInt8] {
        var v = ConsumerGroupTargetAssignmentMemberValue()
        v.topicPartitions = partitionsByTopic(partitions).map { t, ps in
            var tp = ConsumerGroupTargetAssignmentMemberValue.TopicPartition()
            tp.topic = t
            tp.partitions = ps
            return tp
        }
        return consumerValue(v)
    }

    /// Kafka's MemberState numbering.
    static let memberStateStable: Int8 = 0, memberStateUnrevokedPartitions: Int8 = 1, memberStateUnreleasedPartitions: Int8 = 2

    static func currentAssignmentValue(_ m: ConsumerMember, _ cg: ConsumerGroup) -> [UInt8] {
        func list(_ s: Set<TopicPartition>) -> [ConsumerGroupCurrentMemberAssignmentValue.TopicPartitions] {
            partitionsByTopic(s).map { t, ps in
                var tp = ConsumerGroupCurrentMemberAssignmentValue.TopicPartitions()
                tp.topic = t
                tp.partitions = ps
                return tp
            }
        }
        var v = ConsumerGroupCurrentMemberAssignmentValue()
        v.memberEpoch = m.memberEpoch
        v.previousMemberEpoch = m.previousMemberEpoch
        v.state = !m.pendingRevocation.isEmpty ? memberStateUnrevokedPartitions
            : m.assigned != (cg.target[m.memberId] ?? []) ? memberStateUnreleasedPartitions : memberStateStable
        v.assignedPartitions = list(m.assigned)
        v.partitionsPendingRevocation = list(m.pendingRevocation)
        return consumerValue(v)
    }

    /// Decodes the key struct and value of a consumer-group record (record types 3-8 and 16).
    static func decodeConsumer(_ type: ConsumerRecordType, key: inout ByteBuffer, value: ByteBuffer?) throws -> Decoded {
        let groupId: String, memberId: String?
        var regex: String?
        switch type {
        case .metadata: (groupId, memberId) = (try ConsumerGroupMetadataKey(from: &key, version: consumerKeyVersion).groupId, nil)
        case .partitionMetadata: (groupId, memberId) = (try ConsumerGroupPartitionMetadataKey(from: &key, version: consumerKeyVersion).groupId, nil)
        case .targetMetadata: (groupId, memberId) = (try ConsumerGroupTargetAssignmentMetadataKey(from: &key, version: consumerKeyVersion).groupId, nil)
        case .memberMetadata:
            let k = try ConsumerGroupMemberMetadataKey(from: &key, version: consumerKeyVersion)
            (groupId, memberId) = (k.groupId, k.memberId)
        case .targetMember:
            let k = try ConsumerGroupTargetAssignmentMemberKey(from: &key, version: consumerKeyVersion)
            (groupId, memberId) = (k.groupId, k.memberId)
        case .currentAssignment:
            let k = try ConsumerGroupCurrentMemberAssignmentKey(from: &key, version: consumerKeyVersion)
            (groupId, memberId) = (k.groupId, k.memberId)
        case .regularExpression:
            let k = try ConsumerGroupRegularExpressionKey(from: &key, version: consumerKeyVersion)
            (groupId, memberId, regex) = (k.groupId, nil, k.regularExpression)
        }
        var v = value
        if var b = v {
            let version = try b.readKafkaInt16("consumer group record value version")
            // Newer values are read as the newest known (their new fields are tagged, as in Kafka).
            guard version >= 0 else { throw KafkaProtocolError.unsupportedVersion(apiKey: -1, version: version) }
            v = b
        }
        func read<M: KafkaMessage>(_: M.Type) throws -> M? {
            guard var b = v else { return nil }
            return try M(from: &b, version: M.highestSupportedVersion)
        }
        let record: ConsumerRecord
        switch type {
        case .metadata: record = .metadata(epoch: try read(ConsumerGroupMetadataValue.self)?.epoch)
        case .partitionMetadata:
            record = .partitionMetadata(try read(ConsumerGroupPartitionMetadataValue.self).map { value in
                Dictionary(value.topics.map { ($0.topicName, $0.numPartitions) }, uniquingKeysWith: { _, last in last })
            })
        case .memberMetadata: record = .member(memberId: memberId!, try read(ConsumerGroupMemberMetadataValue.self))
        case .targetMetadata: record = .targetMetadata(assignmentEpoch: try read(ConsumerGroupTargetAssignmentMetadataValue.self)?.assignmentEpoch)
        case .targetMember:
            record = .targetMember(memberId: memberId!, try read(ConsumerGroupTargetAssignmentMemberValue.self).map { value in
                topicPartitions(value.topicPartitions.map { ($0.topic, $0.partitions) })
            })
        case .currentAssignment: record = .currentAssignment(memberId: memberId!, try read(ConsumerGroupCurrentMemberAssignmentValue.self))
        case .regularExpression:
            record = .regularExpression(regex!, try read(ConsumerGroupRegularExpressionValue.self).map { value in
                ResolvedRegex(topics: Set(value.topics), resolvedAtMs: value.timestamp)
            })
        }
        return .consumer(groupId: groupId, record)
    }
}

/// What of a consumer group was last written to `__consumer_offsets` (encoded values), so
/// that a change writes only the records it changed, and removals write tombstones for what
/// exists in the log.
struct WrittenConsumerState {
    var groupEpoch: [UInt8]?
    var partitionMetadata: [UInt8]?
    var targetMetadata: [UInt8]?
    var members: [String: [UInt8]] = [:]
    var targets: [String: [UInt8]] = [:]
    var current: [String: [UInt8]] = [:]
    /// By regular expression.
    var regexes: [String: [UInt8]] = [:]

    var isEmpty: Bool {
        groupEpoch == nil && partitionMetadata == nil && targetMetadata == nil && members.isEmpty && targets.isEmpty && current.isEmpty
            && regexes.isEmpty
    }
}

extension ConsumerGroup {
    /// The records that bring the log from `written` to the group's state now, and updates
    /// `written`. Looks at the group-level records, the members marked `dirty` and, when the
    /// target moved (its epoch changed), every member's target. O(dirty members), plus
    /// O(members) when a new target was computed.
    func changedRecords(groupId: String) -> [GroupRecord] {
        var out: [GroupRecord] = []
        func put(_ slot: inout [UInt8]?, _ type: ConsumerRecordType, _ memberId: String?, _ value: [UInt8]?, regex: String? = nil) {
            guard slot != value, !(slot == nil && value == nil) else { return }
            slot = value
            out.append(GroupRecord(key: GroupRecords.consumerKey(type, groupId, memberId: memberId, regex: regex), value: value))
        }
        let rewriting = rewriteAll
        if rewriting {
            dirty.formUnion(members.keys)
            written = WrittenConsumerState()
            rewriteAll = false
        }
        // The regexes members subscribe with, resolved, before the subscriptions that use them;
        // a regex no member uses any more is tombstoned.
        let live = Set(members.values.compactMap { $0.subscribedRegex?.pattern })
        resolvedRegexes = resolvedRegexes.filter { live.contains($0.key) }
        for pattern in Set(resolvedRegexes.keys).union(written.regexes.keys).sorted() {
            put(&written.regexes[pattern], .regularExpression, nil, resolvedRegexes[pattern].map(GroupRecords.regexValue), regex: pattern)
        }
        // A member's own records: its subscription first, its assignment after (Kafka's order);
        // a removed member's in reverse, its subscription last.
        for id in dirty.sorted() {
            if let m = members[id] {
                put(&written.members[id], .memberMetadata, id, GroupRecords.memberValue(m))
            } else {
                put(&written.current[id], .currentAssignment, id, nil)
                put(&written.targets[id], .targetMember, id, nil)
                put(&written.members[id], .memberMetadata, id, nil)
            }
        }
        put(&written.partitionMetadata, .partitionMetadata, nil, GroupRecords.partitionMetadataValue(self))
        put(&written.groupEpoch, .metadata, nil, GroupRecords.metadataValue(self))
        let targetEpoch = GroupRecords.targetMetadataValue(self)
        if written.targetMetadata != targetEpoch {
            for id in Set(target.keys).union(written.targets.keys).sorted() {
                put(&written.targets[id], .targetMember, id, target[id].map(GroupRecords.targetMemberValue))
            }
            put(&written.targetMetadata, .targetMetadata, nil, targetEpoch)
        } else {
            // Same target epoch: only a static member's new incarnation moves a target entry.
            for id in dirty.sorted() { put(&written.targets[id], .targetMember, id, target[id].map(GroupRecords.targetMemberValue)) }
        }
        for id in dirty.sorted() {
            if let m = members[id] { put(&written.current[id], .currentAssignment, id, GroupRecords.currentAssignmentValue(m, self)) }
        }
        dirty.removeAll()
        if rewriting {
            // Everything the group has is in `out`; a key a failed write carried that is not
            // (a member removed meanwhile, a target dropped) may be in the log: tombstoned.
            let present = Set(out.map(\.key))
            for key in failedKeys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where !present.contains(key) {
                out.append(GroupRecord(key: key, value: nil))
            }
            failedKeys.removeAll()
        }
        return out
    }

    /// Tombstones for every record of this group in the log (DeleteGroups, or the group
    /// leaving the consumer protocol); `written` is cleared.
    func tombstones(groupId: String) -> [GroupRecord] {
        var out: [GroupRecord] = []
        let w = written
        for id in w.current.keys.sorted() { out.append(GroupRecord(key: GroupRecords.consumerKey(.currentAssignment, groupId, memberId: id), value: nil)) }
        for id in w.targets.keys.sorted() { out.append(GroupRecord(key: GroupRecords.consumerKey(.targetMember, groupId, memberId: id), value: nil)) }
        for id in w.members.keys.sorted() { out.append(GroupRecord(key: GroupRecords.consumerKey(.memberMetadata, groupId, memberId: id), value: nil)) }
        if w.targetMetadata != nil { out.append(GroupRecord(key: GroupRecords.consumerKey(.targetMetadata, groupId), value: nil)) }
        if w.partitionMetadata != nil { out.append(GroupRecord(key: GroupRecords.consumerKey(.partitionMetadata, groupId), value: nil)) }
        for pattern in w.regexes.keys.sorted() {
            out.append(GroupRecord(key: GroupRecords.consumerKey(.regularExpression, groupId, regex: pattern), value: nil))
        }
        if w.groupEpoch != nil { out.append(GroupRecord(key: GroupRecords.consumerKey(.metadata, groupId), value: nil)) }
        // Keys of failed writes not tombstoned above may be in the log too.
        let present = Set(out.map(\.key))
        for key in failedKeys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where !present.contains(key) {
            out.append(GroupRecord(key: key, value: nil))
        }
        failedKeys.removeAll()
        rewriteAll = false
        written = WrittenConsumerState()
        return out
    }
}

/// A consumer group's records as replayed from the log (later records win), turned into a
/// `ConsumerGroup` once its partition has loaded.
struct LoadedConsumerGroup {
    var groupEpoch: Int32?
    var partitions: [String: Int32] = [:]
    var assignmentEpoch: Int32?
    var members: [String: ConsumerGroupMemberMetadataValue] = [:]
    var targets: [String: Set<TopicPartition>] = [:]
    var current: [String: ConsumerGroupCurrentMemberAssignmentValue] = [:]
    var regexes: [String: ResolvedRegex] = [:]

    mutating func apply(_ record: ConsumerRecord) {
        switch record {
        case .metadata(let epoch): groupEpoch = epoch
        case .partitionMetadata(let p): partitions = p ?? [:]
        case .member(let id, let v): members[id] = v
        case .targetMetadata(let epoch): assignmentEpoch = epoch
        case .targetMember(let id, let v): targets[id] = v
        case .currentAssignment(let id, let v): current[id] = v
        case .regularExpression(let pattern, let v): regexes[pattern] = v
        }
    }

    /// Only tombstones were seen since the group's last records: nothing to rebuild.
    var isEmpty: Bool { groupEpoch == nil && members.isEmpty && assignmentEpoch == nil && partitions.isEmpty && regexes.isEmpty }

    /// The group, its members with a fresh session, and `written` as the log holds it. Records
    /// of members without a subscription record are ignored; a partition two members claim (a
    /// log no coordinator writes) goes to neither: both members are dropped and rejoin.
    /// Returns the group and the ids of members dropped that way.
    func build(nowMs: Int64) -> (ConsumerGroup, dropped: [String]) {
        let cg = ConsumerGroup()
        cg.topicPartitions = partitions
        cg.resolvedRegexes = regexes
        for (id, meta) in members.sorted(by: { $0.key < $1.key }) {
            let m = ConsumerMember(memberId: id, instanceId: meta.instanceId, clientId: meta.clientId, clientHost: meta.clientHost,
                                   rebalanceTimeoutMs: meta.rebalanceTimeoutMs, nowMs: nowMs)
            m.rackId = meta.rackId
            m.subscribedTopics = meta.subscribedTopicNames
            m.subscribedRegex = meta.subscribedTopicRegex.flatMap(SubscriptionRegex.init)
            // What the regex matched before: the next heartbeat sees no change unless the topics did.
            m.regexMatches = m.subscribedRegex.flatMap { regexes[$0.pattern]?.topics } ?? []
            m.serverAssignor = meta.serverAssignor
            if let c = current[id] {
                m.memberEpoch = c.memberEpoch
                m.previousMemberEpoch = c.previousMemberEpoch
                m.assigned = GroupRecords.topicPartitions(c.assignedPartitions.map { ($0.topic, $0.partitions) })
                m.pendingRevocation = GroupRecords.topicPartitions(c.partitionsPendingRevocation.map { ($0.topic, $0.partitions) })
                if !m.pendingRevocation.isEmpty { m.revocationDeadlineMs = nowMs + Int64(max(m.rebalanceTimeoutMs, 0)) }
            }
            cg.add(m)
            if let t = targets[id] { cg.target[id] = t }
        }
        var claims: [TopicPartition: [String]] = [:]
        for m in cg.members.values { for tp in m.assigned.union(m.pendingRevocation) { claims[tp, default: []].append(m.memberId) } }
        let dropped = Set(claims.values.filter { $0.count > 1 }.flatMap { $0 })
        for (tp, ids) in claims where ids.count == 1 && !dropped.contains(ids[0]) { cg.owners[tp] = ids[0] }
        let memberEpochs = cg.members.values.map(\.memberEpoch)
        cg.assignmentEpoch = assignmentEpoch ?? 0
        cg.groupEpoch = max(groupEpoch ?? 0, cg.assignmentEpoch, memberEpochs.max() ?? 0)
        // What the log holds, so the next change writes only what differs from it.
        cg.written.groupEpoch = groupEpoch.map { epoch in
            var v = ConsumerGroupMetadataValue()
            v.epoch = epoch
            return GroupRecords.consumerValue(v)
        }
        cg.written.partitionMetadata = partitions.isEmpty ? nil : GroupRecords.partitionMetadataValue(cg)
        cg.written.targetMetadata = assignmentEpoch.map { _ in GroupRecords.targetMetadataValue(cg) }
        cg.written.regexes = regexes.mapValues(GroupRecords.regexValue)
        for m in cg.members.values {
            cg.written.members[m.memberId] = GroupRecords.memberValue(m)
            if current[m.memberId] != nil { cg.written.current[m.memberId] = GroupRecords.currentAssignmentValue(m, cg) }
            if let t = cg.target[m.memberId] { cg.written.targets[m.memberId] = GroupRecords.targetMemberValue(t) }
        }
        cg.dirty.removeAll()
        // `remove` releases only what the owner index names (none of the disputed partitions)
        // and marks the member for tombstones.
        for id in dropped.sorted() {
            cg.remove(id)
            cg.groupEpoch += 1
        }
        assert({ cg.checkOwnership(); return true }())
        return (cg, dropped.sorted())
    }
}
