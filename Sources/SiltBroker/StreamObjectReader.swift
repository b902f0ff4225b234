import Logging
import NIOCore
import SiltController
import SiltMetadata
import SiltMetrics
import SiltObjectStore
import SiltStreams

/// Reads committed stream data from object storage for fetches below the in-memory tail.
public protocol StreamObjectReader: Sendable {
    /// Whole record batches of `streamId` from the batch holding `offset`, up to `maxBytes`
    /// (at least one batch with `minOneBatch`), from the objects `image` lists. Empty when
    /// `image` holds no committed data at `offset` yet.
    func read(streamId: UInt64, from offset: Int64, maxBytes: Int, minOneBatch: Bool, image: MetadataImage) async throws -> ByteBuffer
}

/// `StreamObjectReader` over the node's data bucket: offset → object (the metadata image's
/// committed ranges) → block (the object's index) → range GET through the block cache.
public final class ObjectStreamReader: StreamObjectReader, @unchecked Sendable {
    let reader: ObjectReader
    let clusterId: String
    let metrics: MetricsRegion

    /// Catch-up reads share `s3.network.baseline.bandwidth` (bytes/s), so that a consumer
    /// reading history cannot take all of the node's network and CPU from producers.
    let throttle: TokenBucket

    public init(store: ObjectStore, clusterId: String, cacheBytes: Int, bandwidthBytesPerSecond: Int64 = 0,
                metrics: MetricsRegion, logger: Logger) {
        self.reader = ObjectReader(store: store, cache: BlockCache(capacityBytes: cacheBytes), logger: logger)
        self.throttle = TokenBucket(bytesPerSecond: bandwidthBytesPerSecond)
        self.clusterId = clusterId
        self.metrics = metrics
    }

    public func read(streamId: UInt64, from offset: Int64, maxBytes: Int, minOneBatch: Bool,
                     image: MetadataImage) async throws -> ByteBuffer {
        var out = ByteBuffer()
        var next = offset
        let hitsBefore = reader.cache.hits
        let missesBefore = reader.cache.misses
        defer {
            metrics.add(.fetchObjectReads)
            metrics.add(.blockCacheHits, UInt64(max(0, reader.cache.hits - hitsBefore)))
            metrics.add(.blockCacheMisses, UInt64(max(0, reader.cache.misses - missesBefore)))
            metrics.set(.blockCacheUsedBytes, UInt64(reader.cache.usedBytes))
        }
        for ref in image.objectRanges(streamId: streamId, from: offset) {
            guard ref.startOffset <= next, let object = image.object(id: ref.objectId) else { break }
            let budget = maxBytes - out.readableBytes
            if budget <= 0 && !(out.readableBytes == 0 && minOneBatch) { break }
            let bytes = try await reader.read(objectId: ref.objectId, key: ObjectKeys.object(clusterId: clusterId, objectId: ref.objectId),
                                              objectSize: object.size, streamId: streamId, from: next, maxBytes: max(budget, 1))
            if bytes.isEmpty {
                // Nothing at or after `next` in this object: the log cleaner removed the end of
                // its range. The stream goes on in the next object (Kafka: the next batch).
                next = max(next, ref.endOffset)
                continue
            }
            let end = Self.endOffset(of: bytes)
            if bytes.count > budget {
                // Only the first batch of a fetch may go past the limit (Kafka's rule).
                if out.readableBytes > 0 || !minOneBatch { break }
                out.writeBytes(Self.firstBatch(of: bytes))
                break
            }
            out.writeBytes(bytes)
            guard let end, end > next else { break }
            next = end
            if out.readableBytes >= maxBytes { break }
        }
        if out.readableBytes > 0 { try await throttle.acquire(out.readableBytes) }   // paces this reader only
        return out
    }

    /// The offset after the last whole batch in `bytes` (batches back to back).
    static func endOffset(of bytes: [UInt8]) -> Int64? {
        var position = 0
        var end: Int64?
        while position + 61 <= bytes.count {
            let base = bytes[position..<position + 8].reduce(Int64(0)) { $0 << 8 | Int64($1) }
            let length = Int(bytes[position + 8..<position + 12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            let lastDelta = Int64(bytes[position + 23..<position + 27].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            guard position + 12 + length <= bytes.count else { break }
            end = base + lastDelta + 1
            position += 12 + length
        }
        return end
    }

    static func firstBatch(of bytes: [UInt8]) -> ArraySlice<UInt8> {
        guard bytes.count >= 12 else { return bytes[...] }
        let length = Int(bytes[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        return bytes[0..<min(bytes.count, 12 + length)]
    }
}
