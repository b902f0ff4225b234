import Foundation
import SiltRecords

/// Why an idempotent producer's batch was refused. Each case maps to the Kafka error the
/// producer client acts on.
public enum ProducerStateError: Error, Equatable, CustomStringConvertible {
    /// The batch's epoch is older than the producer's current one (a zombie).
    /// Kafka: INVALID_PRODUCER_EPOCH (47).
    case invalidProducerEpoch(String)
    /// A gap (or an old sequence that is no longer among the last batches remembered), or a
    /// new epoch that does not start at sequence 0. Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    case outOfOrderSequence(String)
    /// A producer id the cluster never handed out. Kafka: UNKNOWN_PRODUCER_ID (59).
    case unknownProducerId(String)

    public var kafkaErrorCode: Int16 {
        switch self {
        case .invalidProducerEpoch: return 47
        case .outOfOrderSequence: return 45
        case .unknownProducerId: return 59
        }
    }

    public var description: String {
        switch self {
        case .invalidProducerEpoch(let m), .outOfOrderSequence(let m), .unknownProducerId(let m): return m
        }
    }
}

/// One batch an idempotent producer wrote: enough to answer its retry with the original offsets.
public struct ProducerBatch: Codable, Equatable, Sendable {
    public var firstSequence: Int32
    public var lastSequence: Int32
    public var firstOffset: Int64
    public var lastOffset: Int64
    /// The batch's max timestamp as stored (the LogAppendTime when the topic uses it).
    public var timestampMs: Int64
}

/// What a partition remembers of one producer id.
public struct ProducerEntry: Codable, Equatable, Sendable {
    public var producerId: Int64
    public var epoch: Int16
    /// The last `ProducerStateTable.batchesRetained` batches of `epoch`, oldest first; never empty.
    public var batches: [ProducerBatch]
    /// Timestamp of the producer's last batch, for `producer.id.expiration.ms`.
    public var lastTimestampMs: Int64
}

/// The idempotent producers of one partition, with Kafka's sequence rules
/// (ProducerStateManager / ProducerAppendInfo in Kafka):
///
/// - a batch whose epoch and whole sequence range match one of the producer's last 5
///   batches is a retry: it is answered with the original offsets and not appended again;
/// - an epoch older than the producer's current one is fenced (INVALID_PRODUCER_EPOCH);
/// - a newer epoch must start at sequence 0;
/// - within an epoch the next batch starts right after the last one, wrapping from
///   Int32.max to 0 (anything else is OUT_OF_ORDER_SEQUENCE_NUMBER);
/// - a producer this partition does not know (never wrote here, expired, or trimmed away)
///   may start at any sequence, as in Kafka since KIP-360.
///
/// Not thread-safe: the partition mutates it under its lock, inside `append`, so that the
/// check, the offset assignment and the update are one step.
public struct ProducerStateTable: Equatable, Sendable {
    /// Batches remembered per producer: the producer client keeps at most 5 in flight
    /// (`max.in.flight.requests.per.connection` ≤ 5 with idempotence), so any retry is among them.
    public static let batchesRetained = 5

    public private(set) var producers: [Int64: ProducerEntry] = [:]

    public init() {}

    public init(entries: [ProducerEntry]) {
        for e in entries {
            precondition(!e.batches.isEmpty && e.batches.count <= ProducerStateTable.batchesRetained, "producer entry shape")
            producers[e.producerId] = e
        }
    }

    public var count: Int { producers.count }

    /// The last sequence of a batch of `recordCount`-wise `lastOffsetDelta` starting at `base`,
    /// wrapping past Int32.max to 0 as the producer does.
    public static func lastSequence(base: Int32, lastOffsetDelta: Int32) -> Int32 {
        precondition(base >= 0 && lastOffsetDelta >= 0)
        if base > Int32.max - lastOffsetDelta { return lastOffsetDelta - (Int32.max - base) - 1 }
        return base + lastOffsetDelta
    }

    static func inSequence(last: Int32, next: Int32) -> Bool {
        Int64(next) == Int64(last) + 1 || (next == 0 && last == Int32.max)
    }

    /// Checks the idempotent batches of one append in order, as if each earlier one had been
    /// appended. Returns the original batch when the append is a retry of one already
    /// written (then nothing may be appended); throws when a batch breaks the rules.
    public func validate(_ batches: [RecordBatchHeader]) throws(ProducerStateError) -> ProducerBatch? {
        // Only producers this append touches are copied: the table itself may be large.
        var touched: [Int64: ProducerEntry] = [:]
        for b in batches where b.hasProducerId {
            let entry = touched[b.producerId] ?? producers[b.producerId]
            let lastSeq = ProducerStateTable.lastSequence(base: b.baseSequence, lastOffsetDelta: b.lastOffsetDelta)
            if let entry, entry.epoch == b.producerEpoch,
               let original = entry.batches.first(where: { $0.firstSequence == b.baseSequence && $0.lastSequence == lastSeq }) {
                return original
            }
            try ProducerStateTable.check(entry, b)
            // Offsets are not known yet; only the sequences matter to the next batch's check.
            touched[b.producerId] = ProducerStateTable.updated(entry, b, firstOffset: -1, timestampMs: b.maxTimestamp)
        }
        return nil
    }

    private static func check(_ entry: ProducerEntry?, _ b: RecordBatchHeader) throws(ProducerStateError) {
        guard let entry else { return }
        if b.producerEpoch < entry.epoch {
            throw .invalidProducerEpoch("Epoch \(b.producerEpoch) of producer \(b.producerId) is older than its current epoch \(entry.epoch).")
        }
        if b.producerEpoch != entry.epoch {
            if b.baseSequence != 0 {
                throw .outOfOrderSequence("Producer \(b.producerId) started epoch \(b.producerEpoch) at sequence \(b.baseSequence); a new epoch starts at 0.")
            }
            return
        }
        let last = entry.batches[entry.batches.count - 1].lastSequence
        if !inSequence(last: last, next: b.baseSequence) {
            throw .outOfOrderSequence("Out of order sequence \(b.baseSequence) of producer \(b.producerId) epoch \(b.producerEpoch): the last sequence written is \(last).")
        }
    }

    private static func updated(_ entry: ProducerEntry?, _ b: RecordBatchHeader, firstOffset: Int64,
                                timestampMs: Int64) -> ProducerEntry {
        var e = entry ?? ProducerEntry(producerId: b.producerId, epoch: b.producerEpoch, batches: [], lastTimestampMs: timestampMs)
        if e.epoch != b.producerEpoch {
            e.epoch = b.producerEpoch
            e.batches.removeAll()
        }
        let batch = ProducerBatch(firstSequence: b.baseSequence,
                                  lastSequence: lastSequence(base: b.baseSequence, lastOffsetDelta: b.lastOffsetDelta),
                                  firstOffset: firstOffset, lastOffset: firstOffset + Int64(b.lastOffsetDelta),
                                  timestampMs: timestampMs)
        if e.batches.count == batchesRetained { e.batches.removeFirst() }
        e.batches.append(batch)
        e.lastTimestampMs = timestampMs
        return e
    }

    /// Records batches as stored (offsets assigned): after a validated append, and when
    /// replaying the log at recovery (where no rule is checked: the log is what was accepted).
    public mutating func record(_ stored: [RecordBatchHeader]) {
        for b in stored where b.hasProducerId && !b.isControl {
            producers[b.producerId] = ProducerStateTable.updated(producers[b.producerId], b, firstOffset: b.baseOffset,
                                                                 timestampMs: b.maxTimestamp)
        }
    }

    /// Forgets producers whose last batch is `expirationMs` or older (`producer.id.expiration.ms`).
    /// Returns how many were removed.
    @discardableResult
    public mutating func expire(nowMs: Int64, expirationMs: Int64) -> Int {
        let before = producers.count
        // Timestamps come from producers: any Int64. Overflow means "very far apart".
        producers = producers.filter { _, e in
            let (idle, overflow) = nowMs.subtractingReportingOverflow(e.lastTimestampMs)
            return overflow ? e.lastTimestampMs > nowMs : idle < expirationMs
        }
        return before - producers.count
    }
}
