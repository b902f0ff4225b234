import Foundation

/// KIP-848's consumer group: the state a `Group` carries when its members speak the consumer
/// protocol (ConsumerGroupHeartbeat) instead of JoinGroup/SyncGroup.
///
/// ```
///  heartbeat ─▶ member joins/leaves/changes subscription ─▶ groupEpoch += 1
///                         │
///  groupEpoch > assignmentEpoch ─▶ assignor computes `target` ─▶ assignmentEpoch = groupEpoch
///                         │
///  each member's next heartbeat reconciles toward its target:
///    1. revoke  (assigned − target) and wait until the member reports it no longer owns them
///    2. take    (target − assigned) that no other member owns (assigned or pending revocation)
///    3. memberEpoch = assignmentEpoch
/// ```
///
/// Invariant (checked by `checkOwnership`): a partition is owned (assigned or pending
/// revocation) by at most one member, and `owners` indexes exactly that ownership.
/// The state is written to `__consumer_offsets` as Kafka's records (`ConsumerGroup+Records`):
/// `dirty` names the members whose records may have changed since `written`.
final class ConsumerGroup {
    /// Kafka's consumer group states, as ListGroups and ConsumerGroupDescribe name them.
    enum State: String {
        case empty = "Empty", assigning = "Assigning", reconciling = "Reconciling", stable = "Stable"
    }

    var groupEpoch: Int32 = 0
    /// The group epoch the target assignment was computed for.
    var assignmentEpoch: Int32 = 0
    var members: [String: ConsumerMember] = [:]
    var staticMembers: [String: String] = [:]   // instance id → member id
    /// What each member should end up with, by member id.
    var target: [String: Set<TopicPartition>] = [:]
    /// Who owns each partition now (in `assigned` or `pendingRevocation`).
    var owners: [TopicPartition: String] = [:]
    /// Partition counts of the subscribed topics the target was computed from.
    var topicPartitions: [String: Int32] = [:]
    /// Each regex members subscribe with, resolved: what it matched and when (Kafka's
    /// ConsumerGroupRegularExpression records, so a reloaded group knows its members'
    /// regex topics and its epoch does not move). Only regexes some member uses are written.
    var resolvedRegexes: [String: ResolvedRegex] = [:]
    /// The assignor that computed the target.
    var assignorName: String = ConsumerAssignors.defaultName
    /// What the log holds for this group, and the members changed since.
    var written = WrittenConsumerState()
    var dirty: Set<String> = []
    /// A write failed: the next one rewrites every record (the log may lack any of them), and
    /// tombstones the keys of the failed writes the group no longer has.
    var rewriteAll = false
    var failedKeys: Set<[UInt8]> = []
    /// Whether the log may hold records of this group (what tombstones must cover).
    var hasRecords: Bool { !written.isEmpty || !failedKeys.isEmpty }

    var state: State {
        if members.isEmpty { return .empty }
        if assignmentEpoch < groupEpoch { return .assigning }
        // A static member away (epoch -2) with its whole target counts as reconciled, as in Kafka.
        let reconciled = members.values.allSatisfy { m in
            (m.memberEpoch == assignmentEpoch || m.memberEpoch == ConsumerMember.staticLeaveEpoch)
                && m.pendingRevocation.isEmpty && m.assigned == (target[m.memberId] ?? [])
        }
        return reconciled ? .stable : .reconciling
    }

    /// Every topic some member subscribes to, by name or by regex.
    var subscribedTopics: Set<String> { members.values.reduce(into: Set()) { $0.formUnion($1.topics) } }

    func add(_ m: ConsumerMember) {
        precondition(members[m.memberId] == nil, "consumer member \(m.memberId) added twice")
        members[m.memberId] = m
        dirty.insert(m.memberId)
        if let instance = m.instanceId { staticMembers[instance] = m.memberId }
    }

    /// Drops a member and releases everything it owns (it left, was fenced or expired).
    func remove(_ memberId: String) {
        guard let m = members.removeValue(forKey: memberId) else { return }
        dirty.insert(memberId)
        for tp in m.assigned.union(m.pendingRevocation) where owners[tp] == memberId { owners[tp] = nil }
        if let instance = m.instanceId, staticMembers[instance] == memberId { staticMembers[instance] = nil }
        target[memberId] = nil
    }

    /// A static member's new incarnation takes the old one's place, epoch and partitions.
    func replaceStatic(oldId: String, with m: ConsumerMember) {
        guard let old = members.removeValue(forKey: oldId) else { return }
        dirty.formUnion([oldId, m.memberId])
        m.memberEpoch = old.memberEpoch == ConsumerMember.staticLeaveEpoch ? old.previousMemberEpoch : old.memberEpoch
        m.previousMemberEpoch = old.previousMemberEpoch
        m.assigned = old.assigned
        m.pendingRevocation = old.pendingRevocation
        m.subscribedRegex = old.subscribedRegex
        m.regexMatches = old.regexMatches
        for tp in m.assigned.union(m.pendingRevocation) { owners[tp] = m.memberId }
        target[m.memberId] = target.removeValue(forKey: oldId)
        members[m.memberId] = m
        if let instance = m.instanceId { staticMembers[instance] = m.memberId }
    }

    /// Recomputes the target assignment when the group epoch moved past it.
    func computeTargetIfNeeded(assignor: ConsumerAssignors.Name) {
        guard assignmentEpoch < groupEpoch else { return }
        let subscriptions = members.values.map { (memberId: $0.memberId, topics: $0.topics) }
        target = ConsumerAssignors.assign(assignor, members: subscriptions, partitions: topicPartitions, previous: target)
        assignorName = assignor.rawValue
        assignmentEpoch = groupEpoch
    }

    /// Moves `m` one step toward its target (Kafka's CurrentAssignmentBuilder). `owned`: the
    /// partitions the member reported in this heartbeat (nil: unchanged since the last one).
    /// Returns true if the member's assignment changed.
    @discardableResult
    func reconcile(_ m: ConsumerMember, owned: Set<TopicPartition>?, nowMs: Int64) -> Bool {
        dirty.insert(m.memberId)
        if !m.pendingRevocation.isEmpty {
            // Partitions move on only once their owner says it let them go.
            guard let owned, owned.isDisjoint(with: m.pendingRevocation) else { return false }
            for tp in m.pendingRevocation where owners[tp] == m.memberId { owners[tp] = nil }
            m.pendingRevocation = []
            m.revocationDeadlineMs = nil
        }
        let goal = target[m.memberId] ?? []
        let revoking = m.assigned.subtracting(goal)
        if !revoking.isEmpty {
            m.assigned.subtract(revoking)
            m.pendingRevocation = revoking
            m.revocationDeadlineMs = nowMs + Int64(max(m.rebalanceTimeoutMs, 0))
            return true
        }
        let before = m.assigned
        for tp in goal.subtracting(m.assigned) where owners[tp] == nil {
            owners[tp] = m.memberId
            m.assigned.insert(tp)
        }
        if m.memberEpoch != assignmentEpoch {
            m.previousMemberEpoch = m.memberEpoch
            m.memberEpoch = assignmentEpoch
        }
        return m.assigned != before
    }

    /// The ownership invariant; a failure is a bug in the coordinator.
    func checkOwnership() {
        var seen: [TopicPartition: String] = [:]
        for m in members.values {
            precondition(m.assigned.isDisjoint(with: m.pendingRevocation), "\(m.memberId) owns a partition twice")
            for tp in m.assigned.union(m.pendingRevocation) {
                precondition(seen[tp] == nil, "\(tp) owned by \(seen[tp]!) and \(m.memberId)")
                seen[tp] = m.memberId
            }
        }
        precondition(seen == owners, "the owner index disagrees with the members")
    }
}

/// What a subscription regex matched when the coordinator last resolved it.
public struct ResolvedRegex: Equatable, Sendable {
    public var topics: Set<String>
    public var resolvedAtMs: Int64
}

/// A member of a consumer-protocol group.
final class ConsumerMember {
    /// The epoch a static member leaves with (ConsumerGroupHeartbeat): it may come back.
    static let staticLeaveEpoch: Int32 = -2
    static let leaveEpoch: Int32 = -1

    let memberId: String
    var instanceId: String?
    var rackId: String?
    var clientId: String
    var clientHost: String
    var subscribedTopics: [String] = []
    /// `SubscribedTopicRegex` (KIP-848): matched in full against every topic name.
    var subscribedRegex: SubscriptionRegex?
    /// The topics `subscribedRegex` matched when the coordinator last looked.
    var regexMatches: Set<String> = []
    var serverAssignor: String?
    var rebalanceTimeoutMs: Int32
    var memberEpoch: Int32 = 0
    var previousMemberEpoch: Int32 = -1
    var assigned: Set<TopicPartition> = []
    /// Partitions taken away that the member has not yet confirmed it stopped consuming.
    var pendingRevocation: Set<TopicPartition> = []
    /// When a member still holding revoked partitions is fenced.
    var revocationDeadlineMs: Int64?
    var lastHeartbeatMs: Int64

    /// What the member consumes: its topic names and its regex's matches.
    var topics: Set<String> { Set(subscribedTopics).union(regexMatches) }

    init(memberId: String, instanceId: String?, clientId: String, clientHost: String, rebalanceTimeoutMs: Int32, nowMs: Int64) {
        self.memberId = memberId
        self.instanceId = instanceId
        self.clientId = clientId
        self.clientHost = clientHost
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.lastHeartbeatMs = nowMs
    }
}

/// A member's topic regex. Kafka compiles it with RE2/J and matches whole topic names; this
/// uses Foundation's ICU syntax, which agrees with RE2 on the patterns subscriptions use
/// (literals, classes, `.*`, alternation), with the match anchored at both ends.
struct SubscriptionRegex: Equatable {
    /// Topics a regex never matches, as in Kafka: the coordinators' internal topics.
    static let internalTopics: Set<String> = ["__consumer_offsets", "__transaction_state"]

    let pattern: String
    private let regex: NSRegularExpression

    /// nil if `pattern` does not compile.
    init?(_ pattern: String) {
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return nil }
        self.pattern = pattern
        self.regex = regex
    }

    func matches(_ topic: String) -> Bool {
        guard !SubscriptionRegex.internalTopics.contains(topic) else { return false }
        let whole = NSRange(topic.startIndex..., in: topic)
        return regex.firstMatch(in: topic, options: [.anchored], range: whole)?.range == whole
    }

    static func == (a: Self, b: Self) -> Bool { a.pattern == b.pattern }
}
