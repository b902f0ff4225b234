import Foundation
import SiltProtocol

/// Kafka's `bin/kafka-acls.sh` on Silt's own client code (no JVM): `--add`, `--remove` and
/// `--list` of ACLs on topics, groups, the cluster and transactional ids, with Kafka 3.x's
/// flags and output (`AclCommand`).
///
///     argv ──parse──▶ Options ──run (AdminSession)──▶ CreateAcls / DeleteAcls / DescribeAcls ──▶ text
///
/// `--add` and `--list` print, per resource:
///
///     Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`:
///      	(principal=User:*, host=*, operation=ALL, permissionType=DENY)
///
/// Errors print on stderr and exit 1.
public enum KafkaAcls {
    public static let toolName = "kafka-acls"

    public enum Action: String, Equatable, Sendable { case add, remove, list }

    public struct Options: Equatable, Sendable {
        public var bootstrap: [MetadataQuorum.HostPort]
        public var commandConfig: String?
        public var action: Action
        /// The resources named (type, name); empty with `--list` means every ACL.
        public var resources: [Resource]
        public var patternType: AclPatternType
        /// The ACLs to add or remove; empty with `--remove` means every ACL of the resources.
        public var bindings: [Binding]
        /// `--list --principal`: only this principal's ACLs.
        public var listPrincipals: [String]
        public var force: Bool
    }

    public struct Resource: Hashable, Sendable {
        public var type: AclResourceType
        public var name: String
    }

    public struct Entry: Hashable, Sendable {
        public var principal: String
        public var host: String
        public var operation: KafkaAclOperation
        public var permission: AclPermissionType
    }

    /// One ACL of the command line: an entry on a resource.
    public struct Binding: Hashable, Sendable {
        public var resource: Resource
        public var entry: Entry
    }

    public static let usage = """
        Silt's kafka-acls: add, remove and list ACLs (Kafka's command line, no JVM).
        Option                                   Description
        ------                                   -----------
        --add                                    Add ACLs.
        --allow-host <host>                      Host of --allow-principal (default *); repeatable.
        --allow-principal <Type:name>            Principal allowed (User:* for everyone); repeatable.
        --bootstrap-server <host:port,...>       REQUIRED: the Kafka server(s) to connect to.
        --cluster                                The cluster resource.
        --command-config <file>                  Admin client properties; Silt reads and ignores them.
        --consumer                               Shorthand: READ and DESCRIBE on --topic, READ on --group.
        --deny-host <host>                       Host of --deny-principal (default *); repeatable.
        --deny-principal <Type:name>             Principal denied; repeatable.
        --force                                  Remove without asking (otherwise --remove asks y/n on standard input).
        --group <name>                           A consumer group; repeatable.
        --help                                   Print usage information.
        --idempotent                             With --producer: IDEMPOTENT_WRITE on the cluster.
        --list                                   List ACLs (of the resources given, or all).
        --operation <op>                         All, Read, Write, Create, Delete, Alter, Describe, ClusterAction,
                                                 DescribeConfigs, AlterConfigs, IdempotentWrite (default All); repeatable.
        --principal <Type:name>                  With --list: only this principal's ACLs.
        --producer                               Shorthand: WRITE, DESCRIBE and CREATE on --topic.
        --remove                                 Remove ACLs.
        --resource-pattern-type <type>           LITERAL or PREFIXED (default LITERAL); ANY or MATCH with --list and --remove.
        --topic <name>                           A topic (* for all); repeatable.
        --transactional-id <id>                  A transactional id; repeatable.

        Not supported by Silt: --authorizer, --authorizer-properties, --zk-tls-config-file, --bootstrap-controller,
        --delegation-token and --user-principal.
        """

    static let refused: [String: String] = [
        "--authorizer": "Silt's authorizer runs in the brokers; use --bootstrap-server",
        "--authorizer-properties": "Silt has no ZooKeeper; use --bootstrap-server",
        "--zk-tls-config-file": "Silt has no ZooKeeper; use --bootstrap-server",
        "--bootstrap-controller": "Silt's controllers take ACLs through the brokers; use --bootstrap-server",
        "--delegation-token": "Silt has no delegation tokens",
        "--user-principal": "Silt has no delegation tokens",
    ]

    /// An operation by Kafka's name in any case, with or without underscores (`DescribeConfigs`).
    public static func operation(_ text: String) throws -> KafkaAclOperation {
        let key = text.uppercased().replacingOccurrences(of: "_", with: "")
        for op in KafkaAclOperation.allCases where op != .unknown && op != .any
            && op.kafkaName.replacingOccurrences(of: "_", with: "") == key { return op }
        throw AdminSession.Failure("Invalid operation '\(text)'; valid operations are: "
            + KafkaAclOperation.allCases.filter { $0 != .unknown && $0 != .any }.map(\.kafkaName).joined(separator: ", "))
    }

    /// The operations Kafka's AclCommand lets a resource type take (ALL with any).
    static func supported(_ type: AclResourceType) -> [KafkaAclOperation] {
        switch type {
        case .topic: return [.read, .write, .create, .describe, .delete, .alter, .describeConfigs, .alterConfigs, .all]
        case .group: return [.read, .describe, .delete, .all]
        case .cluster: return [.create, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite, .alter, .describe, .all]
        case .transactionalId: return [.describe, .write, .twoPhaseCommit, .all]
        default: return []
        }
    }

    // MARK: - Command line

    public static func parse(_ args: [String]) throws -> ToolCommand<Options> {
        var actions: [Action] = []
        var commandConfig: String?
        var resources: [Resource] = []
        var pattern: String?
        var allowPrincipals: [String] = [], denyPrincipals: [String] = [], allowHosts: [String] = [], denyHosts: [String] = []
        var operations: [KafkaAclOperation] = []
        var listPrincipals: [String] = []
        var force = false, producer = false, consumer = false, idempotent = false
        guard let bootstrap = try ToolArguments.walk(args, { arg, flag, i in
            switch flag {
            case "--add": actions.append(.add)
            case "--remove": actions.append(.remove)
            case "--list": actions.append(.list)
            case "--command-config": commandConfig = try ToolArguments.value(args, &i, flag)
            case "--topic": resources.append(Resource(type: .topic, name: try ToolArguments.value(args, &i, flag)))
            case "--group": resources.append(Resource(type: .group, name: try ToolArguments.value(args, &i, flag)))
            case "--transactional-id":
                resources.append(Resource(type: .transactionalId, name: try ToolArguments.value(args, &i, flag)))
            case "--cluster": resources.append(Resource(type: .cluster, name: AclBinding.clusterName))
            case "--resource-pattern-type": pattern = try ToolArguments.value(args, &i, flag)
            case "--allow-principal": allowPrincipals.append(try ToolArguments.value(args, &i, flag))
            case "--deny-principal": denyPrincipals.append(try ToolArguments.value(args, &i, flag))
            case "--allow-host": allowHosts.append(try ToolArguments.value(args, &i, flag))
            case "--deny-host": denyHosts.append(try ToolArguments.value(args, &i, flag))
            case "--operation": operations.append(try operation(try ToolArguments.value(args, &i, flag)))
            case "--principal": listPrincipals.append(try ToolArguments.value(args, &i, flag))
            case "--force": force = true
            case "--producer": producer = true
            case "--consumer": consumer = true
            case "--idempotent": idempotent = true
            default: throw ToolArguments.unknown(arg, refused: refused)
            }
        }) else { return .help }
        guard actions.count == 1, let action = actions.first else {
            throw AdminSession.Failure("Command must include exactly one action: --list, --add, --remove.")
        }
        let boot = try ToolArguments.requiredBootstrap(bootstrap)
        for p in allowPrincipals + denyPrincipals + listPrincipals {
            guard let colon = p.firstIndex(of: ":"), colon != p.startIndex, p.index(after: colon) != p.endIndex else {
                throw AdminSession.Failure("Invalid principal '\(p)': a principal is Type:name, such as User:alice or User:*")
            }
        }
        let patternType: AclPatternType
        switch pattern?.uppercased() {
        case nil: patternType = action == .list ? .any : .literal
        case "LITERAL": patternType = .literal
        case "PREFIXED": patternType = .prefixed
        case "ANY", "MATCH":
            guard action != .add else {
                throw AdminSession.Failure("A '--resource-pattern-type' value of '\(pattern!)' is not valid when adding acls.")
            }
            patternType = pattern!.uppercased() == "ANY" ? .any : .match
        default:
            throw AdminSession.Failure("Invalid --resource-pattern-type '\(pattern!)': one of LITERAL, PREFIXED, ANY, MATCH")
        }
        if action == .list {
            if !allowPrincipals.isEmpty || !denyPrincipals.isEmpty || !allowHosts.isEmpty || !denyHosts.isEmpty
                || !operations.isEmpty || producer || consumer {
                throw AdminSession.Failure("--list takes resources and --principal only (not --allow-*, --deny-*, --operation, --producer, --consumer)")
            }
            return .run(Options(bootstrap: boot, commandConfig: commandConfig, action: .list, resources: resources,
                                patternType: patternType, bindings: [], listPrincipals: listPrincipals, force: force))
        }
        guard listPrincipals.isEmpty else { throw AdminSession.Failure("--principal is only valid with --list") }
        if producer || consumer {
            guard operations.isEmpty else { throw AdminSession.Failure("--operation cannot be combined with --producer or --consumer") }
            guard denyPrincipals.isEmpty else { throw AdminSession.Failure("--producer and --consumer take --allow-principal only") }
        }
        if idempotent && !producer { throw AdminSession.Failure("--idempotent is only valid with --producer") }
        if !allowHosts.isEmpty && allowPrincipals.isEmpty {
            throw AdminSession.Failure("--allow-host can only be used with --allow-principal")
        }
        if !denyHosts.isEmpty && denyPrincipals.isEmpty {
            throw AdminSession.Failure("--deny-host can only be used with --deny-principal")
        }
        guard !resources.isEmpty else {
            throw AdminSession.Failure("You must provide at least one resource: --topic <topic> or --cluster or --group <group> "
                + "or --transactional-id <id>")
        }
        if action == .add && allowPrincipals.isEmpty && denyPrincipals.isEmpty {
            throw AdminSession.Failure("You must specify one of: --allow-principal, --deny-principal when trying to add ACLs.")
        }
        // (resource, operations) pairs: --producer / --consumer expand per resource type.
        var perResource: [(Resource, [KafkaAclOperation])] = []
        if producer || consumer {
            for r in resources {
                var ops: [KafkaAclOperation] = []
                switch r.type {
                case .topic:
                    if producer { ops += [.write, .describe, .create] }
                    if consumer { ops += [.read, .describe] }
                case .group: if consumer { ops += [.read] }
                case .transactionalId: if producer { ops += [.write, .describe] }
                default: break
                }
                var unique: [KafkaAclOperation] = []
                for op in ops where !unique.contains(op) { unique.append(op) }
                if !unique.isEmpty { perResource.append((r, unique)) }
            }
            if producer && idempotent { perResource.append((Resource(type: .cluster, name: AclBinding.clusterName), [.idempotentWrite])) }
            if consumer && !resources.contains(where: { $0.type == .group }) {
                throw AdminSession.Failure("With --consumer you must specify a --group")
            }
        } else {
            let ops = operations.isEmpty ? [KafkaAclOperation.all] : operations
            for r in resources {
                let bad = ops.filter { !supported(r.type).contains($0) }
                if !bad.isEmpty {
                    throw AdminSession.Failure("ResourceType \(r.type.name) only supports operations "
                        + supported(r.type).map(\.kafkaName).joined(separator: ","))
                }
                perResource.append((r, ops))
            }
        }
        // Every principal × host × operation, per resource, in command-line order, once each.
        var bindings: [Binding] = []
        var seen = Set<Binding>()
        var resourcesOut: [Resource] = []
        for (r, ops) in perResource {
            if !resourcesOut.contains(r) { resourcesOut.append(r) }
            for (principals, hosts, permission) in [(allowPrincipals, allowHosts, AclPermissionType.allow),
                                                    (denyPrincipals, denyHosts, .deny)] {
                for p in principals { for h in (hosts.isEmpty ? ["*"] : hosts) { for op in ops {
                    let b = Binding(resource: r, entry: Entry(principal: p, host: h, operation: op, permission: permission))
                    if seen.insert(b).inserted { bindings.append(b) }
                } } }
            }
        }
        return .run(Options(bootstrap: boot, commandConfig: commandConfig, action: action, resources: resourcesOut,
                            patternType: patternType, bindings: bindings, listPrincipals: [], force: force))
    }

    // MARK: - Rendering

    /// Kafka's `ResourcePattern.toString`.
    public static func patternText(_ type: AclResourceType, _ name: String, _ pattern: AclPatternType) -> String {
        "ResourcePattern(resourceType=\(type.name), name=\(name), patternType=\(pattern.name))"
    }

    /// Kafka's `AccessControlEntry.toString`.
    public static func entryText(principal: String, host: String, operation: KafkaAclOperation, permission: AclPermissionType) -> String {
        "(principal=\(principal), host=\(host), operation=\(operation.kafkaName), permissionType=\(permission.name))"
    }

    /// The entries of one resource.
    static func entries(for r: Resource, _ o: Options) -> [Entry] {
        o.bindings.filter { $0.resource == r }.map(\.entry)
    }

    static func block(_ header: String, _ lines: [String]) -> String {
        header + ": \n" + lines.map { " \t\($0) \n" }.joined() + "\n"
    }

    // MARK: - Running against a broker

    public static func run(_ o: Options, out: (String) -> Void, err: (String) -> Void) -> Int32 {
        do {
            if let warning = try ToolArguments.commandConfigWarning(o.commandConfig, tool: toolName) { err(warning) }
            let session = try AdminSession.connect(o.bootstrap, clientId: "silt-kafka-acls")
            defer { session.close() }
            try execute(o, session, out: out)
            return 0
        } catch {
            err("Error while executing ACL command: \(error)")
            return 1
        }
    }

    static func execute(_ o: Options, _ s: AdminSession, out: (String) -> Void) throws {
        switch o.action {
        case .add:
            var req = CreateAclsRequest()
            for r in o.resources {
                let es = entries(for: r, o)
                out(block("Adding ACLs for resource `\(patternText(r.type, r.name, o.patternType))`",
                          es.map { entryText(principal: $0.principal, host: $0.host, operation: $0.operation, permission: $0.permission) }))
                req.creations += es.map { e in
                    var c = CreateAclsRequest.AclCreation()
                    c.resourceType = r.type.rawValue
                    c.resourceName = r.name
                    c.resourcePatternType = o.patternType.rawValue
                    c.principal = e.principal
                    c.host = e.host
                    c.operation = e.operation.rawValue
                    c.permissionType = e.permission.rawValue
                    return c
                }
            }
            let resp = try s.send(req)
            for res in resp.results where res.errorCode != 0 {
                throw AdminSession.Failure("\(KafkaErrorCode.name(res.errorCode)): \(res.errorMessage ?? "CreateAcls failed")")
            }
            try list(o.resources, o.patternType == .literal || o.patternType == .prefixed ? o.patternType : .any, [], s, out: out)
        case .remove:
            var req = DeleteAclsRequest()
            for r in o.resources {
                let es = entries(for: r, o)
                func filter(_ e: Entry?) -> DeleteAclsRequest.DeleteAclsFilter {
                    var f = DeleteAclsRequest.DeleteAclsFilter()
                    f.resourceTypeFilter = r.type.rawValue
                    f.resourceNameFilter = r.name
                    f.patternTypeFilter = o.patternType.rawValue
                    f.principalFilter = e?.principal
                    f.hostFilter = e?.host
                    f.operation = (e?.operation ?? .any).rawValue
                    f.permissionType = (e?.permission ?? .any).rawValue
                    return f
                }
                // Without principals: every ACL of the resource (Kafka asks before doing so).
                req.filters += o.bindings.isEmpty ? [filter(nil)] : es.map { filter($0) }
            }
            if !o.force {
                // Kafka's question, answered on standard input; anything but y leaves the ACLs.
                let what = o.resources.map { patternText($0.type, $0.name, o.patternType) }.joined(separator: ", ")
                out("Are you sure you want to remove ACLs from resource(s) `\(what)`? (y/n)\n")
                guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "y" else { return }
            }
            let resp = try s.send(req)
            for res in resp.filterResults where res.errorCode != 0 {
                throw AdminSession.Failure("\(KafkaErrorCode.name(res.errorCode)): \(res.errorMessage ?? "DeleteAcls failed")")
            }
            try list(o.resources, o.patternType == .match ? .any : o.patternType, [], s, out: out)
        case .list:
            try list(o.resources, o.patternType, o.listPrincipals, s, out: out)
        }
    }

    /// Prints the ACLs of `resources` (every ACL when empty), grouped by resource pattern.
    static func list(_ resources: [Resource], _ pattern: AclPatternType, _ principals: [String], _ s: AdminSession,
                     out: (String) -> Void) throws {
        var filters: [DescribeAclsRequest] = []
        let names: [(AclResourceType, String?)] = resources.isEmpty ? [(.any, nil)] : resources.map { ($0.type, $0.name) }
        for (type, name) in names {
            for p in principals.isEmpty ? [nil] : principals.map(Optional.some) {
                var f = DescribeAclsRequest()
                f.resourceTypeFilter = type.rawValue
                f.resourceNameFilter = name
                f.patternTypeFilter = pattern.rawValue
                f.principalFilter = p
                f.hostFilter = nil
                f.operation = KafkaAclOperation.any.rawValue
                f.permissionType = AclPermissionType.any.rawValue
                filters.append(f)
            }
        }
        for f in filters {
            let resp = try s.send(f)
            if resp.errorCode != 0 {
                throw AdminSession.Failure("\(KafkaErrorCode.name(resp.errorCode)): \(resp.errorMessage ?? "DescribeAcls failed")")
            }
            for res in resp.resources {
                let header = "Current ACLs for resource `\(patternText(AclResourceType(code: res.resourceType), res.resourceName, AclPatternType(code: res.patternType)))`"
                out(block(header, res.acls.map {
                    entryText(principal: $0.principal, host: $0.host, operation: KafkaAclOperation(code: $0.operation),
                              permission: AclPermissionType(code: $0.permissionType))
                }))
            }
        }
    }
}
