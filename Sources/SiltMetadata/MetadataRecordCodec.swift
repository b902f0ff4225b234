import Foundation
import NIOCore
import SiltProtocol
import SiltRecords

/// Metadata records as Kafka record batches (Fetch on `__cluster_metadata`, snapshots):
/// one batch, one Kafka record per `MetadataRecord`, with no key and the record's
/// `MetadataRecordSerde` bytes as its value.
public enum MetadataRecordCodec {
    /// One batch holding `records` at offsets `baseOffset, baseOffset + 1, ...`, stamped with
    /// `partitionLeaderEpoch` (the Raft epoch the records were written in; 0 until Raft).
    public static func encodeBatch(_ records: [MetadataRecord], baseOffset: Int64,
                                   partitionLeaderEpoch: Int32 = 0) -> ByteBuffer {
        var builder = RecordBatchBuilder(baseOffset: baseOffset, partitionLeaderEpoch: partitionLeaderEpoch)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for r in records {
            builder.append(key: nil as [UInt8]?, value: MetadataRecordSerde.encode(r), timestamp: now)
        }
        return builder.build()
    }

    /// Decodes every record of the batches in `buffer`, with their offsets. Throws on a bad
    /// batch CRC and on any record `MetadataRecordSerde` cannot read (a `MetadataRecordError`).
    public static func decode(_ buffer: ByteBuffer) throws -> [(offset: Int64, record: MetadataRecord)] {
        try decode(buffer) { try MetadataRecordSerde.decode($0) }
    }

    /// Decodes every record of the batches in `buffer` with `value` reading each record's
    /// value (the legacy snapshot reader passes one that also reads JSON).
    public static func decode(_ buffer: ByteBuffer, value decodeValue: ([UInt8]) throws -> MetadataRecord) throws
        -> [(offset: Int64, record: MetadataRecord)] {
        var out: [(Int64, MetadataRecord)] = []
        for header in try parseBatchHeaders(buffer) {
            guard header.isCRCValid(in: buffer) else { throw RecordBatchError.corruptMessage("metadata batch CRC") }
            var reader = try RecordReader(batch: buffer, header: header)
            while let r = try reader.next() {
                guard let value = r.value else { throw RecordBatchError.invalidRecord("metadata record without a value") }
                out.append((r.offset, try decodeValue(Array(value.readableBytesView))))
            }
        }
        return out
    }
}

/// A snapshot's bytes: the records that rebuild the image, as one Kafka record batch
/// (what FetchSnapshot sends to followers).
public enum MetadataSnapshot {
    public static func encode(_ records: [MetadataRecord]) -> [UInt8] {
        Array(MetadataRecordCodec.encodeBatch(records, baseOffset: 0).readableBytesView)
    }

    public static func decode(_ bytes: [UInt8]) throws -> [MetadataRecord] {
        try MetadataRecordCodec.decode(ByteBuffer(bytes: bytes)).map(\.record)
    }
}

extension UUID {
    /// The same 16 bytes as Kafka's `Uuid` (topic ids on the wire and in metadata records).
    public var kafka: KafkaUUID {
        let u = uuid
        let high = [u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let low = [u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return KafkaUUID(high: high, low: low)
    }
}

extension KafkaUUID {
    /// The same 16 bytes as a Foundation `UUID`.
    public var foundation: UUID {
        func b(_ v: UInt64, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: v >> UInt64(56 - 8 * i)) }
        return UUID(uuid: (b(high, 0), b(high, 1), b(high, 2), b(high, 3), b(high, 4), b(high, 5), b(high, 6), b(high, 7),
                           b(low, 0), b(low, 1), b(low, 2), b(low, 3), b(low, 4), b(low, 5), b(low, 6), b(low, 7)))
    }
}
