import Foundation
import SiltProtocol

/// Kafka's `bin/kafka-consumer-groups.sh` on Silt's own client code: `--list`, `--describe`
/// (offsets with LAG, the default; `--members`; `--state`), `--reset-offsets` and `--delete`,
/// with Kafka 3.x's flags and output.
///
///     --list      ListGroups ─────────────────────────────────────────────▶ one id a line
///     --describe  ConsumerGroupDescribe (KIP-848 groups; else DescribeGroups)
///                 + OffsetFetch + ListOffsets(latest) ───────────────────▶ Kafka's table
///     --reset     ListOffsets / --to-offset ─(--execute: OffsetCommit)───▶ NEW-OFFSET table
///     --delete    DeleteGroups ───────────────────────────────────────────▶ Kafka's sentence
public enum ConsumerGroups {
    public static let toolName = "kafka-consumer-groups"

    public enum Action: String, Equatable, Sendable {
        case list, describe, delete
        case resetOffsets = "reset-offsets"
    }

    /// Where `--reset-offsets` moves a group.
    public enum ResetTarget: Equatable, Sendable {
        case earliest, latest
        case offset(Int64)
    }

    public struct Options: Equatable, Sendable {
        public var bootstrap: [MetadataQuorum.HostPort] = []
        public var action: Action = .list
        public var groups: [String] = []
        public var allGroups = false
        public var topics: [String] = []
        public var allTopics = false
        public var reset: ResetTarget?
        public var execute = false
        public var dryRun = false
        public var members = false
        public var state = false
        public init() {}
    }

    public typealias ParseOutcome = ToolCommand<Options>

    public static let usage = """
        Silt's kafka-consumer-groups: list, describe, reset the offsets of, and delete consumer groups (no JVM).
        Option                                   Description
        ------                                   -----------
        --bootstrap-server <host:port,...>       REQUIRED: the Kafka server(s) to connect to.
        --list                                   List all consumer groups.
        --describe                               Describe the groups' offsets and lag (with --members: their
                                                   members; with --state: their state).
        --reset-offsets                          Reset the group's offsets (the group must have no active members).
        --delete                                 Delete the groups (they must have no active members).
        --group <String: group>                  The group (repeatable).
        --all-groups                             Every group, with --describe or --delete.
        --topic <String: topic>                  With --reset-offsets: the topic, or topic:0,1 for some partitions.
        --all-topics                             With --reset-offsets: every topic the group committed.
        --to-earliest | --to-latest | --to-offset <Long>
                                                 With --reset-offsets: where to move the offsets.
        --dry-run | --execute                    With --reset-offsets: show the new offsets, or commit them.
        --members, --state                       With --describe.
        --help                                   Print usage information.

        Not supported by Silt: --delete-offsets, --to-datetime, --by-duration, --shift-by, --to-current,
        --from-file, --export, --verbose, --offsets (it is --describe's default), --command-config.
        """

    static let refused: [String: String] = [
        "--delete-offsets": "not supported by Silt's kafka-consumer-groups",
        "--to-datetime": "use --to-earliest, --to-latest or --to-offset",
        "--by-duration": "use --to-earliest, --to-latest or --to-offset",
        "--shift-by": "use --to-offset",
        "--to-current": "use --to-offset",
        "--from-file": "use --to-offset per --topic",
        "--export": "not supported by Silt's kafka-consumer-groups",
        "--verbose": "not supported by Silt's kafka-consumer-groups",
        "--command-config": "Silt's tools connect over PLAINTEXT with default client settings",
        "--zookeeper": "Silt has no ZooKeeper; use --bootstrap-server",
    ]

    public static func parse(_ args: [String]) throws -> ParseOutcome {
        var o = Options()
        var actions: [Action] = []
        var targets: [ResetTarget] = []
        guard let bootstrap = try ToolArguments.walk(args, { arg, flag, i in
            switch flag {
            case "--list", "--describe", "--delete", "--reset-offsets":
                actions.append(Action(rawValue: String(flag.dropFirst(2)))!)
            case "--group": o.groups.append(try ToolArguments.value(args, &i, flag))
            case "--all-groups": o.allGroups = true
            case "--topic": o.topics.append(try ToolArguments.value(args, &i, flag))
            case "--all-topics": o.allTopics = true
            case "--to-earliest": targets.append(.earliest)
            case "--to-latest": targets.append(.latest)
            case "--to-offset": targets.append(.offset(try ToolArguments.integer(args, &i, flag)))
            case "--execute": o.execute = true
            case "--dry-run": o.dryRun = true
            case "--members": o.members = true
            case "--state": o.state = true
            case "--offsets": break  // --describe's default view
            case "--timeout": _ = try ToolArguments.integer(args, &i, flag, as: Int.self)  // each request has its own bound
            default: throw ToolArguments.unknown(arg, refused: refused)
            }
        }) else { return .help }
        guard actions.count == 1 else {
            throw AdminSession.Failure("Command must include exactly one action: --list, --describe, --delete, --reset-offsets")
        }
        o.action = actions[0]
        o.bootstrap = try ToolArguments.requiredBootstrap(bootstrap)
        if targets.count > 1 { throw AdminSession.Failure("Option \"[reset-offsets]\" takes one of [to-earliest], [to-latest], [to-offset]") }
        o.reset = targets.first
        try check(o)
        return .run(o)
    }

    static func check(_ o: Options) throws {
        let needsGroup: Set<Action> = [.describe, .delete, .resetOffsets]
        if needsGroup.contains(o.action) && o.groups.isEmpty && !o.allGroups {
            throw AdminSession.Failure("Option \"[\(o.action.rawValue)]\" takes one of these options: [all-groups], [group]")
        }
        if o.action == .resetOffsets {
            guard o.reset != nil else {
                throw AdminSession.Failure("Option \"[reset-offsets]\" takes one of these options: [to-earliest], [to-latest], [to-offset]")
            }
            guard !o.topics.isEmpty || o.allTopics else {
                throw AdminSession.Failure("Option \"[reset-offsets]\" takes one of these options: [all-topics], [topic]")
            }
            if o.allGroups { throw AdminSession.Failure("--all-groups is not supported with --reset-offsets by Silt: name the --group") }
            if o.execute && o.dryRun { throw AdminSession.Failure("Option \"[execute]\" can't be used with option \"[dry-run]\"") }
            if case .offset(let n)? = o.reset, n < 0 { throw AdminSession.Failure("--to-offset must be 0 or more") }
        } else {
            if o.reset != nil || o.execute || o.dryRun { throw AdminSession.Failure("Option \"[to-*]\", \"[execute]\" and \"[dry-run]\" go with [reset-offsets]") }
            if !o.topics.isEmpty && o.action != .delete {
                throw AdminSession.Failure("Option \"[topic]\" can't be used with option \"[\(o.action.rawValue)]\"")
            }
            if o.action == .delete && !o.topics.isEmpty { throw AdminSession.Failure("--delete --topic (deleting offsets) is not supported by Silt") }
        }
        if (o.members || o.state) && o.action != .describe {
            throw AdminSession.Failure("Options \"[members]\" and \"[state]\" go with [describe]")
        }
        if o.members && o.state { throw AdminSession.Failure("Option \"[members]\" can't be used with option \"[state]\"") }
    }

    /// `--topic t` or `--topic t:0,2`: the topic and the partitions named (nil for all).
    public static func topicPartitions(_ text: String) throws -> (String, [Int32]?) {
        guard let colon = text.lastIndex(of: ":") else { return (text, nil) }
        let parts = text[text.index(after: colon)...].split(separator: ",").map { Int32($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw AdminSession.Failure("--topic '\(text)': partitions must be a comma-separated list of numbers")
        }
        return (String(text[..<colon]), parts.map { $0! })
    }

    // MARK: - Output as Kafka prints it

    /// One row of `--describe`'s offsets table; nil fields print `-`.
    public struct OffsetRow: Equatable, Sendable {
        public var group: String
        public var topic: String
        public var partition: Int32
        public var currentOffset: Int64?
        public var logEndOffset: Int64?
        public var consumerId: String?
        public var host: String?
        public var clientId: String?
        public var lag: Int64? {
            guard let c = currentOffset, let e = logEndOffset else { return nil }
            return max(0, e - c)
        }
        public init(group: String, topic: String, partition: Int32, currentOffset: Int64?, logEndOffset: Int64?,
                    consumerId: String?, host: String?, clientId: String?) {
            self.group = group
            self.topic = topic
            self.partition = partition
            self.currentOffset = currentOffset
            self.logEndOffset = logEndOffset
            self.consumerId = consumerId
            self.host = host
            self.clientId = clientId
        }
    }

    /// Kafka's `%-Ns` columns: each padded to its width, separated by one space.
    static func row(_ cells: [(String, Int)]) -> String {
        cells.map { text, width in text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
            .joined(separator: " ")
    }

    /// The offsets table as ConsumerGroupCommand prints it: a blank line, the header, then
    /// one row per partition. GROUP, TOPIC, CONSUMER-ID and HOST are as wide as their
    /// longest value (15 at least); PARTITION is 10 wide, the offsets and LAG 15.
    public static func offsetsTable(_ rows: [OffsetRow]) -> String {
        func width(_ values: [String]) -> Int { max(15, values.map(\.count).max() ?? 0) }
        let g = width(rows.map(\.group)), t = width(rows.map(\.topic))
        let c = width(rows.map { $0.consumerId ?? "-" }), h = width(rows.map { $0.host ?? "-" })
        func line(_ v: [String]) -> String {
            row([(v[0], g), (v[1], t), (v[2], 10), (v[3], 15), (v[4], 15), (v[5], 15), (v[6], c), (v[7], h), (v[8], 0)])
        }
        var out = "\n" + line(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]) + "\n"
        for r in rows {
            out += line([r.group, r.topic, String(r.partition), r.currentOffset.map(String.init) ?? "-",
                         r.logEndOffset.map(String.init) ?? "-", r.lag.map(String.init) ?? "-",
                         r.consumerId ?? "-", r.host ?? "-", r.clientId ?? "-"]) + "\n"
        }
        return out
    }

    /// `--reset-offsets`' table: GROUP, TOPIC, PARTITION, NEW-OFFSET.
    public static func resetTable(_ group: String, _ offsets: [PartitionKey: Int64]) -> String {
        func line(_ a: String, _ b: String, _ c: String, _ d: String) -> String {
            row([(a, 30), (b, 30), (c, 10), (d, 15)])
        }
        var out = "\n" + line("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET") + "\n"
        for k in offsets.keys.sorted() { out += line(group, k.topic, String(k.partition), String(offsets[k]!)) + "\n" }
        return out
    }
}
