import Foundation

/// The coordinator's settings, from Kafka's broker keys of the same meaning.
public struct GroupCoordinatorConfig: Sendable {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members, so a starting fleet gets one rebalance, not one per member.
    public var initialRebalanceDelayMs: Int64 = 3000
    public var minSessionTimeoutMs: Int32 = 6000
    public var maxSessionTimeoutMs: Int32 = 1_800_000
    public var maxSize: Int = Int(Int32.max)
    public var offsetMetadataMaxBytes: Int = 4096
    /// Partitions of `__consumer_offsets`.
    public var offsetsPartitions: Int32 = 50
    /// Kafka's `NewMemberJoinTimeoutMs`: a member that joined a rebalance for the first
    /// time and is waiting in JoinGroup is dropped after this long.
    public var newMemberJoinTimeoutMs: Int64 = 300_000
    /// `group.consumer.session.timeout.ms`: a KIP-848 member silent this long is removed.
    public var consumerSessionTimeoutMs: Int32 = 45_000
    /// `group.consumer.heartbeat.interval.ms`: how often KIP-848 members are told to heartbeat.
    public var consumerHeartbeatIntervalMs: Int32 = 5_000
    /// A group's own session timeout and heartbeat interval (Kafka 4.0's group configs
    /// `consumer.session.timeout.ms` / `consumer.heartbeat.interval.ms`, kept in the metadata
    /// log), read at every heartbeat and tick so that a change acts at once; nil: the two
    /// broker values above. Called under the coordinator's lock: it must not call back in.
    public var consumerGroupTimeouts: (@Sendable (_ groupId: String) -> (sessionTimeoutMs: Int32, heartbeatIntervalMs: Int32))?
    /// `group.consumer.max.size`: most members of one KIP-848 group.
    public var consumerMaxSize: Int = Int(Int32.max)
    /// `group.consumer.assignors`: the server-side assignors offered; the first is the default.
    public var consumerAssignors: [String] = ConsumerAssignors.Name.allCases.map(\.rawValue)
    public init() {}
}

/// The classic group protocol's coordinator: JoinGroup, SyncGroup, Heartbeat, LeaveGroup
/// and the group's committed offsets, as Kafka's `GroupCoordinator` behaves.
///
/// Threading: one lock guards every group. Client answers and persistence calls are queued
/// while it is held and run after it is released (`withLock`), so that a completion that
/// re-enters the coordinator (a durable append) cannot deadlock. Time comes from `clock`
/// and deadlines are checked by `tick()`, which the owner calls periodically; tests drive
/// both by hand.
public final class GroupCoordinator: @unchecked Sendable {
    public let config: GroupCoordinatorConfig
    let persistence: GroupPersistence
    let clock: @Sendable () -> Int64
    private let lock = NSLock()
    var groups: [String: Group] = [:]
    /// `__consumer_offsets` partitions whose records are still being replayed.
    var loadingPartitions: Set<Int32>
    /// The `__consumer_offsets` partitions this coordinator serves (their leader is this
    /// broker); nil: all of them. A group of another partition gets NOT_COORDINATOR.
    var ownedPartitions: Set<Int32>?

    /// `loading`: the partitions the owner is about to replay (every partition at broker
    /// start); their groups answer COORDINATOR_LOAD_IN_PROGRESS until `finishLoading`.
    /// `owned`: the partitions served (nil: all).
    public init(config: GroupCoordinatorConfig, persistence: GroupPersistence, loading: Set<Int32>,
                owned: Set<Int32>? = nil, clock: @escaping @Sendable () -> Int64) {
        self.config = config
        self.persistence = persistence
        self.loadingPartitions = loading
        self.ownedPartitions = owned
        self.clock = clock
    }

    /// Writes to `__consumer_offsets` in the order they were decided (queued under `lock`),
    /// started outside `lock`: see `queueAppend` and `drainAppends`.
    private let appendLock = NSLock()
    private var appendQueue: [() -> Void] = []
    private var draining = false

    /// Runs `body` under the lock; what it queues in `effects` runs after the lock is released,
    /// then the writes it queued with `queueAppend`.
    func withLock<T>(_ body: (inout [() -> Void]) -> T) -> T {
        var effects: [() -> Void] = []
        lock.lock()
        let result = body(&effects)
        lock.unlock()
        for effect in effects { effect() }
        drainAppends()
        return result
    }

    /// Queues a write to `__consumer_offsets`. Called under the lock, so the log gets the
    /// records in the order the coordinator decided them (a commit racing DeleteGroups
    /// cannot land after the group's tombstones), while the write itself, which may wait
    /// for log buffer space, runs with no lock held.
    func queueAppend(partition: Int32, records: [GroupRecord], completion: @escaping @Sendable (Error?) -> Void) {
        appendLock.withLock { appendQueue.append { [self] in persistence.append(partition: partition, records: records, completion: completion) } }
    }

    /// Starts the queued writes in order. One thread drains at a time; a write whose
    /// completion runs synchronously and queues more finds the drain in progress and
    /// leaves its writes to it.
    private func drainAppends() {
        appendLock.lock()
        if draining {
            appendLock.unlock()
            return
        }
        draining = true
        while !appendQueue.isEmpty {
            let batch = appendQueue
            appendQueue.removeAll()
            appendLock.unlock()
            for write in batch { write() }
            appendLock.lock()
        }
        draining = false
        appendLock.unlock()
    }

    public func partition(for groupId: String) -> Int32 {
        GroupRecords.partition(for: groupId, partitions: config.offsetsPartitions)
    }

    /// The error every group request gets before its group is looked at, if any.
    func precheck(_ groupId: String) -> Int16? {
        if groupId.isEmpty { return GroupErrorCode.invalidGroupId }
        if let owned = ownedPartitions, !owned.contains(partition(for: groupId)) { return GroupErrorCode.notCoordinator }
        if loadingPartitions.contains(partition(for: groupId)) { return GroupErrorCode.coordinatorLoadInProgress }
        return nil
    }

    static func newMemberId(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.lowercased())" }

    // MARK: - Heartbeat

    public func heartbeat(groupId: String, generationId: Int32, memberId: String, groupInstanceId: String?) -> Int16 {
        withLock { _ in
            if let e = precheck(groupId) { return e }
            guard let g = groups[groupId], g.state != .empty, g.state != .dead else { return GroupErrorCode.unknownMemberId }
            if let e = validateMember(g, memberId: memberId, groupInstanceId: groupInstanceId) { return e }
            guard generationId == g.generationId else { return GroupErrorCode.illegalGeneration }
            g.members[memberId]!.lastHeartbeatMs = clock()
            return g.state == .preparingRebalance ? GroupErrorCode.rebalanceInProgress : GroupErrorCode.none
        }
    }

    /// UNKNOWN_MEMBER_ID for a member the group does not have; FENCED_INSTANCE_ID when a
    /// static instance id now belongs to another member id (a newer incarnation).
    func validateMember(_ g: Group, memberId: String, groupInstanceId: String?) -> Int16? {
        if let instance = groupInstanceId, let current = g.staticMembers[instance], current != memberId {
            return GroupErrorCode.fencedInstanceId
        }
        return g.members[memberId] == nil ? GroupErrorCode.unknownMemberId : nil
    }

    // MARK: - LeaveGroup

    /// LeaveGroup of one or more members (v3+ batches them). Returns the group-level error
    /// and one error per member, in request order.
    public func leave(groupId: String, members: [(memberId: String, groupInstanceId: String?)]) -> (Int16, [Int16]) {
        withLock { fx in
            if let e = precheck(groupId) { return (e, []) }
            guard let g = groups[groupId], g.state != .dead else {
                return (GroupErrorCode.none, members.map { _ in GroupErrorCode.unknownMemberId })
            }
            let now = clock()
            let errors = members.map { leaving -> Int16 in
                if let instance = leaving.groupInstanceId {
                    guard let current = g.staticMembers[instance] else { return GroupErrorCode.unknownMemberId }
                    if !leaving.memberId.isEmpty && leaving.memberId != current { return GroupErrorCode.fencedInstanceId }
                    removeMember(g, current, now: now, &fx)
                    return GroupErrorCode.none
                }
                if g.pendingMembers.removeValue(forKey: leaving.memberId) != nil {
                    tryCompleteJoin(g, now: now, &fx)
                    return GroupErrorCode.none
                }
                guard g.members[leaving.memberId] != nil else { return GroupErrorCode.unknownMemberId }
                removeMember(g, leaving.memberId, now: now, &fx)
                return GroupErrorCode.none
            }
            return (GroupErrorCode.none, errors)
        }
    }

    /// Drops a member (it left or its session expired) and rebalances the rest.
    func removeMember(_ g: Group, _ memberId: String, now: Int64, _ fx: inout [() -> Void]) {
        guard let m = g.members[memberId] else { return }
        if let cb = m.joinCallback {
            m.joinCallback = nil
            fx.append { cb(JoinResult(error: GroupErrorCode.unknownMemberId, memberId: memberId)) }
        }
        if let cb = m.syncCallback {
            m.syncCallback = nil
            fx.append { cb(SyncResult(error: GroupErrorCode.unknownMemberId)) }
        }
        g.remove(memberId)
        switch g.state {
        case .stable, .completingRebalance: prepareRebalance(g, now: now, &fx)
        case .preparingRebalance: tryCompleteJoin(g, now: now, &fx)
        case .empty, .dead: break
        }
    }

    // MARK: - Timers

    /// Expires silent members and stale member-id reservations, and ends join phases whose
    /// deadline passed. Call it every ~100 ms.
    public func tick() {
        withLock { fx in
            let now = clock()
            for g in groups.values where !loadingPartitions.contains(g.partition) {
                applyDeadlines(g, now: now, retryingFailedWrites: true, &fx)
                // Member ids handed out to clients that never came back leave nothing behind.
                if g.state == .empty && g.generationId == 0 && g.members.isEmpty && g.pendingMembers.isEmpty
                    && g.offsets.isEmpty && g.pendingCommits.isEmpty && g.consumer?.members.isEmpty != false {
                    groups[g.groupId] = nil
                    // A consumer group whose members all left: its records go too, as in memory.
                    if let cg = g.consumer, cg.hasRecords {
                        queueAppend(partition: g.partition, records: cg.tombstones(groupId: g.groupId)) { _ in }
                    }
                }
            }
        }
    }

    /// What the passing of time does to a group: silent members and stale member-id
    /// reservations expire, join and sync phases past their deadline end. `tick` applies it
    /// every ~100 ms; the requests that report or act on a group's membership (DescribeGroups,
    /// ListGroups, DeleteGroups, OffsetDelete) apply it first, so that they never answer with
    /// a member whose session is over but not yet ticked away (as Kafka's timers would have
    /// removed it: librdkafka's 0081 deletes a group one session timeout after its static
    /// member closed).
    /// `retryingFailedWrites` (the tick): a consumer group whose last write failed is written
    /// again, at most once a tick; the requests leave that to the tick.
    func applyDeadlines(_ g: Group, now: Int64, retryingFailedWrites: Bool = false, _ fx: inout [() -> Void]) {
        guard !loadingPartitions.contains(g.partition) else { return }
        // Written when a member expired, or to retry a failed write; a quiet group costs no encoding.
        if let cg = g.consumer, expireConsumerMembers(cg, groupId: g.groupId, now: now) || (retryingFailedWrites && cg.rewriteAll) {
            persistConsumer(g, cg)
        }
        let before = g.pendingMembers.count
        g.pendingMembers = g.pendingMembers.filter { $0.value > now }
        if g.pendingMembers.count != before { tryCompleteJoin(g, now: now, &fx) }
        for id in g.memberOrder {
            guard let m = g.members[id], !m.isAlive(nowMs: now, newMemberJoinTimeoutMs: config.newMemberJoinTimeoutMs)
            else { continue }
            removeMember(g, id, now: now, &fx)
        }
        if g.state == .preparingRebalance && now >= g.joinDeadlineMs { completeJoin(g, now: now, &fx) }
        if g.state == .completingRebalance && now >= g.syncDeadlineMs {
            let late = g.memberOrder.filter { g.members[$0]?.isAwaitingSync == false }
            for id in late { g.remove(id) }
            if !late.isEmpty { prepareRebalance(g, now: now, &fx) }
        }
    }

    // MARK: - Persistence of group metadata

    /// Writes the group's generation and members; `done` runs under the lock with the result.
    func persistGroup(_ g: Group, _ fx: inout [() -> Void], done: ((Error?, inout [() -> Void]) -> Void)? = nil) {
        let record = GroupRecord(key: GroupRecords.groupKey(g.groupId), value: GroupRecords.groupValue(g))
        let partition = g.partition
        queueAppend(partition: partition, records: [record]) { [self] error in
            guard let done else { return }
            self.withLock { fx in done(error, &fx) }
        }
    }
}
