// Compaction: rewrites many small stream set objects into per-stream stream objects, and
// merges adjacent stream objects of a stream (server-side with UploadPartCopy where S3
// allows), so reads of old data touch few objects and the object count stays bounded.
//
// It talks to the controller only through `ObjectCatalog` (prepare → upload → atomic
// commit), so it can be tested with an in-memory catalog.

import Logging
import SiltObjectStore

public struct CatalogObject: Sendable, Equatable {
    public var objectId: UInt64
    public var key: String
    public var size: Int64
    public var kind: ObjectKind
    public var ranges: [StreamRange]
    public var committedAtMs: Int64
    /// Per range: bytes and newest timestamp (nil: committed before Silt kept them).
    public var stats: [RangeStats]?

    public init(objectId: UInt64, key: String, size: Int64, kind: ObjectKind, ranges: [StreamRange], committedAtMs: Int64,
                stats: [RangeStats]? = nil) {
        self.objectId = objectId
        self.key = key
        self.size = size
        self.kind = kind
        self.ranges = ranges
        self.committedAtMs = committedAtMs
        self.stats = stats
    }
}

public struct NewObject: Sendable, Equatable {
    public var objectId: UInt64
    public var size: Int64
    public var kind: ObjectKind
    public var ranges: [StreamRange]
    /// Per range: bytes and newest timestamp, for retention (nil: unknown).
    public var stats: [RangeStats]?

    public init(objectId: UInt64, size: Int64, kind: ObjectKind, ranges: [StreamRange], stats: [RangeStats]? = nil) {
        precondition(stats == nil || stats!.count == ranges.count, "one stats entry per range")
        self.objectId = objectId
        self.size = size
        self.kind = kind
        self.ranges = ranges
        self.stats = stats
    }
}

/// The controller's view of objects, as compaction needs it.
public protocol ObjectCatalog: Sendable {
    /// Committed objects still referenced.
    func liveObjects() async throws -> [CatalogObject]
    /// The stream's start offset; nil when the stream was deleted.
    func streamStartOffset(_ streamId: UInt64) async -> Int64?
    /// The first of `count` consecutive new object ids.
    func prepareObjects(count: Int) async throws -> UInt64
    /// Atomically adds `newObjects` and removes `compactedObjectIds`.
    func commitCompaction(newObjects: [NewObject], compactedObjectIds: [UInt64]) async throws
}

public struct CompactionConfig: Sendable {
    public var blockBytes: Int
    public var partBytes: Int
    public var parallelism: Int
    /// Merge bound: no stream object written by compaction is bigger.
    public var streamObjectMaxBytes: Int64
    /// Throttle for bytes downloaded + uploaded (server-side copies are free); 0: unlimited.
    public var bandwidthBytesPerSecond: Int64
    /// Stream set objects compacted per run.
    public var streamSetObjectsMax: Int
    /// Bytes of stream set objects held in memory per run (at least one object is taken).
    public var streamSetBytesMax: Int64
    /// Merges of stream objects per run.
    public var streamObjectMergesMax: Int
    /// A stream with at least this much data in one stream set compaction gets stream
    /// objects of its own; smaller streams are merged into one new stream set object
    /// (`s3.stream.object.split.size`).
    public var streamSplitBytes: Int64 = 8 << 20

    public init(blockBytes: Int = 1 << 20, partBytes: Int = 16 << 20, parallelism: Int = 4,
                streamObjectMaxBytes: Int64 = 1 << 30, bandwidthBytesPerSecond: Int64 = 100 << 20,
                streamSetObjectsMax: Int = 50, streamSetBytesMax: Int64 = 1 << 30, streamObjectMergesMax: Int = 50) {
        self.blockBytes = blockBytes
        self.partBytes = partBytes
        self.parallelism = parallelism
        self.streamObjectMaxBytes = streamObjectMaxBytes
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        self.streamSetObjectsMax = streamSetObjectsMax
        self.streamSetBytesMax = streamSetBytesMax
        self.streamObjectMergesMax = streamObjectMergesMax
    }
}

public struct CompactionResult: Sendable, Equatable {
    public var objectsBefore = 0
    public var objectsAfter = 0
    public var bytesRead = 0
    public var bytesWritten = 0
    public var bytesCopiedServerSide = 0
    /// Every request to the object store (GET, HEAD, PUT-class, DELETE).
    public var requests = 0

    public init() {}
}

public enum CompactionError: Error, Equatable, CustomStringConvertible {
    /// The catalog and an object disagree, or objects of a stream overlap: refuse to write.
    case inconsistent(String)

    public var description: String {
        switch self {
        case .inconsistent(let m): return "compaction refused: \(m)"
        }
    }
}

/// A token bucket of bytes per second with a one-second burst. A request bigger than the
/// burst goes into debt and waits it out, so big objects pass, at the configured rate.
public actor TokenBucket {
    private let rate: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    /// `bytesPerSecond` <= 0: unlimited.
    public init(bytesPerSecond: Int64) {
        rate = Double(bytesPerSecond)
        tokens = Double(bytesPerSecond)
        last = .now
    }

    public func acquire(_ bytes: Int) async throws {
        guard rate > 0 else { return }
        let now = ContinuousClock.now
        let elapsed = now - last
        last = now
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        tokens = min(rate, tokens + seconds * rate) - Double(bytes)
        if tokens < 0 { try await Task.sleep(for: .milliseconds(Int64((-tokens / rate * 1000).rounded(.up)))) }
    }
}

public final class Compactor: @unchecked Sendable {
    private let store: ObjectStore
    private let catalog: ObjectCatalog
    private let clusterId: String
    private let config: CompactionConfig
    private let logger: Logger
    private let throttle: TokenBucket

    public init(store: ObjectStore, catalog: ObjectCatalog, clusterId: String, config: CompactionConfig, logger: Logger) {
        precondition(config.blockBytes > 0 && config.streamSetObjectsMax > 0 && config.streamObjectMaxBytes > 0)
        self.store = store
        self.catalog = catalog
        self.clusterId = clusterId
        self.config = config
        self.logger = logger
        self.throttle = TokenBucket(bytesPerSecond: config.bandwidthBytesPerSecond)
    }

    // MARK: - Stream set objects → stream objects

    /// Contiguous data of one stream taken from one block of a source object.
    private struct Piece {
        var startOffset: Int64
        var endOffset: Int64
        var bytes: ArraySlice<UInt8>
        var batchCount: Int
    }

    /// Rewrites the oldest small stream set objects: each stream with at least
    /// `streamSplitBytes` among them (or whose data there is not one contiguous run) gets
    /// stream objects of its own (one per contiguous run, split at `streamObjectMaxBytes`);
    /// the other streams are merged into one new stream set object. Deleted streams and
    /// batches wholly below a stream's start offset are dropped. One atomic commit swaps
    /// the lot. Stream set objects of at least half `streamSetBytesMax`, or of at least one
    /// part, count as done; the input (held in memory) stays within `streamSetBytesMax`.
    public func compactStreamSetObjects() async throws -> CompactionResult {
        var result = CompactionResult()
        let live = try await catalog.liveObjects()
        var selected: [CatalogObject] = []
        var selectedBytes: Int64 = 0
        // Small: below half the input bound, and below one part (an object of a whole part
        // is as cheap to write and to read as objects get; rewriting it only costs requests).
        let small = min(max(1, config.streamSetBytesMax / 2), Int64(config.partBytes))
        let candidates = live.filter { $0.kind == .streamSet && $0.size < small }
        for o in candidates.sorted(by: { ($0.committedAtMs, $0.objectId) < ($1.committedAtMs, $1.objectId) }) {
            guard selected.count < config.streamSetObjectsMax,
                  selected.isEmpty || selectedBytes + o.size <= config.streamSetBytesMax else { break }
            selected.append(o)
            selectedBytes += o.size
        }
        var deadData = false
        for o in selected {
            for r in o.ranges {
                let start = await catalog.streamStartOffset(r.streamId)
                if start == nil || r.endOffset <= start! { deadData = true }
            }
        }
        // One object with nothing dead in it: rewriting it gains nothing.
        guard selected.count >= 2 || (selected.count == 1 && deadData) else { return result }

        var pieces: [UInt64: [Piece]] = [:]
        for o in selected {
            try await throttle.acquire(Int(o.size))
            let bytes = try await store.get(o.key, range: nil)
            result.requests += 1
            result.bytesRead += bytes.count
            guard bytes.count == Int(o.size) else {
                throw CompactionError.inconsistent("\(o.key) is \(bytes.count) bytes, the catalog says \(o.size)")
            }
            let index = try ObjectIndex.parse(object: bytes)
            try Self.check(o, holds: index)
            for e in index.entries {
                let from = Int(e.position)
                pieces[e.streamId, default: []].append(Piece(startOffset: e.startOffset, endOffset: e.endOffset,
                                                             bytes: bytes[from..<(from + e.size)], batchCount: e.batchCount))
            }
        }

        var built: [BuiltObject] = []
        let merged = StreamSetObjectBuilder(blockBytesTarget: config.blockBytes)
        for streamId in pieces.keys.sorted() {
            guard let startOffset = await catalog.streamStartOffset(streamId) else { continue }  // deleted
            let streamPieces = pieces[streamId]!.sorted { $0.startOffset < $1.startOffset }
            let bytes = streamPieces.reduce(0) { $0 + $1.bytes.count }
            let contiguous = zip(streamPieces, streamPieces.dropFirst()).allSatisfy { $0.endOffset == $1.startOffset }
            if Int64(bytes) >= config.streamSplitBytes || !contiguous {
                built += try buildStreamObjects(streamId: streamId, pieces: streamPieces, startOffset: startOffset)
                continue
            }
            for p in streamPieces {
                guard let (base, data) = try trimmed(p, streamId: streamId, startOffset: startOffset) else { continue }
                data.withUnsafeBytes { merged.add(streamId: streamId, baseOffset: base, endOffset: p.endOffset, payload: $0) }
            }
        }
        if !merged.isEmpty, let set = merged.finish(splitBytes: Int.max).streamSet {
            built.insert(set, at: 0)
        }

        var newObjects: [NewObject] = []
        var uploaded: [String] = []
        do {
            if !built.isEmpty {
                let firstId = try await catalog.prepareObjects(count: built.count)
                for (i, b) in built.enumerated() {
                    let id = firstId + UInt64(i)
                    let key = ObjectKeys.object(clusterId: clusterId, objectId: id)
                    try await throttle.acquire(b.bytes.count)
                    uploaded.append(key)
                    let stats = try await ObjectUploader.upload(b.bytes, key: key, store: store, partBytes: config.partBytes,
                                                                parallelism: config.parallelism)
                    result.requests += stats.requests
                    result.bytesWritten += stats.bytes
                    newObjects.append(NewObject(objectId: id, size: Int64(b.bytes.count), kind: b.kind, ranges: b.ranges,
                                                stats: b.stats))
                }
            }
        } catch {
            await deleteBestEffort(uploaded, result: &result)
            throw error
        }
        // A failed commit is ambiguous (it may have been applied), so its objects stay;
        // prepared-but-never-committed objects are the janitor's.
        try await catalog.commitCompaction(newObjects: newObjects, compactedObjectIds: selected.map(\.objectId))
        result.objectsBefore = selected.count
        result.objectsAfter = newObjects.count
        logger.info("compacted stream set objects", metadata: [
            "before": "\(result.objectsBefore)", "after": "\(result.objectsAfter)",
            "bytesRead": "\(result.bytesRead)", "bytesWritten": "\(result.bytesWritten)",
        ])
        return result
    }

    /// A piece without the batches wholly below `startOffset` (the one holding it stays);
    /// nil when nothing is left.
    private func trimmed(_ p: Piece, streamId: UInt64, startOffset: Int64) throws -> (base: Int64, bytes: ArraySlice<UInt8>)? {
        guard p.endOffset > startOffset else { return nil }  // wholly below the start offset
        guard p.startOffset < startOffset else { return (p.startOffset, p.bytes) }
        return try p.bytes.withUnsafeBytes { buf in
            let batches = try RecordBatches.walk(block: buf, entry: ObjectIndex.Entry(
                streamId: streamId, startOffset: p.startOffset, endOffset: p.endOffset, position: 0,
                size: p.bytes.count, batchCount: p.batchCount))
            let keep = batches[RecordBatches.indexOfBatch(containing: startOffset, in: batches)]
            // After the log cleaner the kept batch may start past startOffset (a gap): the
            // range still starts at startOffset, so the live ranges stay covered exactly.
            return (min(keep.baseOffset, startOffset), p.bytes.dropFirst(keep.range.lowerBound))
        }
    }

    /// Stream objects of one stream's pieces: one per contiguous run, split at the size bound.
    private func buildStreamObjects(streamId: UInt64, pieces: [Piece], startOffset: Int64) throws -> [BuiltObject] {
        let sorted = pieces.sorted { $0.startOffset < $1.startOffset }
        var out: [BuiltObject] = []
        let builder = StreamSetObjectBuilder(blockBytesTarget: config.blockBytes)
        var builderEnd: Int64 = -1
        func flush() {
            guard !builder.isEmpty else { return }
            let (set, streams) = builder.finish(splitBytes: 0)
            precondition(set == nil && streams.count == 1)
            out += streams
        }
        for (i, p) in sorted.enumerated() {
            if i > 0 && p.startOffset < sorted[i - 1].endOffset {
                throw CompactionError.inconsistent("stream \(streamId): data at \(p.startOffset) overlaps data ending at \(sorted[i - 1].endOffset)")
            }
            guard let (base, bytes) = try trimmed(p, streamId: streamId, startOffset: startOffset) else { continue }
            let indexOverhead = ObjectIndex.entryBytes * 2 + ObjectIndex.footerBytes
            if base != builderEnd || Int64(builder.bytesAdded + bytes.count + indexOverhead) > config.streamObjectMaxBytes {
                flush()  // a new run of offsets, or the object is full
            }
            bytes.withUnsafeBytes { builder.add(streamId: streamId, baseOffset: base, endOffset: p.endOffset, payload: $0) }
            builderEnd = p.endOffset
        }
        flush()
        return out
    }

    // MARK: - Stream objects → bigger stream objects

    /// Merges runs of >= 2 adjacent stream objects of a stream (contiguous ranges, merged
    /// size <= `streamObjectMaxBytes`), one atomic commit per merge.
    public func compactStreamObjects() async throws -> CompactionResult {
        var result = CompactionResult()
        let live = try await catalog.liveObjects()
        var byStream: [UInt64: [CatalogObject]] = [:]
        for o in live where o.kind == .stream && o.ranges.count == 1 {
            byStream[o.ranges[0].streamId, default: []].append(o)
        }
        var merges: [[CatalogObject]] = []
        for streamId in byStream.keys.sorted() {
            guard await catalog.streamStartOffset(streamId) != nil else { continue }  // deleted: nothing to gain
            let objects = byStream[streamId]!.sorted { $0.ranges[0].startOffset < $1.ranges[0].startOffset }
            var run: [CatalogObject] = []
            var runBytes: Int64 = 0
            for o in objects {
                if let last = run.last, last.ranges[0].endOffset == o.ranges[0].startOffset,
                   runBytes + o.size <= config.streamObjectMaxBytes {
                    run.append(o)
                    runBytes += o.size
                } else {
                    if run.count >= 2 { merges.append(run) }
                    run = [o]
                    runBytes = o.size
                }
            }
            if run.count >= 2 { merges.append(run) }
        }
        for run in merges.prefix(config.streamObjectMergesMax) {
            let id = try await catalog.prepareObjects(count: 1)
            let key = ObjectKeys.object(clusterId: clusterId, objectId: id)
            let merged: NewObject
            do {
                merged = try await merge(run, into: id, key: key, result: &result)
            } catch {
                await deleteBestEffort([key], result: &result)
                throw error
            }
            try await catalog.commitCompaction(newObjects: [merged], compactedObjectIds: run.map(\.objectId))
            result.objectsBefore += run.count
            result.objectsAfter += 1
        }
        if !merges.isEmpty {
            logger.info("merged stream objects", metadata: [
                "before": "\(result.objectsBefore)", "after": "\(result.objectsAfter)",
                "bytesCopiedServerSide": "\(result.bytesCopiedServerSide)", "bytesWritten": "\(result.bytesWritten)",
            ])
        }
        return result
    }

    /// Writes the data sections of `sources` back to back, then a new index (positions
    /// shifted) and footer. A section >= S3's minimum part size is copied server-side;
    /// smaller ones are downloaded and re-uploaded, concatenated into parts.
    private func merge(_ sources: [CatalogObject], into id: UInt64, key: String,
                       result: inout CompactionResult) async throws -> NewObject {
        var indexes: [ObjectIndex] = []
        for o in sources {
            try await throttle.acquire(Int(min(o.size, ObjectReader.tailFetchBytes)))
            let index = try await ObjectIndex.load(store: store, key: o.key, objectSize: o.size) { n in
                result.requests += 1
                result.bytesRead += n
            }
            try Self.check(o, holds: index)
            indexes.append(index)
        }
        var entries: [ObjectIndex.Entry] = []
        var dataBytes: Int64 = 0
        for index in indexes {
            entries += index.entries.map { var e = $0; e.position += dataBytes; return e }
            dataBytes += index.dataBytes
        }
        let merged = try ObjectIndex(validating: entries, dataBytes: dataBytes)  // asserts contiguity
        let tail = ObjectIndex.encodeIndexAndFooter(entries, dataBytes: dataBytes)
        let size = dataBytes + Int64(tail.count)
        let minPart = multipartMinimumPartBytes

        if !indexes.contains(where: { $0.dataBytes >= minPart }) {
            // All small: build in memory.
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(size))
            for (o, index) in zip(sources, indexes) {
                bytes += try await download(o.key, 0..<index.dataBytes, result: &result)
            }
            bytes += tail
            try await throttle.acquire(bytes.count)
            let stats = try await ObjectUploader.upload(bytes, key: key, store: store, partBytes: config.partBytes,
                                                        parallelism: config.parallelism)
            result.requests += stats.requests
            result.bytesWritten += stats.bytes
        } else {
            try await uploadWithCopies(sources, indexes, tail: tail, key: key, result: &result)
        }
        guard let info = try await store.head(key), info.size == size else {  // assert after the write
            throw CompactionError.inconsistent("merged object \(key) does not have the expected \(size) bytes")
        }
        result.requests += 1
        // Bytes come from the merged index (exact); timestamps from the sources' stats (unknown if any lacks them).
        let timestamps = sources.map { $0.stats?.first?.maxTimestampMs }
        let stats = timestamps.contains(where: { $0 == nil }) ? nil
            : [RangeStats(bytes: dataBytes, maxTimestampMs: timestamps.map { $0! }.max() ?? RangeStats.unknownTimestampMs)]
        return NewObject(objectId: id, size: size, kind: .stream, ranges: merged.ranges, stats: stats)
    }

    private func uploadWithCopies(_ sources: [CatalogObject], _ indexes: [ObjectIndex], tail: [UInt8], key: String,
                                  result: inout CompactionResult) async throws {
        let minPart = multipartMinimumPartBytes
        let flushBytes = max(config.partBytes, Int(minPart))
        let uploadId = try await store.createMultipartUpload(key)
        result.requests += 1
        var parts: [CompletedPart] = []
        var pending: [UInt8] = []
        func flush() async throws {
            try await throttle.acquire(pending.count)
            let etag = try await store.uploadPart(key, uploadId: uploadId, partNumber: parts.count + 1, body: pending)
            parts.append(CompletedPart(partNumber: parts.count + 1, etag: etag))
            result.requests += 1
            result.bytesWritten += pending.count
            pending.removeAll(keepingCapacity: true)
        }
        do {
            for (o, index) in zip(sources, indexes) {
                let n = index.dataBytes
                var from: Int64 = 0
                if n >= minPart && !pending.isEmpty && pending.count < Int(minPart) {
                    // Top the pending part up to the minimum from this section, if the rest can still be copied.
                    let need = minPart - Int64(pending.count)
                    if n - need >= minPart {
                        pending += try await download(o.key, 0..<need, result: &result)
                        from = need
                    }
                }
                if n - from >= minPart && (pending.isEmpty || pending.count >= Int(minPart)) {
                    if !pending.isEmpty { try await flush() }
                    let etag = try await store.uploadPartCopy(key, uploadId: uploadId, partNumber: parts.count + 1,
                                                              sourceKey: o.key, sourceRange: from...(n - 1))
                    parts.append(CompletedPart(partNumber: parts.count + 1, etag: etag))
                    result.requests += 1
                    result.bytesCopiedServerSide += Int(n - from)
                    continue
                }
                while from < n {
                    let end = min(n, from + Int64(flushBytes))
                    pending += try await download(o.key, from..<end, result: &result)
                    from = end
                    if pending.count >= flushBytes { try await flush() }
                }
            }
            pending += tail
            try await flush()  // the last part: may be small
            _ = try await store.completeMultipartUpload(key, uploadId: uploadId, parts: parts)
            result.requests += 1
        } catch {
            try? await store.abortMultipartUpload(key, uploadId: uploadId)
            throw error
        }
    }

    /// Asserts after the read: every range the catalog has for `o` is inside what its index holds
    /// (the catalog may know less, e.g. a range dropped for a deleted stream, never more).
    private static func check(_ o: CatalogObject, holds index: ObjectIndex) throws {
        for r in o.ranges where !index.ranges.contains(where: {
            $0.streamId == r.streamId && $0.startOffset <= r.startOffset && r.endOffset <= $0.endOffset
        }) {
            throw CompactionError.inconsistent("\(o.key) holds \(index.ranges), the catalog says \(o.ranges)")
        }
    }

    private func download(_ key: String, _ range: Range<Int64>, result: inout CompactionResult) async throws -> [UInt8] {
        try await throttle.acquire(range.count)
        let bytes = try await store.get(key, range: range.lowerBound...(range.upperBound - 1))
        result.requests += 1
        result.bytesRead += bytes.count
        guard bytes.count == range.count else {
            throw ObjectFormatError.truncated("GET \(key) \(range) returned \(bytes.count) bytes")
        }
        return bytes
    }

    private func deleteBestEffort(_ keys: [String], result: inout CompactionResult) async {
        guard !keys.isEmpty else { return }
        result.requests += 1
        do {
            let failed = try await store.deleteObjects(keys)
            if !failed.isEmpty { logger.warning("could not delete compaction leftovers", metadata: ["failed": "\(failed)"]) }
        } catch {
            logger.warning("could not delete compaction leftovers", metadata: ["keys": "\(keys)", "error": "\(error)"])
        }
    }
}
