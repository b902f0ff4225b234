import NIOCore
import SiltRecords

/// What the broker needs of a partition's log. The one implementation is `StreamLog` (a
/// stream on object storage: offsets and the high watermark live here, the bytes live in
/// the log buffer until the uploader has committed them to objects).
public protocol Partition: AnyObject, Sendable {
    var topic: String { get }
    var partition: Int32 { get }
    /// The stream epoch appends carry (see `StreamLog.streamEpoch`).
    var streamEpoch: Int64 { get }
    var logStartOffset: Int64 { get }
    /// The next offset to assign.
    var logEndOffset: Int64 { get }
    /// Consumers see offsets below this.
    var highWatermark: Int64 { get }

    /// Assigns offsets to `records` (validated batches `batches`) under the partition lock and
    /// hands the stored bytes to `publish` still under it, so that publication order is offset
    /// order. If `publish` throws, nothing was appended.
    func append(_ records: ByteBuffer, batches: [RecordBatchHeader], logAppendTime: Bool, nowMs: Int64,
                partitionLeaderEpoch: Int32, publish: (ByteBuffer, AppendInfo) throws -> Void) throws -> AppendInfo
    /// Everything below `offset` is durable; readers may see it.
    func advanceHighWatermark(to offset: Int64)

    // Idempotent producers (ProducerState.swift). `append` checks and updates this state under
    // the partition lock; a retry of a batch already written returns `AppendInfo.duplicate`.

    /// A copy of the producer state with the log end offset it covers (for a snapshot).
    func producerStateSnapshot() -> ProducerStateSnapshot
    /// Recovery: replaces the producer state, before the partition takes appends.
    func loadProducerState(_ table: ProducerStateTable)
    /// Forgets producers idle for `expirationMs` (`producer.id.expiration.ms`); returns how many.
    @discardableResult
    func expireProducers(nowMs: Int64, expirationMs: Int64) -> Int
}

extension AppendInfo {
    /// The answer to a retry: the offsets of the batch already written.
    static func duplicate(of batch: ProducerBatch, logAppendTime: Bool, logStartOffset: Int64) -> AppendInfo {
        AppendInfo(baseOffset: batch.firstOffset, lastOffset: batch.lastOffset,
                   logAppendTimeMs: logAppendTime ? batch.timestampMs : -1, logStartOffset: logStartOffset, duplicate: true)
    }
}

extension Partition {
    public func append(_ records: ByteBuffer, batches: [RecordBatchHeader], logAppendTime: Bool, nowMs: Int64,
                       publish: (ByteBuffer, AppendInfo) throws -> Void) throws -> AppendInfo {
        try append(records, batches: batches, logAppendTime: logAppendTime, nowMs: nowMs, partitionLeaderEpoch: 0,
                   publish: publish)
    }
}

/// A partition's name.
public struct PartitionKey: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)-\(partition)" }

    /// Kafka's rules for a topic name (1...249 of [a-zA-Z0-9._-], not "." or "..") and a
    /// partition number (not negative).
    public static func validate(topic: String, partition: Int32) throws {
        guard partition >= 0 else { throw StorageError.invalidTopic("negative partition \(partition)") }
        guard !topic.isEmpty, topic.utf8.count <= 249, topic != ".", topic != ".." else {
            throw StorageError.invalidTopic("bad topic name length or name '\(topic)'")
        }
        for byte in topic.utf8 {
            let ok = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x2D
            guard ok else { throw StorageError.invalidTopic("illegal character in topic name '\(topic)'") }
        }
    }
}
