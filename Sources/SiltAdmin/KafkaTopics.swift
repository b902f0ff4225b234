import Foundation
import SiltProtocol

/// Kafka's `bin/kafka-topics.sh` on Silt's own client code (no JVM): `--create`, `--list`,
/// `--describe`, `--delete` and `--alter --partitions`, with Kafka 3.x's flags and output.
///
///     argv ──parse──▶ Options ──run (AdminSession)──▶ Metadata / CreateTopics / DeleteTopics /
///                                                     CreatePartitions / DescribeConfigs ──▶ text
///
/// `--topic` is a regular expression for every action but `--create`, matched against the
/// whole name as Kafka matches it (`a,b` means `a|b`). Errors print
/// `Error while executing topic command : <reason>` on stderr and exit 1 (Kafka prints them
/// on stdout, with a stack trace).
public enum KafkaTopics {
    public static let toolName = "kafka-topics"

    public enum Action: String, Equatable, Sendable, CaseIterable {
        case create, list, describe, delete, alter
    }

    public struct Options: Equatable, Sendable {
        public var bootstrap: [MetadataQuorum.HostPort] = []
        public var commandConfig: String?
        public var action: Action = .list
        public var topic: String?
        public var partitions: Int32?
        public var replicationFactor: Int16?
        /// `--config k=v`, in order.
        public var configs: [(String, String)] = []
        public var ifExists = false
        public var ifNotExists = false
        public var excludeInternal = false

        public init() {}

        public static func == (a: Options, b: Options) -> Bool {
            a.bootstrap == b.bootstrap && a.commandConfig == b.commandConfig && a.action == b.action && a.topic == b.topic
                && a.partitions == b.partitions && a.replicationFactor == b.replicationFactor
                && a.configs.map { "\($0.0)=\($0.1)" } == b.configs.map { "\($0.0)=\($0.1)" }
                && a.ifExists == b.ifExists && a.ifNotExists == b.ifNotExists && a.excludeInternal == b.excludeInternal
        }
    }

    public enum ParseOutcome: Equatable, Sendable {
        case run(Options)
        case help
    }

    public static let usage = """
        Silt's kafka-topics: create, delete, describe, or change a topic (Kafka's command line, no JVM).
        Option                                   Description
        ------                                   -----------
        --alter                                  Alter the number of partitions of the topic.
        --bootstrap-server <host:port,...>       REQUIRED: the Kafka server(s) to connect to.
        --command-config <file>                  Admin client properties; Silt reads and ignores them.
        --config <name=value>                    A topic config override for the topic being created (repeatable).
        --create                                 Create a new topic.
        --delete                                 Delete a topic.
        --describe                               List details for the given topics.
        --exclude-internal                       Exclude internal topics when listing or describing.
        --help                                   Print usage information.
        --if-exists                              With --alter, --describe or --delete: only act if the topic exists.
        --if-not-exists                          With --create: only create the topic if it does not exist.
        --list                                   List all available topics.
        --partitions <Integer>                   Partitions of the topic being created or altered.
        --replication-factor <Integer>           Replication factor of the topic being created (Silt keeps one replica).
        --topic <String: topic>                  The topic to create, alter, describe or delete; a regular expression
                                                   except with --create (a,b means a|b).

        Not supported by Silt: --zookeeper, --replica-assignment, --topic-id, --under-replicated-partitions,
        --under-min-isr-partitions, --at-min-isr-partitions, --unavailable-partitions, --topics-with-overrides.
        """

    /// Flags Kafka takes that Silt refuses, with why.
    static let refused: [String: String] = [
        "--zookeeper": "Silt has no ZooKeeper; use --bootstrap-server",
        "--bootstrap-controller": "kafka-topics takes --bootstrap-server",
        "--replica-assignment": "Silt places partitions itself (one replica each)",
        "--topic-id": "name the topic with --topic",
        "--under-replicated-partitions": "not supported by Silt's kafka-topics",
        "--under-min-isr-partitions": "not supported by Silt's kafka-topics",
        "--at-min-isr-partitions": "not supported by Silt's kafka-topics",
        "--unavailable-partitions": "not supported by Silt's kafka-topics",
        "--topics-with-overrides": "not supported by Silt's kafka-topics",
        "--delete-config": "use kafka-configs.sh --alter --delete-config",
        "--partition-size-limit-per-response": "not supported by Silt's kafka-topics",
    ]

    // MARK: - Command line

    public static func parse(_ args: [String]) throws -> ParseOutcome {
        var o = Options()
        var actions: [Action] = []
        var bootstrap: String?
        var i = 0
        while i < args.count {
            let arg = args[i]
            let flag = ToolArguments.flag(arg)
            switch flag {
            case "-h", "--help": return .help
            case "--bootstrap-server": bootstrap = try ToolArguments.value(args, &i, flag)
            case "--command-config": o.commandConfig = try ToolArguments.value(args, &i, flag)
            case "--create", "--list", "--describe", "--delete", "--alter":
                actions.append(Action(rawValue: String(flag.dropFirst(2)))!)
            case "--topic": o.topic = try ToolArguments.value(args, &i, flag)
            case "--partitions":
                let v = try ToolArguments.value(args, &i, flag)
                guard let n = Int32(v) else { throw AdminSession.Failure("Option --partitions: '\(v)' is not an integer") }
                o.partitions = n
            case "--replication-factor":
                let v = try ToolArguments.value(args, &i, flag)
                guard let n = Int16(v) else {
                    throw AdminSession.Failure("Option --replication-factor: '\(v)' is not an integer")
                }
                o.replicationFactor = n
            case "--config":
                let v = try ToolArguments.value(args, &i, flag)
                guard let eq = v.firstIndex(of: "="), eq != v.startIndex else {
                    throw AdminSession.Failure("Invalid topic config: all configs to be added must be in the format \"key=val\" ('\(v)').")
                }
                o.configs.append((String(v[..<eq]), String(v[v.index(after: eq)...])))
            case "--if-exists": o.ifExists = true
            case "--if-not-exists": o.ifNotExists = true
            case "--exclude-internal": o.excludeInternal = true
            default:
                if let why = refused[flag] { throw AdminSession.Failure("\(flag) is not supported: \(why).") }
                throw AdminSession.Failure(arg.hasPrefix("-") ? "\(arg) is not a recognized option"
                                                               : "Unexpected argument '\(arg)'")
            }
            i += 1
        }
        guard actions.count == 1 else {
            throw AdminSession.Failure("Command must include exactly one action: --list, --describe, --create, --alter or --delete")
        }
        o.action = actions[0]
        guard let bootstrap else { throw AdminSession.Failure("Missing required argument \"[bootstrap-server]\"") }
        o.bootstrap = try ToolArguments.bootstrap(bootstrap)
        try check(o)
        return .run(o)
    }

    /// Kafka's option combination checks, with its words.
    static func check(_ o: Options) throws {
        func invalid(_ option: String, with actions: [Action]) throws {
            if !actions.contains(o.action) {
                throw AdminSession.Failure("Option \"[\(option)]\" can't be used with option \"[\(o.action.rawValue)]\"")
            }
        }
        switch o.action {
        case .create, .alter, .delete:
            guard let t = o.topic, !t.isEmpty else { throw AdminSession.Failure("Missing required argument \"[topic]\"") }
        case .list, .describe:
            break
        }
        if o.action == .alter && o.partitions == nil {
            throw AdminSession.Failure("Missing required argument \"[partitions]\" (Silt's --alter changes the partition count only)")
        }
        if o.partitions != nil { try invalid("partitions", with: [.create, .alter]) }
        if o.replicationFactor != nil { try invalid("replication-factor", with: [.create]) }
        if !o.configs.isEmpty { try invalid("config", with: [.create]) }
        if o.ifNotExists { try invalid("if-not-exists", with: [.create]) }
        if o.ifExists { try invalid("if-exists", with: [.alter, .describe, .delete]) }
        if let p = o.partitions, p < 1 { throw AdminSession.Failure("The partitions must be greater than 0") }
        if let r = o.replicationFactor, r < 1 { throw AdminSession.Failure("The replication factor must be greater than 0") }
        if let t = o.topic, o.action != .create { _ = try topicPattern(t) }
    }

    /// `--topic` as Kafka's IncludeList makes it: `,` means `|`, matched against the whole name.
    static func topicPattern(_ text: String) throws -> NSRegularExpression {
        let pattern = "^(?:" + text.replacingOccurrences(of: ",", with: "|") + ")$"
        do {
            return try NSRegularExpression(pattern: pattern)
        } catch {
            throw AdminSession.Failure("--topic '\(text)' is not a valid regular expression")
        }
    }

    /// The names `--topic` selects, sorted; internal topics go with `excludeInternal`.
    public static func select(_ topics: [(name: String, isInternal: Bool)], topic: String?,
                              excludeInternal: Bool) throws -> [String] {
        let regex = try topic.map(topicPattern)
        return topics.filter { t in
            if excludeInternal && t.isInternal { return false }
            guard let regex else { return true }
            return regex.firstMatch(in: t.name, range: NSRange(t.name.startIndex..., in: t.name)) != nil
        }.map(\.name).sorted()
    }

    // MARK: - Requests and responses

    public static func createRequest(_ o: Options) -> CreateTopicsRequest {
        var t = CreateTopicsRequest.CreatableTopic()
        t.name = o.topic!
        t.numPartitions = o.partitions ?? -1           // -1: the broker's num.partitions
        t.replicationFactor = o.replicationFactor ?? -1 // -1: the broker's default.replication.factor
        t.configs = o.configs.map { k, v in
            var c = CreateTopicsRequest.CreatableTopicConfig()
            c.name = k
            c.value = v
            return c
        }
        var req = CreateTopicsRequest()
        req.topics = [t]
        req.timeoutMs = Int32(AdminSession.requestTimeoutMs)
        return req
    }

    /// A Metadata request for every topic, never creating one.
    public static func metadataRequest() -> MetadataRequest {
        var req = MetadataRequest()
        req.topics = nil
        req.allowAutoTopicCreation = false
        return req
    }

    /// The reason an error code carries: the broker's message, else Kafka's error name.
    static func reason(_ code: Int16, _ message: String?) -> String {
        if let m = message, !m.isEmpty { return m }
        return KafkaErrorCode.name(code)
    }

    /// Kafka's describe text for one topic:
    ///
    ///     Topic: t<TAB>TopicId: <id><TAB>PartitionCount: 2<TAB>ReplicationFactor: 1<TAB>Configs: k=v,...
    ///     <TAB>Topic: t<TAB>Partition: 0<TAB>Leader: 1<TAB>Replicas: 1<TAB>Isr: 1
    ///
    /// `configs` are the topic's entries that are not built-in defaults, in response order.
    public static func describeText(_ topic: MetadataResponse.MetadataResponseTopic, configs: [(String, String?)]) -> String {
        let name = topic.name ?? ""
        let partitions = topic.partitions.sorted { $0.partitionIndex < $1.partitionIndex }
        let replicationFactor = partitions.first?.replicaNodes.count ?? 0
        let configText = configs.map { "\($0.0)=\($0.1 ?? "null")" }.joined(separator: ",")
        var out = "Topic: \(name)\tTopicId: \(topic.topicId.base64URL)\tPartitionCount: \(partitions.count)\t"
            + "ReplicationFactor: \(replicationFactor)\tConfigs: \(configText)\n"
        for p in partitions {
            let leader = p.leaderId < 0 ? "none" : String(p.leaderId)
            out += "\tTopic: \(name)\tPartition: \(p.partitionIndex)\tLeader: \(leader)\t"
                + "Replicas: \(p.replicaNodes.map(String.init).joined(separator: ","))\t"
                + "Isr: \(p.isrNodes.map(String.init).joined(separator: ","))\n"
        }
        return out
    }

    /// The entries of a DescribeConfigs result that `--describe` shows: those that are not
    /// Kafka's built-in defaults (`DEFAULT_CONFIG`, or `isDefault` before v1).
    static func overriddenConfigs(_ result: DescribeConfigsResponse.DescribeConfigsResult) -> [(String, String?)] {
        result.configs.filter { c in c.configSource >= 0 ? c.configSource != 5 : !c.isDefault }
            .map { ($0.name, $0.isSensitive ? nil : $0.value) }
    }

    // MARK: - Running against a broker

    /// Runs a parsed command line; prints results to `out`, warnings and errors to `err`,
    /// and returns the exit code.
    public static func run(_ o: Options, out: (String) -> Void, err: (String) -> Void) -> Int32 {
        do {
            if let warning = try ToolArguments.commandConfigWarning(o.commandConfig, tool: toolName) { err(warning) }
            let session = try AdminSession.connect(o.bootstrap, clientId: "silt-kafka-topics")
            defer { session.close() }
            try execute(o, session, out: out)
            return 0
        } catch {
            err("Error while executing topic command : \(error)")
            return 1
        }
    }

    static func execute(_ o: Options, _ s: AdminSession, out: (String) -> Void) throws {
        switch o.action {
        case .create:
            let resp = try s.send(createRequest(o))
            guard let r = resp.topics.first(where: { $0.name == o.topic }) else {
                throw AdminSession.Failure("CreateTopics answered without topic '\(o.topic!)'")
            }
            if r.errorCode == KafkaErrorCode.topicAlreadyExists && o.ifNotExists { return }
            if r.errorCode != 0 { throw AdminSession.Failure(reason(r.errorCode, r.errorMessage)) }
            out("Created topic \(o.topic!).\n")

        case .list:
            let names = try select(try topics(s), topic: o.topic, excludeInternal: o.excludeInternal)
            for n in names { out(n + "\n") }

        case .describe:
            let meta = try s.send(metadataRequest())
            let byName = Dictionary(meta.topics.compactMap { t in t.name.map { ($0, t) } }, uniquingKeysWith: { a, _ in a })
            let names = try select(byName.values.map { ($0.name!, $0.isInternal) }, topic: o.topic,
                                   excludeInternal: o.excludeInternal)
            try requireMatch(names, o)
            guard !names.isEmpty else { return }
            var req = DescribeConfigsRequest()
            req.resources = names.map { n in
                var r = DescribeConfigsRequest.DescribeConfigsResource()
                r.resourceType = 2
                r.resourceName = n
                r.configurationKeys = nil
                return r
            }
            let configs = try s.send(req)
            for n in names {
                guard let result = configs.results.first(where: { $0.resourceType == 2 && $0.resourceName == n }) else {
                    throw AdminSession.Failure("DescribeConfigs answered without topic '\(n)'")
                }
                if result.errorCode != 0 {
                    throw AdminSession.Failure("Topic '\(n)': \(reason(result.errorCode, result.errorMessage))")
                }
                out(describeText(byName[n]!, configs: overriddenConfigs(result)))
            }

        case .delete:
            let names = try select(try topics(s), topic: o.topic, excludeInternal: false)
            try requireMatch(names, o)
            if let internalTopic = names.first(where: { $0.hasPrefix("__") }) {
                throw AdminSession.Failure("Topic \(internalTopic) is a kafka internal topic and is not allowed to be marked for deletion.")
            }
            guard !names.isEmpty else { return }
            var req = DeleteTopicsRequest()
            req.topicNames = names
            req.topics = names.map { n in
                var t = DeleteTopicsRequest.DeleteTopicState()
                t.name = n
                return t
            }
            req.timeoutMs = Int32(AdminSession.requestTimeoutMs)
            let resp = try s.send(req)
            for r in resp.responses where r.errorCode != 0 {
                throw AdminSession.Failure("Topic '\(r.name ?? "?")': \(reason(r.errorCode, r.errorMessage))")
            }

        case .alter:
            let names = try select(try topics(s), topic: o.topic, excludeInternal: o.excludeInternal)
            try requireMatch(names, o)
            guard !names.isEmpty else { return }
            var req = CreatePartitionsRequest()
            req.topics = names.map { n in
                var t = CreatePartitionsRequest.CreatePartitionsTopic()
                t.name = n
                t.count = o.partitions!
                t.assignments = nil
                return t
            }
            req.timeoutMs = Int32(AdminSession.requestTimeoutMs)
            let resp = try s.send(req)
            for r in resp.results where r.errorCode != 0 {
                throw AdminSession.Failure("Topic '\(r.name)': \(reason(r.errorCode, r.errorMessage))")
            }
        }
    }

    /// Every topic the broker knows, with its internal flag.
    static func topics(_ s: AdminSession) throws -> [(name: String, isInternal: Bool)] {
        let meta = try s.send(metadataRequest())
        return meta.topics.compactMap { t in t.name.map { ($0, t.isInternal) } }
    }

    /// Kafka's check that `--topic` matched something (unless `--if-exists`).
    static func requireMatch(_ names: [String], _ o: Options) throws {
        guard names.isEmpty, let t = o.topic, !o.ifExists else { return }
        throw AdminSession.Failure("Topic '\(t)' does not exist as expected")
    }
}
