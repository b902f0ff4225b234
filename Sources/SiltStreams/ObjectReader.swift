// Reads a stream's record batches out of objects in S3 with range GETs, through the block
// cache, with per-stream readahead for sequential (catching-up) readers.
//
// Back of the envelope: with 1 MiB blocks and ~30 ms first-byte latency per GET, one
// reader without readahead gets ~30 MiB/s; prefetching 2 blocks keeps the next GETs in
// flight while the consumer drains the current one, so throughput follows bandwidth.

import Foundation
import Logging
import SiltObjectStore

/// Reads whole record batches of one stream from an object.
public final class ObjectReader: @unchecked Sendable {
    /// Bytes fetched from the end of an object to get footer and index in one GET.
    public static let tailFetchBytes: Int64 = 64 * 1024
    static let readaheadStreamsMax = 10_000

    private let store: ObjectStore
    public let cache: BlockCache
    private let readaheadBlocks: Int
    private let logger: Logger
    private let onGet: (@Sendable (Int) -> Void)?

    private let lock = NSLock()
    private var indexes: LRUMap<UInt64, ObjectIndex>
    private let indexCacheEntries: Int
    /// Per stream: the object and the last block (position, end) a read returned.
    private var lastRead: [UInt64: (objectId: UInt64, position: Int64, end: Int64)] = [:]
    private var prefetching: [BlockCache.Key: Task<Void, Never>] = [:]
    private var getCount = 0
    private var getByteCount = 0

    public init(store: ObjectStore, cache: BlockCache, readaheadBlocks: Int = 2, indexCacheEntries: Int = 1024,
                logger: Logger, onGet: (@Sendable (Int) -> Void)? = nil) {
        precondition(readaheadBlocks >= 0 && indexCacheEntries > 0)
        self.store = store
        self.cache = cache
        self.readaheadBlocks = readaheadBlocks
        self.indexCacheEntries = indexCacheEntries
        self.indexes = LRUMap()
        self.logger = logger
        self.onGet = onGet
    }

    /// GET requests made (index, blocks and readahead).
    public var getRequests: Int { lock.withLock { getCount } }
    /// Bytes received by those GETs.
    public var getBytes: Int { lock.withLock { getByteCount } }

    /// Whole record batches of `streamId` from the first batch whose last offset is >= `offset`,
    /// up to `maxBytes` but at least one batch; empty when the object holds nothing of the
    /// stream at/after `offset`. After the log cleaner a stream has gaps: an offset inside a
    /// removed batch reads from the next batch (Kafka's semantics), even in a later block.
    public func read(objectId: UInt64, key: String, objectSize: Int64?, streamId: UInt64, from offset: Int64,
                     maxBytes: Int) async throws -> [UInt8] {
        let index = try await index(objectId: objectId, key: key, objectSize: objectSize)
        let blocks = index.blocks(streamId: streamId, from: offset)
        var rest = blocks[...]
        var out: [UInt8] = []
        // Bounded: each pass consumes at least one block.
        while let first = rest.first {
            // Blocks to fetch: the first, then more while they may still fit.
            var chosen = [first]
            var planned = first.size
            for e in rest.dropFirst() where planned < maxBytes {
                chosen.append(e)
                planned += e.size
            }
            let data = try await fetch(objectId: objectId, key: key, blocks: chosen)
            var lastUsed = first
            for (i, e) in chosen.enumerated() {
                let full = try data[i].withUnsafeBytes { buf -> Bool in
                    let batches = try RecordBatches.walk(block: buf, entry: e)
                    let from = RecordBatches.indexOfFirstBatch(endingAtOrAfter: offset, in: batches, bytes: buf)
                    for b in batches[from...] {
                        // Stop at the first batch that doesn't fit: a skipped batch would be a hole.
                        if !out.isEmpty && out.count + b.range.count > maxBytes { return true }
                        out.append(contentsOf: buf[b.range])
                    }
                    return false
                }
                lastUsed = e
                if full { break }
            }
            if !out.isEmpty {
                readahead(objectId: objectId, key: key, streamId: streamId, first: first, last: lastUsed, blocks: blocks)
                return out
            }
            rest = rest.dropFirst(chosen.count)   // only a gap at the end of these blocks: go on
        }
        return out
    }

    // MARK: - Index

    func index(objectId: UInt64, key: String, objectSize: Int64?) async throws -> ObjectIndex {
        if let cached = lock.withLock({ indexes.get(objectId) }) { return cached }
        let index = try await ObjectIndex.load(store: store, key: key, objectSize: objectSize) { self.countGet($0) }
        lock.withLock {
            if indexes.count >= indexCacheEntries { indexes.removeLeastRecent() }
            indexes.insert(objectId, index, weight: 1)
        }
        return index
    }

    // MARK: - Blocks

    /// The bytes of `blocks` (in order), from the cache or from coalesced range GETs.
    private func fetch(objectId: UInt64, key: String, blocks: [ObjectIndex.Entry],
                       isReadahead: Bool = false) async throws -> [[UInt8]] {
        var out: [[UInt8]?] = blocks.map { cache.get(objectId: objectId, position: $0.position) }
        if !isReadahead {
            // A block that readahead is fetching right now: wait for it rather than GET it twice.
            for (i, e) in blocks.enumerated() where out[i] == nil {
                let key = BlockCache.Key(objectId: objectId, position: e.position)
                if let inFlight = lock.withLock({ prefetching[key] }) {
                    await inFlight.value
                    out[i] = cache.get(objectId: objectId, position: e.position)
                }
            }
        }
        var i = 0
        while i < blocks.count {
            guard out[i] == nil else { i += 1; continue }
            var j = i + 1
            while j < blocks.count && out[j] == nil && blocks[j].position == blocks[j - 1].position + Int64(blocks[j - 1].size) {
                j += 1
            }
            let fetched = try await getRun(objectId: objectId, key: key, blocks: Array(blocks[i..<j]))
            for k in i..<j { out[k] = fetched[k - i] }
            i = j
        }
        return out.map { $0! }
    }

    /// One range GET for adjacent blocks; caches and returns them.
    private func getRun(objectId: UInt64, key: String, blocks: [ObjectIndex.Entry]) async throws -> [[UInt8]] {
        let start = blocks.first!.position
        let end = blocks.last!.position + Int64(blocks.last!.size)
        let bytes = try await store.get(key, range: start...(end - 1))
        countGet(bytes.count)
        guard bytes.count == Int(end - start) else {
            throw ObjectFormatError.truncated("GET \(key) [\(start),\(end)) returned \(bytes.count) bytes")
        }
        return blocks.map { e in
            let from = Int(e.position - start)
            let block = Array(bytes[from..<(from + e.size)])
            cache.put(objectId: objectId, position: e.position, bytes: block)
            return block
        }
    }

    private func countGet(_ bytes: Int) {
        lock.withLock {
            getCount += 1
            getByteCount += bytes
        }
        onGet?(bytes)
    }

    // MARK: - Readahead

    /// When this read continues the previous read of the stream (same block or the next
    /// one), prefetches the `readaheadBlocks` blocks after `last` in the background.
    private func readahead(objectId: UInt64, key: String, streamId: UInt64, first: ObjectIndex.Entry,
                           last: ObjectIndex.Entry, blocks: ArraySlice<ObjectIndex.Entry>) {
        guard readaheadBlocks > 0 else { return }
        let toFetch: [ObjectIndex.Entry] = lock.withLock {
            let previous = lastRead[streamId]
            if lastRead.count >= Self.readaheadStreamsMax { lastRead.removeAll() }
            lastRead[streamId] = (objectId, last.position, last.position + Int64(last.size))
            guard let previous, previous.objectId == objectId else { return [] }
            // The same block again, or the block right after it (a stream's blocks are adjacent).
            let sequential = first.position == previous.position || first.position == previous.end
            guard sequential else { return [] }
            guard let lastIndex = blocks.firstIndex(where: { $0.position == last.position }) else { return [] }
            let next = blocks[(lastIndex + 1)...].prefix(readaheadBlocks)
            return next.filter { e in
                let k = BlockCache.Key(objectId: objectId, position: e.position)
                return prefetching[k] == nil && !cache.contains(objectId: objectId, position: e.position)
            }
        }
        guard !toFetch.isEmpty else { return }
        let keys = toFetch.map { BlockCache.Key(objectId: objectId, position: $0.position) }
        lock.withLock {
            let task = Task { [weak self] in
                guard let self else { return }
                defer { self.lock.withLock { for k in keys { self.prefetching[k] = nil } } }
                do {
                    _ = try await self.fetch(objectId: objectId, key: key, blocks: toFetch, isReadahead: true)
                } catch {
                    self.logger.debug("readahead failed", metadata: ["key": "\(key)", "error": "\(error)"])
                }
            }
            for k in keys { prefetching[k] = task }
        }
    }

    /// Waits for the readahead in flight (for tests and orderly shutdown).
    public func waitForReadahead() async {
        while true {
            let tasks = lock.withLock { Array(prefetching.values) }
            guard let t = tasks.first else { return }
            await t.value
        }
    }
}

extension ObjectIndex {
    /// Fetches and parses the index of `key`: one GET of the last `tailFetchBytes` usually
    /// holds footer and index; a bigger index takes a second GET. `onGet(bytes)` per GET.
    static func load(store: ObjectStore, key: String, objectSize: Int64?,
                     onGet: (Int) -> Void) async throws -> ObjectIndex {
        var size = objectSize
        if size == nil {
            guard let info = try await store.head(key) else { throw ObjectStoreError.noSuchKey(key) }
            size = info.size
        }
        let objectSize = size!
        guard objectSize >= Int64(footerBytes) else {
            throw ObjectFormatError.truncated("\(key) is \(objectSize) bytes, the footer needs \(footerBytes)")
        }
        let tailStart = max(0, objectSize - ObjectReader.tailFetchBytes)
        let tail = try await store.get(key, range: tailStart...(objectSize - 1))
        onGet(tail.count)
        guard tail.count == Int(objectSize - tailStart) else {
            throw ObjectFormatError.truncated("GET \(key) tail returned \(tail.count) bytes, expected \(objectSize - tailStart)")
        }
        if let index = try parse(tail: tail, objectSize: objectSize) { return index }
        let footer = try parseFooter(tail)
        let indexBytes = try await store.get(key, range: footer.indexPosition...(footer.indexPosition + Int64(footer.indexSize) - 1))
        onGet(indexBytes.count)
        return try parse(indexBytes: indexBytes, indexPosition: footer.indexPosition, indexCrc: footer.indexCrc, objectSize: objectSize)
    }
}
