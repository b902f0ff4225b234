/// Kafka error codes the group coordinator answers with (Kafka's `Errors` numbering).
public enum GroupErrorCode {
    public static let none: Int16 = 0
    public static let unknownServerError: Int16 = -1
    public static let unknownTopicOrPartition: Int16 = 3
    public static let requestTimedOut: Int16 = 7
    public static let offsetMetadataTooLarge: Int16 = 12
    public static let coordinatorLoadInProgress: Int16 = 14
    public static let coordinatorNotAvailable: Int16 = 15
    public static let notCoordinator: Int16 = 16
    public static let illegalGeneration: Int16 = 22
    public static let inconsistentGroupProtocol: Int16 = 23
    public static let invalidGroupId: Int16 = 24
    public static let unknownMemberId: Int16 = 25
    public static let invalidSessionTimeout: Int16 = 26
    public static let rebalanceInProgress: Int16 = 27
    public static let invalidCommitOffsetSize: Int16 = 28
    public static let invalidRequest: Int16 = 42
    public static let nonEmptyGroup: Int16 = 68
    public static let groupIdNotFound: Int16 = 69
    public static let memberIdRequired: Int16 = 79
    public static let fencedInstanceId: Int16 = 82
    public static let groupMaxSizeReached: Int16 = 81
    public static let unstableOffsetCommit: Int16 = 88
    public static let groupSubscribedToTopic: Int16 = 86
}

/// The states of a classic group, as Kafka names them in DescribeGroups and ListGroups.
public enum GroupState: String, Sendable, CaseIterable {
    case empty = "Empty"
    case preparingRebalance = "PreparingRebalance"
    case completingRebalance = "CompletingRebalance"
    case stable = "Stable"
    case dead = "Dead"
}

public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) { self.topic = topic; self.partition = partition }
    public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    public var description: String { "\(topic)-\(partition)" }
}

/// One committed offset, as OffsetCommitValue carries it.
public struct CommittedOffset: Equatable, Sendable {
    public var offset: Int64
    public var leaderEpoch: Int32
    public var metadata: String
    public var commitTimestampMs: Int64
    public init(offset: Int64, leaderEpoch: Int32 = -1, metadata: String = "", commitTimestampMs: Int64) {
        self.offset = offset; self.leaderEpoch = leaderEpoch; self.metadata = metadata; self.commitTimestampMs = commitTimestampMs
    }
}

/// A member of a classic group. `joinCallback` / `syncCallback` are the parked answers of a
/// JoinGroup / SyncGroup the coordinator completes later (at the end of the rebalance).
final class Member {
    var memberId: String
    let groupInstanceId: String?
    var clientId: String
    var clientHost: String
    var sessionTimeoutMs: Int32
    var rebalanceTimeoutMs: Int32
    var protocolType: String
    var protocols: [(name: String, metadata: [UInt8])]
    var assignment: [UInt8] = []
    var joinCallback: ((JoinResult) -> Void)?
    var syncCallback: ((SyncResult) -> Void)?
    /// When the member last proved it is alive (heartbeat, join, sync).
    var lastHeartbeatMs: Int64
    /// Joined in the current rebalance and never took part in a generation: such a member
    /// that stops rejoining is dropped after `newMemberJoinTimeoutMs`, not kept forever.
    var isNew: Bool

    init(memberId: String, groupInstanceId: String?, clientId: String, clientHost: String, sessionTimeoutMs: Int32,
         rebalanceTimeoutMs: Int32, protocolType: String, protocols: [(name: String, metadata: [UInt8])], nowMs: Int64) {
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.clientId = clientId
        self.clientHost = clientHost
        self.sessionTimeoutMs = sessionTimeoutMs
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.protocolType = protocolType
        self.protocols = protocols
        self.lastHeartbeatMs = nowMs
        self.isNew = false
    }

    var isAwaitingJoin: Bool { joinCallback != nil }
    var isAwaitingSync: Bool { syncCallback != nil }

    func metadata(for protocolName: String?) -> [UInt8] {
        protocols.first(where: { $0.name == protocolName })?.metadata ?? []
    }

    func sameProtocols(_ other: [(name: String, metadata: [UInt8])]) -> Bool {
        protocols.count == other.count && zip(protocols, other).allSatisfy { $0.name == $1.name && $0.metadata == $1.metadata }
    }

    /// Kafka's `shouldKeepAlive`: a member parked in JoinGroup or SyncGroup is waiting on
    /// the coordinator, not silent; otherwise its session timeout decides.
    func isAlive(nowMs: Int64, newMemberJoinTimeoutMs: Int64) -> Bool {
        if isAwaitingJoin { return !isNew || lastHeartbeatMs + newMemberJoinTimeoutMs > nowMs }
        if isAwaitingSync { return true }
        return lastHeartbeatMs + Int64(sessionTimeoutMs) > nowMs
    }
}

/// A classic group: its members, generation, and committed offsets.
final class Group {
    let groupId: String
    /// The `__consumer_offsets` partition holding this group's records.
    let partition: Int32
    var state: GroupState = .empty
    var stateSinceMs: Int64
    var generationId: Int32 = 0
    var protocolType: String?
    var protocolName: String?
    var leaderId: String?
    var members: [String: Member] = [:]
    /// Member ids in join order: the first to join leads when the leader is gone.
    var memberOrder: [String] = []
    var staticMembers: [String: String] = [:]   // group.instance.id → member id
    /// Member ids handed out with MEMBER_ID_REQUIRED and not used yet, with their expiry.
    var pendingMembers: [String: Int64] = [:]
    /// The deadline of the running join phase, and the latest it may be pushed to while the
    /// initial rebalance delay keeps waiting for more members of a new group.
    var joinDeadlineMs: Int64 = 0
    var initialDelayUntilMs: Int64?
    var joinDeadlineMaxMs: Int64 = 0
    /// When a generation's SyncGroups are due: members that have not sent theirs by then
    /// are dropped (Kafka's pending-sync expiry), so a stuck leader cannot hold the group.
    var syncDeadlineMs: Int64 = 0
    var offsets: [TopicPartition: CommittedOffset] = [:]
    /// Commits written but not yet durable: what `requireStable` fetches must not read past.
    var pendingCommits: [TopicPartition: Int] = [:]
    /// Set while the group speaks KIP-848's consumer protocol (ConsumerGroupHeartbeat); the
    /// classic fields above then stay empty.
    var consumer: ConsumerGroup?
    /// The consumer group's records replayed so far, while its partition loads.
    var consumerLoad: LoadedConsumerGroup?

    /// Whether members of either protocol are in the group.
    var hasMembers: Bool { !members.isEmpty || !(consumer?.members.isEmpty ?? true) }

    init(groupId: String, partition: Int32, nowMs: Int64) {
        self.groupId = groupId
        self.partition = partition
        self.stateSinceMs = nowMs
    }

    func transition(to next: GroupState, nowMs: Int64) {
        state = next
        stateSinceMs = nowMs
    }

    func add(_ m: Member) {
        precondition(members[m.memberId] == nil, "member \(m.memberId) added twice")
        members[m.memberId] = m
        memberOrder.append(m.memberId)
        if let instance = m.groupInstanceId { staticMembers[instance] = m.memberId }
        if leaderId == nil { leaderId = m.memberId }
    }

    func remove(_ memberId: String) {
        guard let m = members.removeValue(forKey: memberId) else { return }
        memberOrder.removeAll { $0 == memberId }
        if let instance = m.groupInstanceId, staticMembers[instance] == memberId { staticMembers[instance] = nil }
        if leaderId == memberId { leaderId = memberOrder.first }
    }

    /// KIP-345: a static member rejoining with a new member id takes over the old one's
    /// place, assignment and leadership.
    func replaceStaticMember(_ instance: String, oldId: String, newId: String) {
        guard let m = members.removeValue(forKey: oldId) else { return }
        m.memberId = newId
        members[newId] = m
        memberOrder = memberOrder.map { $0 == oldId ? newId : $0 }
        staticMembers[instance] = newId
        if leaderId == oldId { leaderId = newId }
    }

    var maxRebalanceTimeoutMs: Int64 { Int64(members.values.map(\.rebalanceTimeoutMs).max() ?? 0) }

    var allMembersJoined: Bool {
        pendingMembers.isEmpty && members.values.allSatisfy(\.isAwaitingJoin)
    }

    /// The protocols every member supports, in no particular order.
    func candidateProtocols() -> Set<String> {
        var common: Set<String>?
        for m in members.values {
            let names = Set(m.protocols.map(\.name))
            common = common.map { $0.intersection(names) } ?? names
        }
        return common ?? []
    }

    /// Whether a joining member fits: same protocol type, and at least one protocol in
    /// common with every current member.
    func supports(protocolType type: String, protocols: [(name: String, metadata: [UInt8])]) -> Bool {
        if members.isEmpty { return !type.isEmpty && !protocols.isEmpty }
        guard type == protocolType else { return false }
        let common = candidateProtocols()
        return protocols.contains { common.contains($0.name) }
    }

    /// Kafka's protocol vote: each member votes for the first of its protocols that every
    /// member supports; the most votes wins (ties: the name that sorts first).
    func selectProtocol() -> String? {
        let candidates = candidateProtocols()
        var votes: [String: Int] = [:]
        for m in members.values {
            if let choice = m.protocols.first(where: { candidates.contains($0.name) }) { votes[choice.name, default: 0] += 1 }
        }
        return votes.max { a, b in a.value != b.value ? a.value < b.value : a.key > b.key }?.key
    }

    /// Whether the group consumes `topic` now (KIP-496: its offsets cannot be deleted then).
    func isSubscribed(to topic: String) -> Bool {
        if let consumer { return consumer.subscribedTopics.contains(topic) }
        guard protocolType == "consumer", state != .empty, let protocolName else { return false }
        return members.values.contains { m in
            ConsumerSubscription.topics(m.metadata(for: protocolName))?.contains(topic) ?? false
        }
    }
}
