import Foundation
import NIOCore
import SiltProtocol
import SiltRecords

/// Kafka's `bin/kafka-console-producer.sh` on Silt's own client code: one record per line
/// of standard input, keyed with `--property parse.key=true`, sent to the partition Kafka's
/// default partitioner picks (murmur2 of the key; keyless lines stick to one partition per
/// chunk read, as the sticky partitioner does).
///
///     stdin ──read (≤ 1 MiB)──▶ complete lines ──split key──▶ batch per partition ──Produce──▶ leader
///
/// Lines are sent as they arrive (each read(2) chunk becomes one Produce per leader), so
/// typing works interactively and a pipe is sent in large batches. Errors print on stderr
/// and exit 1 after the records before them were acknowledged.
public enum ConsoleProducer {
    public static let toolName = "kafka-console-producer"

    /// The largest stdin chunk read at once, and so the most bytes in one Produce.
    public static let readChunkBytesMax = 1 << 20
    /// A line longer than this (without its newline) is refused: Kafka's default max.request.size.
    public static let lineBytesMax = 1_048_576

    public struct Options: Equatable, Sendable {
        public var bootstrap: [MetadataQuorum.HostPort] = []
        public var topic = ""
        public var parseKey = false
        public var keySeparator = "\t"
        public var acks: Int16 = -1
        public var compression: CompressionType = .none
        /// Producer properties Silt's producer takes no notice of (warned about).
        public var ignoredProperties: [String] = []
        public init() {}
    }

    public typealias ParseOutcome = ToolCommand<Options>

    public static let usage = """
        Silt's kafka-console-producer: reads lines from standard input and sends each as a record (no JVM).
        Option                                   Description
        ------                                   -----------
        --bootstrap-server <host:port,...>       REQUIRED: the Kafka server(s) to connect to.
        --topic <String: topic>                  REQUIRED: the topic to produce to.
        --property <prop=value>                  parse.key=true|false (default false): split each line into key
                                                   and value at key.separator; key.separator (default TAB).
        --producer-property <prop=value>         acks (all, -1, 1) and compression.type (none, gzip, snappy,
                                                   lz4, zstd); other producer properties are accepted and ignored.
        --request-required-acks <acks>           Same as --producer-property acks=... (default all).
        --compression-codec [codec]              Same as --producer-property compression.type=... (gzip without a value).
        --help                                   Print usage information.

        Not supported by Silt: --broker-list (use --bootstrap-server), --producer.config, --reader-config,
        --line-reader, --sync, --batch-size, --timeout, --message-send-max-retries, --retry-backoff-ms.
        """

    static let refused: [String: String] = [
        "--broker-list": "use --bootstrap-server",
        "--producer.config": "pass properties with --producer-property",
        "--reader-config": "pass reader properties with --property",
        "--line-reader": "Silt reads plain lines",
        "--reader-property": "pass reader properties with --property",
        "--sync": "every chunk of lines is sent and acknowledged before the next is read",
        "--batch-size": "each chunk of lines read is one batch per partition",
        "--timeout": "each chunk of lines read is sent at once",
        "--message-send-max-retries": "not supported by Silt's kafka-console-producer",
        "--retry-backoff-ms": "not supported by Silt's kafka-console-producer",
    ]

    public static func parse(_ args: [String]) throws -> ParseOutcome {
        var o = Options()
        guard let bootstrap = try ToolArguments.walk(args, { arg, flag, i in
            switch flag {
            case "--topic": o.topic = try ToolArguments.value(args, &i, flag)
            case "--property":
                let (k, v) = try ToolArguments.keyValue(try ToolArguments.value(args, &i, flag), flag: flag)
                switch k {
                case "parse.key": o.parseKey = v.lowercased() == "true"
                case "key.separator": o.keySeparator = v
                default: throw AdminSession.Failure("--property \(k) is not supported (Silt's producer reads parse.key and key.separator)")
                }
            case "--producer-property":
                let (k, v) = try ToolArguments.keyValue(try ToolArguments.value(args, &i, flag), flag: flag)
                try apply(producerProperty: k, v, to: &o)
            case "--request-required-acks": try apply(producerProperty: "acks", try ToolArguments.value(args, &i, flag), to: &o)
            case "--compression-codec":
                // Kafka's optional argument: bare --compression-codec means gzip.
                let hasValue = arg.contains("=") || (i + 1 < args.count && !args[i + 1].hasPrefix("--"))
                try apply(producerProperty: "compression.type", hasValue ? try ToolArguments.value(args, &i, flag) : "gzip", to: &o)
            default: throw ToolArguments.unknown(arg, refused: refused)
            }
        }) else { return .help }
        guard !o.topic.isEmpty else { throw AdminSession.Failure("Missing required argument \"[topic]\"") }
        guard !o.keySeparator.isEmpty else { throw AdminSession.Failure("key.separator must not be empty") }
        o.bootstrap = try ToolArguments.requiredBootstrap(bootstrap)
        return .run(o)
    }

    static func apply(producerProperty k: String, _ v: String, to o: inout Options) throws {
        switch k {
        case "acks":
            switch v.lowercased() {
            case "all", "-1": o.acks = -1
            case "0": throw AdminSession.Failure("acks=0 is not supported by Silt's \(toolName): use 1 or all")
            case "1": o.acks = 1
            default: throw AdminSession.Failure("Invalid value \(v) for configuration acks: String must be one of: all, -1, 0, 1")
            }
        case "compression.type":
            let name = v.lowercased()
            guard let c = name == "none" ? CompressionType.none : CompressionType(topicCompressionType: name) else {
                throw AdminSession.Failure("Invalid value \(v) for configuration compression.type: String must be one of: none, gzip, snappy, lz4, zstd")
            }
            o.compression = c
        default:
            o.ignoredProperties.append(k)
        }
    }

    // MARK: - Lines to records

    /// A line split as `parse.key` asks: without the separator, Kafka's LineMessageReader
    /// refuses the line.
    public static func record(_ line: Substring, _ o: Options) throws -> (key: [UInt8]?, value: [UInt8]) {
        guard o.parseKey else { return (nil, Array(line.utf8)) }
        guard let r = line.range(of: o.keySeparator) else {
            throw AdminSession.Failure("No key separator found on line: \(line)")
        }
        return (Array(line[..<r.lowerBound].utf8), Array(line[r.upperBound...].utf8))
    }

    /// Kafka's default partitioner for a keyed record: `toPositive(murmur2(key)) % partitions`.
    public static func partition(key: [UInt8], partitions: Int) -> Int32 {
        precondition(partitions > 0)
        return Int32(Int(murmur2(key) & 0x7fff_ffff) % partitions)
    }

    /// Kafka's `Utils.murmur2` (seed 0x9747b28c), bit for bit.
    public static func murmur2(_ data: [UInt8]) -> Int32 {
        let m: UInt32 = 0x5bd1_e995
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: data.count)
        let whole = data.count / 4
        for i in 0..<whole {
            var k = UInt32(data[4 * i]) | UInt32(data[4 * i + 1]) << 8 | UInt32(data[4 * i + 2]) << 16 | UInt32(data[4 * i + 3]) << 24
            k = k &* m
            k ^= k >> 24
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = whole * 4
        switch data.count % 4 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 1:
            h ^= UInt32(data[tail])
            h = h &* m
        default: break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    // MARK: - Running

    public static func run(_ o: Options, input: Int32 = 0, err: (String) -> Void) -> Int32 {
        if !o.ignoredProperties.isEmpty {
            err("Warning: Silt's \(toolName) ignores producer properties \(o.ignoredProperties.joined(separator: ", "))")
        }
        do {
            let sessions = try ClientSessions(o.bootstrap, clientId: "console-producer")
            defer { sessions.close() }
            guard let layout = try sessions.layout([o.topic])[o.topic] else {
                throw AdminSession.Failure("Topic \(o.topic) not present in metadata")
            }
            var pending = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: readChunkBytesMax)
            var sticky = 0
            while true {
                let n = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AdminSession.Failure("reading standard input: \(String(cString: strerror(errno)))")
                }
                if n > 0 { pending.append(contentsOf: chunk[0..<n]) }
                // Complete lines; at end of input the last line needs no newline.
                var lines: [Substring] = []
                if let lastNewline = pending.lastIndex(of: UInt8(ascii: "\n")) {
                    let text = String(decoding: pending[...lastNewline], as: UTF8.self)
                    lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0 }
                    pending.removeSubrange(...lastNewline)
                }
                if n == 0 && !pending.isEmpty {
                    lines.append(Substring(String(decoding: pending, as: UTF8.self)))
                    pending = []
                }
                guard pending.count <= lineBytesMax else {
                    throw AdminSession.Failure("a line is longer than \(lineBytesMax) bytes")
                }
                if !lines.isEmpty {
                    try send(lines.map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }, o, layout, sessions, sticky: sticky)
                    sticky += 1
                }
                if n == 0 { return 0 }
            }
        } catch {
            err("ERROR \(error)")
            return 1
        }
    }

    /// Sends one chunk's lines: one batch per partition, one Produce per leader.
    static func send(_ lines: [Substring], _ o: Options, _ layout: ClientSessions.TopicLayout, _ sessions: ClientSessions,
                     sticky: Int) throws {
        let partitions = layout.partitions
        guard !partitions.isEmpty else { throw AdminSession.Failure("Topic \(o.topic) has no partitions") }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var builders: [Int32: RecordBatchBuilder] = [:]
        for line in lines {
            let r = try record(line, o)
            let p = r.key.map { partition(key: $0, partitions: partitions.count) } ?? partitions[sticky % partitions.count]
            builders[p, default: { var b = RecordBatchBuilder(); b.compression = o.compression; return b }()]
                .append(key: r.key, value: r.value, timestamp: now)
        }
        var byLeader: [Int32: [Int32]] = [:]
        for p in builders.keys.sorted() {
            guard let leader = layout.leaders[p], leader >= 0 else { throw AdminSession.Failure("Partition \(o.topic)-\(p) has no leader") }
            byLeader[leader, default: []].append(p)
        }
        for (leader, ps) in byLeader.sorted(by: { $0.key < $1.key }) {
            var topic = ProduceRequest.TopicProduceData()
            topic.name = o.topic
            topic.partitionData = ps.map { p in
                var d = ProduceRequest.PartitionProduceData()
                d.index = p
                d.records = builders[p]!.build()
                return d
            }
            var req = ProduceRequest()
            req.acks = o.acks
            req.timeoutMs = 30_000
            req.topicData = [topic]
            let session = try sessions.session(node: leader)
            let resp = try session.send(req)
            for t in resp.responses {
                for p in t.partitionResponses where p.errorCode != 0 {
                    let detail = p.errorMessage.map { ": \($0)" } ?? ""
                    throw AdminSession.Failure("Error when sending message to topic \(o.topic) with partition \(p.index): "
                        + "\(KafkaErrorCode.name(p.errorCode))\(detail)")
                }
            }
        }
    }
}
