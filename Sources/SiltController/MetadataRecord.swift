import Foundation

/// A record of the metadata log. The controller's state is the fold of these records in
/// log order; nothing about topics is kept in mutable files. The Raft issue replicates
/// exactly this log.
public enum MetadataRecord: Codable, Equatable, Sendable {
    /// A topic is born with its id, partition count and config overrides.
    case topic(TopicRecord)
    /// A topic's partition count grows to `count`.
    case partitionCount(topicId: UUID, count: Int32)
    /// A topic config override is set (`value != nil`) or removed.
    case topicConfig(topicId: UUID, key: String, value: String?)
    /// A topic is deleted.
    case removeTopic(topicId: UUID)

    public struct TopicRecord: Codable, Equatable, Sendable {
        public var name: String
        public var id: UUID
        public var partitions: Int32
        public var configs: [String: String]
        public init(name: String, id: UUID, partitions: Int32, configs: [String: String]) {
            self.name = name; self.id = id; self.partitions = partitions; self.configs = configs
        }
    }
}

/// One topic as the metadata image sees it.
public struct TopicInfo: Equatable, Sendable {
    public var name: String
    public var id: UUID
    public var partitionCount: Int32
    public var configs: [String: String]
}

/// The state folded from the metadata log.
public struct MetadataImage: Sendable {
    public private(set) var topicsByName: [String: TopicInfo] = [:]
    public private(set) var topicNamesById: [UUID: String] = [:]
    /// Offset of the next record; also the image's version.
    public private(set) var nextOffset: Int64 = 0

    public init() {}

    public func topic(named name: String) -> TopicInfo? { topicsByName[name] }
    public func topic(id: UUID) -> TopicInfo? { topicNamesById[id].flatMap { topicsByName[$0] } }

    /// Applies one record. Records are validated before they are written, so a record that
    /// does not fit the image is a bug (or a corrupt log) and stops the node.
    public mutating func apply(_ record: MetadataRecord) {
        switch record {
        case .topic(let t):
            precondition(topicsByName[t.name] == nil, "metadata log: topic \(t.name) created twice")
            topicsByName[t.name] = TopicInfo(name: t.name, id: t.id, partitionCount: t.partitions, configs: t.configs)
            topicNamesById[t.id] = t.name
        case .partitionCount(let id, let count):
            guard let name = topicNamesById[id] else { preconditionFailure("metadata log: unknown topic id \(id)") }
            precondition(count >= topicsByName[name]!.partitionCount, "metadata log: partition count shrinks")
            topicsByName[name]!.partitionCount = count
        case .topicConfig(let id, let key, let value):
            guard let name = topicNamesById[id] else { preconditionFailure("metadata log: unknown topic id \(id)") }
            topicsByName[name]!.configs[key] = value
        case .removeTopic(let id):
            guard let name = topicNamesById.removeValue(forKey: id) else {
                preconditionFailure("metadata log: removing unknown topic id \(id)")
            }
            topicsByName.removeValue(forKey: name)
        }
        nextOffset += 1
    }
}
