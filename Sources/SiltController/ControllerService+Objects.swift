import SiltConfig
import SiltMetadata
import SiltStreams
import Foundation
import SiltProtocol

/// Silt's internal controller APIs (specs/silt/): the uploader's open / prepare / commit and
/// stream trims. Stream and object ids are u64 in Silt and int64 bit patterns on the wire.
extension ControllerService {
    func openUploader(_ req: OpenUploaderRequest) -> OpenUploaderResponse {
        var resp = OpenUploaderResponse()
        do {
            let (epoch, streams) = try controller.openUploader(nodeId: req.nodeId)
            resp.nodeEpoch = epoch
            resp.streams = streams.map { s in
                var out = OpenUploaderResponse.StreamState()
                out.streamId = Int64(bitPattern: s.streamId)
                out.epoch = s.state.epoch
                out.startOffset = s.state.startOffset
                out.endOffset = s.state.endOffset
                return out
            }
        } catch {
            (resp.errorCode, resp.errorMessage) = ControllerService.errorFields(error)
        }
        return resp
    }

    func prepareObjects(_ req: PrepareS3ObjectRequest) -> PrepareS3ObjectResponse {
        var resp = PrepareS3ObjectResponse()
        do {
            let ttlMs = req.ttlMs < 0 ? config.objectStorage.prepareTTLMs : req.ttlMs
            let first = try controller.prepareObjects(nodeId: req.nodeId, nodeEpoch: req.nodeEpoch, count: req.count, ttlMs: ttlMs)
            resp.firstObjectId = Int64(bitPattern: first)
        } catch {
            (resp.errorCode, resp.errorMessage) = ControllerService.errorFields(error)
        }
        return resp
    }

    func commitObjects(_ req: CommitS3ObjectsRequest) -> CommitS3ObjectsResponse {
        var resp = CommitS3ObjectsResponse()
        do {
            let objects = try req.objects.map { o -> MetadataController.CommitObject in
                guard let kind = ObjectKind(rawValue: o.kind) else {
                    throw ControllerError.invalidRequest("Object \(UInt64(bitPattern: o.objectId)) has unknown kind \(o.kind).")
                }
                return MetadataController.CommitObject(
                    objectId: UInt64(bitPattern: o.objectId), size: o.objectSize, kind: kind,
                    ranges: o.ranges.map {
                        MetadataController.CommitRange(streamId: UInt64(bitPattern: $0.streamId), streamEpoch: $0.streamEpoch,
                                                       startOffset: $0.startOffset, endOffset: $0.endOffset,
                                                       stats: $0.bytes < 0 ? nil : RangeStats(bytes: $0.bytes, maxTimestampMs: $0.maxTimestampMs))
                    })
            }
            try controller.commitObjects(nodeId: req.nodeId, nodeEpoch: req.nodeEpoch, objects: objects,
                                         compactedObjectIds: req.compactedObjectIds.map { UInt64(bitPattern: $0) })
        } catch {
            (resp.errorCode, resp.errorMessage) = ControllerService.errorFields(error)
        }
        return resp
    }

    func trimStreams(_ req: TrimStreamsRequest) -> TrimStreamsResponse {
        var resp = TrimStreamsResponse()
        var seen: [Int64: Int] = [:]
        for s in req.streams { seen[s.streamId, default: 0] += 1 }
        resp.streams = req.streams.map { s in
            var out = TrimStreamsResponse.TrimStreamResult()
            out.streamId = s.streamId
            do {
                guard seen[s.streamId]! == 1 else { throw ControllerError.invalidRequest("Stream \(UInt64(bitPattern: s.streamId)) appears twice.") }
                out.startOffset = try controller.trimStream(streamId: UInt64(bitPattern: s.streamId), startOffset: s.newStartOffset)
            } catch {
                (out.errorCode, out.errorMessage) = ControllerService.errorFields(error)
            }
            return out
        }
        return resp
    }

    static func errorFields(_ error: Error) -> (Int16, String?) {
        if let e = error as? ControllerError { return (e.kafkaErrorCode, e.description) }
        return (-1, "\(error)")   // UNKNOWN_SERVER_ERROR
    }
}
