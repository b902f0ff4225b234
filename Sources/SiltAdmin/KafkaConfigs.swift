import Foundation
import SiltProtocol

/// Kafka's `bin/kafka-configs.sh` on Silt's own client code (no JVM), for topics, brokers,
/// groups (KIP-848 group configs) and users (SCRAM credentials; KafkaConfigs+Users.swift):
/// `--describe [--all]` and `--alter --add-config k=v[,k=v] / --delete-config k[,k]`, with
/// Kafka's flags and output (4.x's for groups and users).
///
///     argv ──parse──▶ Options ──run (AdminSession)──▶ Metadata / DescribeCluster,
///                                                     DescribeConfigs, IncrementalAlterConfigs ──▶ text
///
/// `--describe` prints, per entity, a header and one line per config:
///
///     Dynamic configs for topic t are:
///       retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, DEFAULT_CONFIG:log.retention.ms=604800000}
///
/// Errors print on stderr and exit 1 (Kafka prints them on stdout, with a stack trace).
public enum KafkaConfigs {
    public static let toolName = "kafka-configs"

    public enum EntityType: String, Equatable, Sendable {
        case topics, brokers, groups, users
        /// The config resource type; users have none (their SCRAM credentials have their own APIs).
        var resourceType: Int8 {
            switch self {
            case .topics: return 2
            case .brokers: return 4
            case .groups: return 32
            case .users: preconditionFailure("users are not a config resource")
            }
        }
        var singular: String { String(rawValue.dropLast()) }
    }

    /// Whom the command is about: one named entity, the cluster-wide broker default
    /// (`--entity-default`, resource name ""), or every entity of the type.
    public enum Entity: Equatable, Sendable {
        case named(String)
        case brokerDefault
        case all
    }

    public enum Action: Equatable, Sendable {
        case describe(all: Bool)
        case alter(add: [(String, String)], delete: [String])

        public static func == (a: Action, b: Action) -> Bool {
            switch (a, b) {
            case (.describe(let x), .describe(let y)): return x == y
            case (.alter(let a1, let d1), .alter(let a2, let d2)):
                return a1.map { "\($0.0)=\($0.1)" } == a2.map { "\($0.0)=\($0.1)" } && d1 == d2
            default: return false
            }
        }
    }

    public struct Options: Equatable, Sendable {
        public var bootstrap: [MetadataQuorum.HostPort]
        public var commandConfig: String?
        public var entityType: EntityType
        public var entity: Entity
        public var action: Action
    }

    public enum ParseOutcome: Equatable, Sendable {
        case run(Options)
        case help
    }

    public static let usage = """
        Silt's kafka-configs: describe and alter topic, broker and group configs and users' SCRAM credentials
        (Kafka's command line, no JVM).
        Option                                   Description
        ------                                   -----------
        --add-config <k=v,k2=[v1,v2],...>        Configs to set; a value with commas goes in brackets. For users:
                                                 'SCRAM-SHA-256=[iterations=8192,password=secret]' (SCRAM-SHA-512
                                                 too; iterations 4096 by default, at least 4096).
        --all                                    With --describe: every config, not only the dynamic ones.
        --alter                                  Alter the configuration of the entity.
        --bootstrap-server <host:port,...>       REQUIRED: the Kafka server(s) to connect to.
        --broker <id>                            Same as --entity-type brokers --entity-name <id>.
        --broker-defaults                        Same as --entity-type brokers --entity-default.
        --command-config <file>                  Admin client properties; Silt reads and ignores them.
        --delete-config <k,k2,...>               Configs to remove (they return to their inherited value); for
                                                 users, the mechanisms whose credential to delete.
        --describe                               List the configs of the entity.
        --entity-default                         The cluster-wide default of the brokers.
        --entity-name <name>                     The topic name, broker id, group id or user name.
        --entity-type <topics|brokers|groups|users>  The type of the entity.
        --group <name>                           Same as --entity-type groups --entity-name <name>.
        --help                                   Print usage information.
        --topic <name>                           Same as --entity-type topics --entity-name <name>.
        --user <name>                            Same as --entity-type users --entity-name <name>.

        Not supported by Silt: --zookeeper, --bootstrap-controller, --add-config-file, user and client quotas
        (--entity-default for users, --user-defaults, quota keys), and the entity types clients, ips,
        broker-loggers and client-metrics.
        """

    static let refused: [String: String] = [
        "--zookeeper": "Silt has no ZooKeeper; use --bootstrap-server",
        "--bootstrap-controller": "Silt's controllers take configs through the brokers; use --bootstrap-server",
        "--add-config-file": "give the configs with --add-config",
        "--user-defaults": "Silt has no user quotas yet",
        "--client": "Silt has no client quotas yet",
        "--client-defaults": "Silt has no client quotas yet",
        "--ip": "Silt has no connection quotas yet",
        "--client-metrics": "Silt has no client metrics subscriptions",
        "--force": "not supported by Silt's kafka-configs",
    ]

    // MARK: - Command line

    public static func parse(_ args: [String]) throws -> ParseOutcome {
        var bootstrap: String?, commandConfig: String?
        var types: [String] = [], names: [String] = []
        var entityDefault = false, describe = false, alter = false, all = false
        var add: [(String, String)] = [], delete: [String] = []
        var i = 0
        while i < args.count {
            let arg = args[i]
            let flag = ToolArguments.flag(arg)
            switch flag {
            case "-h", "--help": return .help
            case "--bootstrap-server": bootstrap = try ToolArguments.value(args, &i, flag)
            case "--command-config": commandConfig = try ToolArguments.value(args, &i, flag)
            case "--entity-type": types.append(try ToolArguments.value(args, &i, flag))
            case "--entity-name": names.append(try ToolArguments.value(args, &i, flag))
            case "--entity-default": entityDefault = true
            case "--topic":
                types.append("topics")
                names.append(try ToolArguments.value(args, &i, flag))
            case "--broker":
                types.append("brokers")
                names.append(try ToolArguments.value(args, &i, flag))
            case "--broker-defaults":
                types.append("brokers")
                entityDefault = true
            case "--group":
                types.append("groups")
                names.append(try ToolArguments.value(args, &i, flag))
            case "--user":
                types.append("users")
                names.append(try ToolArguments.value(args, &i, flag))
            case "--describe": describe = true
            case "--alter": alter = true
            case "--all": all = true
            case "--add-config": add += try parseConfigsToAdd(try ToolArguments.value(args, &i, flag))
            case "--delete-config":
                delete += try ToolArguments.value(args, &i, flag).split(separator: ",")
                    .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            default:
                if let why = refused[flag] { throw AdminSession.Failure("\(flag) is not supported: \(why).") }
                throw AdminSession.Failure(arg.hasPrefix("-") ? "\(arg) is not a recognized option"
                                                               : "Unexpected argument '\(arg)'")
            }
            i += 1
        }
        guard describe != alter else {
            throw AdminSession.Failure("Command must include exactly one action: --describe, --alter")
        }
        guard let bootstrap else { throw AdminSession.Failure("Missing required argument \"[bootstrap-server]\"") }
        guard let typeName = types.first else { throw AdminSession.Failure("--entity-type must be specified") }
        guard Set(types).count == 1 else {
            throw AdminSession.Failure("Only one entity type may be given; got \(types.joined(separator: ", "))")
        }
        guard let entityType = EntityType(rawValue: typeName) else {
            let known = ["clients", "ips", "broker-loggers", "client-metrics"]
            if known.contains(typeName) {
                throw AdminSession.Failure("--entity-type \(typeName) is not supported by Silt yet (topics, brokers, groups "
                    + "and users are)")
            }
            throw AdminSession.Failure("Invalid entity type \(typeName), the entity type must be one of topics, brokers, "
                + "users, clients, ips, broker-loggers, client-metrics, groups")
        }
        guard names.count <= 1 else { throw AdminSession.Failure("Only one entity name may be given") }
        let entity: Entity
        if entityDefault {
            guard entityType == .brokers else {
                throw AdminSession.Failure(entityType == .users
                    ? "--entity-default is not supported for users: Silt has no user quotas yet, and SCRAM credentials "
                        + "are per user (Kafka: The use of --entity-default or --user-defaults is not allowed with User SCRAM "
                        + "Credentials using --bootstrap-server.)"
                    : "--entity-default is only allowed with --entity-type brokers in Silt")
            }
            guard names.isEmpty else { throw AdminSession.Failure("--entity-name and --entity-default cannot both be given") }
            entity = .brokerDefault
        } else if let n = names.first {
            if entityType == .brokers, Int32(n) == nil || Int32(n)! < 0 {
                throw AdminSession.Failure("The entity name for brokers must be a valid integer broker id, but it is: \(n)")
            }
            if n.isEmpty { throw AdminSession.Failure("--entity-name must not be empty") }
            entity = .named(n)
        } else {
            entity = .all
        }
        let action: Action
        if describe {
            if !add.isEmpty || !delete.isEmpty {
                throw AdminSession.Failure("--add-config and --delete-config are only allowed with --alter")
            }
            if all && entityType == .users { throw AdminSession.Failure("--all is not allowed with --entity-type users") }
            action = .describe(all: all)
        } else {
            if all { throw AdminSession.Failure("--all is only allowed with --describe") }
            guard entity != .all else {
                throw AdminSession.Failure("--entity-name or --entity-default must be specified with --alter")
            }
            guard !add.isEmpty || !delete.isEmpty else {
                throw AdminSession.Failure("At least one of --add-config or --delete-config must be specified with --alter")
            }
            let both = Set(add.map(\.0)).intersection(delete)
            if !both.isEmpty {
                throw AdminSession.Failure("Cannot both add and delete config(s): \(both.sorted().joined(separator: ","))")
            }
            if entityType == .users { try checkUserAlter(add: add, delete: delete) }
            action = .alter(add: add, delete: delete)
        }
        return .run(Options(bootstrap: try ToolArguments.bootstrap(bootstrap), commandConfig: commandConfig,
                            entityType: entityType, entity: entity, action: action))
    }

    /// Kafka's `--add-config` form: `k=v` pairs separated by commas; a value that holds
    /// commas goes in brackets (`cleanup.policy=[compact,delete]`), which are dropped.
    public static func parseConfigsToAdd(_ text: String) throws -> [(String, String)] {
        var items: [String] = []
        var current = "", depth = 0
        for ch in text {
            switch ch {
            case "[": depth += 1; current.append(ch)
            case "]": depth -= 1; current.append(ch)
            case "," where depth == 0: items.append(current); current = ""
            default: current.append(ch)
            }
            if depth < 0 { break }
        }
        items.append(current)
        guard depth == 0 else {
            throw AdminSession.Failure("Invalid entity config: unbalanced brackets in '\(text)'")
        }
        return try items.filter { !$0.isEmpty }.map { item in
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw AdminSession.Failure("Invalid entity config: all configs to be added must be in the format "
                    + "\"key=val\" or \"key=[val1,val2]\" ('\(item)').")
            }
            var value = String(item[item.index(after: eq)...])
            if value.hasPrefix("[") && value.hasSuffix("]") { value = String(value.dropFirst().dropLast()) }
            return (String(item[..<eq]).trimmingCharacters(in: .whitespaces), value)
        }
    }

    // MARK: - Requests and rendering

    /// Kafka's `ConfigEntry.ConfigSource` names (the admin client's, which the tool prints), by wire code.
    public static func sourceName(_ code: Int8) -> String {
        switch code {
        case 1: return "DYNAMIC_TOPIC_CONFIG"
        case 2: return "DYNAMIC_BROKER_CONFIG"
        case 3: return "DYNAMIC_DEFAULT_BROKER_CONFIG"
        case 4: return "STATIC_BROKER_CONFIG"
        case 5: return "DEFAULT_CONFIG"
        case 6: return "DYNAMIC_BROKER_LOGGER_CONFIG"
        case 7: return "DYNAMIC_CLIENT_METRICS_CONFIG"
        case 8: return "DYNAMIC_GROUP_CONFIG"
        default: return "UNKNOWN"
        }
    }

    /// The source a plain `--describe` (without `--all`) shows: the entity's own dynamic layer.
    static func dynamicSource(_ type: EntityType, _ name: String) -> Int8 {
        switch type {
        case .topics: return 1
        case .groups: return 8
        case .brokers, .users: return name.isEmpty ? 3 : 2
        }
    }

    /// The header line of an entity.
    public static func header(_ type: EntityType, _ name: String, all: Bool) -> String {
        if type == .brokers && name.isEmpty { return "Default configs for brokers in the cluster are:" }
        return "\(all ? "All" : "Dynamic") configs for \(type.singular) \(name) are:"
    }

    /// The config lines of one entity, sorted by name: every entry with `all`, else those
    /// of the entity's own dynamic layer.
    public static func configLines(_ result: DescribeConfigsResponse.DescribeConfigsResult, type: EntityType,
                                   all: Bool) -> String {
        let wanted = dynamicSource(type, result.resourceName)
        var out = ""
        for c in result.configs.sorted(by: { $0.name < $1.name }) where all || c.configSource == wanted {
            let synonyms = c.synonyms.map { "\(sourceName($0.source)):\($0.name)=\($0.value ?? "null")" }
                .joined(separator: ", ")
            out += "  \(c.name)=\(c.value ?? "null") sensitive=\(c.isSensitive) synonyms={\(synonyms)}\n"
        }
        return out
    }

    static func describeRequest(_ type: EntityType, _ names: [String], synonyms: Bool) -> DescribeConfigsRequest {
        var req = DescribeConfigsRequest()
        req.includeSynonyms = synonyms
        req.resources = names.map { n in
            var r = DescribeConfigsRequest.DescribeConfigsResource()
            r.resourceType = type.resourceType
            r.resourceName = n
            r.configurationKeys = nil
            return r
        }
        return req
    }

    /// IncrementalAlterConfigs: SET for each added key, DELETE for each removed one.
    public static func alterRequest(_ type: EntityType, _ name: String, add: [(String, String)],
                                    delete: [String]) -> IncrementalAlterConfigsRequest {
        var res = IncrementalAlterConfigsRequest.AlterConfigsResource()
        res.resourceType = type.resourceType
        res.resourceName = name
        res.configs = add.map { k, v in
            var c = IncrementalAlterConfigsRequest.AlterableConfig()
            c.name = k
            c.configOperation = 0   // SET
            c.value = v
            return c
        } + delete.map { k in
            var c = IncrementalAlterConfigsRequest.AlterableConfig()
            c.name = k
            c.configOperation = 1   // DELETE
            c.value = nil
            return c
        }
        var req = IncrementalAlterConfigsRequest()
        req.resources = [res]
        return req
    }

    // MARK: - Running against a broker

    public static func run(_ o: Options, args: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        do {
            if let warning = try ToolArguments.commandConfigWarning(o.commandConfig, tool: toolName) { err(warning) }
            let session = try AdminSession.connect(o.bootstrap, clientId: "silt-kafka-configs")
            defer { session.close() }
            try execute(o, session, out: out)
            return 0
        } catch {
            err("Error while executing config command with args '\(args.joined(separator: " "))'")
            err("\(error)")
            return 1
        }
    }

    /// The entities of the type that exist: topic names (internal ones too), broker ids, or groups.
    static func existing(_ type: EntityType, _ s: AdminSession) throws -> [String] {
        if type == .groups { return try existingGroups(s) }
        let meta = try s.send(KafkaTopics.metadataRequest())
        switch type {
        case .topics: return meta.topics.compactMap(\.name).sorted()
        case .brokers: return meta.brokers.map(\.nodeId).sorted().map(String.init)
        case .groups, .users: preconditionFailure("listed elsewhere")
        }
    }

    static func execute(_ o: Options, _ s: AdminSession, out: (String) -> Void) throws {
        if o.entityType == .users {
            switch o.action {
            case .describe: try describeUsers(o.entity, s, out: out)
            case .alter(let add, let delete):
                guard case .named(let user) = o.entity else { preconditionFailure("parse refuses --alter without a user") }
                try alterUser(user, add: add, delete: delete, s)
                out("Completed updating config for user \(user).\n")
            }
            return
        }
        switch o.action {
        case .describe(let all):
            let names: [String]
            switch o.entity {
            case .brokerDefault: names = [""]
            case .named(let n) where o.entityType == .groups:
                // Kafka 4: a group exists if it is listed or has a dynamic config; --all describes any.
                if !all, try !existing(.groups, s).contains(n), try !groupHasDynamicConfig(n, s) {
                    out("The group '\(n)' doesn't exist and doesn't have dynamic config.\n")
                    return
                }
                names = [n]
            case .named(let n):
                guard try existing(o.entityType, s).contains(n) else {
                    out("The \(o.entityType.singular) '\(n)' doesn't exist and doesn't have dynamic config.\n")
                    return
                }
                names = [n]
            case .all:
                names = try existing(o.entityType, s) + (o.entityType == .brokers ? [""] : [])
            }
            // One broker resource per request: a broker describes only itself and "".
            for n in names {
                let resp = try s.send(describeRequest(o.entityType, [n], synonyms: true))
                guard let result = resp.results.first else {
                    throw AdminSession.Failure("DescribeConfigs answered without \(o.entityType.singular) '\(n)'")
                }
                if result.errorCode != 0 {
                    throw AdminSession.Failure(KafkaTopics.reason(result.errorCode, result.errorMessage))
                }
                out(header(o.entityType, n, all: all) + "\n")
                out(configLines(result, type: o.entityType, all: all))
            }

        case .alter(let add, let delete):
            let name: String
            switch o.entity {
            case .named(let n): name = n
            case .brokerDefault: name = ""
            case .all: preconditionFailure("parse refuses --alter without an entity")
            }
            if !delete.isEmpty && o.entityType != .groups {
                // Kafka 3.x refuses to delete a key the entity has no dynamic value for (4.x, the
                // only Kafka with group configs, does not check).
                let resp = try s.send(describeRequest(o.entityType, [name], synonyms: false))
                guard let result = resp.results.first else {
                    throw AdminSession.Failure("DescribeConfigs answered without \(o.entityType.singular) '\(name)'")
                }
                if result.errorCode != 0 {
                    throw AdminSession.Failure(KafkaTopics.reason(result.errorCode, result.errorMessage))
                }
                let present = Set(result.configs.filter { $0.configSource == dynamicSource(o.entityType, name) }.map(\.name))
                let invalid = delete.filter { !present.contains($0) }
                if !invalid.isEmpty {
                    throw AdminSession.Failure("Invalid config(s): \(invalid.joined(separator: ","))")
                }
            }
            let resp = try s.send(alterRequest(o.entityType, name, add: add, delete: delete))
            for r in resp.responses where r.errorCode != 0 {
                throw AdminSession.Failure("\(KafkaErrorCode.name(r.errorCode)): \(KafkaTopics.reason(r.errorCode, r.errorMessage))")
            }
            if name.isEmpty {
                out("Completed updating default config for brokers in the cluster.\n")
            } else {
                out("Completed updating config for \(o.entityType.singular) \(name).\n")
            }
        }
    }
}
