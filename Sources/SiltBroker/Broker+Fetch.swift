import Logging
import NIOCore
import SiltController
import SiltMetadata
import SiltNet
import SiltProtocol
import SiltRecords
import SiltStorage

/// Fetch (with long poll), ListOffsets and OffsetForLeaderEpoch.
///
/// Leadership and leader epochs are checked in one place, `ledPartition`
/// (Broker+Leadership.swift). A partition's log never diverges (object storage is its only
/// replica), so an epoch's end is always the log end.
extension Broker {

    // MARK: Fetch

    func fetch(_ req: FetchRequest, _ r: Request) -> EventLoopFuture<FetchResponse?> {
        if r.version >= 7 && req.sessionId != 0 {
            // We never hand out a fetch session (sessionId 0 in every answer), so any id is unknown.
            var resp = FetchResponse()
            resp.errorCode = ErrorCode.fetchSessionIdNotFound
            resp.sessionId = 0
            return r.succeed(resp)
        }
        let first = readFetch(req, r)
        let maxWaitMs = Int64(max(0, req.maxWaitMs))
        if !first.objectReads.isEmpty, let reader = objectReader {
            return readObjects(first.objectReads, served: first.served, reader: reader, req, r, maxWaitMs: maxWaitMs)
        }
        if first.bytes >= Int(req.minBytes) || maxWaitMs == 0 || first.hasError || first.keys.isEmpty {
            return r.succeed(first.response)
        }
        // Long poll: park until new data satisfies minBytes or maxWait expires.
        let promise = r.eventLoop.makePromise(of: FetchResponse?.self)
        var done = false
        var timeout: Scheduled<Void>?
        var waiter: FetchWaiters.Waiter!
        let finish: (FetchResponse) -> Void = { resp in
            guard !done else { return }
            done = true
            timeout?.cancel()
            self.fetchWaiters.unregister(waiter)
            promise.succeed(resp)
        }
        waiter = FetchWaiters.Waiter(eventLoop: r.eventLoop, keys: first.keys) {
            guard !done else { return }
            let again = self.readFetch(req, r)
            if again.bytes >= Int(req.minBytes) || again.hasError { finish(again.response) }
        }
        fetchWaiters.register(waiter)
        timeout = r.eventLoop.scheduleTask(in: .milliseconds(maxWaitMs)) {
            finish(self.readFetch(req, r).response)
        }
        // Data may have landed between the first read and the registration.
        r.eventLoop.execute { waiter.wake() }
        return promise.futureResult
    }

    /// Counts a Fetch answer in the load report: the bytes each served partition returned.
    func meterFetched(_ resp: FetchResponse) {
        let image = metadata.image
        for t in resp.responses {
            guard let topic = t.topicId != .zero ? image.topic(id: t.topicId.foundation) : image.topic(named: t.topic) else { continue }
            for p in t.partitions where p.errorCode == ErrorCode.none && p.partitionIndex >= 0 && p.partitionIndex < topic.partitionCount {
                loadMeter.fetched(topic.streamIds[Int(p.partitionIndex)], bytes: p.records?.readableBytes ?? 0)
            }
        }
    }

    struct FetchRead {
        var response: FetchResponse
        var bytes: Int
        var hasError: Bool
        var keys: [PartitionKey]
        /// Partitions whose data at the fetch offset is no longer in memory: read from objects.
        var objectReads: [ObjectRead] = []
        /// What this pass read from memory or local files, so a second pass need not read it again.
        var served: [PartitionKey: ByteBuffer] = [:]
    }

    /// A read of committed stream data from object storage.
    struct ObjectRead {
        var key: PartitionKey
        var streamId: UInt64
        var offset: Int64
        var maxBytes: Int
        var minOneBatch: Bool
    }

    /// Reads the partitions the first pass could not serve from memory from object storage
    /// (off the event loop), then answers with a second pass that uses those bytes. A
    /// catching-up consumer thus waits on S3, never the loop that serves producers and tail
    /// consumers.
    private func readObjects(_ reads: [ObjectRead], served: [PartitionKey: ByteBuffer], reader: StreamObjectReader,
                             _ req: FetchRequest, _ r: Request, maxWaitMs: Int64) -> EventLoopFuture<FetchResponse?> {
        let promise = r.eventLoop.makePromise(of: FetchResponse?.self)
        let image = metadata.image
        let logger = r.logger
        Task {
            var got: [PartitionKey: Result<ByteBuffer, Error>] = served.mapValues { .success($0) }
            await withTaskGroup(of: (PartitionKey, Result<ByteBuffer, Error>).self) { group in
                for read in reads {
                    group.addTask {
                        do {
                            let bytes = try await reader.read(streamId: read.streamId, from: read.offset, maxBytes: read.maxBytes,
                                                              minOneBatch: read.minOneBatch, image: image)
                            return (read.key, .success(bytes))
                        } catch {
                            return (read.key, .failure(error))
                        }
                    }
                }
                for await (key, result) in group { got[key] = result }
            }
            for case let (key, .failure(error)) in got {
                logger.warning("object read failed", metadata: ["partition": "\(key)", "error": "\(error)"])
            }
            r.eventLoop.execute {
                let again = self.readFetch(req, r, objectData: got)
                if again.bytes == 0 && !again.hasError && maxWaitMs > 0 {
                    // Committed but not yet visible here (the metadata log is on its way), or
                    // nothing to read: answer after a short pause rather than spin the client.
                    r.eventLoop.scheduleTask(in: .milliseconds(min(maxWaitMs, 100))) {
                        promise.succeed(self.readFetch(req, r).response)
                    }
                } else {
                    promise.succeed(again.response)
                }
            }
        }
        return promise.futureResult
    }

    /// One pass over the requested partitions, reading what is there now. `objectData`:
    /// what an earlier pass asked object storage for, by partition.
    func readFetch(_ req: FetchRequest, _ r: Request, objectData: [PartitionKey: Result<ByteBuffer, Error>] = [:]) -> FetchRead {
        let image = metadata.image
        var resp = FetchResponse()
        resp.sessionId = 0
        var bytesLeft = Int(req.maxBytes)
        var total = 0
        var hasError = false
        var namesLeader = false
        var keys: [PartitionKey] = []
        var objectReads: [ObjectRead] = []
        var served: [PartitionKey: ByteBuffer] = [:]
        for t in req.topics {
            var out = FetchResponse.FetchableTopicResponse()
            out.topic = t.topic
            out.topicId = t.topicId
            let topic: TopicInfo?
            var missingCode = ErrorCode.unknownTopicOrPartition
            if r.version >= 13 {
                topic = image.topic(id: t.topicId.foundation)
                missingCode = ErrorCode.unknownTopicId
            } else {
                topic = image.topic(named: t.topic)
            }
            for p in t.partitions {
                var pd = FetchResponse.PartitionData()
                pd.partitionIndex = p.partition
                pd.highWatermark = -1
                pd.lastStableOffset = -1
                pd.logStartOffset = -1
                pd.abortedTransactions = nil
                pd.preferredReadReplica = -1
                pd.records = ByteBuffer()
                guard let topic else {
                    pd.errorCode = missingCode
                    hasError = true
                    out.partitions.append(pd)
                    continue
                }
                let log: StreamLog
                switch ledPartition(topic.name, p.partition, image: image, currentLeaderEpoch: p.currentLeaderEpoch) {
                case .success(let led):
                    log = led.log
                case .failure(let refusal):
                    pd.errorCode = refusal.code
                    if let leader = refusal.leader {
                        pd.currentLeader.leaderId = leader.id
                        pd.currentLeader.leaderEpoch = leader.epoch
                        namesLeader = true
                    }
                    hasError = true
                    out.partitions.append(pd)
                    continue
                }
                let key = PartitionKey(topic: topic.name, partition: p.partition)
                keys.append(key)
                let hw = log.highWatermark
                pd.highWatermark = hw
                pd.lastStableOffset = hw
                pd.logStartOffset = log.logStartOffset
                if p.fetchOffset < log.logStartOffset || p.fetchOffset > hw {
                    pd.errorCode = ErrorCode.offsetOutOfRange
                    hasError = true
                } else if p.fetchOffset < hw {
                    let limit = min(Int(p.partitionMaxBytes), max(0, bytesLeft))
                    let streamId = topic.streamIds[Int(p.partition)]
                    do {
                        // Kafka returns at least one whole batch for the first partition with data,
                        // even past the byte limits, so that a consumer can always make progress.
                        var data: ByteBuffer?
                        if let fromObjects = objectData[key] {
                            let bytes = try fromObjects.get()
                            if bytes.readableBytes <= limit || total == 0 { data = bytes } else { data = ByteBuffer() }
                        } else if objectReader != nil, topicConfig(topic, "cleanup.policy", image: image).contains("compact"),
                                  let committed = image.streamStates[streamId]?.endOffset, p.fetchOffset < committed {
                            // Compacted topic: committed offsets are read from objects, which the
                            // log cleaner rewrites; the log buffer still holds what it removed.
                            data = nil
                        } else {
                            data = writePath.readTail(log, streamId: streamId, from: p.fetchOffset, maxBytes: limit,
                                                      minOneBatch: total == 0)
                        }
                        if let data {
                            if objectData[key] == nil && data.readableBytes > 0 { served[key] = data }
                            pd.records = data
                            total += data.readableBytes
                            bytesLeft -= data.readableBytes
                        } else if objectReader != nil && (limit > 0 || (objectReads.isEmpty && total == 0)) {
                            // Reserve the read's budget now: object reads must not fetch more
                            // than the response can carry (the rest would be GETs thrown away).
                            objectReads.append(ObjectRead(key: key, streamId: streamId, offset: p.fetchOffset,
                                                          maxBytes: max(limit, 1), minOneBatch: objectReads.isEmpty && total == 0))
                            bytesLeft -= limit
                        }
                    } catch let e as StorageError {
                        pd.errorCode = e.kafkaErrorCode
                        hasError = true
                    } catch {
                        pd.errorCode = ErrorCode.kafkaStorageError
                        hasError = true
                    }
                }
                out.partitions.append(pd)
            }
            resp.responses.append(out)
        }
        if namesLeader {   // KIP-951 (v16+ carries them)
            resp.nodeEndpoints = liveBrokerEndpoints(image, listenerName: r.context.listenerName).map { b in
                var e = FetchResponse.NodeEndpoint()
                (e.nodeId, e.host, e.port, e.rack) = (b.id, b.host, b.port, b.rack)
                return e
            }
        }
        return FetchRead(response: resp, bytes: total, hasError: hasError, keys: keys, objectReads: objectReads,
                         served: served)
    }

    // MARK: ListOffsets

    func listOffsets(_ req: ListOffsetsRequest, _ r: Request) -> EventLoopFuture<ListOffsetsResponse?> {
        let image = metadata.image
        var resp = ListOffsetsResponse()
        /// Timestamp lookups on streams: (topic index, partition index, stream, timestamp or
        /// -3 for the max timestamp).
        var scans: [(t: Int, p: Int, log: StreamLog, timestamp: Int64, leaderEpoch: Int32)] = []
        for t in req.topics {
            var out = ListOffsetsResponse.ListOffsetsTopicResponse()
            out.name = t.name
            for p in t.partitions {
                var pr = ListOffsetsResponse.ListOffsetsPartitionResponse()
                pr.partitionIndex = p.partitionIndex
                let log: StreamLog, leaderEpoch: Int32
                switch ledPartition(t.name, p.partitionIndex, image: image, currentLeaderEpoch: p.currentLeaderEpoch) {
                case .success(let led):
                    (log, leaderEpoch) = (led.log, led.leaderEpoch)
                case .failure(let refusal):
                    pr.errorCode = refusal.code
                    out.partitions.append(pr)
                    continue
                }
                var found: (offset: Int64, timestamp: Int64)?
                switch p.timestamp {
                case -1: found = (log.highWatermark, -1)                 // latest
                case -2: found = (log.logStartOffset, -1)                // earliest
                default:
                    if p.timestamp >= 0 || p.timestamp == Broker.listOffsetsMaxTimestamp {
                        scans.append((resp.topics.count, out.partitions.count, log, p.timestamp, leaderEpoch))
                    }
                }
                if r.version == 0 {
                    pr.oldStyleOffsets = found.map { [$0.offset] } ?? []
                } else {
                    pr.offset = found?.offset ?? -1
                    pr.timestamp = found?.timestamp ?? -1
                    pr.leaderEpoch = found == nil ? -1 : leaderEpoch
                }
                out.partitions.append(pr)
            }
            resp.topics.append(out)
        }
        guard !scans.isEmpty else { return r.succeed(resp) }
        // Streams keep no time index: scan their batches (memory, then objects) off the loop.
        let promise = r.eventLoop.makePromise(of: ListOffsetsResponse?.self)
        let version = r.version
        Task {
            for scan in scans {
                let found = scan.timestamp == Broker.listOffsetsMaxTimestamp
                    ? await self.offsetOfMaxTimestamp(scan.log, image: image, logger: r.logger)
                    : await self.offsetForTimestamp(scan.log, scan.timestamp, image: image, logger: r.logger)
                if version == 0 {
                    resp.topics[scan.t].partitions[scan.p].oldStyleOffsets = found.map { [$0.offset] } ?? []
                } else {
                    resp.topics[scan.t].partitions[scan.p].offset = found?.offset ?? -1
                    resp.topics[scan.t].partitions[scan.p].timestamp = found?.timestamp ?? -1
                    resp.topics[scan.t].partitions[scan.p].leaderEpoch = found == nil ? -1 : scan.leaderEpoch
                }
            }
            promise.succeed(resp)
        }
        return promise.futureResult
    }

    /// The first record at or after `timestampMs` (batch-granular for LogAppendTime batches,
    /// whose records all carry the batch's time; compressed batches are decoded), scanning the stream
    /// from its start. O(stream size); a time index in the object format would bound it.
    func offsetForTimestamp(_ log: StreamLog, _ timestampMs: Int64, image: MetadataImage,
                            logger: Logger) async -> (offset: Int64, timestamp: Int64)? {
        var next = log.logStartOffset
        let hw = log.highWatermark
        do {
            while next < hw {
                var data = writePath.readTail(log, streamId: log.streamId, from: next, maxBytes: 1 << 20, minOneBatch: true)
                if data == nil, let reader = objectReader {
                    data = try await reader.read(streamId: log.streamId, from: next, maxBytes: 1 << 20, minOneBatch: true, image: image)
                }
                guard let records = data, records.readableBytes > 0 else { return nil }
                let headers = try parseBatchHeaders(records)
                guard let last = headers.last else { return nil }
                for header in headers where header.nextOffset > next && header.maxTimestamp >= timestampMs {
                    if header.timestampType == .logAppendTime {
                        return (max(header.baseOffset, next), header.maxTimestamp)
                    }
                    var reader = try RecordReader(batch: records, header: header)
                    while let record = try reader.next(), record.offset < hw {
                        if record.offset >= next && record.timestamp >= timestampMs { return (record.offset, record.timestamp) }
                    }
                }
                guard last.nextOffset > next else { return nil }
                next = last.nextOffset
            }
        } catch {
            logger.warning("timestamp lookup failed", metadata: ["partition": "\(log.topic)-\(log.partition)", "error": "\(error)"])
        }
        return nil
    }

    // MARK: OffsetForLeaderEpoch

    func offsetForLeaderEpoch(_ req: OffsetForLeaderEpochRequest, _ r: Request) -> EventLoopFuture<OffsetForLeaderEpochResponse?> {
        let image = metadata.image
        var resp = OffsetForLeaderEpochResponse()
        for t in req.topics {
            var out = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult()
            out.topic = t.topic
            for p in t.partitions {
                var e = OffsetForLeaderEpochResponse.EpochEndOffset()
                e.partition = p.partition
                let log: StreamLog, leaderEpoch: Int32
                switch ledPartition(t.topic, p.partition, image: image, currentLeaderEpoch: p.currentLeaderEpoch) {
                case .success(let led):
                    (log, leaderEpoch) = (led.log, led.leaderEpoch)
                case .failure(let refusal):
                    e.errorCode = refusal.code
                    out.partitions.append(e)
                    continue
                }
                if p.leaderEpoch >= 0 && p.leaderEpoch <= leaderEpoch {
                    // A partition's log never diverges (object storage is its only replica, and
                    // a leader change never truncates), so every epoch up to the current one
                    // ends at the log end.
                    e.leaderEpoch = p.leaderEpoch
                    e.endOffset = log.highWatermark
                } else {
                    // An epoch we never had (newer than ours, or a stale one): undefined, as Kafka answers.
                    e.leaderEpoch = -1
                    e.endOffset = -1
                }
                out.partitions.append(e)
            }
            resp.topics.append(out)
        }
        return r.succeed(resp)
    }
}
