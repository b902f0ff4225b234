import Foundation
import SiltMetadata

/// Brokers and partition leadership on the controller (see `BrokerRegistration` and
/// `PartitionLeadership` in SiltMetadata for the lifecycle and the invariants).
///
/// Sessions are leader-only memory (`BrokerSessions`): a newly active controller gives every
/// registered broker a full session timeout from the moment it took over, as KRaft does, so
/// nothing depends on the previous leader's clocks.
extension MetadataController {
    /// What a registering broker says about itself.
    public struct BrokerInfo: Sendable {
        public var nodeId: Int32
        public var incarnationId: UUID
        public var listeners: [BrokerEndpoint]
        public var rack: String?
        public init(nodeId: Int32, incarnationId: UUID, listeners: [BrokerEndpoint], rack: String?) {
            self.nodeId = nodeId; self.incarnationId = incarnationId; self.listeners = listeners; self.rack = rack
        }
    }

    /// The answer to a heartbeat.
    public struct HeartbeatResult: Equatable, Sendable {
        public var isFenced: Bool
        public var isCaughtUp: Bool
        public var shouldShutDown: Bool
    }

    /// Registers a broker (fenced) and returns its new broker epoch. A different incarnation
    /// of a node whose session is alive is refused: two processes with one `node.id`.
    public func registerBroker(_ info: BrokerInfo, nowMs: Int64 = MetadataController.wallClockMs()) throws -> Int64 {
        guard info.nodeId >= 0 else { throw ControllerError.invalidRequest("Broker id \(info.nodeId) is negative.") }
        guard !info.listeners.isEmpty else {
            throw ControllerError.invalidRequest("Broker \(info.nodeId) registered without listeners.")
        }
        return try mutate {
            let previous = _image.brokers[info.nodeId]
            if let previous, previous.incarnationId != info.incarnationId, !previous.fenced,
               sessions.isAlive(info.nodeId, nowMs: nowMs) {
                throw ControllerError.duplicateBroker(
                    "Another broker with node.id \(info.nodeId) is registered and alive (incarnation \(previous.incarnationId), "
                    + "listeners \(previous.listeners.map { "\($0.name)://\($0.host):\($0.port)" }.joined(separator: ","))). "
                    + "Give every node its own node.id.")
            }
            // A node with no registration (new, or unregistered) starts above every epoch it may
            // have had: each registration is a record, so no epoch ever exceeded the log end.
            let epoch = previous.map { $0.brokerEpoch + 1 } ?? (_image.nextOffset + 1)
            var records: [MetadataRecord] = [.brokerRegistration(BrokerRegistration(
                nodeId: info.nodeId, incarnationId: info.incarnationId, brokerEpoch: epoch, rack: info.rack,
                listeners: info.listeners, fenced: true))]
            // A new incarnation leads nothing until it has caught up and is unfenced.
            records += leadershipChanges(fencing: info.nodeId)
            try commit(records)
            sessions.registered(info.nodeId, epoch: epoch, atOffset: _image.nextOffset, nowMs: nowMs)
            logger.info("broker registered", metadata: ["broker": "\(info.nodeId)", "brokerEpoch": "\(epoch)",
                                                         "incarnation": "\(info.incarnationId)", "rack": "\(info.rack ?? "-")"])
            return epoch
        }
    }

    /// A broker's heartbeat: keeps its session, unfences it once it has caught up with its
    /// registration (its partitions come back online, and partitions without a broker are
    /// given out), fences it when it asks to shut down.
    public func brokerHeartbeat(nodeId: Int32, brokerEpoch: Int64, metadataOffset: Int64, wantFence: Bool,
                                wantShutDown: Bool, loads report: [(streamId: UInt64, load: PartitionLoad)] = [],
                                reportIntervalMs: Int64 = 0,
                                nowMs: Int64 = MetadataController.wallClockMs()) throws -> HeartbeatResult {
        try mutate {
            guard let broker = _image.brokers[nodeId] else {
                throw ControllerError.staleBrokerEpoch("Broker \(nodeId) is not registered.")
            }
            guard broker.brokerEpoch == brokerEpoch else {
                throw ControllerError.staleBrokerEpoch(
                    "Broker \(nodeId) heartbeat carries epoch \(brokerEpoch); the registered epoch is \(broker.brokerEpoch).")
            }
            sessions.heartbeat(nodeId, nowMs: nowMs)
            if !broker.fenced { loads.record(report, intervalMs: reportIntervalMs, nowMs: nowMs) }
            let caughtUp = metadataOffset + 1 >= sessions.registrationOffset(nodeId, default: 0)
            var fenced = broker.fenced
            if wantShutDown && !fenced {
                // Controlled shutdown: the broker's partitions move away first; it is fenced
                // (and told it may stop) once it leads none. With no broker to take them,
                // they go offline at once.
                sessions.setDraining(nodeId)
                let moves = drainRecords(nodeId)
                if !moves.isEmpty {
                    try commit(moves)
                    logger.info("controlled shutdown: moving partitions", metadata: ["broker": "\(nodeId)", "partitions": "\(moves.count)"])
                }
                let stillAssigned = _image.partitions.values.contains { $0.replicas[0] == nodeId }
                let canMove = _image.partitions.values.contains { $0.replicas[0] == nodeId && $0.target != nil }
                if stillAssigned && canMove {
                    return HeartbeatResult(isFenced: false, isCaughtUp: caughtUp, shouldShutDown: false)
                }
            }
            if wantShutDown || wantFence {
                if !fenced {
                    try commit([.brokerFence(nodeId: nodeId, brokerEpoch: brokerEpoch, fenced: true)]
                               + leadershipChanges(fencing: nodeId))
                    logger.info("broker fenced", metadata: ["broker": "\(nodeId)", "reason": "\(wantShutDown ? "shutting down" : "asked")"])
                }
                fenced = true
            } else if fenced && caughtUp {
                var records: [MetadataRecord] = [.brokerFence(nodeId: nodeId, brokerEpoch: brokerEpoch, fenced: false)]
                var after = _image
                after.apply(records[0])
                records += leadershipChanges(unfencing: nodeId, in: after)
                try commit(records)
                fenced = false
                logger.info("broker unfenced", metadata: ["broker": "\(nodeId)", "partitions": "\(records.count - 1)"])
            }
            return HeartbeatResult(isFenced: fenced, isCaughtUp: caughtUp, shouldShutDown: wantShutDown && fenced)
        }
    }

    /// A stream as a broker opens it: its new epoch and committed range.
    public struct OpenedStream: Equatable, Sendable {
        public var streamEpoch: Int64
        public var startOffset: Int64
        public var endOffset: Int64
    }

    /// A broker opens streams it leads: each one's stream epoch grows by one, so that
    /// whatever an earlier owner, or an earlier incarnation of this broker, left uncommitted
    /// in that epoch is refused at commit. The caller has committed everything it
    /// acknowledged in the old epoch first. One result per stream; all bumps in one batch.
    public func openStreams(nodeId: Int32, brokerEpoch: Int64, streamIds: [UInt64])
        throws -> [UInt64: Result<OpenedStream, ControllerError>] {
        guard Set(streamIds).count == streamIds.count else {
            throw ControllerError.invalidRequest("The same stream appears twice in OpenStreams.")
        }
        return try mutate {
            guard let broker = _image.brokers[nodeId] else {
                throw ControllerError.staleBrokerEpoch("Broker \(nodeId) is not registered.")
            }
            guard broker.brokerEpoch == brokerEpoch, !broker.fenced else {
                throw ControllerError.staleBrokerEpoch(
                    "Broker \(nodeId) epoch \(brokerEpoch) is not the registered, unfenced epoch \(broker.brokerEpoch).")
            }
            var out: [UInt64: Result<OpenedStream, ControllerError>] = [:]
            var records: [MetadataRecord] = []
            for streamId in streamIds {
                guard let state = _image.streamStates[streamId], var p = _image.partitions[streamId] else {
                    out[streamId] = .failure(.unknownStream(streamId))
                    continue
                }
                guard p.leader == nodeId else {
                    out[streamId] = .failure(.notLeader(
                        "Stream \(streamId) is led by \(p.leader < 0 ? "no broker" : "broker \(p.leader)"), not \(nodeId)."))
                    continue
                }
                p.streamEpoch = max(p.streamEpoch, state.epoch) + 1
                records.append(.partitionLeader(streamId: streamId, p))
                out[streamId] = .success(OpenedStream(streamEpoch: p.streamEpoch, startOffset: state.startOffset,
                                                      endOffset: state.endOffset))
            }
            if !records.isEmpty { try commit(records) }
            return out
        }
    }

    /// Fences every unfenced broker whose session expired. Runs on the active controller.
    @discardableResult
    public func fenceExpiredBrokers(nowMs: Int64 = MetadataController.wallClockMs()) -> [Int32] {
        let fenced: [Int32]? = try? mutate {
            var out: [Int32] = []
            for broker in _image.unfencedBrokers where !sessions.isAlive(broker.nodeId, nowMs: nowMs) {
                let offline = leadershipChanges(fencing: broker.nodeId)
                try commit([.brokerFence(nodeId: broker.nodeId, brokerEpoch: broker.brokerEpoch, fenced: true)] + offline)
                logger.warning("broker fenced: session expired; its partitions are offline until it is back (its WAL may hold their acknowledged tail)", metadata: [
                    "broker": "\(broker.nodeId)", "sessionTimeoutMs": "\(sessions.sessionTimeoutMs)", "partitions": "\(offline.count)"])
                out.append(broker.nodeId)
            }
            return out
        }
        return fenced ?? []
    }

    // MARK: Leadership records (caller holds the lock)

    /// Every partition led by `nodeId` goes offline (leader -1, next leader epoch).
    func leadershipChanges(fencing nodeId: Int32) -> [MetadataRecord] {
        _image.partitions.keys.sorted().compactMap { streamId in
            var p = _image.partitions[streamId]!
            guard p.leader == nodeId else { return nil }
            p.leader = PartitionLeadership.noLeader
            p.leaderEpoch += 1
            return .partitionLeader(streamId: streamId, p)
        }
    }

    /// Partitions assigned to `nodeId` come back on it; partitions with no broker at all are
    /// placed over the unfenced brokers of `image`.
    func leadershipChanges(unfencing nodeId: Int32, in image: MetadataImage) -> [MetadataRecord] {
        var out: [MetadataRecord] = image.partitions.keys.sorted().compactMap { streamId in
            var p = image.partitions[streamId]!
            guard p.replicas == [nodeId], p.leader != nodeId else { return nil }
            p.leader = nodeId
            p.leaderEpoch += 1
            return .partitionLeader(streamId: streamId, p)
        }
        let orphans = image.streams.keys.filter { image.partitions[$0] == nil }.sorted()
        out += placements(for: orphans, in: image)
        return out
    }

    /// Leadership records for new partitions `streamIds`, on the brokers `chooseBrokers`
    /// picks. None when no broker is unfenced: the partitions are placed when the first one is.
    func placements(for streamIds: [UInt64], in image: MetadataImage) -> [MetadataRecord] {
        let choice = chooseBrokers(for: streamIds, in: image, excluding: sessions.drainingBrokers)
        return streamIds.compactMap { streamId in
            guard let chosen = choice[streamId] else { return nil }
            return .partitionLeader(streamId: streamId, PartitionLeadership(
                leader: chosen, leaderEpoch: 0, replicas: [chosen], streamEpoch: image.streamStates[streamId]?.epoch ?? 0))
        }
    }

    /// A broker for each of `streamIds` among the unfenced brokers of `image` not in
    /// `excluding`: spread evenly (each gets the same count of them, within one), among equals
    /// to the rack with the fewest of them, then to the broker with the fewest partitions in
    /// all (moves in flight count for their target). Evenness by broker comes first: with one
    /// replica, favouring a rack would pile partitions on a rack's lone broker (the seeded
    /// simulation found it). Empty when no broker qualifies.
    func chooseBrokers(for streamIds: [UInt64], in image: MetadataImage, excluding: Set<Int32>) -> [UInt64: Int32] {
        let brokers = image.unfencedBrokers.filter { !excluding.contains($0.nodeId) }
        guard !brokers.isEmpty else { return [:] }
        var total: [Int32: Int] = [:]
        for p in image.partitions.values { total[p.target ?? p.replicas[0], default: 0] += 1 }
        var perBroker: [Int32: Int] = [:]
        var perRack: [String: Int] = [:]
        var out: [UInt64: Int32] = [:]
        for streamId in streamIds {
            let rackLoad = { (b: BrokerRegistration) in perRack[b.rack ?? "", default: 0] }
            let chosen = brokers.min { a, b in
                (perBroker[a.nodeId, default: 0], rackLoad(a), total[a.nodeId, default: 0], a.nodeId)
                    < (perBroker[b.nodeId, default: 0], rackLoad(b), total[b.nodeId, default: 0], b.nodeId)
            }!
            perBroker[chosen.nodeId, default: 0] += 1
            perRack[chosen.rack ?? "", default: 0] += 1
            total[chosen.nodeId, default: 0] += 1
            out[streamId] = chosen.nodeId
        }
        return out
    }
}

/// The active controller's broker sessions: when each broker last heartbeated, and the
/// metadata offset its registration ended at (a broker is caught up once it has read that
/// far). Leader-only memory, reset on every change of leadership.
final class BrokerSessions: @unchecked Sendable {
    let sessionTimeoutMs: Int64
    private let lock = NSLock()
    private var lastHeartbeatMs: [Int32: Int64] = [:]
    private var registeredAtOffset: [Int32: Int64] = [:]
    /// Brokers in controlled shutdown: they receive no partitions.
    private var draining: Set<Int32> = []
    /// When this node became the active controller: every broker's session counts from here
    /// at the latest.
    private var activeSinceMs: Int64 = 0

    init(sessionTimeoutMs: Int64) {
        precondition(sessionTimeoutMs > 0)
        self.sessionTimeoutMs = sessionTimeoutMs
    }

    func becameActive(nowMs: Int64) {
        lock.withLock {
            lastHeartbeatMs = [:]
            registeredAtOffset = [:]
            draining = []
            activeSinceMs = nowMs
        }
    }

    func registered(_ nodeId: Int32, epoch: Int64, atOffset offset: Int64, nowMs: Int64) {
        lock.withLock {
            lastHeartbeatMs[nodeId] = nowMs
            registeredAtOffset[nodeId] = offset
            draining.remove(nodeId)
        }
    }

    func setDraining(_ nodeId: Int32) { lock.withLock { _ = draining.insert(nodeId) } }
    func isDraining(_ nodeId: Int32) -> Bool { lock.withLock { draining.contains(nodeId) } }
    var drainingBrokers: Set<Int32> { lock.withLock { draining } }

    func heartbeat(_ nodeId: Int32, nowMs: Int64) { lock.withLock { lastHeartbeatMs[nodeId] = nowMs } }

    func isAlive(_ nodeId: Int32, nowMs: Int64) -> Bool {
        lock.withLock { nowMs - max(lastHeartbeatMs[nodeId] ?? activeSinceMs, activeSinceMs) < sessionTimeoutMs }
    }

    func registrationOffset(_ nodeId: Int32, default fallback: Int64) -> Int64 {
        lock.withLock { registeredAtOffset[nodeId] ?? fallback }
    }
}

/// Fences brokers whose session expired, every `intervalMs`, while this controller is active.
/// Runs on its own task, never on a network event loop.
public final class BrokerSessionMonitor: @unchecked Sendable {
    let controller: MetadataController
    let intervalMs: Int64
    private let lock = NSLock()
    private var task: Task<Void, Never>?

    public init(controller: MetadataController, intervalMs: Int64) {
        precondition(intervalMs >= 1)
        self.controller = controller
        self.intervalMs = intervalMs
    }

    public func start() {
        lock.withLock {
            precondition(task == nil, "session monitor started twice")
            task = Task { [controller, intervalMs] in
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: UInt64(intervalMs) * 1_000_000)
                    if controller.isActive { controller.fenceExpiredBrokers() }
                }
            }
        }
    }

    public func stop() {
        lock.withLock {
            task?.cancel()
            task = nil
        }
    }
}
