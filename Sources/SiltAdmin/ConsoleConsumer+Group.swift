import Foundation
import SiltProtocol

/// The console consumer as a member of a classic consumer group (`--group`): JoinGroup with
/// the range assignor, SyncGroup (assigning for every member when it is the leader),
/// heartbeats between fetches, a rejoin when the coordinator announces a rebalance, and
/// LeaveGroup at the end.
///
///     join ──(leader: range-assign all members)──▶ sync ──▶ assignment
///       ▲                                                    │ fetch, print, commit
///       └────── REBALANCE_IN_PROGRESS / UNKNOWN_MEMBER_ID ◀── heartbeat every 3 s
final class ConsoleGroupMember {
    /// Kafka's consumer defaults would wait up to max.poll.interval.ms (5 min) in JoinGroup;
    /// the tool keeps the rebalance under one request's timeout.
    static let rebalanceTimeoutMs: Int32 = 25_000
    static let sessionTimeoutMs: Int32 = 10_000
    static let heartbeatIntervalMs: Int64 = 3_000
    /// Joins in a row that may fail with a retriable error before the tool gives up.
    static let joinAttemptsMax = 10

    let group: String
    let topics: [String]
    let sessions: ClientSessions
    private(set) var coordinator: AdminSession
    private(set) var memberId = ""
    private(set) var generation: Int32 = -1
    private var lastHeartbeat = ContinuousClock.now

    init(group: String, topics: [String], sessions: ClientSessions) throws {
        self.group = group
        self.topics = topics
        self.sessions = sessions
        self.coordinator = try sessions.coordinator(group)
    }

    /// Joins (or rejoins) the group and returns this member's partitions.
    func join() throws -> [PartitionKey] {
        for _ in 0..<Self.joinAttemptsMax {
            var req = JoinGroupRequest()
            req.groupId = group
            req.sessionTimeoutMs = Self.sessionTimeoutMs
            req.rebalanceTimeoutMs = Self.rebalanceTimeoutMs
            req.memberId = memberId
            req.protocolType = "consumer"
            var proto = JoinGroupRequest.JoinGroupRequestProtocol()
            proto.name = "range"
            proto.metadata = ConsumerProtocolPayload.subscription(topics: topics)
            req.protocols = [proto]
            let resp = try coordinator.send(req)
            switch resp.errorCode {
            case KafkaErrorCode.none: break
            case KafkaErrorCode.memberIdRequired:
                memberId = resp.memberId
                continue
            case KafkaErrorCode.unknownMemberId, KafkaErrorCode.illegalGeneration:
                memberId = ""
                continue
            case KafkaErrorCode.rebalanceInProgress, KafkaErrorCode.coordinatorLoadInProgress:
                Thread.sleep(forTimeInterval: 0.2)
                continue
            default:
                throw GroupOffsets.failure("JoinGroup", group, resp.errorCode)
            }
            memberId = resp.memberId
            generation = resp.generationId
            var sync = SyncGroupRequest()
            sync.groupId = group
            sync.generationId = generation
            sync.memberId = memberId
            sync.protocolType = "consumer"
            sync.protocolName = resp.protocolName ?? "range"
            if resp.leader == resp.memberId {
                sync.assignments = try assign(resp.members).map { m, ps in
                    var a = SyncGroupRequest.SyncGroupRequestAssignment()
                    a.memberId = m
                    a.assignment = ConsumerProtocolPayload.assignment(ps)
                    return a
                }
            }
            let synced = try coordinator.send(sync)
            if synced.errorCode == KafkaErrorCode.rebalanceInProgress { continue }
            if synced.errorCode == KafkaErrorCode.unknownMemberId || synced.errorCode == KafkaErrorCode.illegalGeneration {
                memberId = ""
                continue
            }
            guard synced.errorCode == 0 else { throw GroupOffsets.failure("SyncGroup", group, synced.errorCode) }
            guard let partitions = ConsumerProtocolPayload.partitions(ofAssignment: synced.assignment) else {
                throw AdminSession.Failure("SyncGroup for group '\(group)' returned an assignment that does not decode")
            }
            lastHeartbeat = .now
            return partitions
        }
        throw AdminSession.Failure("could not join group '\(group)' in \(Self.joinAttemptsMax) attempts")
    }

    /// The leader's range assignment over every member's subscription.
    private func assign(_ members: [JoinGroupResponse.JoinGroupResponseMember]) throws -> [(String, [PartitionKey])] {
        var subscriptions: [String: [String]] = [:]
        for m in members { subscriptions[m.memberId] = ConsumerProtocolPayload.topics(ofSubscription: m.metadata) ?? [] }
        let wanted = Array(Set(subscriptions.values.flatMap { $0 })).sorted()
        let layouts = try sessions.layout(wanted)
        let counts = layouts.mapValues { $0.leaders.count }
        return ConsoleGroupMember.sorted(ConsumerProtocolPayload.rangeAssign(subscriptions: subscriptions, partitionCounts: counts))
    }

    private static func sorted(_ m: [String: [PartitionKey]]) -> [(String, [PartitionKey])] {
        m.keys.sorted().map { ($0, m[$0]!) }
    }

    /// Heartbeats when one is due; true when the group is rebalancing and this member must
    /// rejoin (after committing what it consumed).
    func heartbeatIfDue() throws -> Bool {
        guard ContinuousClock.now - lastHeartbeat >= .milliseconds(Self.heartbeatIntervalMs) else { return false }
        lastHeartbeat = .now
        var req = HeartbeatRequest()
        req.groupId = group
        req.generationId = generation
        req.memberId = memberId
        let resp = try coordinator.send(req)
        switch resp.errorCode {
        case KafkaErrorCode.none: return false
        case KafkaErrorCode.rebalanceInProgress: return true
        case KafkaErrorCode.unknownMemberId, KafkaErrorCode.illegalGeneration:
            memberId = ""
            return true
        default: throw GroupOffsets.failure("Heartbeat", group, resp.errorCode)
        }
    }

    func commit(_ offsets: [PartitionKey: Int64]) throws {
        try GroupOffsets.commit(group, coordinator, offsets, generation: generation, memberId: memberId)
    }

    /// Leaves the group (best effort: the session timeout removes the member otherwise).
    func leave() {
        guard !memberId.isEmpty else { return }
        var req = LeaveGroupRequest()
        req.groupId = group
        req.memberId = memberId
        var me = LeaveGroupRequest.MemberIdentity()
        me.memberId = memberId
        req.members = [me]
        _ = try? coordinator.send(req)
        memberId = ""
    }
}
