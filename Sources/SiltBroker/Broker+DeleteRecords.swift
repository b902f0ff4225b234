import Foundation
import NIOCore
import SiltConfig
import SiltController
import SiltMetadata
import SiltNet
import SiltProtocol
import SiltStorage

/// DeleteRecords: moves partitions' log start offsets forward through the stream-trim path.
///
/// The controller trims a stream only up to its committed end (what objects hold): it
/// cannot make data dead that no object holds yet. A DeleteRecords offset may lie beyond
/// that, in data that is durable in the WAL and still in the log buffer:
///
/// ```
///   start            committed end          offset       high watermark
///   |====================|~~~~~~~~~~~~~~~~~~~~~|~~~~~~~~~~~~~~|
///        objects              log buffer (the uploader commits it within s3.wal.upload.interval.ms)
/// ```
///
/// So the broker waits (within the request's timeoutMs) until the metadata log shows the
/// committed end at or past the offset, then trims. The trim is one metadata record: it
/// survives restarts, and every broker (this one included, via `metadataChanged` →
/// `StreamLog.trim`) learns it from the log, so ListOffsets(EARLIEST) and Fetch honour it
/// before the client gets its answer. A timeout answers REQUEST_TIMED_OUT and trims nothing.
///
/// The request's `timeoutMs` is, in Kafka, how long to wait for followers to catch up with
/// the new start; with one replica Kafka answers at once whatever it says (librdkafka's test
/// 0081 sends 0). The upload is Silt's part of the delete itself, not a follower's, so the
/// wait for it is at least `deleteRecordsUploadWaitMsMin` whatever the request asks: the
/// uploader is asked for the stream at once, and answers in tens of milliseconds.
extension Broker {
    static let controllerTrimStreamsVersion: Int16 = 0
    /// How often a waiting DeleteRecords looks at the committed end again.
    static let deleteRecordsPollMs: Int64 = 20
    /// The shortest wait for the upload of a DeleteRecords offset, whatever its timeoutMs.
    static let deleteRecordsUploadWaitMsMin: Int64 = 5_000

    func deleteRecords(_ req: DeleteRecordsRequest, _ r: Request) -> EventLoopFuture<DeleteRecordsResponse?> {
        let image = metadata.image
        let deadline = NIODeadline.now() + .milliseconds(max(Int64(req.timeoutMs), Broker.deleteRecordsUploadWaitMsMin))
        var results: [EventLoopFuture<DeleteRecordsResponse.DeleteRecordsPartitionResult>] = []
        var shape: [(name: String, count: Int)] = []
        for t in req.topics {
            shape.append((t.name, t.partitions.count))
            var seen = Set<Int32>()
            for p in t.partitions {
                let duplicate = !seen.insert(p.partitionIndex).inserted
                results.append(deletePartition(topic: t.name, partition: p.partitionIndex, offset: p.offset,
                                               duplicate: duplicate, image: image, deadline: deadline, r))
            }
        }
        return EventLoopFuture.whenAllSucceed(results, on: r.eventLoop).map { all in
            var resp = DeleteRecordsResponse()
            var rest = all[...]
            resp.topics = shape.map { t in
                var out = DeleteRecordsResponse.DeleteRecordsTopicResult()
                out.name = t.name
                out.partitions = Array(rest.prefix(t.count))
                rest = rest.dropFirst(t.count)
                return out
            }
            return resp
        }
    }

    private func deletePartition(topic name: String, partition: Int32, offset: Int64, duplicate: Bool, image: MetadataImage,
                                 deadline: NIODeadline, _ r: Request)
        -> EventLoopFuture<DeleteRecordsResponse.DeleteRecordsPartitionResult>
    {
        var out = DeleteRecordsResponse.DeleteRecordsPartitionResult()
        out.partitionIndex = partition
        out.lowWatermark = -1
        func answer(_ code: Int16, _ low: Int64 = -1) -> EventLoopFuture<DeleteRecordsResponse.DeleteRecordsPartitionResult> {
            out.errorCode = code
            out.lowWatermark = low
            return r.eventLoop.makeSucceededFuture(out)
        }
        guard !duplicate else { return answer(ErrorCode.invalidRequest) }
        let topic: TopicInfo, log: StreamLog
        switch ledPartition(name, partition, image: image) {
        case .success(let led): (topic, log) = (led.topic, led.log)
        case .failure(let refusal): return answer(refusal.code)
        }
        // As Kafka: records of a topic without `delete` in its cleanup.policy (compacted
        // topics, __consumer_offsets among them) cannot be deleted.
        guard ConfigKeyDef.parseList(topicConfig(topic, "cleanup.policy", image: image)).contains("delete") else {
            r.logger.info("DeleteRecords refused by the topic's cleanup.policy", metadata: ["topic": "\(name)"])
            return answer(ErrorCode.policyViolation)
        }
        let hw = log.highWatermark
        let target = offset == -1 ? hw : offset
        guard offset >= -1, target <= hw else { return answer(ErrorCode.offsetOutOfRange) }
        guard target > log.logStartOffset else { return answer(0, log.logStartOffset) }
        // The records below `target` are durable; the uploader commits this stream at once
        // instead of at its next interval (a move's request: Broker+Moves.swift).
        if (image.streamStates[log.streamId]?.endOffset ?? 0) < target { writePath.requestUpload(streamId: log.streamId) }
        return trimWhenCommitted(streamId: log.streamId, target: target, deadline: deadline, r).map { code, start in
            out.errorCode = code
            out.lowWatermark = code == 0 ? max(start, log.logStartOffset) : -1
            return out
        }
    }

    /// Waits until the stream's committed end reaches `target`, then trims the stream to it.
    private func trimWhenCommitted(streamId: UInt64, target: Int64, deadline: NIODeadline, _ r: Request)
        -> EventLoopFuture<(Int16, Int64)>
    {
        guard let state = metadata.image.streamStates[streamId] else {
            return r.eventLoop.makeSucceededFuture((ErrorCode.unknownTopicOrPartition, -1))
        }
        guard state.endOffset >= target else {
            guard NIODeadline.now() < deadline else {
                r.logger.info("DeleteRecords timed out waiting for the upload", metadata: [
                    "stream": "\(streamId)", "offset": "\(target)", "committedEnd": "\(state.endOffset)"])
                return r.eventLoop.makeSucceededFuture((ErrorCode.requestTimedOut, -1))
            }
            return r.eventLoop.flatScheduleTask(in: .milliseconds(Broker.deleteRecordsPollMs)) {
                self.trimWhenCommitted(streamId: streamId, target: target, deadline: deadline, r)
            }.futureResult
        }
        var req = TrimStreamsRequest()
        var s = TrimStreamsRequest.TrimStream()
        s.streamId = Int64(bitPattern: streamId)
        s.newStartOffset = target
        req.streams = [s]
        return forward(req, version: Broker.controllerTrimStreamsVersion, r).map { resp -> (Int16, Int64) in
            guard let result = resp.streams.first else { return (ErrorCode.unknownServerError, -1) }
            return (result.errorCode, result.startOffset)
        }.recover { error in
            r.logger.warning("DeleteRecords: controller unavailable: \(error)")
            return (ErrorCode.requestTimedOut, -1)
        }
    }
}
