import Foundation
import SiltProtocol
import SiltStreams

/// A record of the metadata log. The controller's state is the fold of these records in
/// log order; nothing about topics is kept in mutable files. The Raft issue replicates
/// exactly this log.
///
/// On disk and on the wire a record is `MetadataRecordSerde`'s versioned binary form, one
/// schema per case in `specs/metadata/`. `Codable` (JSON) remains only so that the metadata
/// log of releases before it (`LegacyMetadataLog`) can still be read: never write it.
public enum MetadataRecord: Codable, Equatable, Sendable {
    /// A topic is born with its id, partition count and config overrides.
    case topic(TopicRecord)
    /// A topic's partition count grows to `count`; the new partitions get `streamIds`.
    case partitionCount(topicId: UUID, count: Int32, streamIds: [UInt64])
    /// A topic config override is set (`value != nil`) or removed.
    case topicConfig(topicId: UUID, key: String, value: String?)
    /// A topic is deleted.
    case removeTopic(topicId: UUID)
    /// Stream ids below this are spent (snapshots keep ids of deleted topics from coming back).
    case streamIdFloor(UInt64)

    // The object lifecycle (see MetadataImage+Objects.swift): prepare → upload → commit,
    // then trim / compaction / topic deletion make objects dead and the janitor destroys them.

    /// An uploader of `nodeId` opened: its epoch is now `epoch`, which fences older incarnations.
    case nodeEpoch(nodeId: Int32, epoch: Int64)
    /// Object ids `firstId ..< firstId + count` are handed to `nodeId`'s uploader until `expiresAtMs`.
    case prepareObjects(firstId: UInt64, count: Int32, nodeId: Int32, expiresAtMs: Int64)
    /// Objects become committed, atomically replacing `compactedObjectIds` (if any).
    case commitObjects(CommitObjectsRecord)
    /// A stream's start offset moves forward to `newStartOffset`; data below it is dead.
    case trimStream(streamId: UInt64, newStartOffset: Int64)
    /// Objects deleted from the bucket (awaiting deletion) or prepared ids given up: gone from the image.
    case destroyObjects(objectIds: [UInt64])
    /// Snapshot form: a stream's full state (right after its topic record, before its objects).
    case streamState(streamId: UInt64, epoch: Int64, startOffset: Int64, endOffset: Int64)
    /// Snapshot form: a committed, live object (after the stream states).
    case committedObject(CommittedObject)
    /// Snapshot form: objects that are dead and await deletion from the bucket.
    case deadObjects(objectIds: [UInt64])
    /// Object ids below this are spent.
    case objectIdFloor(UInt64)
    /// A dynamic broker config is set (`value != nil`) or removed: for node `nodeId`, or for
    /// every node when `nodeId == MetadataRecord.clusterDefaultNode` (Kafka's resource name "").
    /// Also the snapshot form (one record per key).
    case brokerConfig(nodeId: Int32, key: String, value: String?)
    /// A dynamic group config (Kafka's GROUP config resource, KIP-848) is set (`value != nil`)
    /// or removed. Also the snapshot form (one record per key).
    case groupConfig(groupId: String, key: String, value: String?)

    /// A user's SCRAM credential for `mechanism` is created or replaced (KIP-554; what a SCRAM
    /// server checks logins against, never the password). Also the snapshot form.
    case userScramCredential(name: String, mechanism: ScramMechanism, ScramCredential)
    /// A user's SCRAM credential for `mechanism` is removed (it exists).
    case removeUserScramCredential(name: String, mechanism: ScramMechanism)
    /// An ACL is added (Kafka's AccessControlEntryRecord), under an id no other ACL has.
    /// Also the snapshot form (one record per ACL).
    case accessControlEntry(id: UUID, AclBinding)
    /// The ACL `id` is removed (Kafka's RemoveAccessControlEntryRecord).
    case removeAccessControlEntry(id: UUID)

    /// The node id of cluster-wide dynamic broker defaults (the BROKER resource named "").
    public static let clusterDefaultNode: Int32 = -1
    /// Producer ids below `nextProducerId` are spent: the block ending there went to broker
    /// `brokerId` (Kafka's ProducerIdsRecord). Snapshots carry it with brokerId -1.
    case producerIds(brokerId: Int32, nextProducerId: Int64)

    // The cluster (MetadataImage+Cluster.swift).

    /// A broker registered (or registered again, replacing the previous registration).
    case brokerRegistration(BrokerRegistration)
    /// A registered broker is fenced or unfenced (in the registration of `brokerEpoch`).
    case brokerFence(nodeId: Int32, brokerEpoch: Int64, fenced: Bool)
    /// A fenced broker that owns no partition leaves the cluster (UnregisterBroker).
    case unregisterBroker(nodeId: Int32, brokerEpoch: Int64)
    /// A partition's leader (-1: offline), leader epoch, assigned broker and stream epoch.
    /// Also the snapshot form (one record per partition).
    case partitionLeader(streamId: UInt64, PartitionLeadership)

    public struct TopicRecord: Codable, Equatable, Sendable {
        public var name: String
        public var id: UUID
        public var partitions: Int32
        public var configs: [String: String]
        /// The stream of each partition: the id that frames in the log buffer, the WAL and
        /// (later) objects carry instead of a topic name and partition.
        public var streamIds: [UInt64]
        public init(name: String, id: UUID, partitions: Int32, configs: [String: String], streamIds: [UInt64]) {
            precondition(streamIds.count == Int(partitions), "one stream per partition")
            self.name = name; self.id = id; self.partitions = partitions; self.configs = configs
            self.streamIds = streamIds
        }
    }

    /// One object of a commit, as the metadata log stores it.
    public struct NewObject: Codable, Equatable, Sendable {
        public var objectId: UInt64
        public var size: Int64
        public var kind: ObjectKind
        public var ranges: [StreamRange]
        /// Per range (same order): bytes and newest timestamp, for retention. Absent in logs
        /// written before Silt kept them (decoded as nil; retention then estimates).
        public var rangeStats: [RangeStats]?
        public init(objectId: UInt64, size: Int64, kind: ObjectKind, ranges: [StreamRange], rangeStats: [RangeStats]? = nil) {
            precondition(rangeStats == nil || rangeStats!.count == ranges.count, "one stats entry per range")
            self.objectId = objectId; self.size = size; self.kind = kind; self.ranges = ranges; self.rangeStats = rangeStats
        }
    }

    /// One commit: new objects and the objects they replace, as one record so the swap is atomic.
    public struct CommitObjectsRecord: Codable, Equatable, Sendable {
        public var objects: [NewObject]
        /// Committed objects the new ones replace (compaction); empty for a fresh upload.
        public var compactedObjectIds: [UInt64]
        public var committedAtMs: Int64
        public init(objects: [NewObject], compactedObjectIds: [UInt64], committedAtMs: Int64) {
            self.objects = objects; self.compactedObjectIds = compactedObjectIds; self.committedAtMs = committedAtMs
        }
    }
}

/// One topic as the metadata image sees it.
public struct TopicInfo: Equatable, Sendable {
    public var name: String
    public var id: UUID
    public var partitionCount: Int32
    public var configs: [String: String]
    public var streamIds: [UInt64]
    public init(name: String, id: UUID, partitionCount: Int32, configs: [String: String], streamIds: [UInt64]) {
        self.name = name; self.id = id; self.partitionCount = partitionCount; self.configs = configs
        self.streamIds = streamIds
    }
}

/// Where a stream's data belongs.
public struct StreamOwner: Equatable, Sendable {
    public var topic: String
    public var partition: Int32
}

/// The state folded from the metadata log.
public struct MetadataImage: Equatable, Sendable {
    public private(set) var topicsByName: [String: TopicInfo] = [:]
    public private(set) var topicNamesById: [UUID: String] = [:]
    public private(set) var streams: [UInt64: StreamOwner] = [:]
    /// The next stream id to hand out (ids are never reused).
    public private(set) var nextStreamId: UInt64 = 1
    /// Offset of the next record; also the image's version.
    public private(set) var nextOffset: Int64 = 0
    /// Dynamic broker configs by node id (`MetadataRecord.clusterDefaultNode`: cluster-wide
    /// defaults); no entry for a node without any. Resolved by `TopicConfigResolver`.
    public private(set) var brokerConfigs: [Int32: [String: String]] = [:]
    /// Dynamic group configs by group id; no entry for a group without any.
    public private(set) var groupConfigs: [String: [String: String]] = [:]
    /// SCRAM credentials by user and mechanism (MetadataImage+Scram.swift); no entry for a
    /// user without any.
    public internal(set) var scramCredentials: [String: [ScramMechanism: ScramCredential]] = [:]
    /// The ACLs by id (MetadataImage+Acls.swift). No two ids hold the same binding, and every
    /// binding is valid (`AclBinding.refusal` is nil): the controller checks before writing.
    public internal(set) var acls: [UUID: AclBinding] = [:]
    /// The next producer id to hand out (ids are never reused; see `MetadataController.allocateProducerIds`).
    public private(set) var nextProducerId: Int64 = 0
    /// True only inside `init(snapshot:)` (see `addStream`).
    private var loadingSnapshot = false

    // Objects (maintained in MetadataImage+Objects.swift).

    /// Every stream's epoch, start offset and committed end offset; born (0, 0, 0) with its partition.
    public internal(set) var streamStates: [UInt64: StreamState] = [:]
    /// Committed objects that hold at least one live range, by id.
    public internal(set) var objects: [UInt64: CommittedObject] = [:]
    /// Per stream, the live objects' ranges sorted by offset, contiguous up to the stream's
    /// end offset (the first may start below the start offset); no entry for a stream without
    /// live objects. Query with `objectRanges`.
    public internal(set) var streamObjects: [UInt64: [ObjectRangeRef]] = [:]
    /// Prepared, not yet committed object ids.
    public internal(set) var preparedObjects: [UInt64: PreparedObject] = [:]
    /// Dead objects (compacted away, or every range dead) whose keys the janitor deletes.
    public internal(set) var objectsAwaitingDeletion: Set<UInt64> = []
    /// The current epoch of each node's uploader.
    public internal(set) var nodeEpochs: [Int32: Int64] = [:]
    /// The next object id to hand out (ids are never reused).
    public internal(set) var nextObjectId: UInt64 = 1

    // The cluster (maintained in MetadataImage+Cluster.swift).

    /// Registered brokers by node id, fenced or not.
    public internal(set) var brokers: [Int32: BrokerRegistration] = [:]
    /// Each partition's leadership, by its stream id; no entry for a partition created before
    /// any broker registered (the controller assigns it when one does).
    public internal(set) var partitions: [UInt64: PartitionLeadership] = [:]

    public init() {}

    /// The image a snapshot ending at `endOffset` describes.
    public init(snapshot records: [MetadataRecord], endOffset: Int64) {
        loadingSnapshot = true
        for r in records { apply(r) }
        loadingSnapshot = false
        nextOffset = endOffset
        for s in streamObjects.keys { checkStreamIndex(s) }
    }

    /// Records that rebuild this image from nothing (a snapshot's content).
    public var snapshotRecords: [MetadataRecord] {
        var out: [MetadataRecord] = []
        // Topics in stream order, so that replaying them hands out ids in increasing order.
        for t in topicsByName.values.sorted(by: { ($0.streamIds.first ?? 0) < ($1.streamIds.first ?? 0) }) {
            out.append(.topic(.init(name: t.name, id: t.id, partitions: t.partitionCount, configs: t.configs,
                                    streamIds: t.streamIds)))
        }
        out.append(.streamIdFloor(nextStreamId))
        for node in brokerConfigs.keys.sorted() {
            for (key, value) in brokerConfigs[node]!.sorted(by: { $0.key < $1.key }) {
                out.append(.brokerConfig(nodeId: node, key: key, value: value))
            }
        }
        for group in groupConfigs.keys.sorted() {
            for (key, value) in groupConfigs[group]!.sorted(by: { $0.key < $1.key }) {
                out.append(.groupConfig(groupId: group, key: key, value: value))
            }
        }
        out += scramSnapshotRecords
        out += aclSnapshotRecords
        out += objectSnapshotRecords
        if nextProducerId > 0 { out.append(.producerIds(brokerId: -1, nextProducerId: nextProducerId)) }
        out += clusterSnapshotRecords
        return out
    }

    /// Moves past offsets that hold nothing for the image (the quorum's control records).
    public mutating func skip(to offset: Int64) {
        precondition(offset >= nextOffset, "metadata image: skipping back from \(nextOffset) to \(offset)")
        nextOffset = offset
    }

    public func topic(named name: String) -> TopicInfo? { topicsByName[name] }
    public func topic(id: UUID) -> TopicInfo? { topicNamesById[id].flatMap { topicsByName[$0] } }

    /// Applies one record. Records are validated before they are written, so a record that
    /// does not fit the image is a bug (or a corrupt log) and stops the node.
    public mutating func apply(_ record: MetadataRecord) {
        switch record {
        case .topic(let t):
            precondition(topicsByName[t.name] == nil, "metadata log: topic \(t.name) created twice")
            topicsByName[t.name] = TopicInfo(name: t.name, id: t.id, partitionCount: t.partitions, configs: t.configs,
                                             streamIds: t.streamIds)
            topicNamesById[t.id] = t.name
            for (p, s) in t.streamIds.enumerated() { addStream(s, StreamOwner(topic: t.name, partition: Int32(p))) }
        case .partitionCount(let id, let count, let streamIds):
            guard let name = topicNamesById[id] else { preconditionFailure("metadata log: unknown topic id \(id)") }
            let before = topicsByName[name]!.partitionCount
            precondition(count >= before, "metadata log: partition count shrinks")
            precondition(streamIds.count == Int(count - before), "metadata log: one stream per new partition")
            topicsByName[name]!.partitionCount = count
            topicsByName[name]!.streamIds += streamIds
            for (i, s) in streamIds.enumerated() { addStream(s, StreamOwner(topic: name, partition: before + Int32(i))) }
        case .topicConfig(let id, let key, let value):
            guard let name = topicNamesById[id] else { preconditionFailure("metadata log: unknown topic id \(id)") }
            topicsByName[name]!.configs[key] = value
        case .removeTopic(let id):
            guard let name = topicNamesById.removeValue(forKey: id) else {
                preconditionFailure("metadata log: removing unknown topic id \(id)")
            }
            let removed = topicsByName.removeValue(forKey: name)!.streamIds
            for s in removed {
                streams.removeValue(forKey: s)
                partitions.removeValue(forKey: s)
            }
            streamsRemoved(removed)
        case .streamIdFloor(let floor):
            nextStreamId = max(nextStreamId, floor)
        case .brokerConfig(let node, let key, let value):
            precondition(node >= MetadataRecord.clusterDefaultNode, "metadata log: broker config of node \(node)")
            brokerConfigs[node, default: [:]][key] = value
            if brokerConfigs[node]!.isEmpty { brokerConfigs[node] = nil }   // no empty maps: images compare equal
        case .groupConfig(let group, let key, let value):
            groupConfigs[group, default: [:]][key] = value
            if groupConfigs[group]!.isEmpty { groupConfigs[group] = nil }   // no empty maps: images compare equal
        case .producerIds(_, let next):
            precondition(next > nextProducerId, "metadata log: producer ids \(next) reused")
            nextProducerId = next
        case .nodeEpoch, .prepareObjects, .commitObjects, .trimStream, .destroyObjects, .streamState, .committedObject,
             .deadObjects, .objectIdFloor:
            applyObjectRecord(record)
        case .brokerRegistration, .brokerFence, .unregisterBroker, .partitionLeader:
            applyClusterRecord(record)
        case .userScramCredential, .removeUserScramCredential:
            applyScramRecord(record)
        case .accessControlEntry, .removeAccessControlEntry:
            applyAclRecord(record)
        }
        nextOffset += 1
    }

    /// In the log, a new stream's id is above every earlier one. A snapshot lists each topic
    /// once with all its streams, so a topic grown after later topics were created brings
    /// ids above theirs first (t1: 3,4,81; then t2: 5,6): there, only uniqueness holds, and
    /// the snapshot's stream id floor restores the next id.
    private mutating func addStream(_ id: UInt64, _ owner: StreamOwner) {
        precondition(streams[id] == nil && (loadingSnapshot || id >= nextStreamId), "metadata log: stream \(id) reused")
        streams[id] = owner
        streamStates[id] = StreamState(epoch: 0, startOffset: 0, endOffset: 0)
        nextStreamId = max(nextStreamId, id + 1)
    }
}
