import Foundation
import SiltProtocol

/// One ConsumerGroupHeartbeat, as the coordinator needs it (the broker maps topic ids to names).
public struct ConsumerHeartbeatRequest: Sendable {
    public var groupId: String
    public var memberId: String
    public var memberEpoch: Int32
    public var instanceId: String?
    public var rackId: String?
    public var rebalanceTimeoutMs: Int32 = -1
    public var subscribedTopicNames: [String]?
    public var subscribedTopicRegex: String?
    public var serverAssignor: String?
    /// The partitions the member owns; nil: unchanged since its last heartbeat.
    public var ownedPartitions: [TopicPartition]?
    public var clientId: String = ""
    public var clientHost: String = ""
    /// The request version: v1+ members choose their own member id.
    public var version: Int16 = 1

    public init(groupId: String, memberId: String, memberEpoch: Int32) {
        self.groupId = groupId
        self.memberId = memberId
        self.memberEpoch = memberEpoch
    }
}

public struct ConsumerHeartbeatResult: Equatable, Sendable {
    public var error: Int16 = GroupErrorCode.none
    public var errorMessage: String?
    public var memberId: String?
    public var memberEpoch: Int32 = 0
    public var heartbeatIntervalMs: Int32 = 0
    /// The member's assignment, sent when it changed or differs from what the member reported.
    public var assignment: [TopicPartition]?
}

/// KIP-848's ConsumerGroupHeartbeat: joins, heartbeats, leaves and the reconciliation of a
/// consumer-protocol group (see `ConsumerGroup`). Nothing parks: an answer waits only for its
/// records to be durable.
///
/// Coexistence with classic groups: a group id belongs to one protocol while it has members.
/// A heartbeat for a classic group with members gets GROUP_ID_NOT_FOUND, a JoinGroup for a
/// consumer group with members INCONSISTENT_GROUP_PROTOCOL; an empty group of either kind
/// (committed offsets only) becomes the kind of whoever joins it, keeping its offsets.
extension GroupCoordinator {
    /// `partitionCount`: the partition count of a topic, nil if it does not exist; `topicNames`:
    /// every topic, for regex subscriptions (both called under the coordinator's lock: they
    /// must not block).
    ///
    /// `completion` gets the answer once what the heartbeat changed is durable in
    /// `__consumer_offsets` (at once when it changed nothing), as Kafka answers only after its
    /// records are written; a failed write answers COORDINATOR_NOT_AVAILABLE (the client
    /// retries) and the group's next write rewrites all its records.
    public func consumerHeartbeat(_ req: ConsumerHeartbeatRequest, topicNames: () -> [String] = { [] },
                                  partitionCount: (String) -> Int32?,
                                  completion: @escaping @Sendable (ConsumerHeartbeatResult) -> Void) {
        withLock { fx in
            let result = consumerHeartbeatLocked(req, topicNames: topicNames, partitionCount: partitionCount)
            guard let g = groups[req.groupId], let cg = g.consumer else {
                fx.append { completion(result) }
                return
            }
            let queued = persistConsumer(g, cg) { error, fx in
                var answer = result
                if error != nil {
                    answer = ConsumerHeartbeatResult()
                    answer.error = GroupErrorCode.coordinatorNotAvailable
                }
                fx.append { completion(answer) }
            }
            if !queued { fx.append { completion(result) } }
        }
    }

    /// Queues the records of what changed in `cg` since it was last written (see
    /// `ConsumerGroup.changedRecords`); `done` runs under the lock once they are durable.
    /// Returns false when nothing needed writing (`done` is not called).
    @discardableResult
    func persistConsumer(_ g: Group, _ cg: ConsumerGroup, done: ((Error?, inout [() -> Void]) -> Void)? = nil) -> Bool {
        // A group created by a refused first heartbeat has nothing worth a record.
        if cg.written.isEmpty && cg.members.isEmpty && cg.dirty.isEmpty && !cg.rewriteAll { return false }
        let records = cg.changedRecords(groupId: g.groupId)
        guard !records.isEmpty else { return false }
        queueAppend(partition: g.partition, records: records) { [self] error in
            self.withLock { fx in
                // The log may lack any of them now: the group's next write rewrites them all.
                if error != nil, g.consumer === cg {
                    cg.rewriteAll = true
                    cg.failedKeys.formUnion(records.map(\.key))
                }
                done?(error, &fx)
            }
        }
        return true
    }

    private func consumerHeartbeatLocked(_ req: ConsumerHeartbeatRequest, topicNames: () -> [String],
                                         partitionCount: (String) -> Int32?) -> ConsumerHeartbeatResult {
        var out = ConsumerHeartbeatResult()
        func fail(_ code: Int16, _ message: String? = nil) -> ConsumerHeartbeatResult {
            out.error = code
            out.errorMessage = message
            return out
        }
        if let e = precheck(req.groupId) { return fail(e) }
        if let (code, message) = invalid(req) { return fail(code, message) }
        let now = clock()
        let g: Group
        if let existing = groups[req.groupId] {
            g = existing
        } else {
            guard req.memberEpoch == 0 else { return fail(GroupErrorCode.unknownMemberId) }
            g = Group(groupId: req.groupId, partition: partition(for: req.groupId), nowMs: now)
            groups[req.groupId] = g
        }
        if g.state == .dead { return fail(GroupErrorCode.coordinatorNotAvailable) }
        if g.consumer == nil {
            guard g.members.isEmpty && g.state == .empty else {
                return fail(GroupErrorCode.groupIdNotFound, "Group \(req.groupId) is not a consumer group.")
            }
            g.consumer = ConsumerGroup()
        }
        let cg = g.consumer!
        let epochBefore = cg.groupEpoch
        let m: ConsumerMember
        switch req.memberEpoch {
        case ConsumerMember.leaveEpoch, ConsumerMember.staticLeaveEpoch:
            return consumerLeave(cg, req)
        case 0:
            switch consumerJoin(cg, req, now: now) {
            case .success(let joined): m = joined
            case .failure(let refusal): return fail(refusal.code, refusal.message)
            }
        default:
            guard let known = cg.members[req.memberId] else { return fail(GroupErrorCode.unknownMemberId) }
            if let e = validateEpoch(known, req) { return fail(e) }
            m = known
            m.lastHeartbeatMs = now
            update(cg, m, req)
        }
        refreshTopics(cg, topicNames: topicNames, partitionCount: partitionCount, nowMs: now)
        // One heartbeat moves the group one epoch, whatever it changed (join, subscription, metadata).
        cg.groupEpoch = min(cg.groupEpoch, epochBefore + 1)
        cg.computeTargetIfNeeded(assignor: preferredAssignor(cg))
        let before = m.assigned
        let owned = req.ownedPartitions.map { Set($0) }
        cg.reconcile(m, owned: owned, nowMs: now)
        assert({ cg.checkOwnership(); return true }())
        out.memberId = m.memberId
        out.memberEpoch = m.memberEpoch
        out.heartbeatIntervalMs = consumerTimeouts(req.groupId).heartbeatIntervalMs
        if req.memberEpoch == 0 || m.assigned != before || (owned != nil && owned != m.assigned) {
            out.assignment = m.assigned.sorted()
        }
        return out
    }

    /// Kafka's request checks (`throwIfConsumerGroupHeartbeatRequestIsInvalid`).
    private func invalid(_ req: ConsumerHeartbeatRequest) -> (Int16, String)? {
        if req.memberId.isEmpty && (req.version >= 1 || req.memberEpoch != 0) {
            return (GroupErrorCode.invalidRequest, "MemberId can't be empty.")
        }
        if req.memberEpoch == ConsumerMember.staticLeaveEpoch && req.instanceId == nil {
            return (GroupErrorCode.invalidRequest, "InstanceId can't be null when leaving as a static member.")
        }
        if req.memberEpoch == 0 {
            if req.rebalanceTimeoutMs == -1 { return (GroupErrorCode.invalidRequest, "RebalanceTimeoutMs must be provided in first request.") }
            if req.subscribedTopicNames == nil && req.subscribedTopicRegex == nil {
                return (GroupErrorCode.invalidRequest, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
            }
            if !(req.ownedPartitions ?? []).isEmpty { return (GroupErrorCode.invalidRequest, "TopicPartitions must be empty when (re-)joining.") }
        } else if req.memberEpoch < ConsumerMember.staticLeaveEpoch {
            return (GroupErrorCode.invalidRequest, "MemberEpoch is invalid.")
        }
        if let regex = req.subscribedTopicRegex, !regex.isEmpty, SubscriptionRegex(regex) == nil {
            return (KafkaErrorCode.invalidRegularExpression, "SubscribedTopicRegex \(regex) is not a valid regular expression.")
        }
        if let name = req.serverAssignor, ConsumerAssignors.Name(rawValue: name) == nil || !config.consumerAssignors.contains(name) {
            return (KafkaErrorCode.unsupportedAssignor, "ServerAssignor \(name) is not supported. Supported assignors: \(config.consumerAssignors.joined(separator: ", ")).")
        }
        return nil
    }

    struct Refusal: Error {
        var code: Int16
        var message: String?
    }

    /// Epoch 0: a new member, a static member's new incarnation, or a member that was
    /// fenced rejoining (its old incarnation and partitions are dropped first).
    private func consumerJoin(_ cg: ConsumerGroup, _ req: ConsumerHeartbeatRequest, now: Int64) -> Result<ConsumerMember, Refusal> {
        let memberId = req.memberId.isEmpty ? GroupCoordinator.newMemberId("consumer") : req.memberId
        let m = ConsumerMember(memberId: memberId, instanceId: req.instanceId, clientId: req.clientId, clientHost: req.clientHost,
                               rebalanceTimeoutMs: req.rebalanceTimeoutMs, nowMs: now)
        if let instance = req.instanceId, let oldId = cg.staticMembers[instance] {
            let old = cg.members[oldId]!
            if old.memberEpoch != ConsumerMember.staticLeaveEpoch && oldId != memberId {
                return .failure(Refusal(code: KafkaErrorCode.unreleasedInstanceId,
                                        message: "Static member \(instance) is still in use by member \(oldId)."))
            }
            m.subscribedTopics = old.subscribedTopics
            m.subscribedRegex = old.subscribedRegex
            m.serverAssignor = old.serverAssignor
            cg.replaceStatic(oldId: oldId, with: m)
            update(cg, m, req)
            return .success(m)
        }
        if cg.members[memberId] != nil {
            cg.remove(memberId)
            cg.groupEpoch += 1
        }
        guard cg.members.count < config.consumerMaxSize else {
            return .failure(Refusal(code: GroupErrorCode.groupMaxSizeReached,
                                    message: "The consumer group has reached its maximum capacity of \(config.consumerMaxSize) members."))
        }
        cg.add(m)
        cg.groupEpoch += 1
        update(cg, m, req)
        return .success(m)
    }

    /// Applies what a heartbeat changed; a new subscription or assignor bumps the group epoch.
    private func update(_ cg: ConsumerGroup, _ m: ConsumerMember, _ req: ConsumerHeartbeatRequest) {
        if req.rebalanceTimeoutMs >= 0 { m.rebalanceTimeoutMs = req.rebalanceTimeoutMs }
        if let rack = req.rackId { m.rackId = rack }
        if !req.clientId.isEmpty { m.clientId = req.clientId }
        var changed = false
        if let topics = req.subscribedTopicNames, Array(Set(topics)).sorted() != m.subscribedTopics {
            m.subscribedTopics = Array(Set(topics)).sorted()
            changed = true
        }
        if let pattern = req.subscribedTopicRegex, pattern != (m.subscribedRegex?.pattern ?? "") {
            // An empty regex clears it (the member subscribes by name only).
            m.subscribedRegex = pattern.isEmpty ? nil : SubscriptionRegex(pattern)
            m.regexMatches = []
            changed = true
        }
        if let assignor = req.serverAssignor, assignor != m.serverAssignor {
            m.serverAssignor = assignor
            changed = true
        }
        if changed { cg.groupEpoch += 1 }
        cg.dirty.insert(m.memberId)
    }

    /// Kafka's `throwIfMemberEpochIsInvalid`: a member ahead of the coordinator, or behind it
    /// by more than one lost response, is fenced and rejoins.
    private func validateEpoch(_ m: ConsumerMember, _ req: ConsumerHeartbeatRequest) -> Int16? {
        if req.memberEpoch == m.memberEpoch { return nil }
        if req.memberEpoch == m.previousMemberEpoch && req.memberEpoch < m.memberEpoch,
           let owned = req.ownedPartitions, Set(owned).isSubset(of: m.assigned) {
            return nil
        }
        return KafkaErrorCode.fencedMemberEpoch
    }

    /// Epoch -1 leaves (the member's partitions are free at once); -2 is a static member's
    /// temporary leave: it keeps its partitions until it rejoins or its session expires.
    private func consumerLeave(_ cg: ConsumerGroup, _ req: ConsumerHeartbeatRequest) -> ConsumerHeartbeatResult {
        var out = ConsumerHeartbeatResult(memberId: req.memberId, memberEpoch: req.memberEpoch)
        let id = req.instanceId.flatMap { cg.staticMembers[$0] } ?? req.memberId
        guard let m = cg.members[id], id == req.memberId else {
            out.error = req.instanceId != nil && cg.members[id] != nil ? GroupErrorCode.fencedInstanceId : GroupErrorCode.unknownMemberId
            return out
        }
        if req.memberEpoch == ConsumerMember.staticLeaveEpoch {
            cg.dirty.insert(id)
            m.previousMemberEpoch = m.memberEpoch == ConsumerMember.staticLeaveEpoch ? m.previousMemberEpoch : m.memberEpoch
            m.memberEpoch = ConsumerMember.staticLeaveEpoch
        } else {
            cg.remove(id)
            cg.groupEpoch += 1
        }
        return out
    }

    /// Picks up regex matches, and partition count changes (and topics created or deleted)
    /// of subscribed topics. Each distinct regex is matched against every topic on each
    /// heartbeat of a group that has one: O(regexes × topics). A regex whose matches changed
    /// is resolved anew (`cg.resolvedRegexes`, written as Kafka's record type 16).
    private func refreshTopics(_ cg: ConsumerGroup, topicNames: () -> [String], partitionCount: (String) -> Int32?,
                               nowMs: Int64) {
        let withRegex = cg.members.values.filter { $0.subscribedRegex != nil }
        if !withRegex.isEmpty {
            let names = topicNames()
            var resolved: [String: Set<String>] = [:]
            for m in withRegex {
                let regex = m.subscribedRegex!
                if resolved[regex.pattern] == nil { resolved[regex.pattern] = Set(names.filter { regex.matches($0) }) }
                let matches = resolved[regex.pattern]!
                if matches != m.regexMatches {
                    m.regexMatches = matches
                    cg.groupEpoch += 1
                }
            }
            for (pattern, topics) in resolved where cg.resolvedRegexes[pattern]?.topics != topics {
                cg.resolvedRegexes[pattern] = ResolvedRegex(topics: topics, resolvedAtMs: nowMs)
            }
        }
        var counts: [String: Int32] = [:]
        for t in cg.subscribedTopics { if let n = partitionCount(t) { counts[t] = n } }
        if counts != cg.topicPartitions {
            cg.topicPartitions = counts
            cg.groupEpoch += 1
        }
    }

    /// The assignor most members ask for (ties: the one listed first in
    /// `group.consumer.assignors`); the first listed when none asks.
    func preferredAssignor(_ cg: ConsumerGroup) -> ConsumerAssignors.Name {
        var votes: [String: Int] = [:]
        for m in cg.members.values { if let a = m.serverAssignor { votes[a, default: 0] += 1 } }
        let ranked = config.consumerAssignors.enumerated().max { a, b in
            let (va, vb) = (votes[a.element] ?? 0, votes[b.element] ?? 0)
            return va != vb ? va < vb : a.offset > b.offset
        }
        return ranked.flatMap { ConsumerAssignors.Name(rawValue: $0.element) } ?? .uniform
    }

    /// The session timeout and heartbeat interval of KIP-848 group `groupId`: its group
    /// configs if it has any, otherwise the broker's.
    func consumerTimeouts(_ groupId: String) -> (sessionTimeoutMs: Int32, heartbeatIntervalMs: Int32) {
        config.consumerGroupTimeouts?(groupId) ?? (config.consumerSessionTimeoutMs, config.consumerHeartbeatIntervalMs)
    }

    /// Session and revocation deadlines of consumer groups (from `tick()`): an expired
    /// member is removed and its partitions freed; a member that kept revoked partitions
    /// past its rebalance timeout is fenced the same way.
    /// Returns true if a member was removed.
    @discardableResult
    func expireConsumerMembers(_ cg: ConsumerGroup, groupId: String, now: Int64) -> Bool {
        let sessionMs = Int64(consumerTimeouts(groupId).sessionTimeoutMs)
        let expired = cg.members.values.filter { m in
            m.lastHeartbeatMs + sessionMs <= now || (m.revocationDeadlineMs.map { $0 <= now } ?? false)
        }
        guard !expired.isEmpty else { return false }
        for m in expired { cg.remove(m.memberId) }
        cg.groupEpoch += 1
        cg.computeTargetIfNeeded(assignor: preferredAssignor(cg))
        return true
    }

    /// Kafka's `ConsumerGroup.validateOffsetCommit` (`version` set) and `validateOffsetFetch`
    /// (nil): a commit without a member (an admin tool, epoch -1) only while the group has no
    /// members; a fetch without one always. A member must exist and send its current epoch.
    func validateConsumerOffsetRequest(_ cg: ConsumerGroup, memberId: String, memberEpoch: Int32, version: Int16?) -> Int16? {
        if memberEpoch < 0 && (version == nil ? memberId.isEmpty : cg.members.isEmpty) { return nil }
        guard let m = cg.members[memberId] else { return GroupErrorCode.unknownMemberId }
        if let version, version < 9 { return KafkaErrorCode.unsupportedVersion }
        if memberEpoch > m.memberEpoch { return KafkaErrorCode.fencedMemberEpoch }
        if memberEpoch < m.memberEpoch { return KafkaErrorCode.staleMemberEpoch }
        return nil
    }
}
