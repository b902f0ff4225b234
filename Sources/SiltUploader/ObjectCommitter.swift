import Foundation
import Logging
import SiltMetrics
import SiltObjectStore
import SiltRing
import SiltStreams
import SiltWAL

/// A frame as the uploader commits it: the log buffer's (`LogRingFrame`) and the WAL's
/// (`WALFrameCodec.Frame`, a node's recovered tail or a dead node's WAL in a takeover).
protocol UploadableFrame {
    var streamId: UInt64 { get }
    var streamEpoch: Int64 { get }
    var baseOffset: Int64 { get }
    var count: UInt32 { get }
    var payload: UnsafeRawBufferPointer { get }
}

extension LogRingFrame: UploadableFrame {}
extension WALFrameCodec.Frame: UploadableFrame {}

/// Which frames an upload commits, and in which epochs.
struct UploadPlan {
    let builder: StreamSetObjectBuilder
    /// The epoch each stream's frames are committed in (`liveEpochs`).
    let epochs: [UInt64: Int64]
    var added = 0
    /// Frames of an epoch their stream has left: dropped.
    var superseded = 0
    /// The streams those frames belong to.
    var supersededStreams = Set<UInt64>()

    /// The live frames of `frames` past each stream's committed end (`known`), in order.
    /// `requireKnown`: frames of streams `known` does not have are skipped (deleted topics).
    init<F: UploadableFrame>(_ frames: [F], known: [UInt64: UploaderStreamState], requireKnown: Bool, blockBytes: Int) {
        builder = StreamSetObjectBuilder(blockBytesTarget: blockBytes)
        epochs = Uploader.liveEpochs(frames.lazy.map { ($0.streamId, $0.streamEpoch) }, known: known)
        var ends: [UInt64: Int64] = [:]
        for f in frames {
            if requireKnown && known[f.streamId] == nil { continue }
            let frameEnd = f.baseOffset + Int64(f.count)
            // Committed already (by an earlier incarnation, or by the release of a stream that
            // moved away), whatever its epoch.
            if let committed = ends[f.streamId] ?? known[f.streamId]?.endOffset, frameEnd <= committed { continue }
            guard f.streamEpoch == epochs[f.streamId] else {
                superseded += 1
                supersededStreams.insert(f.streamId)
                continue
            }
            builder.add(streamId: f.streamId, baseOffset: f.baseOffset, endOffset: frameEnd, payload: f.payload)
            ends[f.streamId] = frameEnd
            added += 1
        }
    }
}

/// Uploads the objects of a plan and commits them through `control`: the uploader's rounds,
/// and a WAL takeover's (with the dead node's control).
struct ObjectCommitter {
    let control: UploaderControl
    let store: ObjectStore
    let clusterId: String
    let config: UploaderConfig
    let metrics: MetricsRegion
    let logger: Logger

    /// The committed objects (none when the plan built nothing).
    func commit(_ builder: StreamSetObjectBuilder, epochs live: [UInt64: Int64]) async throws -> (objects: [NewObject], epochs: [UInt64: Int64]) {
        let started = ContinuousClock.now
        let (streamSet, streamObjects) = builder.finish(splitBytes: config.storage.streamObjectSplitBytes)
        let built = (streamSet.map { [$0] } ?? []) + streamObjects
        guard !built.isEmpty else { return ([], [:]) }
        let firstId = try await control.prepare(count: built.count, ttlMs: config.storage.prepareTTLMs)
        var committed: [NewObject] = []
        try await withThrowingTaskGroup(of: NewObject.self) { group in
            for (i, object) in built.enumerated() {
                let id = firstId + UInt64(i)
                let key = ObjectKeys.object(clusterId: clusterId, objectId: id)
                let (store, config) = (self.store, self.config)
                group.addTask {
                    _ = try await ObjectUploader.upload(object.bytes, key: key, store: store, partBytes: config.storage.objectPartBytes,
                                                        parallelism: config.storage.uploadParallelism)
                    return NewObject(objectId: id, size: Int64(object.bytes.count), kind: object.kind, ranges: object.ranges,
                                     stats: object.stats)
                }
            }
            for try await o in group { committed.append(o) }
        }
        committed.sort { $0.objectId < $1.objectId }
        var epochs: [UInt64: Int64] = [:]
        for o in committed { for r in o.ranges { epochs[r.streamId] = live[r.streamId] ?? 0 } }
        try await control.commit(objects: committed, epochs: epochs, compacted: [])
        for o in committed {
            metrics.add(o.kind == .streamSet ? .objectsUploadedStreamSet : .objectsUploadedStream)
            metrics.add(.objectsUploadedBytes, UInt64(o.size))
        }
        let elapsed = ContinuousClock.now - started
        metrics.observe(.uploadLatency, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        logger.debug("objects committed", metadata: [
            "ids": "\(committed.map(\.objectId))", "bytes": "\(committed.reduce(0) { $0 + $1.size })",
            "ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)"])
        return (committed, epochs)
    }
}
