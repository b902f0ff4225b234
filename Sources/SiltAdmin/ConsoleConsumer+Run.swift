import Foundation
import NIOCore
import SiltProtocol
import SiltRecords

extension ConsoleConsumer {
    /// Runs a parsed command line: records to `out`, the summary and errors to `err`.
    public static func run(_ o: Options, stop: StopFlagSource? = nil, out: (String) -> Void, err: (String) -> Void) -> Int32 {
        if !o.ignoredProperties.isEmpty {
            err("Warning: Silt's \(toolName) ignores consumer properties \(o.ignoredProperties.joined(separator: ", "))")
        }
        var consumed = 0
        var code: Int32 = 0
        do {
            let sessions = try ClientSessions(o.bootstrap, clientId: "console-consumer")
            defer { sessions.close() }
            var loop = try Loop(o, sessions)
            defer { loop.member?.leave() }
            consumed = try loop.run(stop: stop, out: out, err: err)
        } catch {
            err("ERROR Error processing message, terminating consumer process: \(error)")
            code = 1
        }
        err("Processed a total of \(consumed) messages")
        return code
    }

    /// Where the stop signal comes from (the executable installs SIGINT/SIGTERM handlers).
    public typealias StopFlagSource = () -> Bool

    /// The fetch loop's state: positions by partition, and the group membership.
    struct Loop {
        let o: Options
        let sessions: ClientSessions
        var member: ConsoleGroupMember?
        var layout: ClientSessions.TopicLayout
        var positions: [PartitionKey: Int64] = [:]
        /// Positions printed since the last commit (with --group).
        var uncommitted: [PartitionKey: Int64] = [:]

        init(_ o: Options, _ sessions: ClientSessions) throws {
            self.o = o
            self.sessions = sessions
            guard let layout = try sessions.layout([o.topic])[o.topic] else {
                throw AdminSession.Failure("Topic \(o.topic) not present in metadata")
            }
            self.layout = layout
            if let p = o.partition, layout.leaders[p] == nil {
                throw AdminSession.Failure("Partition \(o.topic)-\(p) does not exist")
            }
            if let g = o.group { member = try ConsoleGroupMember(group: g, topics: [o.topic], sessions: sessions) }
        }

        /// Positions for `partitions`: committed offsets (with a group), `--offset`, or the
        /// reset policy (earliest with --from-beginning, else latest).
        mutating func assign(_ partitions: [PartitionKey]) throws {
            layout = try sessions.layout([o.topic])[o.topic] ?? layout
            var start: [PartitionKey: Int64] = [:]
            if let member { start = try GroupOffsets.fetch(member.group, member.coordinator, partitions: partitions) }
            let spec = o.offset ?? (o.fromBeginning ? -2 : -1)
            let missing = partitions.filter { start[$0] == nil }
            if spec >= 0 {
                for p in missing { start[p] = spec }
            } else if !missing.isEmpty {
                let resolved = try sessions.listOffsets(missing.map { ($0.topic, $0.partition) }, timestamp: spec,
                                                        layouts: [o.topic: layout])
                start.merge(resolved) { a, _ in a }
            }
            positions = start
            // As Kafka's consumer, commit the position of every assigned partition, read or not.
            uncommitted = member == nil ? [:] : start
        }

        mutating func run(stop: StopFlagSource?, out: (String) -> Void, err: (String) -> Void) throws -> Int {
            if let member { try assign(try member.join()) } else {
                try assign((o.partition.map { [$0] } ?? layout.partitions).map { PartitionKey(o.topic, $0) })
            }
            var consumed = 0
            var lastRecord = ContinuousClock.now
            while true {
                if stop?() == true { break }
                if let member, try member.heartbeatIfDue() {
                    try commit()
                    try assign(try member.join())
                }
                let printed = try fetchOnce(limit: o.maxMessages.map { $0 - consumed }, out: out)
                consumed += printed
                if printed > 0 {
                    lastRecord = .now
                    try commit()
                }
                if let max = o.maxMessages, consumed >= max { break }
                if let t = o.timeoutMs, ContinuousClock.now - lastRecord >= .milliseconds(t) {
                    err("ERROR Error processing message, terminating consumer process: "
                        + "org.apache.kafka.common.errors.TimeoutException (no record in \(t) ms)")
                    break
                }
            }
            try commit()
            return consumed
        }

        mutating func commit() throws {
            guard let member, !uncommitted.isEmpty else { return }
            try member.commit(uncommitted)
            uncommitted = [:]
        }

        /// One Fetch to each leader of the assigned partitions; prints up to `limit` records
        /// and returns how many it printed.
        mutating func fetchOnce(limit: Int?, out: (String) -> Void) throws -> Int {
            guard !positions.isEmpty else {
                Thread.sleep(forTimeInterval: Double(ConsoleConsumer.fetchMaxWaitMs) / 1000)
                return 0
            }
            var byLeader: [Int32: [PartitionKey]] = [:]
            for k in positions.keys.sorted() { byLeader[layout.leaders[k.partition] ?? -1, default: []].append(k) }
            var printed = 0
            for (leader, keys) in byLeader.sorted(by: { $0.key < $1.key }) {
                guard leader >= 0 else { continue }  // offline: tried again after the next metadata refresh
                let resp = try sessions.session(node: leader).send(fetchRequest(keys))
                guard resp.errorCode == 0 else { throw AdminSession.Failure("Fetch failed with \(KafkaErrorCode.name(resp.errorCode))") }
                for t in resp.responses {
                    for p in t.partitions {
                        let key = PartitionKey(o.topic, p.partitionIndex)
                        printed += try handle(p, key, limit: limit.map { $0 - printed }, out: out)
                        if let limit, printed >= limit { return printed }
                    }
                }
            }
            return printed
        }

        func fetchRequest(_ keys: [PartitionKey]) -> FetchRequest {
            var topic = FetchRequest.FetchTopic()
            topic.topic = o.topic
            topic.topicId = layout.topicId
            topic.partitions = keys.map { k in
                var p = FetchRequest.FetchPartition()
                p.partition = k.partition
                p.fetchOffset = positions[k]!
                p.partitionMaxBytes = ConsoleConsumer.partitionFetchMaxBytes
                return p
            }
            var req = FetchRequest()
            req.replicaId = -1
            req.maxWaitMs = ConsoleConsumer.fetchMaxWaitMs
            req.minBytes = 1
            req.maxBytes = ConsoleConsumer.fetchMaxBytes
            req.sessionId = 0
            req.sessionEpoch = -1  // a full fetch, no fetch session
            req.topics = [topic]
            return req
        }

        /// Prints one partition's records from its position on; resets an out-of-range
        /// position as `--from-beginning` says; refreshes metadata when the leader moved.
        mutating func handle(_ p: FetchResponse.PartitionData, _ key: PartitionKey, limit: Int?, out: (String) -> Void) throws -> Int {
            switch p.errorCode {
            case KafkaErrorCode.none: break
            case KafkaErrorCode.offsetOutOfRange:
                let spec: Int64 = o.fromBeginning || o.offset == -2 ? -2 : -1
                positions[key] = try sessions.listOffsets([(key.topic, key.partition)], timestamp: spec, layouts: [o.topic: layout])[key]
                return 0
            case KafkaErrorCode.notLeaderOrFollower, KafkaErrorCode.unknownTopicOrPartition, KafkaErrorCode.leaderNotAvailable:
                layout = try sessions.layout([o.topic])[o.topic] ?? layout
                return 0
            default:
                throw AdminSession.Failure("Fetch \(key): \(KafkaErrorCode.name(p.errorCode))")
            }
            guard let records = p.records, records.readableBytes > 0, var position = positions[key] else { return 0 }
            var printed = 0
            var index = records.readerIndex
            while index < records.writerIndex {
                // The last batch may be cut short by the fetch size: stop before it.
                guard let header = try? RecordBatchHeader(parsing: records, at: index), header.isComplete(in: records) else { break }
                index += header.totalSize
                if header.isControl || header.lastOffset < position { continue }
                for r in try header.records(in: records) where r.offset >= position {
                    out(ConsoleConsumer.format(r, partition: key.partition, timestampType: header.timestampType, o.format))
                    position = r.offset + 1
                    printed += 1
                    if let limit, printed >= limit { break }
                }
                // Offsets past the last record (compacted away) are skipped, not refetched.
                if limit.map({ printed < $0 }) ?? true { position = max(position, header.lastOffset + 1) }
                if let limit, printed >= limit { break }
            }
            positions[key] = position
            if member != nil { uncommitted[key] = position }
            return printed
        }
    }
}
