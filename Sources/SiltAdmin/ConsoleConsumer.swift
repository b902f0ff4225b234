import Foundation
import NIOCore
import SiltProtocol
import SiltRecords

/// Kafka's `bin/kafka-console-consumer.sh` on Silt's own client code: prints the records of
/// a topic, one a line, as Kafka's DefaultMessageFormatter does.
///
///     positions (ListOffsets, or the group's committed offsets) ──Fetch per leader──▶ records ──▶ stdout
///                                                                   └─ with --group: commit after each print, heartbeat
///
/// Without `--group` it reads every partition of `--topic` (or only `--partition`), from the
/// end, `--from-beginning` or `--offset`. It stops after `--max-messages`, after
/// `--timeout-ms` without a record, or on SIGINT/SIGTERM, and then prints
/// `Processed a total of N messages` on stderr, as Kafka's does.
public enum ConsoleConsumer {
    public static let toolName = "kafka-console-consumer"

    /// Fetch bounds: the broker waits up to this long for data (so a stop or a heartbeat is
    /// at most this late), and returns at most these bytes.
    public static let fetchMaxWaitMs: Int32 = 500
    public static let fetchMaxBytes: Int32 = 16 << 20
    public static let partitionFetchMaxBytes: Int32 = 1 << 20

    public struct Options: Equatable, Sendable {
        public var bootstrap: [MetadataQuorum.HostPort] = []
        public var topic = ""
        public var group: String?
        public var fromBeginning = false
        public var partition: Int32?
        /// `--offset`: -2 earliest, -1 latest (the default), or an offset.
        public var offset: Int64?
        public var maxMessages: Int?
        public var timeoutMs: Int?
        public var format = Format()
        public var ignoredProperties: [String] = []
        public init() {}
    }

    /// DefaultMessageFormatter's properties.
    public struct Format: Equatable, Sendable {
        public var printKey = false
        public var printValue = true
        public var printTimestamp = false
        public var printPartition = false
        public var printOffset = false
        public var keySeparator = "\t"
        public var lineSeparator = "\n"
        public init() {}
    }

    public typealias ParseOutcome = ToolCommand<Options>

    public static let usage = """
        Silt's kafka-console-consumer: prints the records of a topic, one a line (no JVM).
        Option                                   Description
        ------                                   -----------
        --bootstrap-server <host:port,...>       REQUIRED: the Kafka server(s) to connect to.
        --topic <String: topic>                  REQUIRED: the topic to consume.
        --from-beginning                         Start at the earliest offset when there is no committed offset.
        --group <String: consumer group id>      Consume as a member of this group (range assignor), committing offsets.
        --partition <Integer>                    Consume only this partition (not with --group).
        --offset <earliest|latest|N>             With --partition: where to start (default latest).
        --max-messages <Integer>                 Stop after this many records.
        --timeout-ms <Integer>                   Stop when no record arrived for this long.
        --property <prop=value>                  print.key, print.value, print.timestamp, print.partition,
                                                   print.offset (true|false), key.separator, line.separator.
        --consumer-property <prop=value>         group.id and auto.offset.reset (earliest|latest) are used;
                                                   other consumer properties are accepted and ignored.
        --help                                   Print usage information.

        Not supported by Silt: --include/--whitelist, --formatter, --consumer.config, --isolation-level,
        --skip-message-on-error, --enable-systest-events, --key-deserializer, --value-deserializer.
        """

    static let refused: [String: String] = [
        "--include": "name one topic with --topic", "--whitelist": "name one topic with --topic",
        "--formatter": "Silt prints with Kafka's default formatter",
        "--formatter-config": "pass formatter properties with --property",
        "--consumer.config": "pass properties with --consumer-property",
        "--isolation-level": "Silt has no transactions: every record is committed",
        "--skip-message-on-error": "not supported by Silt's kafka-console-consumer",
        "--enable-systest-events": "not supported by Silt's kafka-console-consumer",
        "--key-deserializer": "keys print as UTF-8 text", "--value-deserializer": "values print as UTF-8 text",
        "--bootstrap-controller": "kafka-console-consumer takes --bootstrap-server",
    ]

    public static func parse(_ args: [String]) throws -> ParseOutcome {
        var o = Options()
        var offsetText: String?
        var resetEarliest: Bool?
        guard let bootstrap = try ToolArguments.walk(args, { arg, flag, i in
            switch flag {
            case "--topic": o.topic = try ToolArguments.value(args, &i, flag)
            case "--group": o.group = try ToolArguments.value(args, &i, flag)
            case "--from-beginning": o.fromBeginning = true
            case "--partition": o.partition = try ToolArguments.integer(args, &i, flag)
            case "--offset": offsetText = try ToolArguments.value(args, &i, flag)
            case "--max-messages": o.maxMessages = try ToolArguments.integer(args, &i, flag)
            case "--timeout-ms": o.timeoutMs = try ToolArguments.integer(args, &i, flag)
            case "--property":
                let (k, v) = try ToolArguments.keyValue(try ToolArguments.value(args, &i, flag), flag: flag)
                try apply(property: k, v, to: &o.format)
            case "--consumer-property":
                let (k, v) = try ToolArguments.keyValue(try ToolArguments.value(args, &i, flag), flag: flag)
                switch k {
                case "group.id": o.group = v
                case "auto.offset.reset":
                    guard v == "earliest" || v == "latest" else {
                        throw AdminSession.Failure("auto.offset.reset must be earliest or latest, not '\(v)'")
                    }
                    resetEarliest = v == "earliest"
                default: o.ignoredProperties.append(k)
                }
            default: throw ToolArguments.unknown(arg, refused: refused)
            }
        }) else { return .help }
        guard !o.topic.isEmpty else { throw AdminSession.Failure("Exactly one of --include/--topic is required.") }
        if let resetEarliest { o.fromBeginning = o.fromBeginning || resetEarliest }
        try check(&o, offsetText: offsetText)
        o.bootstrap = try ToolArguments.requiredBootstrap(bootstrap)
        return .run(o)
    }

    /// Kafka's option checks, with its words.
    static func check(_ o: inout Options, offsetText: String?) throws {
        if o.group != nil && o.partition != nil {
            throw AdminSession.Failure("Options group and partition cannot be specified together.")
        }
        if let text = offsetText {
            guard o.partition != nil else {
                throw AdminSession.Failure("The partition is required when offset is specified.")
            }
            guard !o.fromBeginning else {
                throw AdminSession.Failure("Options from-beginning and offset cannot be specified together.")
            }
            switch text.lowercased() {
            case "earliest": o.offset = -2
            case "latest": o.offset = -1
            default:
                guard let n = Int64(text), n >= 0 else {
                    throw AdminSession.Failure("The provided offset value '\(text)' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long.")
                }
                o.offset = n
            }
        }
        if let p = o.partition, p < 0 { throw AdminSession.Failure("The partition must be 0 or more") }
        if let n = o.maxMessages, n < 1 { o.maxMessages = nil }  // Kafka: -1 (or less than 1) means unlimited
        if let t = o.timeoutMs, t < 0 { o.timeoutMs = nil }
    }

    static func apply(property k: String, _ v: String, to f: inout Format) throws {
        let on = v.lowercased() == "true"
        switch k {
        case "print.key": f.printKey = on
        case "print.value": f.printValue = on
        case "print.timestamp": f.printTimestamp = on
        case "print.partition": f.printPartition = on
        case "print.offset": f.printOffset = on
        case "key.separator": f.keySeparator = v
        case "line.separator": f.lineSeparator = v
        default:
            throw AdminSession.Failure("--property \(k) is not supported (Silt's formatter reads print.key, print.value, "
                + "print.timestamp, print.partition, print.offset, key.separator, line.separator)")
        }
    }

    /// One record as DefaultMessageFormatter writes it: the enabled columns joined by
    /// `key.separator`, ended by `line.separator`; null keys and values print `null`.
    public static func format(_ r: Record, partition: Int32, timestampType: TimestampType, _ f: Format) -> String {
        var columns: [String] = []
        if f.printTimestamp { columns.append("\(timestampType == .logAppendTime ? "LogAppendTime" : "CreateTime"):\(r.timestamp)") }
        if f.printPartition { columns.append("Partition:\(partition)") }
        if f.printOffset { columns.append("Offset:\(r.offset)") }
        if f.printKey { columns.append(r.key.map { String(buffer: $0) } ?? "null") }
        if f.printValue { columns.append(r.value.map { String(buffer: $0) } ?? "null") }
        return columns.joined(separator: f.keySeparator) + f.lineSeparator
    }
}
