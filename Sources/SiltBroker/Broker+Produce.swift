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
        // Each appended partition's durability, and where its answer sits in `resp`.
        var durable: [EventLoopFuture<Void>] = []
        var durableAt: [(topic: Int, partition: Int)] = []
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
                guard let records = p.records else {
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
                    let batches = try validateProducedRecords(
                        records,
                        maxMessageBytes: Int(topicConfig(topic, "max.message.bytes", image: image))!,
                        timestampType: timestampType,
                        messageTimestampBeforeMaxMs: Int64(topicConfig(topic, "message.timestamp.before.max.ms", image: image))!,
                        messageTimestampAfterMaxMs: Int64(topicConfig(topic, "message.timestamp.after.max.ms", image: image))!,
                        nowMs: nowMs)
                    if batches.contains(where: { $0.isTransactional }) {
                        throw RecordBatchError.invalidRecord("transactional batches are not supported by this broker")
                    }
                    if topicConfig(topic, "cleanup.policy", image: image).contains("compact") {
                        try requireRecordKeys(records, headers: batches, topicPartition: "\(t.name)-\(p.index)")
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
                    let (info, isDurable) = try writePath.append(
                        log, streamId: topic.streamIds[Int(p.index)], records: records, batches: batches,
                        logAppendTime: timestampType == .logAppendTime, nowMs: nowMs, eventLoop: r.eventLoop)
                    if info.duplicate {
                        r.logger.debug("duplicate idempotent batch answered with its original offsets",
                                       metadata: ["topic": "\(t.name)", "partition": "\(p.index)", "baseOffset": "\(info.baseOffset)"])
                    }
                    pr.baseOffset = info.baseOffset
                    pr.logAppendTimeMs = info.logAppendTimeMs
                    pr.logStartOffset = info.logStartOffset
                    durable.append(isDurable)
                    durableAt.append((resp.responses.count, out.partitionResponses.count))
                } catch let e as RecordBatchError {
                    fail(e.kafkaErrorCode, e.description)
                    pr.recordErrors = []
                    r.logger.debug("produce rejected", metadata: ["topic": "\(t.name)", "partition": "\(p.index)", "error": "\(e)"])
                } catch let e as ProducerStateError {
                    fail(e.kafkaErrorCode, e.description)
                    r.logger.debug("idempotent produce refused", metadata: ["topic": "\(t.name)", "partition": "\(p.index)", "error": "\(e)"])
                } catch RingError.full {
                    fail(ErrorCode.requestTimedOut, "The log buffer stayed full: the WAL is not keeping up.")
                    r.logger.warning("produce timed out waiting for log buffer space",
                                     metadata: ["topic": "\(t.name)", "partition": "\(p.index)"])
                } catch let e as StorageError {
                    fail(e.kafkaErrorCode, e.description)
                    r.logger.error("append failed", metadata: ["topic": "\(t.name)", "partition": "\(p.index)", "error": "\(e)"])
                } catch {
                    fail(ErrorCode.unknownServerError, "\(error)")
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
        if acks == 0 {
            // Kafka closes the connection of an acks=0 producer on error: it is the only signal it has.
            if anyError { throw RequestViolation("acks=0 produce failed; closing so the client notices") }
            return r.eventLoop.makeSucceededFuture(nil)
        }
        guard !durable.isEmpty else { return r.succeed(resp) }
        return EventLoopFuture.whenAllComplete(durable, on: r.eventLoop).map { results in
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
}

private func leaderIdAndEpoch(_ leader: (id: Int32, epoch: Int32)) -> ProduceResponse.LeaderIdAndEpoch {
    var out = ProduceResponse.LeaderIdAndEpoch()
    out.leaderId = leader.id
    out.leaderEpoch = leader.epoch
    return out
}
