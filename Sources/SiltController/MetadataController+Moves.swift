import Foundation
import SiltMetadata

/// Partition moves: reassignment (AlterPartitionReassignments), controlled shutdown, and the
/// release that completes both (see `PartitionLeadership` for the states).
///
/// The controller only records intents and their completion; the data moves by the old
/// leader committing the stream's tail to object storage (the only replica). A move waits,
/// and never completes, while the old leader is fenced: its WAL may hold the acknowledged
/// tail, so the partition stays with it (offline) until it is back.
extension MetadataController {
    /// One partition of a reassignment: `replicas` nil cancels a move in flight.
    public struct ReassignmentRequest: Sendable {
        public var topic: String
        public var partition: Int32
        public var replicas: [Int32]?
        public init(topic: String, partition: Int32, replicas: [Int32]?) {
            self.topic = topic; self.partition = partition; self.replicas = replicas
        }
    }

    /// A move in flight, as ListPartitionReassignments shows it.
    public struct Reassignment: Equatable, Sendable {
        public var topic: String
        public var partition: Int32
        public var from: Int32
        public var to: Int32
    }

    /// Records the wanted broker of each partition (one batch); per partition, the refusal if
    /// any. A partition already on the wanted broker is left alone (and a move elsewhere is
    /// cancelled). Refusals write nothing for their partition.
    public func reassign(_ requests: [ReassignmentRequest]) throws -> [Result<Void, ControllerError>] {
        try mutate {
            var results: [Result<Void, ControllerError>] = []
            var changed: [UInt64: PartitionLeadership] = [:]
            var seen = Set<UInt64>()
            for r in requests {
                guard let topic = _image.topic(named: r.topic), r.partition >= 0, r.partition < topic.partitionCount else {
                    results.append(.failure(.unknownTopic("Topic '\(r.topic)' has no partition \(r.partition).")))
                    continue
                }
                let streamId = topic.streamIds[Int(r.partition)]
                guard seen.insert(streamId).inserted else {
                    results.append(.failure(.invalidRequest("Partition \(r.topic)-\(r.partition) appears twice.")))
                    continue
                }
                guard var p = changed[streamId] ?? _image.partitions[streamId] else {
                    results.append(.failure(.invalidReplicaAssignment(
                        "Partition \(r.topic)-\(r.partition) has no broker yet (no broker was ever unfenced).")))
                    continue
                }
                guard let replicas = r.replicas else {
                    guard p.target != nil else {
                        results.append(.failure(.noReassignmentInProgress("Partition \(r.topic)-\(r.partition) is not moving.")))
                        continue
                    }
                    p.target = nil
                    changed[streamId] = p
                    results.append(.success(()))
                    continue
                }
                guard replicas.count == 1 else {
                    results.append(.failure(.invalidReplicaAssignment(
                        "Partition \(r.topic)-\(r.partition): Silt keeps one replica (object storage holds the data), "
                        + "so name exactly one broker, not \(replicas).")))
                    continue
                }
                let to = replicas[0]
                if to == p.replicas[0] {
                    if p.target != nil { p.target = nil; changed[streamId] = p }
                    results.append(.success(()))
                    continue
                }
                if let refusal = refusalToReceive(to) {
                    results.append(.failure(.invalidReplicaAssignment("Partition \(r.topic)-\(r.partition): \(refusal)")))
                    continue
                }
                p.target = to
                changed[streamId] = p
                results.append(.success(()))
            }
            if !changed.isEmpty {
                try commit(changed.keys.sorted().map { .partitionLeader(streamId: $0, changed[$0]!) })
                logger.info("reassignment recorded", metadata: ["partitions": "\(changed.count)"])
            }
            return results
        }
    }

    /// Why broker `nodeId` cannot receive a partition now, or nil.
    func refusalToReceive(_ nodeId: Int32) -> String? {
        guard let b = _image.brokers[nodeId] else { return "broker \(nodeId) is not registered." }
        if b.fenced { return "broker \(nodeId) is fenced." }
        if sessions.isDraining(nodeId) { return "broker \(nodeId) is shutting down." }
        return nil
    }

    /// The moves in flight (partitions of `topics` only, when given), by topic and partition.
    public func reassignments(topics: [String: [Int32]]? = nil) -> [Reassignment] {
        let image = self.image
        var out: [Reassignment] = []
        for name in image.topicsByName.keys.sorted() {
            let topic = image.topicsByName[name]!
            let wanted = topics.map { $0[name].map(Set.init) ?? [] }
            for p in 0..<topic.partitionCount where wanted.map({ $0.contains(p) }) ?? true {
                guard let l = image.partitions[topic.streamIds[Int(p)]], let to = l.target else { continue }
                out.append(Reassignment(topic: name, partition: p, from: l.replicas[0], to: to))
            }
        }
        return out
    }

    /// The old leader of moving streams reports that it stopped appending and that each
    /// stream's committed end is `endOffset`: the partition changes owner (one batch). Refused
    /// per stream while the committed end is short of what the broker reached (its tail is
    /// not committed yet), or when the stream is not moving from it. A move whose target
    /// cannot receive it any more is cancelled instead: the partition stays.
    public func releaseStreams(nodeId: Int32, brokerEpoch: Int64, streams: [(streamId: UInt64, endOffset: Int64)])
        throws -> [UInt64: Result<Int32, ControllerError>] {
        guard Set(streams.map(\.streamId)).count == streams.count else {
            throw ControllerError.invalidRequest("The same stream appears twice in ReleaseStreams.")
        }
        return try mutate {
            guard let broker = _image.brokers[nodeId], broker.brokerEpoch == brokerEpoch, !broker.fenced else {
                throw ControllerError.staleBrokerEpoch(
                    "Broker \(nodeId) epoch \(brokerEpoch) is not the registered, unfenced epoch "
                    + "\(_image.brokers[nodeId].map { "\($0.brokerEpoch)" } ?? "(none)").")
            }
            var out: [UInt64: Result<Int32, ControllerError>] = [:]
            var records: [MetadataRecord] = []
            for (streamId, endOffset) in streams {
                guard var p = _image.partitions[streamId], let state = _image.streamStates[streamId] else {
                    out[streamId] = .failure(.unknownStream(streamId))
                    continue
                }
                guard p.leader == nodeId else {
                    out[streamId] = .failure(.notLeader("Stream \(streamId) is not led by broker \(nodeId)."))
                    continue
                }
                guard let to = p.target else {
                    out[streamId] = .failure(.noReassignmentInProgress("Stream \(streamId) is not moving."))
                    continue
                }
                guard state.endOffset == endOffset else {
                    out[streamId] = .failure(.offsetOutOfRange(
                        "Stream \(streamId) is committed up to \(state.endOffset); the broker reached \(endOffset)."))
                    continue
                }
                if let refusal = refusalToReceive(to) {
                    p.target = nil
                    records.append(.partitionLeader(streamId: streamId, p))
                    out[streamId] = .failure(.invalidReplicaAssignment("Move cancelled: \(refusal)"))
                    continue
                }
                p = PartitionLeadership(leader: to, leaderEpoch: p.leaderEpoch + 1, replicas: [to],
                                        streamEpoch: max(p.streamEpoch, state.epoch) + 1, target: nil)
                records.append(.partitionLeader(streamId: streamId, p))
                out[streamId] = .success(to)
            }
            if !records.isEmpty {
                try commit(records)
                logger.info("partitions released", metadata: ["broker": "\(nodeId)", "records": "\(records.count)"])
            }
            return out
        }
    }

    /// Controlled shutdown (caller holds the lock): moves for every partition assigned to
    /// `nodeId` that is not moving yet, to the other brokers that can receive partitions
    /// (evenly, as new partitions are placed). Empty when no other broker can.
    func drainRecords(_ nodeId: Int32) -> [MetadataRecord] {
        let mine = _image.partitions.keys.sorted().filter { id in
            let p = _image.partitions[id]!
            return p.replicas[0] == nodeId && p.target == nil
        }
        let choice = chooseBrokers(for: mine, in: _image, excluding: sessions.drainingBrokers.union([nodeId]))
        return mine.compactMap { id in
            guard let to = choice[id] else { return nil }
            var p = _image.partitions[id]!
            p.target = to
            return .partitionLeader(streamId: id, p)
        }
    }
}

extension MetadataController {
    /// A WAL takeover is complete: a surviving node opened fenced broker `nodeId`'s WAL, fenced
    /// its uploader (OpenUploader for `nodeId`: node epoch `nodeEpoch`) and committed every frame
    /// of it. Every partition assigned to `nodeId` moves to the other brokers (placed evenly),
    /// in the next leader and stream epochs. Refused while the broker is unfenced (it is alive:
    /// its partitions are its own) and when `nodeEpoch` is not the node's current one (the
    /// broker's own uploader, or another takeover, opened since). Returns the new owner of each
    /// stream moved.
    public func takeOverNode(_ nodeId: Int32, nodeEpoch: Int64) throws -> [UInt64: Int32] {
        try mutate {
            guard let broker = _image.brokers[nodeId] else {
                throw ControllerError.invalidRequest("Broker \(nodeId) is not registered: there is nothing to take over.")
            }
            guard broker.fenced else {
                throw ControllerError.invalidRequest("Broker \(nodeId) is alive (unfenced): its partitions stay with it.")
            }
            guard _image.nodeEpochs[nodeId] == nodeEpoch else {
                throw ControllerError.staleNodeEpoch(
                    "Node \(nodeId)'s epoch is \(_image.nodeEpochs[nodeId].map(String.init) ?? "(none)"), the takeover holds "
                    + "\(nodeEpoch): someone opened its uploader since.")
            }
            let mine = _image.partitions.keys.sorted().filter { _image.partitions[$0]!.replicas[0] == nodeId }
            guard !mine.isEmpty else { return [:] }
            let choice = chooseBrokers(for: mine, in: _image, excluding: sessions.drainingBrokers.union([nodeId]))
            guard choice.count == mine.count else {
                throw ControllerError.invalidReplicaAssignment("No unfenced broker can take broker \(nodeId)'s partitions.")
            }
            var out: [UInt64: Int32] = [:]
            let records: [MetadataRecord] = mine.map { id in
                let p = _image.partitions[id]!
                let to = choice[id]!
                out[id] = to
                return .partitionLeader(streamId: id, PartitionLeadership(
                    leader: to, leaderEpoch: p.leaderEpoch + 1, replicas: [to],
                    streamEpoch: max(p.streamEpoch, _image.streamStates[id]?.epoch ?? 0) + 1, target: nil))
            }
            try commit(records)
            logger.warning("broker taken over: its WAL is committed and its partitions moved", metadata: [
                "broker": "\(nodeId)", "partitions": "\(records.count)"])
            return out
        }
    }
}
