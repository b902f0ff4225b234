import Foundation
import SiltStreams

// `ObjectKind` and `StreamRange` are SiltStreams' (the object format's) own types.

/// A stream as the controller sees it.
///
/// ```
///   dead            live data, in committed objects       (in the WAL, not yet committed)
///   ──────────|─────────────────────────────────────────|──────────────▶ offset
///         startOffset                               endOffset
/// ```
public struct StreamState: Codable, Equatable, Sendable {
    /// Bumped when a stream changes hands (fences commits from the old owner).
    public var epoch: Int64
    /// Data below this is dead (trimmed).
    public var startOffset: Int64
    /// The committed end (exclusive): the next fresh upload of the stream starts here.
    public var endOffset: Int64
    public init(epoch: Int64, startOffset: Int64, endOffset: Int64) {
        self.epoch = epoch; self.startOffset = startOffset; self.endOffset = endOffset
    }
}

/// One piece of a stream's data: offsets `startOffset ..< endOffset` are in object `objectId`.
public struct ObjectRangeRef: Equatable, Sendable {
    public var startOffset: Int64
    public var endOffset: Int64
    public var objectId: UInt64
    public init(startOffset: Int64, endOffset: Int64, objectId: UInt64) {
        self.startOffset = startOffset; self.endOffset = endOffset; self.objectId = objectId
    }
}

/// A committed object. Its key is `ObjectKeys.object(clusterId:objectId:)`.
public struct CommittedObject: Codable, Equatable, Sendable {
    public var objectId: UInt64
    public var size: Int64
    public var kind: ObjectKind
    /// Everything the object holds, dead ranges included.
    public var ranges: [StreamRange]
    public var committedAtMs: Int64
    /// Per range (same order as `ranges`): bytes and newest timestamp; nil for objects
    /// committed before Silt kept them.
    public var rangeStats: [RangeStats]?
    public init(objectId: UInt64, size: Int64, kind: ObjectKind, ranges: [StreamRange], committedAtMs: Int64,
                rangeStats: [RangeStats]? = nil) {
        self.objectId = objectId; self.size = size; self.kind = kind; self.ranges = ranges
        self.committedAtMs = committedAtMs; self.rangeStats = rangeStats
    }

    /// What retention counts for the object's range of `streamId`: its recorded stats, or
    /// for an object without them an estimate (its size shared evenly among its ranges, and
    /// its commit time, which is never older than its records: retention only comes late).
    public func stats(streamId: UInt64) -> RangeStats? {
        guard let i = ranges.firstIndex(where: { $0.streamId == streamId }) else { return nil }
        if let s = rangeStats?[i] {
            return s.maxTimestampMs == RangeStats.unknownTimestampMs
                ? RangeStats(bytes: s.bytes, maxTimestampMs: committedAtMs) : s
        }
        return RangeStats(bytes: size / Int64(ranges.count), maxTimestampMs: committedAtMs)
    }
}

/// An object id handed to an uploader and not yet committed.
public struct PreparedObject: Codable, Equatable, Sendable {
    public var nodeId: Int32
    /// After this (wall clock, ms) a commit of the id is refused and the janitor deletes its key.
    public var expiresAtMs: Int64
    public init(nodeId: Int32, expiresAtMs: Int64) { self.nodeId = nodeId; self.expiresAtMs = expiresAtMs }
}

extension MetadataImage {
    /// Ids per `deadObjects` record in a snapshot (keeps each record far below the record size limit).
    static let snapshotIdsPerRecordMax = 10_000

    /// The live object ranges of a stream that end after `offset`, in offset order (empty for
    /// an unknown stream). The first may begin before `offset` (read from inside it).
    public func objectRanges(streamId: UInt64, from offset: Int64) -> [ObjectRangeRef] {
        guard let refs = streamObjects[streamId] else { return [] }
        return Array(refs[firstRef(refs, endingAfter: offset)...])
    }

    /// A committed object that still holds live data.
    public func object(id: UInt64) -> CommittedObject? { objects[id] }

    /// Every committed object that still holds live data, in id order (by id: `objects`).
    public var committedObjects: [CommittedObject] { objects.keys.sorted().map { objects[$0]! } }

    /// Index of the first ref whose endOffset > offset (refs sorted and contiguous).
    private func firstRef(_ refs: [ObjectRangeRef], endingAfter offset: Int64) -> Int {
        var lo = 0, hi = refs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if refs[mid].endOffset > offset { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// Records that rebuild the object state (appended to `snapshotRecords` after the topics).
    var objectSnapshotRecords: [MetadataRecord] {
        var out: [MetadataRecord] = []
        for id in streamStates.keys.sorted() {
            let s = streamStates[id]!
            out.append(.streamState(streamId: id, epoch: s.epoch, startOffset: s.startOffset, endOffset: s.endOffset))
        }
        for id in objects.keys.sorted() { out.append(.committedObject(objects[id]!)) }
        let dead = objectsAwaitingDeletion.sorted()
        for start in stride(from: 0, to: dead.count, by: MetadataImage.snapshotIdsPerRecordMax) {
            out.append(.deadObjects(objectIds: Array(dead[start..<min(dead.count, start + MetadataImage.snapshotIdsPerRecordMax)])))
        }
        // Prepared ids as runs of consecutive ids with the same owner and expiry, in id order.
        var run: (first: UInt64, count: Int32, p: PreparedObject)?
        for id in preparedObjects.keys.sorted() {
            let p = preparedObjects[id]!
            if let r = run, r.p == p, r.first + UInt64(r.count) == id, r.count < Int32.max {
                run!.count += 1
                continue
            }
            if let r = run { out.append(.prepareObjects(firstId: r.first, count: r.count, nodeId: r.p.nodeId, expiresAtMs: r.p.expiresAtMs)) }
            run = (id, 1, p)
        }
        if let r = run { out.append(.prepareObjects(firstId: r.first, count: r.count, nodeId: r.p.nodeId, expiresAtMs: r.p.expiresAtMs)) }
        for n in nodeEpochs.keys.sorted() { out.append(.nodeEpoch(nodeId: n, epoch: nodeEpochs[n]!)) }
        out.append(.objectIdFloor(nextObjectId))
        return out
    }

    /// Applies an object-lifecycle record (the part of `apply` for them). Preconditions catch
    /// a corrupt log: the controller validated every record before writing it.
    mutating func applyObjectRecord(_ record: MetadataRecord) {
        switch record {
        case .nodeEpoch(let nodeId, let epoch):
            precondition(epoch > (nodeEpochs[nodeId] ?? 0), "metadata log: node \(nodeId) epoch \(epoch) does not increase")
            nodeEpochs[nodeId] = epoch
        case .prepareObjects(let firstId, let count, let nodeId, let expiresAtMs):
            precondition(count >= 1 && firstId >= nextObjectId, "metadata log: object ids \(firstId)+\(count) reused")
            for id in firstId..<(firstId + UInt64(count)) {
                preparedObjects[id] = PreparedObject(nodeId: nodeId, expiresAtMs: expiresAtMs)
            }
            nextObjectId = firstId + UInt64(count)
        case .commitObjects(let commit):
            applyCommit(commit)
        case .trimStream(let streamId, let newStart):
            guard var state = streamStates[streamId] else { preconditionFailure("metadata log: trim of unknown stream \(streamId)") }
            precondition(newStart >= state.startOffset && newStart <= state.endOffset,
                         "metadata log: stream \(streamId) trim to \(newStart) outside \(state.startOffset)...\(state.endOffset)")
            state.startOffset = newStart
            streamStates[streamId] = state
            let refs = streamObjects[streamId] ?? []
            let cut = refs.prefix { $0.endOffset <= newStart }
            let rest = Array(refs.dropFirst(cut.count))
            streamObjects[streamId] = rest.isEmpty ? nil : rest   // no empty lists: images compare equal
            for r in cut { retireIfDead(r.objectId) }
            checkStreamIndex(streamId)
        case .destroyObjects(let ids):
            for id in ids {
                precondition(objectsAwaitingDeletion.remove(id) != nil || preparedObjects.removeValue(forKey: id) != nil,
                             "metadata log: destroying object \(id), which is neither dead nor prepared")
            }
        case .streamState(let streamId, let epoch, let start, let end):
            precondition(streamStates[streamId] != nil && (streamObjects[streamId] ?? []).isEmpty,
                         "metadata log: stream state for unknown stream \(streamId), or after its objects")
            precondition(epoch >= 0 && start >= 0 && start <= end, "metadata log: stream \(streamId) state is inconsistent")
            streamStates[streamId] = StreamState(epoch: epoch, startOffset: start, endOffset: end)
        case .committedObject(let o):
            precondition(!isKnownObject(o.objectId), "metadata log: object \(o.objectId) restored twice")
            let live = insertLiveRanges(of: o)
            precondition(live, "metadata log: committed object \(o.objectId) holds no live data")
            objects[o.objectId] = o
        case .deadObjects(let ids):
            for id in ids {
                precondition(!isKnownObject(id), "metadata log: dead object \(id) is known already")
                objectsAwaitingDeletion.insert(id)
            }
        case .objectIdFloor(let floor):
            nextObjectId = max(nextObjectId, floor)
        case .topic, .partitionCount, .topicConfig, .removeTopic, .streamIdFloor, .brokerConfig, .groupConfig, .brokerRegistration, .brokerFence,
             .unregisterBroker, .partitionLeader, .accessControlEntry, .removeAccessControlEntry:
            preconditionFailure("not an object record: \(record)")
        case .producerIds, .userScramCredential, .removeUserScramCredential:
            preconditionFailure("not an object record: \(record)")
        }
    }

    /// The streams of a deleted topic are gone: their data is dead.
    mutating func streamsRemoved(_ ids: [UInt64]) {
        var touched = Set<UInt64>()
        for s in ids {
            precondition(streamStates.removeValue(forKey: s) != nil, "metadata log: stream \(s) had no state")
            for r in streamObjects.removeValue(forKey: s) ?? [] { touched.insert(r.objectId) }
        }
        for id in touched.sorted() { retireIfDead(id) }
    }

    private func isKnownObject(_ id: UInt64) -> Bool {
        objects[id] != nil || preparedObjects[id] != nil || objectsAwaitingDeletion.contains(id)
    }

    /// Whether a range of a stream still holds data anyone can read.
    func isLive(_ r: StreamRange) -> Bool {
        guard let s = streamStates[r.streamId] else { return false }
        return r.endOffset > s.startOffset
    }

    private mutating func applyCommit(_ commit: MetadataRecord.CommitObjectsRecord) {
        let ids = commit.objects.map(\.objectId) + commit.compactedObjectIds
        precondition(Set(ids).count == ids.count, "metadata log: object ids repeat in a commit")
        var touched = Set<UInt64>()
        for id in commit.compactedObjectIds {
            guard let old = objects.removeValue(forKey: id) else {
                preconditionFailure("metadata log: compacting object \(id), which is not committed and live")
            }
            for r in old.ranges where streamObjects[r.streamId] != nil {
                streamObjects[r.streamId]!.removeAll { $0.objectId == id }
                if streamObjects[r.streamId]!.isEmpty { streamObjects[r.streamId] = nil }
                touched.insert(r.streamId)
            }
            objectsAwaitingDeletion.insert(id)
        }
        for o in commit.objects {
            precondition(preparedObjects.removeValue(forKey: o.objectId) != nil,
                         "metadata log: committing object \(o.objectId), which is not prepared")
            precondition(!o.ranges.isEmpty && o.ranges.allSatisfy { $0.startOffset >= 0 && $0.startOffset < $0.endOffset },
                         "metadata log: object \(o.objectId) has empty or inverted ranges")
            let committed = CommittedObject(objectId: o.objectId, size: o.size, kind: o.kind, ranges: o.ranges,
                                            committedAtMs: commit.committedAtMs, rangeStats: o.rangeStats)
            if insertLiveRanges(of: committed) {
                objects[o.objectId] = committed
            } else {
                objectsAwaitingDeletion.insert(o.objectId)   // every stream it holds was deleted meanwhile
            }
            for r in o.ranges where streamStates[r.streamId] != nil {
                touched.insert(r.streamId)
                if r.endOffset > streamStates[r.streamId]!.endOffset {
                    precondition(commit.compactedObjectIds.isEmpty, "metadata log: a compaction moves stream \(r.streamId)'s end")
                    streamStates[r.streamId]!.endOffset = r.endOffset
                }
            }
        }
        for s in touched { checkStreamIndex(s) }
    }

    /// Adds the object's live ranges to the stream indexes; false if it has none.
    private mutating func insertLiveRanges(of o: CommittedObject) -> Bool {
        var live = false
        for r in o.ranges where isLive(r) {
            live = true
            let ref = ObjectRangeRef(startOffset: r.startOffset, endOffset: r.endOffset, objectId: o.objectId)
            // Fresh uploads append; compactions fill holes near the front. Mutated in place (no copy).
            if streamObjects[r.streamId] == nil { streamObjects[r.streamId] = [] }
            var i = streamObjects[r.streamId]!.count
            while i > 0 && streamObjects[r.streamId]![i - 1].startOffset > ref.startOffset { i -= 1 }
            streamObjects[r.streamId]!.insert(ref, at: i)
        }
        return live
    }

    /// Moves a committed object to awaiting deletion once none of its ranges is live.
    private mutating func retireIfDead(_ id: UInt64) {
        guard let o = objects[id], !o.ranges.contains(where: isLive) else { return }
        objects.removeValue(forKey: id)
        objectsAwaitingDeletion.insert(id)
    }

    /// A stream's index covers its live data exactly: sorted, contiguous, ending at the
    /// committed end, starting at or below the start offset.
    func checkStreamIndex(_ streamId: UInt64) {
        guard let state = streamStates[streamId] else {
            precondition((streamObjects[streamId] ?? []).isEmpty, "metadata log: objects of unknown stream \(streamId)")
            return
        }
        let refs = streamObjects[streamId] ?? []
        guard let first = refs.first else {
            precondition(state.startOffset == state.endOffset,
                         "metadata log: stream \(streamId) has live data \(state.startOffset)..<\(state.endOffset) in no object")
            return
        }
        precondition(first.startOffset <= state.startOffset && first.endOffset > state.startOffset,
                     "metadata log: stream \(streamId)'s objects begin at \(first.startOffset), start offset is \(state.startOffset)")
        for i in 1..<max(1, refs.count) {
            precondition(refs[i - 1].endOffset == refs[i].startOffset,
                         "metadata log: stream \(streamId)'s objects are not contiguous at \(refs[i].startOffset)")
        }
        precondition(refs.last!.endOffset == state.endOffset,
                     "metadata log: stream \(streamId)'s objects end at \(refs.last!.endOffset), committed end is \(state.endOffset)")
    }
}
