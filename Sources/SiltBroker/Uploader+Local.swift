import Foundation
import SiltController
import SiltStreams

/// `UploaderControl` straight on a `MetadataController` in this process (unit tests, and a
/// node whose controller and uploader share a process). The same validation as the wire.
public final class LocalUploaderControl: UploaderControl, @unchecked Sendable {
    let controller: MetadataController
    let nodeId: Int32
    private let lock = NSLock()
    private var epoch: Int64 = -1

    public init(controller: MetadataController, nodeId: Int32) {
        self.controller = controller
        self.nodeId = nodeId
    }

    public func open() async throws -> [UInt64: UploaderStreamState] {
        let (nodeEpoch, streams) = try mapped { try controller.openUploader(nodeId: nodeId) }
        lock.withLock { epoch = nodeEpoch }
        var out: [UInt64: UploaderStreamState] = [:]
        for s in streams {
            out[s.streamId] = UploaderStreamState(epoch: s.state.epoch, startOffset: s.state.startOffset, endOffset: s.state.endOffset)
        }
        return out
    }

    public func prepare(count: Int, ttlMs: Int64) async throws -> UInt64 {
        let e = lock.withLock { epoch }
        return try mapped { try controller.prepareObjects(nodeId: nodeId, nodeEpoch: e, count: Int32(count), ttlMs: ttlMs) }
    }

    public func commit(objects: [NewObject], epochs: [UInt64: Int64], compacted: [UInt64]) async throws {
        let e = lock.withLock { epoch }
        let commits = objects.map { o in
            MetadataController.CommitObject(
                objectId: o.objectId, size: o.size, kind: o.kind,
                ranges: o.ranges.enumerated().map { i, r in
                    MetadataController.CommitRange(streamId: r.streamId, streamEpoch: epochs[r.streamId] ?? 0,
                                                   startOffset: r.startOffset, endOffset: r.endOffset, stats: o.stats?[i])
                })
        }
        try mapped { try controller.commitObjects(nodeId: nodeId, nodeEpoch: e, objects: commits, compactedObjectIds: compacted) }
    }

    private func mapped<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as ControllerError {
            throw UploaderCommitError.from(code: e.kafkaErrorCode, message: "\(e)") ?? e
        }
    }
}
