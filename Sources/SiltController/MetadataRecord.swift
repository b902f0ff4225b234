import Foundation

/// A record of the metadata log. The controller's state is the fold of these records in
/// log order; nothing about topics is kept in mutable files. The Raft issue replicates
/// exactly this log.
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
}

/// One topic as the metadata image sees it.
public struct TopicInfo: Equatable, Sendable {
    public var name: String
    public var id: UUID
    public var partitionCount: Int32
    public var configs: [String: String]
    public var streamIds: [UInt64]
}

/// Where a stream's data belongs.
public struct StreamOwner: Equatable, Sendable {
    public var topic: String
    public var partition: Int32
}

/// The state folded from the metadata log.
public struct MetadataImage: Sendable {
    public private(set) var topicsByName: [String: TopicInfo] = [:]
    public private(set) var topicNamesById: [UUID: String] = [:]
    public private(set) var streams: [UInt64: StreamOwner] = [:]
    /// The next stream id to hand out (ids are never reused).
    public private(set) var nextStreamId: UInt64 = 1
    /// Offset of the next record; also the image's version.
    public private(set) var nextOffset: Int64 = 0

    public init() {}

    /// The image a snapshot ending at `endOffset` describes.
    public init(snapshot records: [MetadataRecord], endOffset: Int64) {
        for r in records { apply(r) }
        nextOffset = endOffset
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
        return out
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
            for s in topicsByName.removeValue(forKey: name)!.streamIds { streams.removeValue(forKey: s) }
        case .streamIdFloor(let floor):
            nextStreamId = max(nextStreamId, floor)
        }
        nextOffset += 1
    }

    private mutating func addStream(_ id: UInt64, _ owner: StreamOwner) {
        precondition(streams[id] == nil && id >= nextStreamId, "metadata log: stream \(id) reused")
        streams[id] = owner
        nextStreamId = id + 1
    }
}
