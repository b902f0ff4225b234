import Foundation
import SiltController
import SiltStreams
import SiltUploader

/// `UploaderControl` straight on a `MetadataController` in this process, for the broker's
/// tests that run a real uploader beside it. The same validation as the wire; the wire
/// form itself (`ControllerUploaderControl`) is tested in SiltUploaderTests.
final class LocalUploaderControl: UploaderControl, @unchecked Sendable {
    let controller: MetadataController
    let nodeId: Int32
    private let lock = NSLock()
    private var epoch: Int64 = -1

    init(controller: MetadataController, nodeId: Int32) {
        self.controller = controller
        self.nodeId = nodeId
    }

    func open() async throws -> [UInt64: UploaderStreamState] {
        let (nodeEpoch, streams) = try mapped { try controller.openUploader(nodeId: nodeId) }
        lock.withLock { epoch = nodeEpoch }
        var out: [UInt64: UploaderStreamState] = [:]
        for s in streams {
            out[s.streamId] = UploaderStreamState(epoch: s.state.epoch, startOffset: s.state.startOffset, endOffset: s.state.endOffset)
        }
        return out
    }

    func prepare(count: Int, ttlMs: Int64) async throws -> UInt64 {
        let e = lock.withLock { epoch }
        return try mapped { try controller.prepareObjects(nodeId: nodeId, nodeEpoch: e, count: Int32(count), ttlMs: ttlMs) }
    }

    func commit(objects: [NewObject], epochs: [UInt64: Int64], compacted: [UInt64]) async throws {
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
