import Foundation
import Logging
import SiltMetadata

/// Why the controller refused a change. Each case maps to the Kafka error a client expects.
public enum ControllerError: Error, Equatable, CustomStringConvertible {
    case invalidTopic(String)
    case topicAlreadyExists(String)
    case unknownTopic(String)
    case unknownTopicId(UUID)
    case invalidPartitions(String)
    case invalidConfig(String)
    case invalidReplicationFactor(String)
    case deletionDisabled
    case storage(String)
    /// A node epoch that is not the node's current one (a fenced uploader).
    case staleNodeEpoch(String)
    /// A stream epoch that is not the stream's current one (a fenced writer).
    case fencedStreamEpoch(String)
    /// A range that does not start at the stream's committed end.
    case offsetOutOfRange(String)
    case invalidRequest(String)
    case unknownStream(UInt64)

    /// Kafka's error code for this refusal.
    public var kafkaErrorCode: Int16 {
        switch self {
        case .invalidTopic: return 17               // INVALID_TOPIC_EXCEPTION
        case .topicAlreadyExists: return 36         // TOPIC_ALREADY_EXISTS
        case .unknownTopic: return 3                // UNKNOWN_TOPIC_OR_PARTITION
        case .unknownTopicId: return 100            // UNKNOWN_TOPIC_ID
        case .invalidPartitions: return 37          // INVALID_PARTITIONS
        case .invalidConfig: return 40              // INVALID_CONFIG
        case .invalidReplicationFactor: return 38   // INVALID_REPLICATION_FACTOR
        case .deletionDisabled: return 73           // TOPIC_DELETION_DISABLED
        case .storage: return -1                    // UNKNOWN_SERVER_ERROR
        case .staleNodeEpoch: return 77             // STALE_BROKER_EPOCH
        case .fencedStreamEpoch: return 74          // FENCED_LEADER_EPOCH
        case .offsetOutOfRange: return 1            // OFFSET_OUT_OF_RANGE
        case .invalidRequest: return 42             // INVALID_REQUEST
        case .unknownStream: return 3               // UNKNOWN_TOPIC_OR_PARTITION
        }
    }

    public var description: String {
        switch self {
        case .invalidTopic(let m), .invalidPartitions(let m), .invalidConfig(let m),
             .invalidReplicationFactor(let m), .storage(let m), .staleNodeEpoch(let m), .fencedStreamEpoch(let m),
             .offsetOutOfRange(let m), .invalidRequest(let m): return m
        case .unknownStream(let id): return "Stream \(id) does not exist."
        case .topicAlreadyExists(let n): return "Topic '\(n)' already exists."
        case .unknownTopic(let n): return "Topic '\(n)' does not exist."
        case .unknownTopicId(let id): return "Topic id \(id) does not exist."
        case .deletionDisabled: return "Topic deletion is disabled (delete.topic.enable=false)."
        }
    }
}

/// The node's metadata authority: validates changes, writes them to the metadata log,
/// then folds them into the image. Today it runs in the broker's process and is called
/// directly; the supervisor and Raft issues move it behind the CONTROLLER listener without
/// changing this surface.
public final class MetadataController: @unchecked Sendable {
    public static let topicNameLengthMax = 249
    public static let partitionsMax: Int32 = 100_000

    let lock = NSLock()
    private let log: MetadataLog
    var _image: MetadataImage
    /// Expired prepared ids the janitor is deleting: no commit may take them any more,
    /// whatever the clock says. In memory only; the janitor claims them again after a restart.
    var janitorClaims = Set<UInt64>()
    /// The records after the latest snapshot, in log order (record i has offset
    /// `logStartOffset + i`); followers fetch from here, or from the snapshot below it.
    private var records: [MetadataRecord]
    private var logStartOffset: Int64
    private var snapshotBytes: [UInt8]
    private var bytesSinceSnapshot = 0
    /// Kafka's `metadata.log.max.record.bytes.between.snapshots`.
    let snapshotIntervalBytes: Int
    private var commitListeners: [(Int64) -> Void] = []
    let logger: Logger
    /// Validates topic config overrides; injected so the controller need not know the key table.
    private let validateConfigs: ([String: String]) throws -> Void

    public init(directory: String, logger: Logger, snapshotIntervalBytes: Int = 20 << 20,
                validateConfigs: @escaping ([String: String]) throws -> Void) throws {
        let (log, contents) = try MetadataLog.open(directory: directory, logger: logger)
        var image = MetadataImage(snapshot: contents.snapshotRecords, endOffset: contents.snapshotEndOffset)
        for r in contents.records { image.apply(r) }
        let records = contents.records
        self.log = log
        self._image = image
        self.records = records
        self.logStartOffset = contents.snapshotEndOffset
        self.snapshotBytes = contents.snapshotBytes
        self.snapshotIntervalBytes = snapshotIntervalBytes
        self.logger = logger
        self.validateConfigs = validateConfigs
        logger.info("metadata log replayed", metadata: [
            "snapshotEndOffset": "\(contents.snapshotEndOffset)", "records": "\(records.count)",
            "topics": "\(image.topicsByName.count)"])
    }

    /// A consistent copy of the current metadata.
    public var image: MetadataImage { lock.withLock { _image } }

    public static func validateTopicName(_ name: String) throws {
        guard !name.isEmpty else { throw ControllerError.invalidTopic("Topic name is empty.") }
        guard name != "." && name != ".." else { throw ControllerError.invalidTopic("Topic name cannot be '.' or '..'.") }
        guard name.utf8.count <= topicNameLengthMax else {
            throw ControllerError.invalidTopic("Topic name is longer than \(topicNameLengthMax) characters.")
        }
        for c in name.utf8 {
            let ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2E || c == 0x5F || c == 0x2D
            guard ok else {
                throw ControllerError.invalidTopic(
                    "Topic name '\(name)' is illegal; it contains a character other than ASCII alphanumerics, '.', '_' and '-'.")
            }
        }
    }

    /// Creates a topic, or only checks that it could be created when `validateOnly`.
    @discardableResult
    public func createTopic(name: String, partitions: Int32, configs: [String: String],
                            validateOnly: Bool) throws -> TopicInfo {
        try MetadataController.validateTopicName(name)
        guard partitions >= 1 && partitions <= MetadataController.partitionsMax else {
            throw ControllerError.invalidPartitions("Number of partitions must be between 1 and \(MetadataController.partitionsMax).")
        }
        do { try validateConfigs(configs) } catch { throw ControllerError.invalidConfig("\(error)") }
        return try lock.withLock {
            if _image.topic(named: name) != nil { throw ControllerError.topicAlreadyExists(name) }
            let collisionKey = name.replacingOccurrences(of: ".", with: "_")
            if let other = _image.topicsByName.keys.first(where: { $0.replacingOccurrences(of: ".", with: "_") == collisionKey }) {
                throw ControllerError.invalidTopic("Topic '\(name)' collides with existing topic '\(other)'.")
            }
            var id = UUID()
            while _image.topic(id: id) != nil { id = UUID() }
            let first = _image.nextStreamId
            let streamIds = (0..<UInt64(partitions)).map { first + $0 }
            let record = MetadataRecord.TopicRecord(name: name, id: id, partitions: partitions, configs: configs,
                                                    streamIds: streamIds)
            if !validateOnly { try commit([.topic(record)]) }
            logger.info("topic \(validateOnly ? "validated" : "created")", metadata: [
                "topic": "\(name)", "partitions": "\(partitions)"])
            return TopicInfo(name: name, id: id, partitionCount: partitions, configs: configs, streamIds: streamIds)
        }
    }

    /// Deletes a topic by name or id and returns what it was.
    public func deleteTopic(name: String?, id: UUID?) throws -> TopicInfo {
        try lock.withLock {
            let topic: TopicInfo
            if let name {
                guard let t = _image.topic(named: name) else { throw ControllerError.unknownTopic(name) }
                topic = t
            } else if let id {
                guard let t = _image.topic(id: id) else { throw ControllerError.unknownTopicId(id) }
                topic = t
            } else {
                throw ControllerError.invalidTopic("Neither a topic name nor a topic id was given.")
            }
            try commit([.removeTopic(topicId: topic.id)])
            logger.info("topic deleted", metadata: ["topic": "\(topic.name)"])
            return topic
        }
    }

    /// Grows a topic to `count` partitions.
    public func createPartitions(name: String, count: Int32, validateOnly: Bool) throws -> TopicInfo {
        try lock.withLock {
            guard var topic = _image.topic(named: name) else { throw ControllerError.unknownTopic(name) }
            guard count > topic.partitionCount else {
                throw ControllerError.invalidPartitions(
                    "Topic currently has \(topic.partitionCount) partitions, which is higher than or equal to the requested \(count).")
            }
            guard count <= MetadataController.partitionsMax else {
                throw ControllerError.invalidPartitions("Number of partitions must be at most \(MetadataController.partitionsMax).")
            }
            let first = _image.nextStreamId
            let streamIds = (0..<UInt64(count - topic.partitionCount)).map { first + $0 }
            if !validateOnly { try commit([.partitionCount(topicId: topic.id, count: count, streamIds: streamIds)]) }
            topic.partitionCount = count
            topic.streamIds += streamIds
            return topic
        }
    }

    /// Writes records durably, then applies them. Caller holds the lock.
    func commit(_ new: [MetadataRecord]) throws {
        do { bytesSinceSnapshot += try log.append(new) } catch { throw ControllerError.storage("\(error)") }
        for r in new { _image.apply(r) }
        records += new
        if bytesSinceSnapshot >= snapshotIntervalBytes {
            // The records are committed already; a failed snapshot only means a longer replay.
            do {
                snapshotBytes = try log.snapshot(_image.snapshotRecords, endOffset: _image.nextOffset)
                logStartOffset = _image.nextOffset
                records.removeAll()
                bytesSinceSnapshot = 0
            } catch {
                logger.error("metadata snapshot failed: \(error)")
            }
        }
        let end = _image.nextOffset
        let listeners = commitListeners
        commitListeners.removeAll()
        for l in listeners { l(end) }
    }

    /// What a follower at `offset` gets.
    public enum Slice {
        /// Records from the requested offset (at most the count asked for), and the log end.
        case records(ArraySlice<MetadataRecord>, endOffset: Int64)
        /// The offset is below the log start: load the snapshot ending at `endOffset` first.
        case snapshotNeeded(endOffset: Int64)
        /// The offset is past the log end.
        case outOfRange(endOffset: Int64)
    }

    public func records(from offset: Int64, countMax: Int) -> Slice {
        lock.withLock {
            let end = logStartOffset + Int64(records.count)
            if offset < logStartOffset { return .snapshotNeeded(endOffset: logStartOffset) }
            if offset > end { return .outOfRange(endOffset: end) }
            let start = Int(offset - logStartOffset)
            return .records(records[start..<min(records.count, start + countMax)], endOffset: end)
        }
    }

    /// The latest snapshot's bytes and end offset (empty bytes: no snapshot yet).
    public var snapshot: (bytes: [UInt8], endOffset: Int64) { lock.withLock { (snapshotBytes, logStartOffset) } }

    /// Calls `listener` once, at the next commit (or at once if the log is already past `offset`).
    public func onceLogPasses(_ offset: Int64, _ listener: @escaping (Int64) -> Void) {
        let end: Int64? = lock.withLock {
            if _image.nextOffset > offset { return _image.nextOffset }
            commitListeners.append(listener)
            return nil
        }
        if let end { listener(end) }
    }
}
