import Foundation
import SiltNet
import SiltProtocol
import SiltStreams

/// The object lifecycle requests on the controller's listener.
public final class ControllerUploaderControl: UploaderControl, @unchecked Sendable {
    let client: ControllerQuorumClient
    public let nodeId: Int32
    private let lock = NSLock()
    private var epoch: Int64 = -1

    public init(client: ControllerQuorumClient, nodeId: Int32) {
        self.client = client
        self.nodeId = nodeId
    }

    /// The node epoch the last `open()` got (-1 before it).
    public var nodeEpoch: Int64 { lock.withLock { epoch } }

    public func open() async throws -> [UInt64: UploaderStreamState] {
        var req = OpenUploaderRequest()
        req.nodeId = nodeId
        let resp = try await client.send(req, version: 0, timeout: .seconds(30)).get()
        try Self.check(resp.errorCode, resp.errorMessage)
        lock.withLock { epoch = resp.nodeEpoch }
        var out: [UInt64: UploaderStreamState] = [:]
        for s in resp.streams {
            out[UInt64(bitPattern: s.streamId)] = UploaderStreamState(epoch: s.epoch, startOffset: s.startOffset, endOffset: s.endOffset)
        }
        return out
    }

    public func prepare(count: Int, ttlMs: Int64) async throws -> UInt64 {
        var req = PrepareS3ObjectRequest()
        req.nodeId = nodeId
        req.nodeEpoch = nodeEpoch
        req.count = Int32(count)
        req.ttlMs = ttlMs
        let resp = try await client.send(req, version: 0, timeout: .seconds(30)).get()
        try Self.check(resp.errorCode, resp.errorMessage)
        return UInt64(bitPattern: resp.firstObjectId)
    }

    public func commit(objects: [NewObject], epochs: [UInt64: Int64], compacted: [UInt64]) async throws {
        var req = CommitS3ObjectsRequest()
        req.nodeId = nodeId
        req.nodeEpoch = nodeEpoch
        req.objects = objects.map { o in
            var obj = CommitS3ObjectsRequest.S3Object()
            obj.objectId = Int64(bitPattern: o.objectId)
            obj.objectSize = o.size
            obj.kind = o.kind.rawValue
            obj.ranges = o.ranges.enumerated().map { i, r in
                var range = CommitS3ObjectsRequest.StreamRange()
                if let s = o.stats?[i] {
                    range.bytes = s.bytes
                    range.maxTimestampMs = s.maxTimestampMs
                }
                range.streamId = Int64(bitPattern: r.streamId)
                range.streamEpoch = epochs[r.streamId] ?? 0
                range.startOffset = r.startOffset
                range.endOffset = r.endOffset
                return range
            }
            return obj
        }
        req.compactedObjectIds = compacted.map { Int64(bitPattern: $0) }
        let resp = try await client.send(req, version: 0, timeout: .seconds(30)).get()
        try Self.check(resp.errorCode, resp.errorMessage)
    }

    static func check(_ code: Int16, _ message: String?) throws {
        if let error = UploaderCommitError.from(code: code, message: message) { throw error }
    }
}
