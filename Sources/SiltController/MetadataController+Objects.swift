import SiltMetadata
import SiltStreams
import Foundation

/// The object lifecycle: uploaders open (fencing older incarnations), prepare object ids,
/// upload, and commit; trims, compactions and topic deletions make objects dead; the
/// janitor deletes dead objects' keys and destroys them.
///
/// ```
///  prepareObjects ──▶ prepared ──commitObjects──▶ committed ──trim / compaction / topic deletion──▶ awaiting deletion
///                        │ (expired)                                                                   │
///                        └───────────────────────── janitor: delete key, destroyObjects ◀──────────────┘
/// ```
/// Every refusal writes nothing.
extension MetadataController {
    /// Ids per `prepareObjects` call.
    public static let prepareCountMax: Int32 = 10_000
    /// The longest a prepared id may stay uncommitted.
    public static let prepareTtlMsMax: Int64 = 7 * 24 * 3600 * 1000
    /// Ids per `destroyObjects` record.
    static let destroyIdsPerRecordMax = 10_000

    /// One object of a commit.
    public struct CommitObject: Equatable, Sendable {
        public var objectId: UInt64
        public var size: Int64
        public var kind: ObjectKind
        public var ranges: [CommitRange]
        public init(objectId: UInt64, size: Int64, kind: ObjectKind, ranges: [CommitRange]) {
            self.objectId = objectId; self.size = size; self.kind = kind; self.ranges = ranges
        }
    }

    /// One stream range of a committed object, with the stream epoch it was written in.
    public struct CommitRange: Equatable, Sendable {
        public var streamId: UInt64
        public var streamEpoch: Int64
        public var startOffset: Int64
        /// Exclusive.
        public var endOffset: Int64
        /// Bytes of the range and its newest timestamp (retention); nil if the uploader did not say.
        public var stats: RangeStats?
        public init(streamId: UInt64, streamEpoch: Int64, startOffset: Int64, endOffset: Int64, stats: RangeStats? = nil) {
            self.streamId = streamId; self.streamEpoch = streamEpoch; self.startOffset = startOffset; self.endOffset = endOffset
            self.stats = stats
        }
    }

    /// What the janitor may delete now.
    public struct DestroyCandidates: Equatable, Sendable {
        /// Dead committed objects.
        public var awaitingDeletion: [UInt64]
        /// Prepared ids past their expiry (now claimed: a commit of them is refused from here on).
        public var expiredPrepared: [UInt64]
    }

    public static func wallClockMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// An uploader of `nodeId` starts: bumps the node epoch (fencing older incarnations) and
    /// returns it with the state of every stream, in stream id order.
    public func openUploader(nodeId: Int32) throws -> (nodeEpoch: Int64, streams: [(streamId: UInt64, state: StreamState)]) {
        try mutate {
            let epoch = (_image.nodeEpochs[nodeId] ?? 0) + 1
            try commit([.nodeEpoch(nodeId: nodeId, epoch: epoch)])
            logger.info("uploader opened", metadata: ["node": "\(nodeId)", "epoch": "\(epoch)"])
            let streams = _image.streamStates.keys.sorted().map { (streamId: $0, state: _image.streamStates[$0]!) }
            return (epoch, streams)
        }
    }

    /// Hands `count` consecutive object ids to the uploader of `nodeId` for `ttlMs`; returns the first.
    public func prepareObjects(nodeId: Int32, nodeEpoch: Int64, count: Int32, ttlMs: Int64,
                               nowMs: Int64 = MetadataController.wallClockMs()) throws -> UInt64 {
        guard count >= 1 && count <= MetadataController.prepareCountMax else {
            throw ControllerError.invalidRequest("Count must be between 1 and \(MetadataController.prepareCountMax), got \(count).")
        }
        guard ttlMs >= 1 && ttlMs <= MetadataController.prepareTtlMsMax else {
            throw ControllerError.invalidRequest("TtlMs must be between 1 and \(MetadataController.prepareTtlMsMax), got \(ttlMs).")
        }
        return try mutate {
            try checkNodeEpoch(nodeId: nodeId, nodeEpoch: nodeEpoch)
            let first = _image.nextObjectId
            try commit([.prepareObjects(firstId: first, count: count, nodeId: nodeId, expiresAtMs: nowMs + ttlMs)])
            return first
        }
    }

    /// Commits uploaded objects, replacing `compactedObjectIds` (a compaction) or extending
    /// the streams at their committed ends (a fresh upload, no compacted ids), in one record.
    public func commitObjects(nodeId: Int32, nodeEpoch: Int64, objects: [CommitObject], compactedObjectIds: [UInt64],
                              nowMs: Int64 = MetadataController.wallClockMs()) throws {
        try mutate {
            try checkNodeEpoch(nodeId: nodeId, nodeEpoch: nodeEpoch)
            let image = _image
            guard !objects.isEmpty else { throw ControllerError.invalidRequest("The commit has no objects.") }
            let ids = objects.map(\.objectId) + compactedObjectIds
            guard Set(ids).count == ids.count else {
                throw ControllerError.invalidRequest("Object ids repeat in the commit (new and compacted ids must all differ).")
            }
            for o in objects {
                guard let p = image.preparedObjects[o.objectId], !janitorClaims.contains(o.objectId) else {
                    throw ControllerError.invalidRequest("Object \(o.objectId) is not prepared.")
                }
                guard p.expiresAtMs > nowMs else {
                    throw ControllerError.invalidRequest("Object \(o.objectId)'s preparation expired at \(p.expiresAtMs) (now \(nowMs)).")
                }
                guard p.nodeId == nodeId else {
                    throw ControllerError.invalidRequest("Object \(o.objectId) was prepared by node \(p.nodeId), not node \(nodeId).")
                }
                guard o.size >= 0 else { throw ControllerError.invalidRequest("Object \(o.objectId) has a negative size.") }
                guard !o.ranges.isEmpty else { throw ControllerError.invalidRequest("Object \(o.objectId) has no ranges.") }
                for r in o.ranges where (r.stats?.bytes ?? 0) > o.size {
                    throw ControllerError.invalidRequest("Object \(o.objectId): range of stream \(r.streamId) claims more bytes than the object has.")
                }
                for r in o.ranges where !(r.startOffset >= 0 && r.startOffset < r.endOffset) {
                    throw ControllerError.invalidRequest(
                        "Object \(o.objectId): range \(r.startOffset)..<\(r.endOffset) of stream \(r.streamId) is empty or inverted.")
                }
                if o.kind == .stream && Set(o.ranges.map(\.streamId)).count != 1 {
                    throw ControllerError.invalidRequest("Object \(o.objectId) is a stream object but holds several streams.")
                }
            }
            if compactedObjectIds.isEmpty {
                try validateFreshUpload(objects, image, nodeId: nodeId)
            } else {
                try validateCompaction(objects, compactedObjectIds, image)
            }
            let record = MetadataRecord.commitObjects(.init(
                objects: objects.map { o in
                    MetadataRecord.NewObject(objectId: o.objectId, size: o.size, kind: o.kind, ranges: o.ranges.map {
                        StreamRange(streamId: $0.streamId, startOffset: $0.startOffset, endOffset: $0.endOffset)
                    }, rangeStats: o.ranges.allSatisfy { $0.stats != nil } ? o.ranges.map { $0.stats! } : nil)
                },
                compactedObjectIds: compactedObjectIds, committedAtMs: nowMs))
            let bytes = MetadataRecordSerde.encode(record).count
            guard bytes <= MetadataController.recordBytesMax else {
                throw ControllerError.invalidRequest(
                    "The commit is \(bytes) bytes as a metadata record, more than \(MetadataController.recordBytesMax); commit fewer objects at once.")
            }
            try commit([record])
        }
    }

    /// Moves a stream's start offset forward (never back; capped at the committed end offset)
    /// and returns the start offset in force.
    @discardableResult
    public func trimStream(streamId: UInt64, startOffset: Int64) throws -> Int64 {
        try mutate {
            guard let state = _image.streamStates[streamId] else { throw ControllerError.unknownStream(streamId) }
            let target = min(startOffset, state.endOffset)
            guard target > state.startOffset else { return state.startOffset }
            try commit([.trimStream(streamId: streamId, newStartOffset: target)])
            return target
        }
    }

    /// What the janitor may delete: dead objects, and prepared ids past their expiry, which
    /// this call claims (a commit of them is refused from now on, even if the clock steps back).
    /// Only the active controller names any, and only from the committed image: a record that
    /// made an object dead but could still be lost with a leader must not get its key deleted.
    public func destroyCandidates(nowMs: Int64 = MetadataController.wallClockMs()) -> DestroyCandidates {
        lock.withLock {
            guard activeEpoch != nil else { return DestroyCandidates(awaitingDeletion: [], expiredPrepared: []) }
            let expired = committed.preparedObjects.filter { $0.value.expiresAtMs <= nowMs || janitorClaims.contains($0.key) }
                .keys.sorted()
            janitorClaims.formUnion(expired)
            return DestroyCandidates(awaitingDeletion: committed.objectsAwaitingDeletion.sorted(), expiredPrepared: expired)
        }
    }

    /// Forgets objects whose keys the janitor deleted: dead objects, and prepared ids it
    /// claimed. Ids already gone are skipped; a live or unclaimed prepared id is refused.
    public func destroyObjects(ids: [UInt64]) throws {
        try mutate {
            var destroy: [UInt64] = []
            for id in Set(ids).sorted() {
                if _image.objectsAwaitingDeletion.contains(id) {
                    destroy.append(id)
                } else if _image.preparedObjects[id] != nil {
                    guard janitorClaims.contains(id) else {
                        throw ControllerError.invalidRequest("Object \(id) is prepared and not expired; it cannot be destroyed.")
                    }
                    destroy.append(id)
                } else if _image.objects[id] != nil {
                    throw ControllerError.invalidRequest("Object \(id) is committed and live; it cannot be destroyed.")
                }
            }
            guard !destroy.isEmpty else { return }
            var records: [MetadataRecord] = []
            for start in stride(from: 0, to: destroy.count, by: MetadataController.destroyIdsPerRecordMax) {
                records.append(.destroyObjects(objectIds: Array(destroy[start..<min(destroy.count, start + MetadataController.destroyIdsPerRecordMax)])))
            }
            try commit(records)
            janitorClaims.subtract(destroy)
            logger.debug("objects destroyed", metadata: ["count": "\(destroy.count)"])
        }
    }

    // MARK: Validation (caller holds the lock)

    private func checkNodeEpoch(nodeId: Int32, nodeEpoch: Int64) throws {
        guard let current = _image.nodeEpochs[nodeId] else {
            throw ControllerError.staleNodeEpoch("Node \(nodeId) has not opened an uploader (OpenUploader first).")
        }
        guard current == nodeEpoch else {
            throw ControllerError.staleNodeEpoch("Node \(nodeId) epoch \(nodeEpoch) is stale; the current epoch is \(current).")
        }
    }

    /// Fresh ranges extend each stream exactly at its committed end, in the stream's epoch,
    /// from the node the stream is assigned to (when it has one: streams of partitions created
    /// before any broker registered have none until one does).
    private func validateFreshUpload(_ objects: [CommitObject], _ image: MetadataImage, nodeId: Int32) throws {
        var byStream: [UInt64: [CommitRange]] = [:]
        for o in objects { for r in o.ranges { byStream[r.streamId, default: []].append(r) } }
        for streamId in byStream.keys.sorted() {
            guard let state = image.streamStates[streamId] else { continue }   // deleted meanwhile: dead data
            let ranges = byStream[streamId]!.sorted { $0.startOffset < $1.startOffset }
            if let owner = image.partitions[streamId]?.replicas.first, owner != nodeId {
                throw ControllerError.fencedStreamEpoch(
                    "Stream \(streamId) is assigned to broker \(owner); node \(nodeId) may not commit to it.")
            }
            for r in ranges where r.streamEpoch != state.epoch {
                throw ControllerError.fencedStreamEpoch(
                    "Stream \(streamId) is in epoch \(state.epoch), the commit carries epoch \(r.streamEpoch).")
            }
            var expected = state.endOffset
            for r in ranges {
                guard r.startOffset == expected else {
                    throw ControllerError.offsetOutOfRange(
                        "Stream \(streamId): expected a range starting at offset \(expected), got \(r.startOffset)..<\(r.endOffset).")
                }
                expected = r.endOffset
            }
        }
    }

    /// A compaction's new ranges cover, per stream, exactly the live data of the objects they replace.
    private func validateCompaction(_ objects: [CommitObject], _ compacted: [UInt64], _ image: MetadataImage) throws {
        var want: [UInt64: [(Int64, Int64)]] = [:]
        for id in compacted {
            guard let old = image.objects[id] else {
                throw ControllerError.invalidRequest("Compacted object \(id) is not committed and live.")
            }
            for r in old.ranges {
                guard let state = image.streamStates[r.streamId], r.endOffset > state.startOffset else { continue }
                want[r.streamId, default: []].append((max(r.startOffset, state.startOffset), r.endOffset))
            }
        }
        var got: [UInt64: [(Int64, Int64)]] = [:]
        for o in objects {
            for r in o.ranges {
                // Data of deleted streams, and data below the start offset, is dead: accepted, ignored.
                guard let state = image.streamStates[r.streamId], r.endOffset > state.startOffset else { continue }
                got[r.streamId, default: []].append((max(r.startOffset, state.startOffset), r.endOffset))
            }
        }
        func merged(_ intervals: [(Int64, Int64)], overlapsAllowed: Bool, streamId: UInt64) throws -> [(Int64, Int64)] {
            var out: [(Int64, Int64)] = []
            for (s, e) in intervals.sorted(by: { $0.0 < $1.0 }) {
                if let last = out.last, s <= last.1 {
                    if s < last.1 && !overlapsAllowed {
                        throw ControllerError.invalidRequest("Stream \(streamId): the new objects overlap at offset \(s).")
                    }
                    out[out.count - 1].1 = max(last.1, e)
                } else {
                    out.append((s, e))
                }
            }
            return out
        }
        for streamId in Set(want.keys).union(got.keys).sorted() {
            let w = try merged(want[streamId] ?? [], overlapsAllowed: true, streamId: streamId)
            let g = try merged(got[streamId] ?? [], overlapsAllowed: false, streamId: streamId)
            guard w.elementsEqual(g, by: { $0 == $1 }) else {
                func show(_ l: [(Int64, Int64)]) -> String { l.isEmpty ? "nothing" : l.map { "\($0.0)..<\($0.1)" }.joined(separator: ", ") }
                throw ControllerError.invalidRequest(
                    "Stream \(streamId): the compacted objects hold live data \(show(w)), the new objects hold \(show(g)).")
            }
        }
    }
}
