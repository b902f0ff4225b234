import Foundation
import SiltProtocol

/// Running a parsed kafka-reassign-partitions command line against a broker.
extension KafkaReassignPartitions {
    /// Runs `o`; prints results to `out`, warnings and errors to `err`, and returns the exit
    /// code. JSON files are read and checked before any connection is made.
    public static func run(_ o: Options, out: (String) -> Void, err: (String) -> Void) -> Int32 {
        do {
            if let warning = try ToolArguments.commandConfigWarning(o.commandConfig, tool: toolName) { err(warning) }
            for w in warnings(o) { err(w) }
            switch o.action {
            case .execute:
                let targets = try checkForExecute(try parseReassignment(try readFile(o.reassignmentJsonFile!, "--reassignment-json-file")))
                try withSession(o) { try execute(targets, additional: o.additional, $0, out: out) }
            case .verify:
                let targets = try parseReassignment(try readFile(o.reassignmentJsonFile!, "--reassignment-json-file"))
                try withSession(o) { try verify(targets, $0, out: out) }
            case .cancel:
                let targets = try parseReassignment(try readFile(o.reassignmentJsonFile!, "--reassignment-json-file"))
                try withSession(o) { try cancel(targets, $0, out: out) }
            case .list:
                try withSession(o) { s in out(listText(try listOngoing(s, nil))) }
            case .generate:
                let topics = try parseTopicsToMove(try readFile(o.topicsToMoveJsonFile!, "--topics-to-move-json-file"))
                try withSession(o) { try generate(topics: topics, brokers: o.brokerList, $0, out: out, err: err) }
            }
            return 0
        } catch let e as Terse {
            err(e.description)
            return 1
        } catch {
            err("Error: \(error)")
            return 1
        }
    }

    static func withSession(_ o: Options, _ body: (AdminSession) throws -> Void) throws {
        let session = try AdminSession.connect(o.bootstrap, clientId: "reassign-partitions-tool")
        defer { session.close() }
        try body(session)
    }

    static func readFile(_ path: String, _ flag: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let why = FileManager.default.fileExists(atPath: path) ? "cannot be read as UTF-8 text" : "no such file"
            throw AdminSession.Failure("\(flag) \(path): \(why)")
        }
    }

    // MARK: - Actions

    static func execute(_ targets: [TopicPartition: [Int32]], additional: Bool, _ s: AdminSession,
                        out: (String) -> Void) throws {
        let inFlight = try listOngoing(s, nil)
        if !additional && !inFlight.isEmpty { throw Terse(cannotExecuteBecauseOfExisting) }
        let meta = try metadata(s, topics: Set(targets.keys.map(\.topic)))
        let known = Set(meta.brokers.map(\.nodeId))
        if let unknown = Set(targets.values.joined()).subtracting(known).min() {
            throw AdminSession.Failure("Unknown broker id \(unknown)")
        }
        let current = try currentReplicas(meta, of: Set(targets.keys))
        out(currentAssignmentText(current))
        let resp = try s.send(alterRequest(targets.mapValues { Optional($0) }))
        let errors = alterErrors(resp, asked: Set(targets.keys))
        guard errors.isEmpty else { throw Terse(errorList("Error reassigning partition(s):", errors)) }
        out("Successfully started partition reassignment\(plural(targets.count)) for \(partitionList(targets.keys))\n")
    }

    static func verify(_ targets: [Assignment], _ s: AdminSession, out: (String) -> Void) throws {
        let moving = Set(try listOngoing(s, nil).keys)
        let settled = targets.filter { !moving.contains($0.partition) }
        var replicas: [TopicPartition: [Int32]] = [:]
        if !settled.isEmpty {
            // A topic that does not exist shows as no replicas, as in Kafka.
            let meta = try metadata(s, topics: Set(settled.map(\.partition.topic)), requireTopics: false)
            for t in meta.topics where t.errorCode == 0 {
                for p in t.partitions { replicas[TopicPartition(t.name ?? "", p.partitionIndex)] = p.replicaNodes }
            }
        }
        out(statusText(states(targets, moving: moving, replicas: replicas)))
        // Kafka prints its (here empty) log dir move states next: a blank line.
        out("\n")
    }

    static func cancel(_ targets: [Assignment], _ s: AdminSession, out: (String) -> Void) throws {
        let wanted = Set(targets.map(\.partition))
        guard !wanted.isEmpty else {
            out("None of the specified partition reassignments are active.\n")
            out("None of the specified partition moves are active.\n")
            return
        }
        // Kafka's rule: a move that only adds replicas is not one `--cancel` reverts.
        let active = try listOngoing(s, Array(wanted)).filter { tp, m in
            wanted.contains(tp) && (m.addingReplicas.isEmpty || !m.removingReplicas.isEmpty)
        }
        if active.isEmpty {
            out("None of the specified partition reassignments are active.\n")
        } else {
            let resp = try s.send(alterRequest(Dictionary(uniqueKeysWithValues: active.keys.map { ($0, nil) })))
            let errors = alterErrors(resp, asked: Set(active.keys))
            guard errors.isEmpty else {
                throw Terse(errorList("Error cancelling partition reassignment\(plural(errors.count)) for:", errors))
            }
            out("Successfully cancelled partition reassignment\(plural(active.count)) for: \(partitionList(active.keys))\n")
        }
        out("None of the specified partition moves are active.\n")
    }

    static func generate(topics: [String], brokers: [Int32], _ s: AdminSession, out: (String) -> Void,
                         err: (String) -> Void) throws {
        let meta = try metadata(s, topics: Set(topics))
        var current: [TopicPartition: [Int32]] = [:]
        for t in meta.topics {
            for p in t.partitions { current[TopicPartition(t.name ?? "", p.partitionIndex)] = p.replicaNodes }
        }
        // Kafka proposes over the listed brokers the cluster knows, leaving the others out.
        let known = Set(meta.brokers.map(\.nodeId))
        let absent = brokers.filter { !known.contains($0) }
        if !absent.isEmpty {
            err("Warning: left out of the proposal, not in the cluster: broker\(plural(absent.count)) "
                + absent.map(String.init).joined(separator: ","))
        }
        let usable = brokers.filter(known.contains)
        guard !usable.isEmpty || current.isEmpty else {
            throw AdminSession.Failure("Replication factor: 1 larger than available brokers: 0.")
        }
        let proposed = usable.isEmpty ? [:] : propose(Array(current.keys), brokers: usable)
        out(generateText(current: current, proposed: proposed))
    }

    // MARK: - Requests

    static func listOngoing(_ s: AdminSession, _ partitions: [TopicPartition]?) throws
        -> [TopicPartition: ListPartitionReassignmentsResponse.OngoingPartitionReassignment] {
        let resp = try s.send(listRequest(partitions))
        if resp.errorCode != 0 {
            throw AdminSession.Failure("ListPartitionReassignments failed: \(reason(resp.errorCode, resp.errorMessage))")
        }
        return ongoing(resp)
    }

    /// Metadata for `topics` (never creating one) with the cluster's brokers. A topic that
    /// does not exist is Kafka's `Topic t not found.` when `requireTopics`.
    static func metadata(_ s: AdminSession, topics: Set<String>, requireTopics: Bool = true) throws -> MetadataResponse {
        var req = MetadataRequest()
        req.allowAutoTopicCreation = false
        req.topics = topics.sorted().map { n in
            var t = MetadataRequest.MetadataRequestTopic()
            t.name = n
            return t
        }
        let resp = try s.send(req)
        for t in resp.topics.sorted(by: { ($0.name ?? "") < ($1.name ?? "") }) where t.errorCode != 0 {
            if t.errorCode == KafkaErrorCode.unknownTopicOrPartition {
                if !requireTopics { continue }
                throw AdminSession.Failure("Topic \(t.name ?? "?") not found.")
            }
            throw AdminSession.Failure("Topic \(t.name ?? "?"): \(reason(t.errorCode, nil))")
        }
        return resp
    }

    /// The replicas of `partitions` from Metadata; Kafka's error names the missing ones.
    static func currentReplicas(_ meta: MetadataResponse, of partitions: Set<TopicPartition>) throws -> [TopicPartition: [Int32]] {
        var out: [TopicPartition: [Int32]] = [:]
        for t in meta.topics {
            for p in t.partitions {
                let tp = TopicPartition(t.name ?? "", p.partitionIndex)
                if partitions.contains(tp) { out[tp] = p.replicaNodes }
            }
        }
        let missing = partitions.subtracting(out.keys)
        guard missing.isEmpty else {
            throw AdminSession.Failure("Unable to find partition: " + missing.sorted().map(\.description).joined(separator: ", "))
        }
        return out
    }
}
