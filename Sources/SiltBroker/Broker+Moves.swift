import Foundation
import Logging
import NIOCore
import SiltMetadata
import SiltProtocol
import SiltStorage

/// Partition moves on the broker: reassignment requests (forwarded to the controller), and
/// the old leader's side of a move, which the metadata log starts by naming a target:
///
/// ```
///  target set ─▶ log.release(): no more appends (requests get NOT_LEADER_OR_FOLLOWER with
///                the target as leader, KIP-951)
///             ─▶ everything appended is durable (high watermark = log end)
///             ─▶ an upload request for this stream alone on the ring (asked again every
///                `releaseUploadRetryMs`); the metadata log shows it committed up to the log end
///             ─▶ ReleaseStreams: the controller makes the target the leader (epochs + 1)
///             ─▶ the log is removed here; the target opens the stream (OpenStreams)
/// ```
///
/// Every step polls on the broker's loop (never blocking it). A cancelled move (target gone
/// from the metadata log, or refused by the controller) removes the released log too, and
/// the stream reopens here in a new epoch like any partition this broker leads.
extension Broker {
    /// How often a release checks for durability and the commit.
    static let releasePollMs: Int64 = 5
    /// How long a release waits for its stream's upload before asking again (a request the
    /// uploader took just before this one was made covers less than asked).
    static let releaseUploadRetryMs: Int64 = 500

    func alterPartitionReassignments(_ req: AlterPartitionReassignmentsRequest, _ r: Request)
        -> EventLoopFuture<AlterPartitionReassignmentsResponse?> {
        forward(req, version: 0, r).map { Optional($0) }.recover { error in
            var resp = AlterPartitionReassignmentsResponse()
            resp.errorCode = ErrorCode.requestTimedOut
            resp.errorMessage = "The controller did not answer: \(error)"
            return resp
        }
    }

    /// Scale in (`kafka-cluster.sh unregister`): forwarded to the controller, as in KRaft.
    func unregisterBroker(_ req: UnregisterBrokerRequest, _ r: Request) -> EventLoopFuture<UnregisterBrokerResponse?> {
        forward(req, version: 0, r).map { Optional($0) }.recover { error in
            var resp = UnregisterBrokerResponse()
            resp.errorCode = ErrorCode.requestTimedOut
            resp.errorMessage = "The controller did not answer: \(error)"
            return resp
        }
    }

    func listPartitionReassignments(_ req: ListPartitionReassignmentsRequest, _ r: Request)
        -> EventLoopFuture<ListPartitionReassignmentsResponse?> {
        controllerChannel.send(req, version: 0, timeout: Broker.controllerTimeout)
            .hop(to: r.eventLoop).map { Optional($0) }.recover { error in
                var resp = ListPartitionReassignmentsResponse()
                resp.errorCode = ErrorCode.requestTimedOut
                resp.errorMessage = "The controller did not answer: \(error)"
                return resp
            }
    }

    /// Starts the release of every open partition the metadata log is moving away from here.
    func releaseMovingPartitions(_ image: MetadataImage) {
        for log in logs.allStreams() {
            guard let p = image.partitions[log.streamId], p.leader == nodeId, p.isMoving else { continue }
            let isNew = streamOpening.withLockedValue { $0.releasing.insert(log.streamId).inserted }
            guard isNew else { continue }
            let end = log.release()
            logger.info("releasing partition", metadata: ["topic": "\(log.topic)", "partition": "\(log.partition)",
                                                         "to": "\(p.target!)", "end": "\(end)"])
            releaseStep(log, end: end, askedAt: nil, started: .now())
        }
        releaseUnopenedMovingPartitions(image)
    }

    /// Moving partitions this broker leads but has not opened: it restarted (or its broker
    /// role did) before their release completed, and the start-up recovery committed
    /// everything it had acknowledged (Broker+Recovery.swift), so they are released at their
    /// committed end. Only once recovery is done (`openable`).
    private func releaseUnopenedMovingPartitions(_ image: MetadataImage) {
        guard streamOpening.withLockedValue({ $0.openable }) else { return }
        for (streamId, p) in image.partitions where p.leader == nodeId && p.isMoving {
            guard let end = image.streamStates[streamId]?.endOffset,
                  let owner = image.streams[streamId],
                  logs.partition(topic: owner.topic, partition: owner.partition) == nil,
                  streamOpening.withLockedValue({ $0.releasing.insert(streamId).inserted }) else { continue }
            let (topic, partition) = (owner.topic, owner.partition)
            logger.info("releasing a partition not open here (restarted mid-move)", metadata: [
                "topic": "\(topic)", "partition": "\(partition)", "to": "\(p.target!)", "end": "\(end)"])
            releaseStream(streamId, end: end).whenComplete { result in
                self.streamOpening.withLockedValue { _ = $0.releasing.remove(streamId) }
                let outcome: String
                switch result {
                case .success(let resp) where resp.errorCode == 0 && resp.streams.first?.errorCode == 0:
                    self.metrics.add(.partitionsReleased)
                    outcome = "moved to broker \(resp.streams[0].newLeader)"
                case .success(let resp):
                    outcome = "refused: \(resp.streams.first?.errorMessage ?? resp.errorMessage ?? "?")"
                case .failure(let error):
                    outcome = "failed: \(error)"
                }
                self.logger.info("partition released", metadata: ["topic": "\(topic)", "partition": "\(partition)",
                                                                 "outcome": "\(outcome)"])
                // A cancelled move reopens here; a refusal waits for the metadata change that
                // explains it; an unreachable controller is tried again shortly.
                if case .failure = result {
                    self.controllerLoop.scheduleTask(in: .milliseconds(200)) {
                        self.releaseUnopenedMovingPartitions(self.metadata.image)
                    }
                }
                self.openMissingPartitions(image: self.metadata.image)
            }
        }
    }

    private func releaseStep(_ log: StreamLog, end: Int64, askedAt: NIODeadline?, started: NIODeadline) {
        let image = metadata.image
        guard let p = image.partitions[log.streamId], p.leader == nodeId, p.isMoving else {
            finishRelease(log, outcome: "cancelled")   // the move was cancelled, or the topic deleted
            return
        }
        var asked = askedAt
        if log.highWatermark >= end {
            if (image.streamStates[log.streamId]?.endOffset ?? 0) >= end {
                sendRelease(log, end: end, started: started)
                return
            }
            if asked.map({ NIODeadline.now() - $0 > .milliseconds(Broker.releaseUploadRetryMs) }) ?? true {
                writePath.requestUpload(streamId: log.streamId)
                asked = .now()
            }
        }
        controllerLoop.scheduleTask(in: .milliseconds(Broker.releasePollMs)) {
            self.releaseStep(log, end: end, askedAt: asked, started: started)
        }
    }

    private func sendRelease(_ log: StreamLog, end: Int64, started: NIODeadline) {
        releaseStream(log.streamId, end: end).whenComplete { result in
            switch result {
            case .success(let resp) where resp.errorCode == 0 && resp.streams.first?.errorCode == 0:
                let elapsed = NIODeadline.now() - started
                let ms = elapsed.nanoseconds / 1_000_000
                self.metrics.add(.partitionsReleased)
                self.metrics.observe(.partitionReleaseLatency, seconds: Double(elapsed.nanoseconds) / 1e9)
                self.finishRelease(log, outcome: "moved to broker \(resp.streams[0].newLeader) in \(ms) ms")
            case .success(let resp) where resp.errorCode == 0 && resp.streams.first?.errorCode == ErrorCode.offsetOutOfRange:
                // The controller has not seen the commit yet: check again.
                self.controllerLoop.scheduleTask(in: .milliseconds(Broker.releasePollMs)) {
                    self.releaseStep(log, end: end, askedAt: .now(), started: started)
                }
            case .success(let resp) where resp.errorCode == 0:
                self.finishRelease(log, outcome: "refused: \(resp.streams.first?.errorMessage ?? "?")")
            case .success, .failure:
                // The controller is changing hands or unreachable: try again shortly.
                self.controllerLoop.scheduleTask(in: .milliseconds(200)) {
                    self.releaseStep(log, end: end, askedAt: .now(), started: started)
                }
            }
        }
    }

    /// ReleaseStreams for one stream whose committed end is `end`.
    private func releaseStream(_ streamId: UInt64, end: Int64) -> EventLoopFuture<ReleaseStreamsResponse> {
        var req = ReleaseStreamsRequest()
        req.nodeId = nodeId
        req.brokerEpoch = lifecycle.currentBrokerEpoch
        var s = ReleaseStreamsRequest.ReleasedStream()
        s.streamId = Int64(bitPattern: streamId)
        s.endOffset = end
        req.streams = [s]
        return controllerChannel.send(req, version: 0, timeout: .seconds(10))
    }

    /// Logs of partitions another broker leads now, with no release of ours in flight: a
    /// broker that was fenced (its session lapsed) while its partitions moved. They are
    /// dropped, never served: the metadata log says where the partition lives.
    func dropPartitionsLedElsewhere(_ image: MetadataImage) {
        let releasing = streamOpening.withLockedValue { $0.releasing }
        for log in logs.allStreams() where !releasing.contains(log.streamId) {
            guard let p = image.partitions[log.streamId], p.replicas[0] != nodeId else { continue }
            logs.remove(log)
            writePath.forgetStreams([log.streamId])
            logger.warning("dropped a partition another broker leads now", metadata: [
                "topic": "\(log.topic)", "partition": "\(log.partition)", "leader": "\(p.leader)"])
        }
    }

    /// Gauges of what this broker leads and of the cluster's offline partitions (Metadata
    /// answers LEADER_NOT_AVAILABLE for them; the controller logs why when it fences).
    func reportPartitions(_ image: MetadataImage) {
        metrics.set(.partitionsLed, UInt64(logs.allStreams().count))
        metrics.set(.partitionsOffline, UInt64(image.partitions.values.filter { $0.leader < 0 }.count))
    }

    /// The stream is no longer served here: its log and remembered tail go. If this broker
    /// still leads it (a cancelled move), it reopens in a new epoch.
    private func finishRelease(_ log: StreamLog, outcome: String) {
        logs.remove(log)
        writePath.forgetStreams([log.streamId])
        streamOpening.withLockedValue { _ = $0.releasing.remove(log.streamId) }
        logger.info("partition released", metadata: ["topic": "\(log.topic)", "partition": "\(log.partition)",
                                                     "outcome": "\(outcome)"])
        openMissingPartitions(image: metadata.image)
    }
}
