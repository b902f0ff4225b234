/// DescribeGroups and ListGroups, and loading groups from `__consumer_offsets`.
extension GroupCoordinator {
    public struct MemberDescription: Equatable, Sendable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        public var metadata: [UInt8]
        public var assignment: [UInt8]
    }

    public struct GroupDescription: Equatable, Sendable {
        public var error: Int16
        public var groupId: String
        public var state: GroupState
        public var protocolType: String
        public var protocolName: String
        public var members: [MemberDescription]
    }

    /// Kafka's group summary: an unknown group is described as Dead with no error; member
    /// metadata and assignments are only shown once the group is stable.
    public func describe(_ groupId: String) -> GroupDescription {
        withLock { fx in
            var d = GroupDescription(error: 0, groupId: groupId, state: .dead, protocolType: "", protocolName: "", members: [])
            if let e = precheck(groupId) { d.error = e; return d }
            guard let g = groups[groupId] else { return d }
            applyDeadlines(g, now: clock(), &fx)
            // Kafka's DescribeGroups (v0-5) describes classic groups only: a consumer-protocol
            // group is answered as a group it does not know (Dead); ConsumerGroupDescribe has it.
            if g.consumer != nil { return d }
            d.state = g.state
            d.protocolType = g.protocolType ?? ""
            let stable = g.state == .stable
            d.protocolName = stable ? g.protocolName ?? "" : ""
            d.members = g.memberOrder.compactMap { g.members[$0] }.map { m in
                MemberDescription(memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId,
                                  clientHost: m.clientHost, metadata: stable ? m.metadata(for: g.protocolName) : [],
                                  assignment: stable ? m.assignment : [])
            }
            return d
        }
    }

    public struct ListedGroup: Equatable, Sendable {
        public var groupId: String
        public var protocolType: String
        public var state: String
        /// "classic" or "consumer" (KIP-848), as ListGroups v5 names group types.
        public var groupType: String
    }

    /// Every loaded group, optionally only those in `states` / of `types` (lower-case names);
    /// and whether partitions are still loading (Kafka answers COORDINATOR_LOAD_IN_PROGRESS
    /// with what it has).
    public func listGroups(states: Set<String>?, types: Set<String>? = nil) -> (loading: Bool, groups: [ListedGroup]) {
        withLock { fx in
            let now = clock()
            for g in groups.values { applyDeadlines(g, now: now, &fx) }
            let listed = groups.values
                .filter { !loadingPartitions.contains($0.partition) && $0.state != .dead }
                .sorted { $0.groupId < $1.groupId }
                .map { g in
                    g.consumer.map { ListedGroup(groupId: g.groupId, protocolType: "consumer", state: $0.state.rawValue, groupType: "consumer") }
                        ?? ListedGroup(groupId: g.groupId, protocolType: g.protocolType ?? "", state: g.state.rawValue, groupType: "classic")
                }
                .filter { (states?.contains($0.state.lowercased()) ?? true) && (types?.contains($0.groupType) ?? true) }
            return (!loadingPartitions.isEmpty, listed)
        }
    }

    public struct ConsumerMemberDescription: Equatable, Sendable {
        public var memberId: String
        public var instanceId: String?
        public var rackId: String?
        public var memberEpoch: Int32
        public var clientId: String
        public var clientHost: String
        public var subscribedTopicNames: [String]
        public var subscribedTopicRegex: String?
        public var assignment: [TopicPartition]
        public var targetAssignment: [TopicPartition]
    }

    public struct ConsumerGroupDescription: Equatable, Sendable {
        public var error: Int16
        public var errorMessage: String?
        public var groupId: String
        public var state: String = ""
        public var groupEpoch: Int32 = 0
        public var assignmentEpoch: Int32 = 0
        public var assignorName: String = ""
        public var members: [ConsumerMemberDescription] = []
    }

    /// ConsumerGroupDescribe: GROUP_ID_NOT_FOUND for an unknown group or a classic one.
    public func describeConsumerGroup(_ groupId: String) -> ConsumerGroupDescription {
        withLock { _ in
            var d = ConsumerGroupDescription(error: GroupErrorCode.none, groupId: groupId)
            if let e = precheck(groupId) { d.error = e; return d }
            guard let g = groups[groupId], g.state != .dead, let cg = g.consumer else {
                d.error = GroupErrorCode.groupIdNotFound
                d.errorMessage = groups[groupId] == nil ? "Group \(groupId) not found." : "Group \(groupId) is not a consumer group."
                return d
            }
            d.state = cg.state.rawValue
            d.groupEpoch = cg.groupEpoch
            d.assignmentEpoch = cg.assignmentEpoch
            d.assignorName = cg.assignorName
            d.members = cg.members.values.sorted { $0.memberId < $1.memberId }.map { m in
                ConsumerMemberDescription(memberId: m.memberId, instanceId: m.instanceId, rackId: m.rackId, memberEpoch: m.memberEpoch,
                                          clientId: m.clientId, clientHost: m.clientHost, subscribedTopicNames: m.subscribedTopics,
                                          subscribedTopicRegex: m.subscribedRegex?.pattern,
                                          assignment: m.assigned.sorted(), targetAssignment: (cg.target[m.memberId] ?? []).sorted())
            }
            return d
        }
    }

    // MARK: - Loading

    public func isLoading(partition: Int32) -> Bool { withLock { _ in loadingPartitions.contains(partition) } }

    /// Replays decoded `__consumer_offsets` records of a partition that is loading, in log
    /// order: later records win, tombstones delete.
    public func replay(partition: Int32, _ records: [GroupRecords.Decoded]) {
        withLock { _ in
            // Unloaded meanwhile (this broker lost the partition's leadership): nothing to do.
            guard loadingPartitions.contains(partition) else { return }
            let now = clock()
            func group(_ id: String) -> Group {
                if let g = groups[id] { return g }
                let g = Group(groupId: id, partition: partition, nowMs: now)
                groups[id] = g
                return g
            }
            for record in records {
                switch record {
                case .offset(let id, let tp, let offset):
                    if let offset {
                        group(id).offsets[tp] = offset
                    } else if let g = groups[id] {
                        g.offsets[tp] = nil
                    }
                case .group(let id, nil):
                    guard let g = groups[id] else { continue }
                    let fresh = Group(groupId: id, partition: partition, nowMs: now)
                    fresh.offsets = g.offsets
                    fresh.consumerLoad = g.consumerLoad
                    groups[id] = fresh
                case .consumer(let id, let r):
                    let g = group(id)
                    var load = g.consumerLoad ?? LoadedConsumerGroup()
                    load.apply(r)
                    g.consumerLoad = load
                case .group(let id, let value?):
                    let g = Group(groupId: id, partition: partition, nowMs: now)
                    g.offsets = groups[id]?.offsets ?? [:]
                    g.generationId = value.generation
                    g.protocolType = value.protocolType.isEmpty ? nil : value.protocolType
                    g.protocolName = value.protocol
                    for mm in value.members {
                        let m = Member(memberId: mm.memberId, groupInstanceId: mm.groupInstanceId, clientId: mm.clientId,
                                       clientHost: mm.clientHost, sessionTimeoutMs: mm.sessionTimeout,
                                       rebalanceTimeoutMs: mm.rebalanceTimeout, protocolType: value.protocolType,
                                       protocols: [(name: value.protocol ?? "", metadata: mm.subscription)], nowMs: now)
                        m.assignment = mm.assignment
                        g.add(m)
                    }
                    g.leaderId = value.leader.flatMap { g.members[$0] != nil ? $0 : nil } ?? g.memberOrder.first
                    g.state = g.members.isEmpty ? .empty : .stable
                    groups[id] = g
                }
            }
        }
    }

    /// This coordinator takes over a partition (its broker now leads it): its groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS until the owner has replayed it and calls `finishLoading`.
    public func beginLoading(partition: Int32) {
        withLock { _ in
            for (id, g) in groups where g.partition == partition { groups[id] = nil }
            ownedPartitions?.insert(partition)
            loadingPartitions.insert(partition)
        }
    }

    /// This coordinator gives a partition up (its broker no longer leads it): its groups are
    /// dropped from memory (their state is in the partition, for the next leader to load) and
    /// answer NOT_COORDINATOR from now on. Returns how many groups were dropped.
    @discardableResult
    public func unload(partition: Int32) -> Int {
        withLock { _ in
            let dropped = groups.filter { $0.value.partition == partition }.map(\.key)
            for id in dropped { groups[id] = nil }
            if ownedPartitions == nil { ownedPartitions = Set(0..<config.offsetsPartitions) }
            ownedPartitions!.remove(partition)
            loadingPartitions.remove(partition)
            return dropped.count
        }
    }

    /// True if this coordinator serves the groups of `partition`.
    public func owns(partition: Int32) -> Bool { withLock { _ in ownedPartitions?.contains(partition) ?? true } }

    /// The partition's groups become available. A group tombstoned down to nothing is gone;
    /// restored members (classic and consumer) get a fresh session to heartbeat in, and a
    /// consumer member still holding revoked partitions a fresh rebalance timeout.
    public func finishLoading(partition: Int32) {
        withLock { _ in
            let now = clock()
            loadingPartitions.remove(partition)
            for (id, g) in groups where g.partition == partition {
                if let load = g.consumerLoad {
                    g.consumerLoad = nil
                    if !load.isEmpty {
                        let (cg, dropped) = load.build(nowMs: now)
                        cg.assignorName = preferredAssignor(cg).rawValue
                        g.consumer = cg
                        // Members whose partitions another member also claims rejoin.
                        if !dropped.isEmpty { persistConsumer(g, cg) }
                    }
                }
                if g.state == .empty && g.offsets.isEmpty && g.generationId == 0 && g.consumer?.members.isEmpty != false {
                    groups[id] = nil
                    if let cg = g.consumer, cg.hasRecords {
                        queueAppend(partition: partition, records: cg.tombstones(groupId: id)) { _ in }
                    }
                    continue
                }
                for m in g.members.values { m.lastHeartbeatMs = now }
            }
        }
    }
}
