import Foundation
import SiltProtocol

/// Kafka's `bin/kafka-reassign-partitions.sh` on Silt's own client code (no JVM):
/// `--generate`, `--execute`, `--verify`, `--cancel` and `--list`, with Kafka 3.x's flags,
/// JSON files and output.
///
///     argv ──parse──▶ Options ──run──▶ read the JSON file ──▶ AdminSession:
///         --execute   ListPartitionReassignments, Metadata, AlterPartitionReassignments (targets)
///         --verify    ListPartitionReassignments, Metadata
///         --cancel    ListPartitionReassignments (the file's partitions), AlterPartitionReassignments (null)
///         --list      ListPartitionReassignments
///         --generate  Metadata (topics and brokers); nothing is changed
///
/// Silt keeps one replica per partition (object storage holds the data; the broker only
/// serves it), so a reassignment names exactly one broker per partition, and a move
/// copies no data: the old leader commits the tail and the new one opens the stream.
/// Throttles therefore have nothing to limit; they are accepted with a warning.
///
/// Errors go to stderr and exit 1: Kafka's terse messages as they are (`Error reassigning
/// partition(s):` ...), others as `Error: <reason>` (Kafka prints both on stdout, the
/// others with a stack trace).
public enum KafkaReassignPartitions {
    public static let toolName = "kafka-reassign-partitions"

    public enum Action: String, Equatable, Sendable, CaseIterable {
        case generate, execute, verify, cancel, list
    }

    public struct Options: Equatable, Sendable {
        public var bootstrap: [MetadataQuorum.HostPort] = []
        public var commandConfig: String?
        public var action: Action = .list
        public var reassignmentJsonFile: String?
        public var topicsToMoveJsonFile: String?
        /// `--broker-list`, in the given order.
        public var brokerList: [Int32] = []
        public var additional = false
        public var preserveThrottles = false
        public var disableRackAware = false
        /// `--throttle` / `--replica-alter-log-dirs-throttle` in bytes/s: no effect in Silt.
        public var throttle: Int64?
        public var logDirsThrottle: Int64?
        /// `--timeout` (ms): Kafka's wait for log dir moves to start; Silt has none.
        public var timeoutMs: Int64?
        public init() {}
    }

    public enum ParseOutcome: Equatable, Sendable {
        case run(Options)
        case help
    }

    /// A failure Kafka reports without the `Error: ` prefix (its TerseException).
    struct Terse: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    public static let usage = """
        Silt's kafka-reassign-partitions: move partitions between brokers (Kafka's command line, no JVM).
        Silt keeps one replica per partition (object storage is the replica): a reassignment names exactly
        one broker per partition, and a move copies no data between brokers.
        Option                                   Description
        ------                                   -----------
        --additional                             With --execute: start it although other reassignments are in progress.
        --bootstrap-server <host:port,...>       REQUIRED: the Kafka server(s) to connect to.
        --broker-list <brokerlist>               With --generate: the brokers to spread the partitions over, "0,1,2".
        --cancel                                 Cancel the active reassignments of the partitions in the JSON file.
        --command-config <file>                  Admin client properties; Silt reads and ignores them.
        --disable-rack-aware                     With --generate: accepted (Silt's proposal is not rack aware).
        --execute                                Start the reassignment in --reassignment-json-file.
        --generate                               Propose a reassignment of the topics in --topics-to-move-json-file
                                                   over --broker-list (it does not execute it).
        --help                                   Print usage information.
        --list                                   List all active partition reassignments.
        --preserve-throttles                     With --verify or --cancel: accepted (Silt sets no throttles).
        --reassignment-json-file <file>          The reassignment: {"version":1,"partitions":[{"topic":"foo",
                                                   "partition":1,"replicas":[2]}]}; "log_dirs" may be given as ["any"].
        --replica-alter-log-dirs-throttle <Long> With --execute: accepted with a warning (no effect in Silt).
        --throttle <Long: bytes/sec>             With --execute: accepted with a warning (no effect in Silt).
        --timeout <Long: ms>                     With --execute or --cancel: accepted (Silt has no log dir moves).
        --topics-to-move-json-file <file>        With --generate: {"version":1,"topics":[{"topic":"foo"}]}.
        --verify                                 Report whether the reassignment in the JSON file is complete.

        Not supported by Silt: --zookeeper, --bootstrap-controller (use --bootstrap-server), log_dirs other than "any".
        """

    static let refused: [String: String] = [
        "--zookeeper": "Silt has no ZooKeeper; use --bootstrap-server",
        "--bootstrap-controller": "Silt's brokers forward reassignments to the controller; use --bootstrap-server",
    ]

    /// The options each action takes besides `--bootstrap-server` and `--command-config`
    /// (Kafka's table), as the names its messages use.
    static let permitted: [Action: Set<String>] = [
        .verify: ["reassignment-json-file", "preserve-throttles"],
        .generate: ["topics-to-move-json-file", "broker-list", "disable-rack-aware"],
        .execute: ["reassignment-json-file", "additional", "throttle", "replica-alter-log-dirs-throttle", "timeout"],
        .cancel: ["reassignment-json-file", "preserve-throttles", "timeout"],
        .list: [],
    ]

    static let required: [Action: [String]] = [
        .verify: ["reassignment-json-file"],
        .generate: ["topics-to-move-json-file", "broker-list"],
        .execute: ["reassignment-json-file"],
        .cancel: ["reassignment-json-file"],
        .list: [],
    ]

    // MARK: - Command line

    public static func parse(_ args: [String]) throws -> ParseOutcome {
        var o = Options()
        var actions: [Action] = []
        var given: [String] = []     // option names in order, as Kafka names them (no dashes)
        var bootstrap: String?
        var brokerList: String?
        var i = 0
        func long(_ flag: String, _ v: String) throws -> Int64 {
            guard let n = Int64(v) else { throw AdminSession.Failure("Option \(flag): '\(v)' is not a long integer") }
            return n
        }
        while i < args.count {
            let arg = args[i]
            let flag = ToolArguments.flag(arg)
            switch flag {
            case "-h", "--help": return .help
            case "--bootstrap-server": bootstrap = try ToolArguments.value(args, &i, flag)
            case "--command-config": o.commandConfig = try ToolArguments.value(args, &i, flag)
            case "--generate", "--execute", "--verify", "--cancel", "--list":
                actions.append(Action(rawValue: String(flag.dropFirst(2)))!)
            case "--reassignment-json-file": o.reassignmentJsonFile = try ToolArguments.value(args, &i, flag)
            case "--topics-to-move-json-file": o.topicsToMoveJsonFile = try ToolArguments.value(args, &i, flag)
            case "--broker-list": brokerList = try ToolArguments.value(args, &i, flag)
            case "--additional": o.additional = true
            case "--preserve-throttles": o.preserveThrottles = true
            case "--disable-rack-aware": o.disableRackAware = true
            case "--throttle": o.throttle = try long(flag, try ToolArguments.value(args, &i, flag))
            case "--replica-alter-log-dirs-throttle": o.logDirsThrottle = try long(flag, try ToolArguments.value(args, &i, flag))
            case "--timeout": o.timeoutMs = try long(flag, try ToolArguments.value(args, &i, flag))
            default:
                if let why = refused[flag] { throw AdminSession.Failure("\(flag) is not supported: \(why).") }
                throw AdminSession.Failure(arg.hasPrefix("-") ? "\(arg) is not a recognized option"
                                                               : "Unexpected argument '\(arg)'")
            }
            if flag != "--bootstrap-server" && flag != "--command-config" { given.append(String(flag.dropFirst(2))) }
            i += 1
        }
        guard actions.count == 1 else {
            throw AdminSession.Failure("Command must include exactly one action: "
                + Action.allCases.map { "--" + $0.rawValue }.joined(separator: ", "))
        }
        o.action = actions[0]
        guard let bootstrap else { throw AdminSession.Failure("Please specify either --bootstrap-server or --bootstrap-controller") }
        o.bootstrap = try ToolArguments.bootstrap(bootstrap)
        let givenSet = Set(given)
        for r in required[o.action]! where !givenSet.contains(r) {
            throw AdminSession.Failure("Missing required argument \"[\(r)]\"")
        }
        for g in given where g != o.action.rawValue && !permitted[o.action]!.contains(g) {
            throw AdminSession.Failure("Option \"[\(g)]\" can't be used with action \"[\(o.action.rawValue)]\"")
        }
        if let brokerList { o.brokerList = try parseBrokerList(brokerList) }
        return .run(o)
    }

    /// `--broker-list "1,2,3"`: integers, no repeats (Kafka's check and words).
    static func parseBrokerList(_ text: String) throws -> [Int32] {
        let ids = try text.split(separator: ",", omittingEmptySubsequences: false).map { part -> Int32 in
            let s = part.trimmingCharacters(in: .whitespaces)
            guard let id = Int32(s), id >= 0 else {
                throw AdminSession.Failure("--broker-list: '\(s)' is not a broker id (give \"0,1,2\")")
            }
            return id
        }
        let twice = duplicates(ids)
        guard twice.isEmpty else { throw AdminSession.Failure("Broker list contains duplicate entries: \(javaList(twice))") }
        return ids
    }

    /// The warnings for flags that Silt takes and that change nothing.
    static func warnings(_ o: Options) -> [String] {
        var out: [String] = []
        for (flag, value) in [("--throttle", o.throttle), ("--replica-alter-log-dirs-throttle", o.logDirsThrottle)] {
            guard let value, value >= 0 else { continue }
            out.append("Warning: \(flag) \(value) has no effect: Silt moves no data between brokers "
                + "(object storage holds the only replica; the new leader reads it from there)")
        }
        return out
    }

    // MARK: - --generate

    /// Silt's proposal: one broker per partition, round robin over the sorted brokers in
    /// topic/partition order, so each broker gets the same number (±1) of the partitions.
    public static func propose(_ partitions: [TopicPartition], brokers: [Int32]) -> [TopicPartition: [Int32]] {
        precondition(!brokers.isEmpty)
        let sortedBrokers = brokers.sorted()
        var out: [TopicPartition: [Int32]] = [:]
        for (i, tp) in partitions.sorted().enumerated() { out[tp] = [sortedBrokers[i % sortedBrokers.count]] }
        return out
    }

    /// What `--generate` prints (Kafka's two headers; no blank line after a header here).
    public static func generateText(current: [TopicPartition: [Int32]], proposed: [TopicPartition: [Int32]]) -> String {
        "Current partition replica assignment\n\(reassignmentJSON(current))\n\n"
            + "Proposed partition reassignment configuration\n\(reassignmentJSON(proposed))\n"
    }

    // MARK: - --execute

    /// What `--execute` prints before it starts the moves: the current assignment of the
    /// partitions being moved, to save for a rollback.
    public static func currentAssignmentText(_ current: [TopicPartition: [Int32]]) -> String {
        "Current partition replica assignment\n\n\(reassignmentJSON(current))\n\n"
            + "Save this to use as the --reassignment-json-file option during rollback\n"
    }

    /// AlterPartitionReassignments for `targets`; a nil target cancels the partition's move.
    public static func alterRequest(_ targets: [TopicPartition: [Int32]?]) -> AlterPartitionReassignmentsRequest {
        var req = AlterPartitionReassignmentsRequest()
        req.timeoutMs = Int32(AdminSession.requestTimeoutMs)
        let byTopic = Dictionary(grouping: targets.keys, by: \.topic)
        req.topics = byTopic.keys.sorted().map { name in
            var t = AlterPartitionReassignmentsRequest.ReassignableTopic()
            t.name = name
            t.partitions = byTopic[name]!.sorted().map { tp in
                var p = AlterPartitionReassignmentsRequest.ReassignablePartition()
                p.partitionIndex = tp.partition
                p.replicas = targets[tp]!
                return p
            }
            return t
        }
        return req
    }

    /// The failed partitions of an AlterPartitionReassignments answer, each as Kafka's error
    /// name and the broker's message. A top-level error fails every partition, as in Kafka's
    /// admin client; a partition the answer leaves out is an error too.
    public static func alterErrors(_ resp: AlterPartitionReassignmentsResponse,
                                   asked: Set<TopicPartition>) -> [TopicPartition: String] {
        if resp.errorCode != 0 {
            let why = reason(resp.errorCode, resp.errorMessage)
            return Dictionary(uniqueKeysWithValues: asked.map { ($0, why) })
        }
        var out: [TopicPartition: String] = [:]
        var answered = Set<TopicPartition>()
        for t in resp.responses {
            for p in t.partitions {
                let tp = TopicPartition(t.name, p.partitionIndex)
                answered.insert(tp)
                if p.errorCode != 0 { out[tp] = reason(p.errorCode, p.errorMessage) }
            }
        }
        for tp in asked.subtracting(answered) { out[tp] = "UNKNOWN_SERVER_ERROR: the answer does not mention this partition" }
        return out
    }

    /// `NAME: message` (or the name alone).
    static func reason(_ code: Int16, _ message: String?) -> String {
        let name = KafkaErrorCode.name(code)
        guard let m = message, !m.isEmpty else { return name }
        return "\(name): \(m)"
    }

    /// `<header>\nt-0: why\nt-1: why` in Kafka's partition order.
    static func errorList(_ header: String, _ errors: [TopicPartition: String]) -> String {
        ([header] + errors.keys.sorted().map { "\($0): \(errors[$0]!)" }).joined(separator: "\n")
    }

    static func plural(_ n: Int) -> String { n == 1 ? "" : "s" }

    static func partitionList(_ parts: some Sequence<TopicPartition>) -> String {
        parts.sorted().map(\.description).joined(separator: ",")
    }

    static let cannotExecuteBecauseOfExisting = "Cannot execute because there is an existing partition assignment.  "
        + "Use --additional to override this and create a new partition assignment in addition to the existing one. "
        + "The --additional flag can also be used to change the throttle by resubmitting the current reassignment."

    // MARK: - --verify

    /// Where one partition of a `--verify` stands.
    public struct PartitionState: Equatable, Sendable {
        public var current: [Int32]
        public var target: [Int32]
        /// No reassignment of the partition is in flight.
        public var done: Bool
        public init(current: [Int32], target: [Int32], done: Bool) {
            self.current = current
            self.target = target
            self.done = done
        }
    }

    /// Kafka's status lines for `--verify`.
    public static func statusText(_ states: [TopicPartition: PartitionState]) -> String {
        var lines = ["Status of partition reassignment:"]
        for tp in states.keys.sorted() {
            let s = states[tp]!
            if !s.done {
                lines.append("Reassignment of partition \(tp) is still in progress.")
            } else if s.current == s.target {
                lines.append("Reassignment of partition \(tp) is completed.")
            } else {
                lines.append("There is no active reassignment of partition \(tp), but replica set is "
                    + "\(s.current.map(String.init).joined(separator: ",")) rather than "
                    + "\(s.target.map(String.init).joined(separator: ",")).")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The states of `targets`: in progress when the partition is moving, else done with the
    /// replicas Metadata shows (none for a topic or partition that does not exist).
    public static func states(_ targets: [Assignment], moving: Set<TopicPartition>,
                              replicas: [TopicPartition: [Int32]]) -> [TopicPartition: PartitionState] {
        var out: [TopicPartition: PartitionState] = [:]
        for a in targets {
            let moves = moving.contains(a.partition)
            out[a.partition] = PartitionState(current: replicas[a.partition] ?? [], target: a.replicas, done: !moves)
        }
        return out
    }

    // MARK: - --list

    /// The moves in flight, from ListPartitionReassignments.
    public static func ongoing(_ resp: ListPartitionReassignmentsResponse)
        -> [TopicPartition: ListPartitionReassignmentsResponse.OngoingPartitionReassignment] {
        var out: [TopicPartition: ListPartitionReassignmentsResponse.OngoingPartitionReassignment] = [:]
        for t in resp.topics { for p in t.partitions { out[TopicPartition(t.name, p.partitionIndex)] = p } }
        return out
    }

    /// Kafka's `--list` text.
    public static func listText(_ moves: [TopicPartition: ListPartitionReassignmentsResponse.OngoingPartitionReassignment]) -> String {
        guard !moves.isEmpty else { return "No partition reassignments found.\n" }
        func ids(_ l: [Int32]) -> String { l.map(String.init).joined(separator: ",") }
        let lines = moves.keys.sorted().map { tp -> String in
            let m = moves[tp]!
            return "\(tp): replicas: \(ids(m.replicas))."
                + (m.addingReplicas.isEmpty ? "" : " adding: \(ids(m.addingReplicas)).")
                + (m.removingReplicas.isEmpty ? "" : " removing: \(ids(m.removingReplicas)).")
        }
        return "Current partition reassignments:\n" + lines.joined(separator: "\n") + "\n"
    }

    /// ListPartitionReassignments for `partitions` (nil: every partition).
    public static func listRequest(_ partitions: [TopicPartition]?) -> ListPartitionReassignmentsRequest {
        var req = ListPartitionReassignmentsRequest()
        req.timeoutMs = Int32(AdminSession.requestTimeoutMs)
        req.topics = partitions.map { parts in
            let byTopic = Dictionary(grouping: parts, by: \.topic)
            return byTopic.keys.sorted().map { name in
                var t = ListPartitionReassignmentsRequest.ListPartitionReassignmentsTopics()
                t.name = name
                t.partitionIndexes = Set(byTopic[name]!.map(\.partition)).sorted()
                return t
            }
        }
        return req
    }
}
