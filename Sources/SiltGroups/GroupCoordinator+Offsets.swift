/// Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and DeleteGroups. A commit is
/// answered once its records are durable in `__consumer_offsets`; until then it is pending,
/// which `requireStable` fetches see as UNSTABLE_OFFSET_COMMIT.
extension GroupCoordinator {
    /// `version`: the OffsetCommit version (v9+ answers GROUP_ID_NOT_FOUND, older ones
    /// ILLEGAL_GENERATION, for a generation-aware commit to a group that does not exist).
    public func commitOffsets(groupId: String, generationId: Int32, memberId: String, groupInstanceId: String?,
                              offsets: [TopicPartition: CommittedOffset], version: Int16,
                              completion: @escaping @Sendable (Int16) -> Void) {
        withLock { fx in
            func fail(_ code: Int16) { fx.append { completion(code) } }
            if let e = precheck(groupId) { return fail(e) }
            let now = clock()
            let g: Group
            if let existing = groups[groupId] {
                g = existing
            } else if generationId < 0 {
                // A "simple" group: a standalone consumer or admin tool committing offsets.
                g = Group(groupId: groupId, partition: partition(for: groupId), nowMs: now)
                groups[groupId] = g
            } else {
                return fail(version >= 9 ? GroupErrorCode.groupIdNotFound : GroupErrorCode.illegalGeneration)
            }
            if let e = validateCommit(g, generationId: generationId, memberId: memberId, groupInstanceId: groupInstanceId,
                                      version: version) {
                return fail(e)
            }
            g.members[memberId]?.lastHeartbeatMs = now
            guard !offsets.isEmpty else { return fail(GroupErrorCode.none) }
            let records = offsets.keys.sorted().map { tp in
                GroupRecord(key: GroupRecords.offsetKey(groupId: groupId, tp), value: GroupRecords.offsetValue(offsets[tp]!))
            }
            for tp in offsets.keys { g.pendingCommits[tp, default: 0] += 1 }
            let partition = g.partition
            queueAppend(partition: partition, records: records) { [self] error in
                self.withLock { fx in
                    for tp in offsets.keys {
                        g.pendingCommits[tp, default: 1] -= 1
                        if g.pendingCommits[tp] == 0 { g.pendingCommits[tp] = nil }
                    }
                    if error == nil {
                        for (tp, o) in offsets { g.offsets[tp] = o }
                        if groups[groupId] == nil && g.state != .dead { groups[groupId] = g }
                    }
                    // A failed append is retriable: the client finds the coordinator again and retries.
                    fx.append { completion(error == nil ? GroupErrorCode.none : GroupErrorCode.coordinatorNotAvailable) }
                }
            }
        }
    }

    /// Kafka's `ClassicGroup.validateOffsetCommit` (`generationId` is the member epoch of a
    /// consumer-protocol group: `ConsumerGroup.validateOffsetCommit`).
    private func validateCommit(_ g: Group, generationId: Int32, memberId: String, groupInstanceId: String?,
                                version: Int16) -> Int16? {
        if g.state == .dead { return GroupErrorCode.coordinatorNotAvailable }
        if let cg = g.consumer {
            return validateConsumerOffsetRequest(cg, memberId: memberId, memberEpoch: generationId, version: version)
        }
        if generationId < 0 && g.state == .empty { return nil }
        if generationId >= 0 || !memberId.isEmpty || groupInstanceId != nil {
            if let e = validateMember(g, memberId: memberId, groupInstanceId: groupInstanceId) { return e }
            if generationId != g.generationId { return GroupErrorCode.illegalGeneration }
        } else if g.state != .empty {
            // No member id and no generation: only accepted while nobody consumes in the group.
            return GroupErrorCode.unknownMemberId
        }
        if g.state == .completingRebalance { return GroupErrorCode.rebalanceInProgress }
        return nil
    }

    public struct FetchedOffset: Equatable, Sendable {
        public var partition: TopicPartition
        public var offset: CommittedOffset?
        public var error: Int16
    }

    /// The committed offsets of `partitions` (nil: every partition the group has one for).
    /// Returns the group-level error and the per-partition answers. `member`: the member id
    /// and epoch of OffsetFetch v9+, checked against a consumer-protocol group.
    public func fetchOffsets(groupId: String, partitions: [TopicPartition]?, requireStable: Bool,
                             member: (id: String, epoch: Int32)? = nil) -> (Int16, [FetchedOffset]) {
        withLock { _ in
            if let e = precheck(groupId) { return (e, []) }
            guard let g = groups[groupId], g.state != .dead else {
                return (GroupErrorCode.none, (partitions ?? []).map { FetchedOffset(partition: $0, offset: nil, error: 0) })
            }
            if let cg = g.consumer, let member,
               let e = validateConsumerOffsetRequest(cg, memberId: member.id, memberEpoch: member.epoch, version: nil) {
                return (e, [])
            }
            return (GroupErrorCode.none, (partitions ?? g.offsets.keys.sorted()).map { tp in
                if requireStable && g.pendingCommits[tp] != nil {
                    return FetchedOffset(partition: tp, offset: nil, error: GroupErrorCode.unstableOffsetCommit)
                }
                return FetchedOffset(partition: tp, offset: g.offsets[tp], error: GroupErrorCode.none)
            })
        }
    }

    /// OffsetDelete (KIP-496): removes committed offsets of topics the group does not
    /// consume now. Answers the group error and one error per partition.
    public func deleteOffsets(groupId: String, partitions: [TopicPartition],
                              completion: @escaping @Sendable (Int16, [TopicPartition: Int16]) -> Void) {
        withLock { fx in
            if let e = precheck(groupId) { fx.append { completion(e, [:]) }; return }
            guard let g = groups[groupId], g.state != .dead else {
                fx.append { completion(GroupErrorCode.groupIdNotFound, [:]) }
                return
            }
            applyDeadlines(g, now: clock(), &fx)
            if g.state != .empty && g.protocolType != "consumer" && g.consumer == nil {
                fx.append { completion(GroupErrorCode.nonEmptyGroup, [:]) }
                return
            }
            var errors: [TopicPartition: Int16] = [:]
            var deleting: [TopicPartition] = []
            for tp in partitions {
                if g.isSubscribed(to: tp.topic) {
                    errors[tp] = GroupErrorCode.groupSubscribedToTopic
                } else {
                    errors[tp] = GroupErrorCode.none
                    if g.offsets[tp] != nil { deleting.append(tp) }
                }
            }
            guard !deleting.isEmpty else { fx.append { completion(GroupErrorCode.none, errors) }; return }
            let records = deleting.map { GroupRecord(key: GroupRecords.offsetKey(groupId: groupId, $0), value: nil) }
            let partition = g.partition
            let (deleted, answers) = (deleting, errors)
            queueAppend(partition: partition, records: records) { [self] error in
                self.withLock { fx in
                    if error == nil { for tp in deleted { g.offsets[tp] = nil } }
                    let code = error == nil ? GroupErrorCode.none : GroupErrorCode.coordinatorNotAvailable
                    fx.append { completion(code, error == nil ? answers : [:]) }
                }
            }
        }
    }

    /// DeleteGroups: only empty groups; their offsets and metadata get tombstones.
    public func deleteGroup(_ groupId: String, completion: @escaping @Sendable (Int16) -> Void) {
        withLock { fx in
            if let e = precheck(groupId) { fx.append { completion(e) }; return }
            guard let g = groups[groupId], g.state != .dead else {
                fx.append { completion(GroupErrorCode.groupIdNotFound) }
                return
            }
            applyDeadlines(g, now: clock(), &fx)
            guard g.state == .empty && !g.hasMembers else { fx.append { completion(GroupErrorCode.nonEmptyGroup) }; return }
            g.transition(to: .dead, nowMs: clock())
            // Commits still being written land in the log before these tombstones (queued in
            // decision order), so they need tombstones too.
            let doomed = Set(g.offsets.keys).union(g.pendingCommits.keys)
            var records = doomed.sorted().map { GroupRecord(key: GroupRecords.offsetKey(groupId: groupId, $0), value: nil) }
            records.append(contentsOf: g.consumer?.tombstones(groupId: groupId) ?? [])
            records.append(GroupRecord(key: GroupRecords.groupKey(groupId), value: nil))
            let partition = g.partition
            queueAppend(partition: partition, records: records) { [self] error in
                self.withLock { fx in
                    if error == nil {
                        if groups[groupId] === g { groups[groupId] = nil }
                    } else {
                        g.transition(to: .empty, nowMs: clock())
                    }
                    fx.append { completion(error == nil ? GroupErrorCode.none : GroupErrorCode.coordinatorNotAvailable) }
                }
            }
        }
    }
}
