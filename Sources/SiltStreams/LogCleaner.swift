// The log cleaner: Kafka's log compaction (cleanup.policy=compact) on stream storage. It
// keeps the latest record of every key and drops tombstones once delete.retention.ms has
// passed, by rewriting a stream's objects and swapping them in one atomic commit.
//
// ```
//  live objects holding the stream ──GET──▶ batches in offset order
//     pass 1: key → latest offset (cleanable part only)
//     pass 2: each batch keeps the records that are their key's latest ─▶ one stream object
//  other streams' blocks of a replaced stream set object ─▶ one new stream set object each, unchanged
//                                       ──▶ upload ──▶ ONE commitCompaction (old objects dead)
// ```
//
// Offsets never move: a rewritten batch keeps its baseOffset and lastOffsetDelta, and the
// new objects' ranges cover exactly what the replaced objects covered. Inside, the stream
// now has gaps (removed batches); readers serve the next batch for an offset in a gap.
//
// Back of the envelope: a clean downloads and uploads the whole stream (bounded by
// `streamBytesMax`, 128 MiB by default) and holds it in memory twice at most (input and
// output) plus a key map (key bytes + 8 B per distinct key), and the decoded records of its
// compressed batches, at most `streamBytesMax` more (past that budget, or when a batch does
// not decode, a compressed batch is kept whole). Kept records of a compressed batch are
// re-encoded with the batch's codec (at its default level). At the default dirty ratio
// (0.5) a stream is rewritten once per doubling of its records, so the bytes a clean
// moves are about twice the bytes produced.

import Logging
import SiltObjectStore

/// A stream of a topic whose cleanup.policy contains `compact`, with its topic's settings.
public struct CleanableStream: Sendable, Equatable {
    public var streamId: UInt64
    /// `delete.retention.ms`: how long a tombstone outlives its batch's max timestamp.
    public var deleteRetentionMs: Int64
    /// `min.cleanable.dirty.ratio`: records written since the last clean / all records.
    public var minCleanableDirtyRatio: Double
    /// `min.compaction.lag.ms`: batches younger than this are not cleaned yet.
    public var minCompactionLagMs: Int64
    /// `max.compaction.lag.ms` (KIP-354): dirty records (past the last clean) in an object
    /// committed this long ago are cleaned whatever the dirty ratio. (The broker has the
    /// stream uploaded within this lag, so its records reach objects, where the cleaner is.)
    public var maxCompactionLagMs: Int64

    public init(streamId: UInt64, deleteRetentionMs: Int64, minCleanableDirtyRatio: Double = 0.5, minCompactionLagMs: Int64 = 0,
                maxCompactionLagMs: Int64 = .max) {
        self.streamId = streamId
        self.deleteRetentionMs = deleteRetentionMs
        self.minCleanableDirtyRatio = minCleanableDirtyRatio
        self.minCompactionLagMs = minCompactionLagMs
        self.maxCompactionLagMs = maxCompactionLagMs
    }
}

public struct LogCleanerConfig: Sendable {
    public var blockBytes: Int
    public var partBytes: Int
    public var parallelism: Int
    /// Throttle for bytes downloaded + uploaded; 0: unlimited.
    public var bandwidthBytesPerSecond: Int64
    /// A stream whose objects add up to more than this is not cleaned (logged): a clean holds
    /// them in memory (`log.cleaner.stream.max.bytes`).
    public var streamBytesMax: Int64

    public init(blockBytes: Int = 512 << 10, partBytes: Int = 16 << 20, parallelism: Int = 4,
                bandwidthBytesPerSecond: Int64 = 0, streamBytesMax: Int64 = 128 << 20) {
        precondition(blockBytes > 0 && partBytes > 0 && parallelism > 0 && streamBytesMax > 0)
        self.blockBytes = blockBytes
        self.partBytes = partBytes
        self.parallelism = parallelism
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        self.streamBytesMax = streamBytesMax
    }
}

/// What one clean of a stream did.
public struct StreamCleanResult: Sendable, Equatable {
    public var streamId: UInt64
    public var objectsBefore = 0
    public var objectsAfter = 0
    public var recordsBefore = 0
    public var recordsAfter = 0
    public var batchesDropped = 0
    public var tombstonesDropped = 0
    /// Compressed batches cleaned inside (decoded, filtered, re-encoded with their codec).
    public var compressedBatchesDecoded = 0
    /// Compressed batches kept whole: past the decode budget (`streamBytesMax` of decoded
    /// records per clean) or not decodable.
    public var compressedBatchesKept = 0
    public var bytesRead = 0
    public var bytesWritten = 0
}

public final class LogCleaner: @unchecked Sendable {
    let store: ObjectStore
    let catalog: ObjectCatalog
    let clusterId: String
    let config: LogCleanerConfig
    let logger: Logger
    let throttle: TokenBucket

    /// Per stream: where the last clean ended and how many records it left. The dirty ratio
    /// is (records since then) / (those + records left); nothing here survives a restart, so
    /// the first pass after one cleans every compacted stream once. Records, not bytes: the
    /// metadata has no per-range byte sizes (an SSO's size is shared by many streams).
    /// `tombstoneDueMs`: when the oldest tombstone kept will have expired; from then on the
    /// stream is cleaned whatever its ratio (as Kafka does since KIP-534), or a quiet topic
    /// would keep its tombstones for good.
    private var cleaned: [UInt64: (endOffset: Int64, records: Int, tombstoneDueMs: Int64?)] = [:]
    /// Streams already reported once (too big, compressed batches), so the log stays quiet.
    private var reported: Set<String> = []

    public init(store: ObjectStore, catalog: ObjectCatalog, clusterId: String, config: LogCleanerConfig, logger: Logger) {
        self.store = store
        self.catalog = catalog
        self.clusterId = clusterId
        self.config = config
        self.logger = logger
        self.throttle = TokenBucket(bytesPerSecond: config.bandwidthBytesPerSecond)
    }

    /// Cleans each stream that is dirty enough, one commit per stream. A failure is logged and
    /// leaves that stream for the next pass; the others go on. Not reentrant: one pass at a time.
    /// `beforeEach` runs before each stream (the uploader catches up with the metadata log
    /// there, so the next stream sees the objects the previous commit made).
    public func cleanDirtyStreams(_ streams: [CleanableStream], nowMs: Int64,
                                  beforeEach: () async throws -> Void = {}) async -> [StreamCleanResult] {
        var out: [StreamCleanResult] = []
        for s in streams {
            do {
                try await beforeEach()
                if let r = try await clean(s, nowMs: nowMs) { out.append(r) }
            } catch {
                logger.warning("log cleaning failed; the next pass retries", metadata: ["stream": "\(s.streamId)", "error": "\(error)"])
            }
        }
        return out
    }

    /// Cleans one stream if it is dirty enough (or `force`); nil when there was nothing to do.
    public func clean(_ s: CleanableStream, nowMs: Int64, force: Bool = false) async throws -> StreamCleanResult? {
        guard let startOffset = await catalog.streamStartOffset(s.streamId) else {
            cleaned[s.streamId] = nil
            return nil
        }
        let live = try await catalog.liveObjects()
        var holding: [(object: CatalogObject, range: StreamRange)] = []
        for o in live {
            if let r = o.ranges.first(where: { $0.streamId == s.streamId }), r.endOffset > startOffset { holding.append((o, r)) }
        }
        holding.sort { $0.range.startOffset < $1.range.startOffset }
        guard let first = holding.first, let last = holding.last else { return nil }
        for (a, b) in zip(holding, holding.dropFirst()) where a.range.endOffset != b.range.startOffset {
            throw CompactionError.inconsistent("stream \(s.streamId): object ranges \(a.range) and \(b.range) are not contiguous")
        }
        let rangeStart = max(first.range.startOffset, startOffset)
        let rangeEnd = last.range.endOffset
        // The oldest commit among the objects holding records past the last clean.
        let dirtyFrom = max(cleaned[s.streamId]?.endOffset ?? rangeStart, rangeStart)
        let dirtySinceMs = holding.filter { $0.range.endOffset > dirtyFrom }.map(\.object.committedAtMs).min()
        if !force && !isDirty(s, from: rangeStart, to: rangeEnd, dirtySinceMs: dirtySinceMs, nowMs: nowMs) { return nil }
        let totalBytes = holding.reduce(Int64(0)) { $0 + $1.object.size }
        guard totalBytes <= config.streamBytesMax else {
            report("big-\(s.streamId)", "stream too big to clean: skipped", [
                "stream": "\(s.streamId)", "bytes": "\(totalBytes)", "log.cleaner.stream.max.bytes": "\(config.streamBytesMax)"])
            return nil
        }

        var result = StreamCleanResult(streamId: s.streamId)
        var sources: [(object: CatalogObject, bytes: [UInt8], index: ObjectIndex)] = []
        var batches: [CleanerBatch] = []
        var decodeBudgetBytes = Int(config.streamBytesMax)
        for (o, _) in holding {
            try await throttle.acquire(Int(o.size))
            let bytes = try await store.get(o.key, range: nil)
            result.bytesRead += bytes.count
            guard bytes.count == Int(o.size) else {
                throw CompactionError.inconsistent("\(o.key) is \(bytes.count) bytes, the catalog says \(o.size)")
            }
            let index = try ObjectIndex.parse(object: bytes)
            for r in o.ranges where !index.ranges.contains(where: {
                $0.streamId == r.streamId && $0.startOffset <= r.startOffset && r.endOffset <= $0.endOffset
            }) {
                throw CompactionError.inconsistent("\(o.key) holds \(index.ranges), the catalog says \(o.ranges)")
            }
            for e in index.blocks(streamId: s.streamId, from: startOffset) {
                let block = bytes[Int(e.position)..<(Int(e.position) + e.size)]
                let walked = try block.withUnsafeBytes { try RecordBatches.walk(block: $0, entry: e) }
                for w in walked {
                    let b = try CleanerBatches.parse(block[(block.startIndex + w.range.lowerBound)..<(block.startIndex + w.range.upperBound)],
                                                     decodeBytesMax: decodeBudgetBytes)
                    if b.isCompressed && b.records != nil { decodeBudgetBytes -= b.recordBytes.count }
                    if b.lastOffset >= startOffset { batches.append(b) }
                }
            }
            sources.append((o, bytes, index))
        }
        guard !batches.isEmpty else { return nil }

        let kept = filter(batches, s, nowMs: nowMs, result: &result)
        var built: [BuiltObject] = []
        built.append(buildStreamObject(s.streamId, kept.batches, start: min(rangeStart, kept.batches[0].baseOffset), end: rangeEnd))
        for (o, bytes, index) in sources where o.kind == .streamSet {
            if let carried = try await carryOtherStreams(of: o, bytes: bytes, index: index, except: s.streamId) { built.append(carried) }
        }

        let newObjects = try await upload(built, result: &result)
        try await catalog.commitCompaction(newObjects: newObjects, compactedObjectIds: holding.map(\.object.objectId))
        cleaned[s.streamId] = (kept.cleanableEnd ?? rangeEnd, result.recordsAfter, kept.tombstoneDueMs)
        result.objectsBefore = holding.count
        result.objectsAfter = newObjects.count
        logger.info("cleaned a compacted stream", metadata: [
            "stream": "\(s.streamId)", "records": "\(result.recordsBefore) -> \(result.recordsAfter)",
            "tombstonesDropped": "\(result.tombstonesDropped)", "objects": "\(result.objectsBefore) -> \(result.objectsAfter)",
            "bytesRead": "\(result.bytesRead)", "bytesWritten": "\(result.bytesWritten)"])
        return result
    }

    /// Enough records since the last clean: dirty / (dirty + what the last clean left) >= the
    /// ratio; or dirty records committed `max.compaction.lag.ms` ago or earlier (KIP-354).
    private func isDirty(_ s: CleanableStream, from start: Int64, to end: Int64, dirtySinceMs: Int64?, nowMs: Int64) -> Bool {
        guard let last = cleaned[s.streamId] else { return true }
        if let due = last.tombstoneDueMs, nowMs >= due { return true }
        let dirty = end - max(last.endOffset, start)
        guard dirty > 0 else { return false }
        if Double(dirty) / Double(dirty + Int64(last.records)) >= s.minCleanableDirtyRatio { return true }
        guard let since = dirtySinceMs, s.maxCompactionLagMs != .max else { return false }
        return nowMs - since >= s.maxCompactionLagMs
    }

    /// Kafka's two passes over the cleanable part: the batches before the first one younger
    /// than `min.compaction.lag.ms` (everything after it stays as it is).
    ///
    /// 1. key → offset of its latest record;
    /// 2. a record stays when it is its key's latest and is not an expired tombstone. A
    ///    tombstone expires when its batch's max timestamp is `delete.retention.ms` old: that
    ///    needs no state (Kafka 3.1+ stamps a delete horizon into the batch on the first
    ///    clean, which would mean re-encoding every record's timestamp delta). Records without
    ///    a key are dropped (as Kafka's cleaner does). The last record of the stream's last
    ///    batch always stays, so no gap ever ends the committed data (a fetch there would find nothing).
    ///    Control batches stay whole, and so do compressed batches that were not decoded.
    private func filter(_ batches: [CleanerBatch], _ s: CleanableStream, nowMs: Int64,
                        result: inout StreamCleanResult)
        -> (batches: [(baseOffset: Int64, bytes: ArraySlice<UInt8>)], cleanableEnd: Int64?, tombstoneDueMs: Int64?) {
        let cleanable = batches.firstIndex { $0.maxTimestamp > nowMs - s.minCompactionLagMs } ?? batches.count
        var latest: [ArraySlice<UInt8>: Int64] = [:]
        for b in batches[..<cleanable] {
            for r in b.records ?? [] { if let k = r.key { latest[k] = r.offset } }
        }
        var out: [(baseOffset: Int64, bytes: ArraySlice<UInt8>)] = []
        var tombstoneDueMs: Int64?
        for (i, b) in batches.enumerated() {
            result.recordsBefore += b.recordCount
            guard i < cleanable, let records = b.records else {
                if b.isCompressed && i < cleanable {
                    result.compressedBatchesKept += 1
                    report("compressed-\(s.streamId)", "compressed batches kept whole: past the cleaner's decode budget or not decodable",
                           ["stream": "\(s.streamId)", "offset": "\(b.baseOffset)", "codec": "\(b.codec)",
                            "log.cleaner.stream.max.bytes": "\(config.streamBytesMax)"])
                }
                out.append((b.baseOffset, b.bytes))
                result.recordsAfter += b.recordCount
                continue
            }
            let tombstonesExpire = b.maxTimestamp <= nowMs - s.deleteRetentionMs
            let keep = records.filter { r in
                if i == batches.count - 1 && r.offset == records.last!.offset { return true }
                guard let k = r.key, latest[k] == r.offset else { return false }
                if r.isTombstone && tombstonesExpire {
                    result.tombstonesDropped += 1
                    return false
                }
                if r.isTombstone {
                    // Saturating: producer timestamps and delete.retention.ms are any Int64.
                    let (sum, overflow) = b.maxTimestamp.addingReportingOverflow(s.deleteRetentionMs)
                    let due = overflow ? (s.deleteRetentionMs > 0 ? Int64.max : Int64.min) : sum
                    tombstoneDueMs = min(tombstoneDueMs ?? due, due)
                }
                return true
            }
            result.recordsAfter += keep.count
            if b.isCompressed { result.compressedBatchesDecoded += 1 }
            if keep.isEmpty {
                result.batchesDropped += 1
            } else if keep.count == records.count {
                out.append((b.baseOffset, b.bytes))
            } else {
                out.append((b.baseOffset, CleanerBatches.rewrite(b, keeping: keep)[...]))
            }
        }
        return (out, cleanable < batches.count ? batches[cleanable].baseOffset : nil, tombstoneDueMs)
    }

    /// One stream object holding `batches` and claiming exactly `[start, end)`: frames of about
    /// a block each, every frame running up to the next one's first batch (the gaps belong to
    /// the frame before them), the last one up to `end`.
    private func buildStreamObject(_ streamId: UInt64, _ batches: [(baseOffset: Int64, bytes: ArraySlice<UInt8>)],
                                   start: Int64, end: Int64) -> BuiltObject {
        precondition(!batches.isEmpty && start <= batches[0].baseOffset && batches.last!.baseOffset < end)
        let builder = StreamSetObjectBuilder(blockBytesTarget: config.blockBytes)
        var frameStart = start
        var i = 0
        while i < batches.count {
            var j = i + 1
            var size = batches[i].bytes.count
            while j < batches.count && size + batches[j].bytes.count <= config.blockBytes {
                size += batches[j].bytes.count
                j += 1
            }
            let frameEnd = j < batches.count ? batches[j].baseOffset : end
            var payload: [UInt8] = []
            payload.reserveCapacity(size)
            for b in batches[i..<j] { payload += b.bytes }
            payload.withUnsafeBytes { builder.add(streamId: streamId, baseOffset: frameStart, endOffset: frameEnd, payload: $0) }
            frameStart = frameEnd
            i = j
        }
        let (set, streams) = builder.finish(splitBytes: 0)
        precondition(set == nil && streams.count == 1)
        return streams[0]
    }

    /// A stream set object with the other live streams' blocks of `o`, byte for byte, so that
    /// replacing `o` loses nobody's data; nil when `o` holds no other live stream.
    private func carryOtherStreams(of o: CatalogObject, bytes: [UInt8], index: ObjectIndex,
                                   except streamId: UInt64) async throws -> BuiltObject? {
        let builder = StreamSetObjectBuilder(blockBytesTarget: config.blockBytes)
        for r in o.ranges where r.streamId != streamId {
            guard let start = await catalog.streamStartOffset(r.streamId), r.endOffset > start else { continue }  // dead
            for e in index.blocks(streamId: r.streamId, from: max(r.startOffset, start)) where e.startOffset < r.endOffset {
                bytes[Int(e.position)..<(Int(e.position) + e.size)].withUnsafeBytes {
                    builder.add(streamId: r.streamId, baseOffset: e.startOffset, endOffset: e.endOffset, payload: $0)
                }
            }
        }
        guard !builder.isEmpty else { return nil }
        return builder.finish(splitBytes: Int.max).streamSet
    }

    /// Uploads `built` under freshly prepared ids; on a failure deletes what it uploaded.
    private func upload(_ built: [BuiltObject], result: inout StreamCleanResult) async throws -> [NewObject] {
        let firstId = try await catalog.prepareObjects(count: built.count)
        var uploaded: [String] = []
        var out: [NewObject] = []
        do {
            for (i, b) in built.enumerated() {
                let id = firstId + UInt64(i)
                let key = ObjectKeys.object(clusterId: clusterId, objectId: id)
                try await throttle.acquire(b.bytes.count)
                uploaded.append(key)
                let stats = try await ObjectUploader.upload(b.bytes, key: key, store: store, partBytes: config.partBytes,
                                                            parallelism: config.parallelism)
                result.bytesWritten += stats.bytes
                out.append(NewObject(objectId: id, size: Int64(b.bytes.count), kind: b.kind, ranges: b.ranges, stats: b.stats))
            }
        } catch {
            if !uploaded.isEmpty { _ = try? await store.deleteObjects(uploaded) }
            throw error
        }
        return out
    }

    private func report(_ once: String, _ message: Logger.Message, _ metadata: Logger.Metadata) {
        guard reported.insert(once).inserted else { return }
        logger.warning(message, metadata: metadata)
    }
}
