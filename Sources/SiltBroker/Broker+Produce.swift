import CSupport
import Logging
import NIOCore
import SiltController
import SiltMetadata
import SiltNet
import SiltProtocol
import SiltRecords
import SiltRing
import SiltStorage

/// Produce: validate every batch as Kafka does, append it (offsets assigned in place),
/// and answer acks=1/-1 once the data is durable; acks=0 gets no answer at all.
extension Broker {
    func produce(_ req: ProduceRequest, _ r: Request) throws -> EventLoopFuture<ProduceResponse?> {
        let acks = req.acks
        // The latency breakdown (docs/benchmarks.md): decode, then validate and append summed
        // over the partitions, then the wait for appends that were parked.
        var stageNs = silt_monotonic_ns()
        if r.context.receivedNs != 0 { metrics.observe(.produceDecode, fromNs: r.context.receivedNs, toNs: stageNs) }
        var validateNs: UInt64 = 0
        var resp = ProduceResponse()
        guard acks == 0 || acks == 1 || acks == -1 else {
            resp.responses = req.topicData.map { t in
                var out = ProduceResponse.TopicProduceResponse()
                out.name = t.name
                out.partitionResponses = t.partitionData.map { p in
                    var pr = ProduceResponse.PartitionProduceResponse()
                    pr.index = p.index
                    pr.errorCode = ErrorCode.invalidRequiredAcks
                    pr.baseOffset = -1
                    return pr
                }
                return out
            }
            return r.succeed(resp)
        }
        let image = metadata.image
        let nowMs = Broker.nowMs()
        // Each partition's append (it may be parked for log-buffer room), and where its
        // answer sits in `resp`.
        var appends: [EventLoopFuture<Appended>] = []
        var appendSpans: [(startNs: UInt64, returnedNs: UInt64)] = []   // per append, on this event loop
        var appendAt: [(topic: Int, partition: Int, name: String, index: Int32)] = []
        var anyError = false
        var namesLeader = false

        for t in req.topicData {
            var out = ProduceResponse.TopicProduceResponse()
            out.name = t.name
            for p in t.partitionData {
                var pr = ProduceResponse.PartitionProduceResponse()
                pr.index = p.index
                pr.baseOffset = -1
                func fail(_ code: Int16, _ message: String?) {
                    pr.errorCode = code
                    pr.errorMessage = message
                    anyError = true
                }
                let topic: TopicInfo, log: StreamLog
                switch ledPartition(t.name, p.index, image: image) {
                case .success(let led):
                    (topic, log) = (led.topic, led.log)
                case .failure(let refusal):
                    fail(refusal.code, refusal.message)
                    if let leader = refusal.leader { pr.currentLeader = leaderIdAndEpoch(leader); namesLeader = true }
                    out.partitionResponses.append(pr)
                    continue
                }
                // Kafka's rule: only the coordinator writes its internal topic (its loader
                // trusts the record formats there).
                guard t.name != Broker.offsetsTopic || r.header.clientId == "__admin_client" else {
                    fail(ErrorCode.invalidTopic, "Cannot append to internal topic \(t.name).")
                    out.partitionResponses.append(pr)
                    continue
                }
                guard var records = p.records else {
                    fail(ErrorCode.corruptMessage, "Produce request without records.")
                    out.partitionResponses.append(pr)
                    continue
                }
                do {
                    if req.transactionalId != nil {
                        throw RecordBatchError.invalidRecord("transactions are not supported by this broker yet")
                    }
                    let timestampType: TimestampType = topicConfig(topic, "message.timestamp.type", image: image) == "LogAppendTime"
                        ? .logAppendTime : .createTime
                    let maxMessageBytes = Int(topicConfig(topic, "max.message.bytes", image: image))!
                    stageNs = silt_monotonic_ns()
                    var batches = try validateProducedRecords(
                        records,
                        maxMessageBytes: maxMessageBytes,
                        timestampType: timestampType,
                        messageTimestampBeforeMaxMs: Int64(topicConfig(topic, "message.timestamp.before.max.ms", image: image))!,
                        messageTimestampAfterMaxMs: Int64(topicConfig(topic, "message.timestamp.after.max.ms", image: image))!,
                        nowMs: nowMs)
                    if batches.contains(where: { $0.isTransactional }) {
                        throw RecordBatchError.invalidRecord("transactional batches are not supported by this broker")
                    }
                    if topicConfig(topic, "cleanup.policy", image: image).contains("compact") {
                        try requireRecordKeys(records, headers: batches, topicPartition: "\(t.name)-\(p.index)",
                                              maxDecompressedBytes: maxMessageBytes)
                    }
                    if let (codec, level) = topicCompression(topic, image: image), batches.contains(where: { $0.compression != codec }) {
                        (records, batches) = try recompressProducedRecords(records, headers: batches, to: codec, level: level,
                                                                           maxMessageBytes: maxMessageBytes)
                    }
                    if let stranger = batches.first(where: { $0.hasProducerId && !isAllocatedProducerId($0.producerId, image: image) }) {
                        // The sequence rules live in the partition (`ProducerStateTable`); an id
                        // the controller never handed out cannot have come from InitProducerId.
                        throw ProducerStateError.unknownProducerId(
                            "Producer id \(stranger.producerId) was never allocated by this cluster; call InitProducerId.")
                    }
                    if batches.isEmpty {
                        pr.errorCode = ErrorCode.corruptMessage
                        pr.errorMessage = "Produce request with an empty record set."
                        anyError = true
                        out.partitionResponses.append(pr)
                        continue
                    }
                    loadMeter.produced(topic.streamIds[Int(p.index)], bytes: records.readableBytes)
                    let appendStartNs = silt_monotonic_ns()
                    validateNs &+= appendStartNs &- stageNs
                    let streamId = topic.streamIds[Int(p.index)]
                    let appended = writePath.append(
                        log, streamId: streamId, records: records, batches: batches,
                        logAppendTime: timestampType == .logAppendTime, nowMs: nowMs, eventLoop: r.eventLoop)
                    if let lagMs = compactionUploadLagMs(topic, image: image) {
                        appended.whenSuccess { _ in self.uploadWithinCompactionLag(streamId: streamId, lagMs: lagMs, on: r.eventLoop) }
                    }
                    appends.append(appended)
                    appendSpans.append((appendStartNs, silt_monotonic_ns()))
                    appendAt.append((resp.responses.count, out.partitionResponses.count, t.name, p.index))
                    metrics.recordProduced(topic: t.name, bytes: records.readableBytes,
                                           messages: batches.reduce(0) { $0 + Int($1.recordCount) })
                } catch {
                    let (code, message) = Broker.produceRefusal(error, topic: t.name, partition: p.index, r)
                    fail(code, message)
                    if let e = error as? RecordBatchError { pr.recordErrors = Broker.recordErrors(e) }
                }
                out.partitionResponses.append(pr)
            }
            resp.responses.append(out)
        }

        if namesLeader {   // KIP-951: where the leaders named above are
            resp.nodeEndpoints = liveBrokerEndpoints(image, listenerName: r.context.listenerName).map { b in
                var e = ProduceResponse.NodeEndpoint()
                (e.nodeId, e.host, e.port, e.rack) = (b.id, b.host, b.port, b.rack)
                return e
            }
        }
        guard !appends.isEmpty else {
            if acks == 0 && anyError { throw RequestViolation("acks=0 produce failed; closing so the client notices") }
            return acks == 0 ? r.eventLoop.makeSucceededFuture(nil) : r.succeed(resp)
        }
        let (answered, refusedAny) = (resp, anyError)
        metrics.observe(.produceValidate, seconds: Double(validateNs) / 1e9)
        let appendsIssuedNs = silt_monotonic_ns()
        return EventLoopFuture.whenAllComplete(appends, on: r.eventLoop).flatMap { appended in
            // The append stage ends where the WAL pickup starts: when the bytes became visible
            // in the log buffer (`appendedNs`), not when the append returned (the WAL writer may
            // already have picked them up by then). A parked append landed after the others
            // were issued: its wait counts once, the longest.
            var appendNs: UInt64 = 0, parkedNs: UInt64 = 0
            for (result, span) in zip(appended, appendSpans) {
                if case .success(let a) = result, a.appendedNs > appendsIssuedNs {
                    appendNs &+= span.returnedNs &- span.startNs
                    parkedNs = max(parkedNs, a.appendedNs - appendsIssuedNs)
                } else if case .success(let a) = result, a.appendedNs > span.startNs {
                    appendNs &+= min(a.appendedNs, span.returnedNs) - span.startNs
                } else {
                    appendNs &+= span.returnedNs &- span.startNs
                }
            }
            self.metrics.observe(.produceAppend, seconds: Double(appendNs &+ parkedNs) / 1e9)
            var resp = answered
            var anyError = refusedAny
            var durable: [EventLoopFuture<UInt64>] = []
            var durableAt: [(topic: Int, partition: Int)] = []
            for (i, at) in appendAt.enumerated() {
                switch appended[i] {
                case .success(let a):
                    if a.info.duplicate {
                        r.logger.debug("duplicate idempotent batch answered with its original offsets",
                                       metadata: ["topic": "\(at.name)", "partition": "\(at.index)", "baseOffset": "\(a.info.baseOffset)"])
                    }
                    resp.responses[at.topic].partitionResponses[at.partition].baseOffset = a.info.baseOffset
                    resp.responses[at.topic].partitionResponses[at.partition].logAppendTimeMs = a.info.logAppendTimeMs
                    resp.responses[at.topic].partitionResponses[at.partition].logStartOffset = a.info.logStartOffset
                    durable.append(a.durable)
                    durableAt.append((at.topic, at.partition))
                case .failure(let error):
                    let (code, message) = Broker.produceRefusal(error, topic: at.name, partition: at.index, r)
                    resp.responses[at.topic].partitionResponses[at.partition].errorCode = code
                    resp.responses[at.topic].partitionResponses[at.partition].errorMessage = message
                    if let e = error as? RecordBatchError {
                        resp.responses[at.topic].partitionResponses[at.partition].recordErrors = Broker.recordErrors(e)
                    }
                    anyError = true
                }
            }
            return self.answerWhenDurable(resp, acks: acks, anyError: anyError, durable: durable, durableAt: durableAt, r)
        }
    }

    /// Answers once every appended partition is durable; acks=0 gets no answer at all.
    private func answerWhenDurable(_ resp: ProduceResponse, acks: Int16, anyError: Bool, durable: [EventLoopFuture<UInt64>],
                                   durableAt: [(topic: Int, partition: Int)], _ r: Request) -> EventLoopFuture<ProduceResponse?> {
        if acks == 0 {
            // Kafka closes the connection of an acks=0 producer on error: it is the only signal it has.
            if anyError { return r.eventLoop.makeFailedFuture(RequestViolation("acks=0 produce failed; closing so the client notices")) }
            return r.eventLoop.makeSucceededFuture(nil)
        }
        guard !durable.isEmpty else { return r.eventLoop.makeSucceededFuture(resp) }
        return EventLoopFuture.whenAllComplete(durable, on: r.eventLoop).map { results in
            let lastNoticeNs = results.reduce(UInt64(0)) { last, result in
                if case .success(let ns) = result { return max(last, ns) } else { return last }
            }
            if lastNoticeNs != 0 { self.metrics.observe(.produceAck, fromNs: lastNoticeNs, toNs: silt_monotonic_ns()) }
            var resp = resp
            // The lease again, at the ack: a broker whose session lapsed while the write became
            // durable may have been taken over (its WAL read by another node before this
            // write landed), so it does not acknowledge; the client retries at the leader.
            let leaseHeld = self.lifecycle.hasLiveSession
            for (i, (ti, pi)) in durableAt.enumerated() {
                if case .success = results[i], !leaseHeld {
                    resp.responses[ti].partitionResponses[pi].errorCode = ErrorCode.notLeaderOrFollower
                    resp.responses[ti].partitionResponses[pi].errorMessage =
                        "This broker's session with the controller lapsed before the write was durable."
                    resp.responses[ti].partitionResponses[pi].baseOffset = -1
                } else if case .failure(let error) = results[i] {
                    let code = (error as? StorageError)?.kafkaErrorCode ?? ErrorCode.kafkaStorageError
                    resp.responses[ti].partitionResponses[pi].errorCode = code
                    resp.responses[ti].partitionResponses[pi].errorMessage = "\(error)"
                    resp.responses[ti].partitionResponses[pi].baseOffset = -1
                }
            }
            return resp
        }
    }

    /// The codec and level a topic's `compression.type` imposes on produced batches; nil for
    /// `producer` (batches are stored as the producer compressed them).
    func topicCompression(_ topic: TopicInfo, image: MetadataImage) -> (CompressionType, Int32?)? {
        guard let codec = CompressionType(topicCompressionType: topicConfig(topic, "compression.type", image: image)) else { return nil }
        let levelKey: String? = switch codec {
        case .gzip: "compression.gzip.level"
        case .lz4: "compression.lz4.level"
        case .zstd: "compression.zstd.level"
        case .none, .snappy: nil
        }
        return (codec, levelKey.flatMap { Int32(topicConfig(topic, $0, image: image)) })
    }

    /// KIP-467's record_errors for a refused batch: the invalid records, or none.
    static func recordErrors(_ error: RecordBatchError) -> [ProduceResponse.BatchIndexAndErrorMessage] {
        let records: [RecordError]
        switch error {
        case .invalidRecords(let r), .invalidTimestamps(let r): records = r
        default: return []
        }
        return records.map { r in
            var out = ProduceResponse.BatchIndexAndErrorMessage()
            out.batchIndex = r.batchIndex
            out.batchIndexErrorMessage = r.message
            return out
        }
    }

    /// The error code and message a partition's produce gets for `error`.
    static func produceRefusal(_ error: Error, topic: String, partition: Int32, _ r: Request) -> (Int16, String?) {
        let partitionMetadata: Logger.Metadata = ["topic": "\(topic)", "partition": "\(partition)"]
        switch error {
        case let e as RecordBatchError:
            r.logger.debug("produce rejected", metadata: partitionMetadata.merging(["error": "\(e)"]) { $1 })
            return (e.kafkaErrorCode, e.description)
        case let e as ProducerStateError:
            r.logger.debug("idempotent produce refused", metadata: partitionMetadata.merging(["error": "\(e)"]) { $1 })
            return (e.kafkaErrorCode, e.description)
        case RingError.full:
            r.logger.warning("produce timed out waiting for log buffer space", metadata: partitionMetadata)
            return (ErrorCode.requestTimedOut, "The log buffer stayed full: the WAL is not keeping up.")
        case let e as StorageError:
            r.logger.error("append failed", metadata: partitionMetadata.merging(["error": "\(e)"]) { $1 })
            return (e.kafkaErrorCode, e.description)
        default:
            return (ErrorCode.unknownServerError, "\(error)")
        }
    }
}

private func leaderIdAndEpoch(_ leader: (id: Int32, epoch: Int32)) -> ProduceResponse.LeaderIdAndEpoch {
    var out = ProduceResponse.LeaderIdAndEpoch()
    out.leaderId = leader.id
    out.leaderEpoch = leader.epoch
    return out
}
