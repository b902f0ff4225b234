import Foundation
import SiltProtocol

extension ConsumerGroups {
    /// Runs a parsed command line; results to `out`, notes and errors to `err`; the exit code.
    public static func run(_ o: Options, out: (String) -> Void, err: (String) -> Void) -> Int32 {
        do {
            let sessions = try ClientSessions(o.bootstrap, clientId: "silt-kafka-consumer-groups")
            defer { sessions.close() }
            return try execute(o, sessions, out: out, err: err)
        } catch {
            err("Error: \(error)")
            return 1
        }
    }

    static func execute(_ o: Options, _ s: ClientSessions, out: (String) -> Void, err: (String) -> Void) throws -> Int32 {
        let groups = o.allGroups ? try listGroups(s) : o.groups
        switch o.action {
        case .list:
            for g in try listGroups(s) { out(g + "\n") }
        case .describe:
            for g in groups { try describe(g, o, s, out: out, err: err) }
        case .resetOffsets:
            for g in groups { try reset(g, o, s, out: out, err: err) }
        case .delete:
            return try delete(groups, s, out: out, err: err)
        }
        return 0
    }

    /// Consumer groups (protocol type `consumer`, or none yet), sorted.
    static func listGroups(_ s: ClientSessions) throws -> [String] {
        let resp = try s.bootstrap.send(ListGroupsRequest())
        guard resp.errorCode == 0 else { throw AdminSession.Failure("ListGroups failed with \(KafkaErrorCode.name(resp.errorCode))") }
        return resp.groups.filter { $0.protocolType == "consumer" || $0.protocolType.isEmpty }.map(\.groupId).sorted()
    }

    /// A group as the tool shows it, whichever protocol it speaks.
    struct GroupView {
        struct Member {
            var memberId: String
            var clientHost: String
            var clientId: String
            var partitions: [PartitionKey]
        }
        var state: String
        /// The classic protocol (`range`, ...) or the server assignor (`uniform`, ...).
        var assignmentStrategy: String
        var members: [Member]
        /// States in which Kafka's tool says the group is rebalancing.
        var isRebalancing: Bool {
            ["PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"].contains(state)
        }
    }

    /// Kafka's admin client: ConsumerGroupDescribe first (KIP-848 groups), DescribeGroups for a
    /// group it does not know as a consumer group (GROUP_ID_NOT_FOUND: a classic group, or
    /// none) or when the broker does not serve it.
    static func describeGroup(_ g: String, _ coordinator: AdminSession) throws -> GroupView {
        if (try? coordinator.version(of: ConsumerGroupDescribeRequest.self)) != nil {
            var req = ConsumerGroupDescribeRequest()
            req.groupIds = [g]
            guard let d = try coordinator.send(req).groups.first(where: { $0.groupId == g }) else {
                throw AdminSession.Failure("ConsumerGroupDescribe answered without group '\(g)'")
            }
            if d.errorCode == 0 {
                return GroupView(state: d.groupState, assignmentStrategy: d.assignorName, members: d.members.map { m in
                    GroupView.Member(memberId: m.memberId, clientHost: m.clientHost, clientId: m.clientId,
                                     partitions: m.assignment.topicPartitions.flatMap { t in t.partitions.map { PartitionKey(t.topicName, $0) } })
                })
            }
            guard d.errorCode == KafkaErrorCode.groupIdNotFound else { throw GroupOffsets.failure("ConsumerGroupDescribe", g, d.errorCode) }
        }
        var req = DescribeGroupsRequest()
        req.groups = [g]
        guard let d = try coordinator.send(req).groups.first(where: { $0.groupId == g }) else {
            throw AdminSession.Failure("DescribeGroups answered without group '\(g)'")
        }
        guard d.errorCode == 0 else { throw GroupOffsets.failure("DescribeGroups", g, d.errorCode) }
        return GroupView(state: d.groupState, assignmentStrategy: d.protocolData, members: d.members.map { m in
            GroupView.Member(memberId: m.memberId, clientHost: m.clientHost, clientId: m.clientId,
                             partitions: ConsumerProtocolPayload.partitions(ofAssignment: m.memberAssignment) ?? [])
        })
    }

    static func describe(_ g: String, _ o: Options, _ s: ClientSessions, out: (String) -> Void, err: (String) -> Void) throws {
        let coordinator = try s.coordinator(g)
        let d = try describeGroup(g, coordinator)
        let committed = try GroupOffsets.fetch(g, coordinator)
        if d.state == "Dead" && committed.isEmpty {
            err("Error: Consumer group '\(g)' does not exist.")
            return
        }
        if d.state == "Empty" { err("\nConsumer group '\(g)' has no active members.") }
        if d.isRebalancing { err("\nWarning: Consumer group '\(g)' is rebalancing.") }
        if o.state {
            out("\n" + row([("GROUP", 30), ("COORDINATOR (ID)", 45), ("ASSIGNMENT-STRATEGY", 20), ("STATE", 20), ("#MEMBERS", 0)]) + "\n")
            out(row([(g, 30), ("\(coordinator.address) (\(s.coordinatorIds[g] ?? -1))", 45), (d.assignmentStrategy, 20),
                     (d.state, 20), (String(d.members.count), 0)]) + "\n")
            return
        }
        if o.members {
            func width(_ v: [String]) -> Int { max(15, v.map(\.count).max() ?? 0) }
            let gw = max(15, g.count), cw = width(d.members.map(\.memberId))
            let hw = width(d.members.map(\.clientHost)), kw = width(d.members.map(\.clientId))
            out("\n" + row([("GROUP", gw), ("CONSUMER-ID", cw), ("HOST", hw), ("CLIENT-ID", kw), ("#PARTITIONS", 0)]) + "\n")
            for m in d.members {
                out(row([(g, gw), (m.memberId, cw), (m.clientHost, hw), (m.clientId, kw), (String(m.partitions.count), 0)]) + "\n")
            }
            return
        }
        var owner: [PartitionKey: GroupView.Member] = [:]
        for m in d.members { for p in m.partitions { owner[p] = m } }
        let keys = Set(committed.keys).union(owner.keys).sorted()
        let layouts = try s.layout(Array(Set(keys.map(\.topic))).sorted())
        let ends = try s.listOffsets(keys.filter { layouts[$0.topic]?.leaders[$0.partition] != nil }.map { ($0.topic, $0.partition) },
                                     timestamp: -1, layouts: layouts)
        let rows = keys.map { k in
            OffsetRow(group: g, topic: k.topic, partition: k.partition, currentOffset: committed[k], logEndOffset: ends[k],
                      consumerId: owner[k]?.memberId, host: owner[k]?.clientHost, clientId: owner[k]?.clientId)
        }
        out(offsetsTable(rows))
    }

    static func reset(_ g: String, _ o: Options, _ s: ClientSessions, out: (String) -> Void, err: (String) -> Void) throws {
        let coordinator = try s.coordinator(g)
        let d = try describeGroup(g, coordinator)
        guard d.state == "Empty" || d.state == "Dead" else {
            throw AdminSession.Failure("Assignments can only be reset if the group '\(g)' is inactive, but the current state is \(d.state).")
        }
        let committed = try GroupOffsets.fetch(g, coordinator)
        var keys: [PartitionKey] = []
        if o.allTopics { keys = committed.keys.sorted() }
        var named: [(String, [Int32]?)] = []
        for t in o.topics { named.append(try topicPartitions(t)) }
        let layouts = try s.layout(Array(Set(named.map(\.0) + keys.map(\.topic))).sorted())
        for (t, ps) in named {
            guard let layout = layouts[t] else { throw AdminSession.Failure("Topic '\(t)' does not exist") }
            for p in ps ?? layout.partitions {
                guard layout.leaders[p] != nil else { throw AdminSession.Failure("Partition \(t)-\(p) does not exist") }
                keys.append(PartitionKey(t, p))
            }
        }
        keys = Array(Set(keys)).sorted()
        let earliest = try s.listOffsets(keys.map { ($0.topic, $0.partition) }, timestamp: -2, layouts: layouts)
        let latest = try s.listOffsets(keys.map { ($0.topic, $0.partition) }, timestamp: -1, layouts: layouts)
        var target: [PartitionKey: Int64] = [:]
        for k in keys {
            switch o.reset! {
            case .earliest: target[k] = earliest[k]
            case .latest: target[k] = latest[k]
            case .offset(let n):
                // Kafka clamps an offset outside the log to its nearest end.
                target[k] = min(max(n, earliest[k] ?? 0), latest[k] ?? n)
            }
        }
        if !o.execute && !o.dryRun {
            err("WARN: No action will be performed as the --execute option is missing. "
                + "You should add the --dry-run option explicitly if you are scripting this command.")
        }
        if o.execute { try GroupOffsets.commit(g, coordinator, target) }
        out(resetTable(g, target))
    }

    static func delete(_ groups: [String], _ s: ClientSessions, out: (String) -> Void, err: (String) -> Void) throws -> Int32 {
        var failed: [(String, Int16)] = []
        for g in groups {
            var req = DeleteGroupsRequest()
            req.groupsNames = [g]
            let resp = try s.coordinator(g).send(req)
            for r in resp.results where r.errorCode != 0 { failed.append((r.groupId, r.errorCode)) }
        }
        let ok = groups.filter { g in !failed.contains { $0.0 == g } }
        if !ok.isEmpty {
            out("Deletion of requested consumer groups (\(ok.map { "'\($0)'" }.joined(separator: ", "))) was successful.\n")
        }
        guard failed.isEmpty else {
            err("Error: Deletion of some consumer groups failed:")
            for (g, code) in failed { err("* Group '\(g)' could not be deleted due to: \(KafkaErrorCode.name(code))") }
            return 1
        }
        return 0
    }
}
