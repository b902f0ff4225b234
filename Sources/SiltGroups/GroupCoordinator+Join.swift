/// A JoinGroup as the coordinator sees it (the broker fills it from any request version).
public struct JoinRequest: Sendable {
    public var groupId: String
    public var memberId: String
    public var groupInstanceId: String?
    public var protocolType: String
    public var protocols: [(name: String, metadata: [UInt8])]
    public var sessionTimeoutMs: Int32
    public var rebalanceTimeoutMs: Int32
    public var clientId: String
    public var clientHost: String
    /// v4+: a member without an id first gets one with MEMBER_ID_REQUIRED (KIP-394).
    public var requireKnownMemberId: Bool
    /// v9+ (KIP-814): a restarted static leader can be told to skip the assignment.
    public var supportsSkipAssignment = false

    public init(groupId: String, memberId: String = "", groupInstanceId: String? = nil, protocolType: String = "consumer",
                protocols: [(name: String, metadata: [UInt8])], sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32,
                clientId: String = "client", clientHost: String = "/127.0.0.1", requireKnownMemberId: Bool = true) {
        self.groupId = groupId; self.memberId = memberId; self.groupInstanceId = groupInstanceId
        self.protocolType = protocolType; self.protocols = protocols; self.sessionTimeoutMs = sessionTimeoutMs
        self.rebalanceTimeoutMs = rebalanceTimeoutMs; self.clientId = clientId; self.clientHost = clientHost
        self.requireKnownMemberId = requireKnownMemberId
    }
}

public struct JoinedMember: Sendable, Equatable {
    public var memberId: String
    public var groupInstanceId: String?
    public var metadata: [UInt8]
}

public struct JoinResult: Sendable {
    public var error: Int16
    public var generationId: Int32 = -1
    public var protocolType: String?
    public var protocolName: String?
    public var leader: String = ""
    public var memberId: String
    /// Every member with its metadata for the chosen protocol; only the leader gets them.
    public var members: [JoinedMember] = []
    /// KIP-814: the leader gets the members but must not compute a new assignment.
    public var skipAssignment = false

    public init(error: Int16, memberId: String) { self.error = error; self.memberId = memberId }
}

public struct SyncRequest: Sendable {
    public var groupId: String
    public var generationId: Int32
    public var memberId: String
    public var groupInstanceId: String?
    public var protocolType: String?
    public var protocolName: String?
    public var assignments: [String: [UInt8]]
    public init(groupId: String, generationId: Int32, memberId: String, groupInstanceId: String? = nil,
                protocolType: String? = nil, protocolName: String? = nil, assignments: [String: [UInt8]] = [:]) {
        self.groupId = groupId; self.generationId = generationId; self.memberId = memberId
        self.groupInstanceId = groupInstanceId; self.protocolType = protocolType; self.protocolName = protocolName
        self.assignments = assignments
    }
}

public struct SyncResult: Sendable {
    public var error: Int16
    public var protocolType: String?
    public var protocolName: String?
    public var assignment: [UInt8] = []
    public init(error: Int16) { self.error = error }
}

extension GroupCoordinator {
    // MARK: - JoinGroup

    /// Answers through `completion`, at once or when the rebalance completes (every known
    /// member rejoined, or the rebalance timeout passed).
    public func join(_ req: JoinRequest, completion: @escaping @Sendable (JoinResult) -> Void) {
        withLock { fx in
            func fail(_ code: Int16, _ memberId: String = req.memberId) {
                fx.append { completion(JoinResult(error: code, memberId: memberId)) }
            }
            if let e = precheck(req.groupId) { return fail(e) }
            guard req.sessionTimeoutMs >= config.minSessionTimeoutMs && req.sessionTimeoutMs <= config.maxSessionTimeoutMs else {
                return fail(GroupErrorCode.invalidSessionTimeout)
            }
            let now = clock()
            let g: Group
            if let existing = groups[req.groupId] {
                g = existing
            } else {
                guard req.memberId.isEmpty else { return fail(GroupErrorCode.unknownMemberId) }
                g = Group(groupId: req.groupId, partition: partition(for: req.groupId), nowMs: now)
                groups[req.groupId] = g
            }
            if g.state == .dead { return fail(GroupErrorCode.coordinatorNotAvailable) }
            if let cg = g.consumer {
                // A consumer-protocol group with members refuses classic members (no migration).
                guard cg.members.isEmpty else { return fail(GroupErrorCode.inconsistentGroupProtocol) }
                g.consumer = nil
                // Its consumer-protocol records leave the log with it (written before the
                // classic group's own records, so a reload sees a classic group).
                if cg.hasRecords {
                    queueAppend(partition: g.partition, records: cg.tombstones(groupId: g.groupId)) { _ in }
                }
            }
            if req.memberId.isEmpty {
                joinUnknownMember(g, req, now: now, completion, &fx)
            } else {
                joinKnownMember(g, req, now: now, completion, &fx)
            }
            // A group created by a join that was turned away holds nothing worth keeping.
            if g.state == .empty && g.members.isEmpty && g.pendingMembers.isEmpty && g.offsets.isEmpty && g.generationId == 0 {
                groups[req.groupId] = nil
            }
        }
    }

    private func joinUnknownMember(_ g: Group, _ req: JoinRequest, now: Int64,
                                   _ completion: @escaping @Sendable (JoinResult) -> Void, _ fx: inout [() -> Void]) {
        guard g.supports(protocolType: req.protocolType, protocols: req.protocols) else {
            fx.append { completion(JoinResult(error: GroupErrorCode.inconsistentGroupProtocol, memberId: "")) }
            return
        }
        if let instance = req.groupInstanceId, let oldId = g.staticMembers[instance] {
            return rejoinStaticMember(g, instance: instance, oldId: oldId, req, now: now, completion, &fx)
        }
        guard g.members.count + g.pendingMembers.count < config.maxSize else {
            fx.append { completion(JoinResult(error: GroupErrorCode.groupMaxSizeReached, memberId: "")) }
            return
        }
        let memberId = GroupCoordinator.newMemberId(req.groupInstanceId ?? req.clientId)
        if req.requireKnownMemberId && req.groupInstanceId == nil {
            // KIP-394: the id is reserved for one session timeout; the member rejoins with it.
            g.pendingMembers[memberId] = now + Int64(req.sessionTimeoutMs)
            fx.append { completion(JoinResult(error: GroupErrorCode.memberIdRequired, memberId: memberId)) }
            return
        }
        addMemberAndRebalance(g, memberId: memberId, req, now: now, completion, &fx)
    }

    /// KIP-345: a static member that restarted (unknown member id, known instance id) takes
    /// over its old member id. Its old incarnation's parked requests are fenced. In a stable
    /// group whose selected protocol its join does not change there is no rebalance (its
    /// protocols' metadata may differ, as in Kafka): it gets the current generation back and
    /// re-syncs its old assignment. A restarted leader too: told to skip the assignment when
    /// it can be (KIP-814, JoinGroup v9+); an older client is answered with the old leader's
    /// id, so that it does not take itself for the leader and assign (Kafka does the same).
    private func rejoinStaticMember(_ g: Group, instance: String, oldId: String, _ req: JoinRequest, now: Int64,
                                    _ completion: @escaping @Sendable (JoinResult) -> Void, _ fx: inout [() -> Void]) {
        let m = g.members[oldId]!
        if let cb = m.joinCallback {
            m.joinCallback = nil
            fx.append { cb(JoinResult(error: GroupErrorCode.fencedInstanceId, memberId: oldId)) }
        }
        if let cb = m.syncCallback {
            m.syncCallback = nil
            fx.append { cb(SyncResult(error: GroupErrorCode.fencedInstanceId)) }
        }
        let newId = GroupCoordinator.newMemberId(instance)
        let wasLeader = g.leaderId == oldId
        g.replaceStaticMember(instance, oldId: oldId, newId: newId)
        update(m, req, now: now)
        if g.state == .stable && g.selectProtocol() == g.protocolName {
            var result = joinResult(g, for: m)
            if wasLeader && !req.supportsSkipAssignment {
                result.leader = oldId
                result.members = []
            }
            result.skipAssignment = wasLeader && req.supportsSkipAssignment
            fx.append { completion(result) }
            persistGroup(g, &fx)   // the new member id must survive a coordinator restart
            return
        }
        m.joinCallback = completion
        if g.state == .preparingRebalance { tryCompleteJoin(g, now: now, &fx) } else { prepareRebalance(g, now: now, &fx) }
    }

    private func joinKnownMember(_ g: Group, _ req: JoinRequest, now: Int64,
                                 _ completion: @escaping @Sendable (JoinResult) -> Void, _ fx: inout [() -> Void]) {
        func fail(_ code: Int16) { fx.append { completion(JoinResult(error: code, memberId: req.memberId)) } }
        if g.pendingMembers.removeValue(forKey: req.memberId) != nil {
            guard g.supports(protocolType: req.protocolType, protocols: req.protocols) else {
                return fail(GroupErrorCode.inconsistentGroupProtocol)
            }
            return addMemberAndRebalance(g, memberId: req.memberId, req, now: now, completion, &fx)
        }
        if g.state == .empty { return fail(GroupErrorCode.unknownMemberId) }
        if let e = validateMember(g, memberId: req.memberId, groupInstanceId: req.groupInstanceId) { return fail(e) }
        guard g.supports(protocolType: req.protocolType, protocols: req.protocols) else {
            return fail(GroupErrorCode.inconsistentGroupProtocol)
        }
        let m = g.members[req.memberId]!
        m.lastHeartbeatMs = now
        switch g.state {
        case .preparingRebalance:
            if let old = m.joinCallback {
                fx.append { old(JoinResult(error: GroupErrorCode.rebalanceInProgress, memberId: req.memberId)) }
            }
            update(m, req, now: now)
            m.joinCallback = completion
            tryCompleteJoin(g, now: now, &fx)
        case .completingRebalance where m.sameProtocols(req.protocols),
             .stable where m.sameProtocols(req.protocols) && m.memberId != g.leaderId:
            // Nothing changed: the member lost its JoinGroup answer; hand it out again.
            let result = joinResult(g, for: m)
            fx.append { completion(result) }
        case .completingRebalance, .stable:
            update(m, req, now: now)
            m.joinCallback = completion
            prepareRebalance(g, now: now, &fx)
        case .empty, .dead:
            fail(GroupErrorCode.unknownMemberId)
        }
    }

    private func update(_ m: Member, _ req: JoinRequest, now: Int64) {
        m.protocols = req.protocols
        m.protocolType = req.protocolType
        m.sessionTimeoutMs = req.sessionTimeoutMs
        m.rebalanceTimeoutMs = req.rebalanceTimeoutMs
        m.clientId = req.clientId
        m.clientHost = req.clientHost
        m.lastHeartbeatMs = now
    }

    private func addMemberAndRebalance(_ g: Group, memberId: String, _ req: JoinRequest, now: Int64,
                                       _ completion: @escaping @Sendable (JoinResult) -> Void, _ fx: inout [() -> Void]) {
        let m = Member(memberId: memberId, groupInstanceId: req.groupInstanceId, clientId: req.clientId,
                       clientHost: req.clientHost, sessionTimeoutMs: req.sessionTimeoutMs,
                       rebalanceTimeoutMs: req.rebalanceTimeoutMs, protocolType: req.protocolType,
                       protocols: req.protocols, nowMs: now)
        m.isNew = true
        m.joinCallback = completion
        if g.members.isEmpty { g.protocolType = req.protocolType }
        g.add(m)
        if g.state == .preparingRebalance {
            if g.initialDelayUntilMs != nil {
                // Another member of a starting fleet: wait one more delay, within the timeout.
                g.joinDeadlineMs = min(now + config.initialRebalanceDelayMs, g.joinDeadlineMaxMs)
                g.initialDelayUntilMs = g.joinDeadlineMs
            }
            tryCompleteJoin(g, now: now, &fx)
        } else {
            prepareRebalance(g, now: now, &fx)
        }
    }

    /// Starts a join phase: every member must rejoin within the rebalance timeout. Parked
    /// SyncGroups of the generation being abandoned learn of it with REBALANCE_IN_PROGRESS.
    func prepareRebalance(_ g: Group, now: Int64, _ fx: inout [() -> Void]) {
        if g.state == .completingRebalance {
            for m in g.members.values {
                m.assignment = []
                if let cb = m.syncCallback {
                    m.syncCallback = nil
                    fx.append { cb(SyncResult(error: GroupErrorCode.rebalanceInProgress)) }
                }
            }
        }
        let wasEmpty = g.state == .empty
        g.transition(to: .preparingRebalance, nowMs: now)
        let timeout = g.maxRebalanceTimeoutMs
        if wasEmpty && config.initialRebalanceDelayMs > 0 {
            g.joinDeadlineMaxMs = now + timeout
            g.joinDeadlineMs = min(now + config.initialRebalanceDelayMs, g.joinDeadlineMaxMs)
            g.initialDelayUntilMs = g.joinDeadlineMs
        } else {
            g.joinDeadlineMs = now + timeout
            g.initialDelayUntilMs = nil
        }
        tryCompleteJoin(g, now: now, &fx)
    }

    /// Completes the join phase early once every member rejoined (never during the
    /// initial delay of a new group, which exists to gather more members).
    func tryCompleteJoin(_ g: Group, now: Int64, _ fx: inout [() -> Void]) {
        guard g.state == .preparingRebalance, g.initialDelayUntilMs == nil, g.allMembersJoined else { return }
        completeJoin(g, now: now, &fx)
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation moves
    /// on, a protocol is chosen, and every parked JoinGroup is answered (the leader with the
    /// member list to assign).
    func completeJoin(_ g: Group, now: Int64, _ fx: inout [() -> Void]) {
        precondition(g.state == .preparingRebalance)
        for id in g.memberOrder where g.members[id]?.isAwaitingJoin == false { g.remove(id) }
        g.initialDelayUntilMs = nil
        g.generationId += 1
        if g.members.isEmpty {
            g.protocolName = nil
            g.leaderId = nil
            g.transition(to: .empty, nowMs: now)
            persistGroup(g, &fx)
            return
        }
        g.protocolName = g.selectProtocol()
        if g.leaderId.flatMap({ g.members[$0] }) == nil { g.leaderId = g.memberOrder.first }
        g.transition(to: .completingRebalance, nowMs: now)
        g.syncDeadlineMs = now + g.maxRebalanceTimeoutMs
        for m in g.members.values {
            let cb = m.joinCallback!
            m.joinCallback = nil
            m.isNew = false
            m.lastHeartbeatMs = now
            let result = joinResult(g, for: m)
            fx.append { cb(result) }
        }
    }

    private func joinResult(_ g: Group, for m: Member) -> JoinResult {
        var result = JoinResult(error: GroupErrorCode.none, memberId: m.memberId)
        result.generationId = g.generationId
        result.protocolType = g.protocolType
        result.protocolName = g.protocolName
        result.leader = g.leaderId ?? ""
        if m.memberId == g.leaderId {
            result.members = g.memberOrder.compactMap { g.members[$0] }.map {
                JoinedMember(memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, metadata: $0.metadata(for: g.protocolName))
            }
        }
        return result
    }

    // MARK: - SyncGroup

    /// Answers at once in a stable group; in CompletingRebalance, parks until the leader's
    /// assignment is durable in `__consumer_offsets`.
    public func sync(_ req: SyncRequest, completion: @escaping @Sendable (SyncResult) -> Void) {
        withLock { fx in
            func fail(_ code: Int16) { fx.append { completion(SyncResult(error: code)) } }
            if let e = precheck(req.groupId) { return fail(e) }
            guard let g = groups[req.groupId] else { return fail(GroupErrorCode.unknownMemberId) }
            if let e = validateMember(g, memberId: req.memberId, groupInstanceId: req.groupInstanceId) { return fail(e) }
            guard req.generationId == g.generationId else { return fail(GroupErrorCode.illegalGeneration) }
            if let t = req.protocolType, t != g.protocolType { return fail(GroupErrorCode.inconsistentGroupProtocol) }
            if let n = req.protocolName, n != g.protocolName { return fail(GroupErrorCode.inconsistentGroupProtocol) }
            let now = clock()
            let m = g.members[req.memberId]!
            m.lastHeartbeatMs = now
            switch g.state {
            case .empty, .dead:
                fail(GroupErrorCode.unknownMemberId)
            case .preparingRebalance:
                fail(GroupErrorCode.rebalanceInProgress)
            case .stable:
                var result = SyncResult(error: GroupErrorCode.none)
                result.protocolType = g.protocolType
                result.protocolName = g.protocolName
                result.assignment = m.assignment
                fx.append { completion(result) }
            case .completingRebalance:
                if let old = m.syncCallback { fx.append { old(SyncResult(error: GroupErrorCode.rebalanceInProgress)) } }
                m.syncCallback = completion
                guard req.memberId == g.leaderId else { return }
                for member in g.members.values { member.assignment = req.assignments[member.memberId] ?? [] }
                let generation = g.generationId
                persistGroup(g, &fx) { [self] error, fx in
                    guard g.state == .completingRebalance, g.generationId == generation, groups[g.groupId] === g else { return }
                    if error != nil {
                        for member in g.members.values {
                            if let cb = member.syncCallback {
                                member.syncCallback = nil
                                fx.append { cb(SyncResult(error: GroupErrorCode.coordinatorNotAvailable)) }
                            }
                        }
                        prepareRebalance(g, now: clock(), &fx)
                        return
                    }
                    g.transition(to: .stable, nowMs: clock())
                    for member in g.members.values {
                        guard let cb = member.syncCallback else { continue }
                        member.syncCallback = nil
                        var result = SyncResult(error: GroupErrorCode.none)
                        result.protocolType = g.protocolType
                        result.protocolName = g.protocolName
                        result.assignment = member.assignment
                        fx.append { cb(result) }
                    }
                }
            }
        }
    }
}
