import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltNet
import SiltProtocol

/// Kafka's `bin/kafka-metadata-quorum.sh` on Silt's own code: `describe --status` and
/// `describe --replication [--human-readable]` over DescribeQuorum (api key 55, v0–2).
///
/// Output matches Kafka 3.9's `MetadataQuorumCommand` (unchanged in 4.0 and 4.1): the
/// `--status` block lists voters and observers as `{"id": N, "directoryId": "...",
/// "endpoints": ["CONTROLLER://host:port"]}` and the `--replication` table has the
/// DirectoryId column. Kafka 3.7/3.8 printed `[1,2,3]` and no DirectoryId; 3.9 is the
/// first release whose two outputs both carry KIP-853's directory ids, so it is the one
/// Silt follows throughout.
///
/// The pieces are separate so tests need no network:
///
///     argv ──parse──▶ Options ──fetch (KafkaClient)──▶ QuorumInfo ──render──▶ text
///                                 ApiVersions, DescribeCluster,           statusText
///                                 DescribeQuorum                          replicationText
public enum MetadataQuorum {
    /// The tool's name in messages, as argparse4j prints it in Kafka.
    public static let toolName = "kafka-metadata-quorum"
    /// Kafka's metadata log: the one partition DescribeQuorum describes.
    public static let metadataTopic = "__cluster_metadata"
    /// The DescribeQuorum versions this tool reads.
    public static let describeQuorumVersions: ClosedRange<Int16> = 0...2
    /// Bound on each request (connect is bounded by KafkaClient at 5 s).
    public static let requestTimeoutMs: Int64 = 15_000
    /// DescribeCluster's EndpointType values (KIP-919).
    static let endpointTypeBroker: Int8 = 1
    static let endpointTypeController: Int8 = 2

    // MARK: - Command line

    public struct HostPort: Equatable, Sendable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public enum Bootstrap: Equatable, Sendable {
        /// `--bootstrap-server`: brokers, which forward DescribeQuorum to the controllers.
        case servers([HostPort])
        /// `--bootstrap-controller`: controllers, answering on their CONTROLLER listener.
        case controllers([HostPort])

        public var addresses: [HostPort] {
            switch self {
            case .servers(let a), .controllers(let a): return a
            }
        }
        public var isController: Bool {
            if case .controllers = self { return true }
            return false
        }
    }

    public enum Describe: Equatable, Sendable {
        case status
        case replication(humanReadable: Bool)
    }

    public struct Options: Equatable, Sendable {
        public var bootstrap: Bootstrap
        public var commandConfig: String?
        public var describe: Describe
    }

    /// What `parse` decided instead of options.
    public enum ParseOutcome: Equatable, Sendable {
        case run(Options)
        /// `-h`/`--help`: print `usage` to stdout, exit 0.
        case help
    }

    /// A command-line or run failure; `run` prints it to stderr and exits 1.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// A bad command line: printed after the usage text, as argparse4j does.
        case usage(String)
        /// A failure printed alone (Kafka's TerseException and Silt's run errors).
        case terse(String)

        public var description: String {
            switch self {
            case .usage(let m), .terse(let m): return m
            }
        }
    }

    public static let usage = """
        usage: kafka-metadata-quorum [-h] (--bootstrap-server BOOTSTRAP_SERVER | --bootstrap-controller BOOTSTRAP_CONTROLLER)
                                     [--command-config COMMAND_CONFIG] {describe} ...

        This tool describes kraft metadata quorum status.

        named arguments:
          -h, --help             show this help message and exit
          --bootstrap-server BOOTSTRAP_SERVER
                                 A comma-separated list of host:port pairs to use for establishing the connection to the Kafka cluster.
          --bootstrap-controller BOOTSTRAP_CONTROLLER
                                 A comma-separated list of host:port pairs to use for establishing the connection to the Kafka controllers.
          --command-config COMMAND_CONFIG
                                 Property file containing configs to be passed to Admin Client. Silt reads and ignores them.

        subcommands:
          describe               Describe the metadata quorum info
            --status             A short summary of the quorum status and the other provides detailed information about the status of replication.
            --replication        Detailed information about the status of replication
            --human-readable     Human-readable output (with --replication)

        add-controller and remove-controller are not supported by Silt yet.
        """

    /// Parses Kafka's command line: the connection options, then `describe` and its flags.
    /// Options before the subcommand belong to the tool, options after it to `describe`,
    /// as with argparse4j. `--opt value` and `--opt=value` are both accepted.
    public static func parse(_ args: [String]) throws -> ParseOutcome {
        var server: String?
        var controller: String?
        var commandConfig: String?
        var command: String?
        var status = false, replication = false, humanReadable = false
        var i = 0

        func value(_ arg: String, _ name: String) throws -> String {
            if arg.hasPrefix(name + "=") { return String(arg.dropFirst(name.count + 1)) }
            i += 1
            guard i < args.count, !args[i].hasPrefix("--") else {
                throw Failure.usage("argument \(name): expected one argument")
            }
            return args[i]
        }
        func matches(_ arg: String, _ name: String) -> Bool { arg == name || arg.hasPrefix(name + "=") }

        while i < args.count {
            let arg = args[i]
            if arg == "-h" || arg == "--help" { return .help }
            if command == nil {
                if matches(arg, "--bootstrap-server") {
                    if controller != nil {
                        throw Failure.usage("argument --bootstrap-server: not allowed with argument --bootstrap-controller")
                    }
                    server = try value(arg, "--bootstrap-server")
                } else if matches(arg, "--bootstrap-controller") {
                    if server != nil {
                        throw Failure.usage("argument --bootstrap-controller: not allowed with argument --bootstrap-server")
                    }
                    controller = try value(arg, "--bootstrap-controller")
                } else if matches(arg, "--command-config") {
                    commandConfig = try value(arg, "--command-config")
                } else if arg == "describe" {
                    command = arg
                } else if arg == "add-controller" || arg == "remove-controller" {
                    throw Failure.terse("\(arg) is not supported by Silt yet: Silt's controller quorum has a fixed voter set")
                } else if arg.hasPrefix("-") {
                    throw Failure.usage("unrecognized arguments: '\(arg)'")
                } else {
                    throw Failure.usage("argument command: invalid choice: '\(arg)' (choose from 'describe', 'add-controller', 'remove-controller')")
                }
            } else {
                switch arg {
                case "--status": status = true
                case "--replication": replication = true
                case "--human-readable": humanReadable = true
                default: throw Failure.usage("unrecognized arguments: '\(arg)'")
                }
            }
            i += 1
        }

        let bootstrap: Bootstrap
        if let s = server {
            bootstrap = .servers(try parseHostPorts(s, flag: "--bootstrap-server"))
        } else if let c = controller {
            bootstrap = .controllers(try parseHostPorts(c, flag: "--bootstrap-controller"))
        } else {
            throw Failure.usage("one of the arguments --bootstrap-server --bootstrap-controller is required")
        }
        guard command != nil else { throw Failure.usage("too few arguments") }

        // Kafka's checks, with Kafka's words.
        let describe: Describe
        if status && replication {
            throw Failure.terse("Only one of --status or --replication should be specified with describe sub-command")
        } else if replication {
            describe = .replication(humanReadable: humanReadable)
        } else if status {
            if humanReadable {
                throw Failure.terse("The option --human-readable is only supported along with --replication")
            }
            describe = .status
        } else {
            throw Failure.terse("One of --status or --replication must be specified with describe sub-command")
        }
        return .run(Options(bootstrap: bootstrap, commandConfig: commandConfig, describe: describe))
    }

    /// `host1:9092,host2:9092`; IPv6 hosts in brackets (`[::1]:9093`).
    static func parseHostPorts(_ list: String, flag: String) throws -> [HostPort] {
        let items = list.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        var out: [HostPort] = []
        for item in items {
            guard let hp = parseHostPort(item) else {
                throw Failure.usage("argument \(flag): invalid host:port '\(item)'; give host:port pairs like host1:9091,host2:9092")
            }
            out.append(hp)
        }
        precondition(!out.isEmpty)
        return out
    }

    static func parseHostPort(_ s: String) -> HostPort? {
        let host: Substring, portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":"), !s[..<colon].contains(":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return HostPort(host: String(host), port: port)
    }

    /// The keys of a `--command-config` properties file (`key=value` or `key: value`;
    /// `#` and `!` comments). Silt's client takes no client settings, so the caller warns
    /// that they are ignored. A missing file is Kafka's error.
    public static func commandConfigKeys(path: String) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw Failure.terse("Properties file \(path) does not exist.")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Failure.terse("Cannot read properties file \(path).")
        }
        var keys: [String] = []
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            let end = line.firstIndex(where: { $0 == "=" || $0 == ":" }) ?? line.endIndex
            let key = line[..<end].trimmingCharacters(in: .whitespaces)
            if !key.isEmpty { keys.append(key) }
        }
        return keys
    }

    // MARK: - The quorum, as Kafka's admin client hands it to the tool

    /// Kafka's `QuorumInfo`: what `Admin.describeMetadataQuorum` makes of the response.
    public struct QuorumInfo: Equatable, Sendable {
        public struct Replica: Equatable, Sendable {
            public var replicaId: Int32
            public var directoryId: KafkaUUID
            public var logEndOffset: Int64
            /// nil when the response says -1 (unknown), as Kafka's OptionalLong.
            public var lastFetchTimestamp: Int64?
            public var lastCaughtUpTimestamp: Int64?

            public init(replicaId: Int32, directoryId: KafkaUUID = .zero, logEndOffset: Int64,
                        lastFetchTimestamp: Int64?, lastCaughtUpTimestamp: Int64?) {
                self.replicaId = replicaId
                self.directoryId = directoryId
                self.logEndOffset = logEndOffset
                self.lastFetchTimestamp = lastFetchTimestamp
                self.lastCaughtUpTimestamp = lastCaughtUpTimestamp
            }
        }

        /// Kafka's `RaftVoterEndpoint`: printed `LISTENER://host:port`.
        public struct Endpoint: Equatable, Sendable, CustomStringConvertible {
            public var listener: String
            public var host: String
            public var port: Int
            public init(listener: String, host: String, port: Int) {
                self.listener = listener
                self.host = host
                self.port = port
            }
            public var description: String {
                "\(listener)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
            }
        }

        public var leaderId: Int32
        public var leaderEpoch: Int32
        public var highWatermark: Int64
        public var voters: [Replica]
        public var observers: [Replica]
        /// The voters' listeners (DescribeQuorum v2's Nodes), by node id.
        public var nodes: [Int32: [Endpoint]]

        public init(leaderId: Int32, leaderEpoch: Int32, highWatermark: Int64, voters: [Replica],
                    observers: [Replica], nodes: [Int32: [Endpoint]] = [:]) {
            self.leaderId = leaderId
            self.leaderEpoch = leaderEpoch
            self.highWatermark = highWatermark
            self.voters = voters
            self.observers = observers
            self.nodes = nodes
        }

        /// Checks the response as Kafka's admin client does (errors, one topic
        /// `__cluster_metadata`, one partition 0) and converts it.
        public init(response r: DescribeQuorumResponse) throws {
            if r.errorCode != 0 { throw QuorumError(code: r.errorCode, message: r.errorMessage) }
            guard r.topics.count == 1 else {
                throw Failure.terse("DescribeMetadataQuorum received \(r.topics.count) topics when 1 was expected")
            }
            let topic = r.topics[0]
            guard topic.topicName == MetadataQuorum.metadataTopic else {
                throw Failure.terse("DescribeMetadataQuorum received a topic with name \(topic.topicName) when \(MetadataQuorum.metadataTopic) was expected")
            }
            guard topic.partitions.count == 1 else {
                throw Failure.terse("DescribeMetadataQuorum received a topic \(topic.topicName) with \(topic.partitions.count) partitions when 1 was expected")
            }
            let p = topic.partitions[0]
            guard p.partitionIndex == 0 else {
                throw Failure.terse("DescribeMetadataQuorum received a single partition with index \(p.partitionIndex) when 0 was expected")
            }
            if p.errorCode != 0 { throw QuorumError(code: p.errorCode, message: p.errorMessage) }
            func replica(_ s: DescribeQuorumResponse.ReplicaState) -> Replica {
                Replica(replicaId: s.replicaId, directoryId: s.replicaDirectoryId, logEndOffset: s.logEndOffset,
                        lastFetchTimestamp: s.lastFetchTimestamp == -1 ? nil : s.lastFetchTimestamp,
                        lastCaughtUpTimestamp: s.lastCaughtUpTimestamp == -1 ? nil : s.lastCaughtUpTimestamp)
            }
            var nodes: [Int32: [Endpoint]] = [:]
            for n in r.nodes {
                nodes[n.nodeId] = n.listeners.map { Endpoint(listener: $0.name, host: $0.host, port: Int($0.port)) }
            }
            self.init(leaderId: p.leaderId, leaderEpoch: p.leaderEpoch, highWatermark: p.highWatermark,
                      voters: p.currentVoters.map(replica), observers: p.observers.map(replica), nodes: nodes)
        }

        /// The leader's entry among the voters. Kafka's tool fails with "No value present"
        /// when there is none (no leader elected yet); Silt says so.
        public func leader() throws -> Replica {
            guard let l = voters.first(where: { $0.replicaId == leaderId }) else {
                throw Failure.terse(leaderId < 0
                    ? "The metadata quorum has no leader (LeaderId \(leaderId), LeaderEpoch \(leaderEpoch)); an election is under way, try again"
                    : "The leader \(leaderId) is not among the current voters \(voters.map(\.replicaId))")
            }
            return l
        }
    }

    /// An error code in a DescribeQuorum (or DescribeCluster) response, named as Kafka names it.
    public struct QuorumError: Error, Equatable, CustomStringConvertible {
        public var code: Int16
        public var message: String?
        public init(code: Int16, message: String?) {
            self.code = code
            self.message = message
        }
        public var name: String { MetadataQuorum.errorName(code) }
        public var description: String {
            if let m = message, !m.isEmpty { return "\(name): \(m)" }
            return name
        }
    }

    // MARK: - Lag

    /// `MaxFollowerLag` and `MaxFollowerLagTimeMs` as Kafka's tool computes them: the
    /// voter with the smallest log end offset (the first one on a tie, in response order)
    /// is the most lagging; its lag is the leader's LEO minus its LEO, and its lag time the
    /// leader's last-caught-up time minus its own: 0 when the leader itself is that voter,
    /// -1 when either timestamp is unknown.
    public static func maxFollowerLag(_ q: QuorumInfo) throws -> (lag: Int64, lagTimeMs: Int64) {
        let leader = try q.leader()
        var worstIndex = 0
        for (i, v) in q.voters.enumerated() where v.logEndOffset < q.voters[worstIndex].logEndOffset {
            worstIndex = i
        }
        let worst = q.voters[worstIndex]
        let lag = leader.logEndOffset - worst.logEndOffset
        let lagTimeMs: Int64
        if worst.replicaId == leader.replicaId {
            lagTimeMs = 0
        } else if let l = leader.lastCaughtUpTimestamp, let f = worst.lastCaughtUpTimestamp {
            lagTimeMs = l - f
        } else {
            lagTimeMs = -1
        }
        return (lag, lagTimeMs)
    }

    /// Kafka's `relativeTimeMs`: milliseconds from `timestampMs` to `nowMs`; a timestamp at
    /// or before the epoch, or in the future, is clock drift and an error.
    public static func relativeTimeMs(_ timestampMs: Int64, _ what: String, nowMs: Int64) throws -> Int64 {
        guard timestampMs > 0, timestampMs <= nowMs else {
            throw Failure.terse("Error while computing relative time, possible drift in system clock.\n"
                + "Current timestamp is \(nowMs), \(what) timestamp is \(timestampMs)")
        }
        return nowMs - timestampMs
    }

    // MARK: - Rendering

    /// `describe --status`: eight lines, values from column 25, as Kafka prints them.
    public static func statusText(clusterId: String, _ q: QuorumInfo) throws -> String {
        let (lag, lagTimeMs) = try maxFollowerLag(q)
        return """
            ClusterId:              \(clusterId)
            LeaderId:               \(q.leaderId)
            LeaderEpoch:            \(q.leaderEpoch)
            HighWatermark:          \(q.highWatermark)
            MaxFollowerLag:         \(lag)
            MaxFollowerLagTimeMs:   \(lagTimeMs)
            CurrentVoters:          \(replicaList(q.voters, q.nodes))
            CurrentObservers:       \(replicaList(q.observers, q.nodes))

            """
    }

    /// Kafka 3.9's list: `[{"id": 0, "directoryId": "...", "endpoints": ["CONTROLLER://h:9093"]}, ...]`;
    /// directoryId is left out when it is the zero uuid, endpoints when there are none.
    static func replicaList(_ replicas: [QuorumInfo.Replica], _ nodes: [Int32: [QuorumInfo.Endpoint]]) -> String {
        let items = replicas.map { r -> String in
            var s = "{\"id\": \(r.replicaId)"
            if r.directoryId != .zero { s += ", \"directoryId\": \"\(r.directoryId.base64URL)\"" }
            let endpoints = nodes[r.replicaId] ?? []
            if !endpoints.isEmpty {
                s += ", \"endpoints\": [" + endpoints.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
            }
            return s + "}"
        }
        return "[" + items.joined(separator: ", ") + "]"
    }

    public static let replicationHeaders = ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp",
                                            "LastCaughtUpTimestamp", "Status"]

    /// `describe --replication`: the leader, then the other voters (Follower), then the
    /// observers, each with its lag behind the leader's log end offset. Unknown timestamps
    /// print -1; with `humanReadable` known ones print "N ms ago" against `nowMs`.
    public static func replicationText(_ q: QuorumInfo, humanReadable: Bool, nowMs: Int64) throws -> String {
        let leader = try q.leader()
        func time(_ t: Int64?, _ what: String) throws -> String {
            guard let t else { return "-1" }
            return humanReadable ? "\(try relativeTimeMs(t, what, nowMs: nowMs)) ms ago" : String(t)
        }
        func row(_ r: QuorumInfo.Replica, _ status: String) throws -> [String] {
            [String(r.replicaId), r.directoryId.base64URL, String(r.logEndOffset),
             String(leader.logEndOffset - r.logEndOffset),
             try time(r.lastFetchTimestamp, "last fetch"), try time(r.lastCaughtUpTimestamp, "last caught up"), status]
        }
        var rows: [[String]] = [try row(leader, "Leader")]
        for v in q.voters where v.replicaId != q.leaderId { rows.append(try row(v, "Follower")) }
        for o in q.observers { rows.append(try row(o, "Observer")) }
        return table(headers: replicationHeaders, rows: rows)
    }

    /// Kafka's `ToolsUtils.prettyPrintTable`: every cell left-aligned and padded to its
    /// column's widest value, then a tab (the last column too).
    static func table(headers: [String], rows: [[String]]) -> String {
        var widths = headers.map(\.count)
        for r in rows {
            precondition(r.count == headers.count, "a row has \(r.count) cells for \(headers.count) columns")
            for (i, cell) in r.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        var out = ""
        for r in [headers] + rows {
            for (i, cell) in r.enumerated() {
                out += cell + String(repeating: " ", count: widths[i] - cell.count) + "\t"
            }
            out += "\n"
        }
        return out
    }

    // MARK: - Kafka's error names

    /// Kafka's `Errors` name for a code; codes Kafka does not know print as
    /// `UNKNOWN_SERVER_ERROR`, as `Errors.forCode` maps them.
    public static func errorName(_ code: Int16) -> String { KafkaErrorCode.name(code) }


    // MARK: - Versions

    /// The highest version both sides speak, or nil: `server` is the node's advertised
    /// range for the api (nil when it does not advertise it).
    public static func pickVersion(client: ClosedRange<Int16>, server: ClosedRange<Int16>?) -> Int16? {
        guard let s = server else { return nil }
        let low = max(client.lowerBound, s.lowerBound), high = min(client.upperBound, s.upperBound)
        return low <= high ? high : nil
    }
}

// MARK: - Running against a node

extension MetadataQuorum {
    /// A bootstrap address that could not be reached (the next one is tried).
    struct ConnectFailure: Error {
        var address: HostPort
        var reason: String
    }

    public static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// Runs a parsed command line: prints the description to `out`, warnings and errors
    /// to `err`, and returns the exit code (0 or 1).
    ///
    /// Bootstrap addresses are tried in order. The next one is tried when a node cannot be
    /// reached, or answers NOT_LEADER_OR_FOLLOWER / NOT_CONTROLLER (a controller that is not
    /// the quorum's leader); any other error ends the run.
    ///
    /// ClusterId comes from DescribeCluster on the same connection, as Kafka's tool asks
    /// the admin client for it. DescribeQuorum carries no cluster id; controllers answer
    /// DescribeCluster for endpoint type 2 (KIP-919). With `--bootstrap-controller` a node that
    /// does not advertise it, or fails it, gives `ClusterId: unknown`. With `--bootstrap-server`
    /// (brokers, which always serve it) a DescribeCluster failure is an error.
    public static func run(_ options: Options, out: (String) -> Void, err: (String) -> Void) -> Int32 {
        if let path = options.commandConfig {
            do {
                let keys = try commandConfigKeys(path: path)
                if !keys.isEmpty {
                    err("Warning: ignoring \(keys.count) \(keys.count == 1 ? "property" : "properties") of \(path) (\(keys.joined(separator: ", "))): "
                        + "Silt's \(toolName) connects over PLAINTEXT with default client settings")
                }
            } catch {
                err("\(error)")
                return 1
            }
        }
        var logger = Logger(label: "silt.metadata-quorum")
        logger.logLevel = .critical
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }

        var skipped: [String] = []
        let addresses = options.bootstrap.addresses
        for (i, address) in addresses.enumerated() {
            let isLast = i == addresses.count - 1
            do {
                out(try describe(at: address, options, group: group, logger: logger))
                return 0
            } catch let e as ConnectFailure {
                skipped.append("Failed to connect to \(e.address): \(e.reason)")
            } catch let e as QuorumError where !isLast && (e.code == 6 || e.code == 41) {
                skipped.append("DescribeQuorum at \(address) failed: \(e)")
            } catch let e as QuorumError {
                skipped.forEach(err)
                err("DescribeQuorum at \(address) failed: \(e)")
                return 1
            } catch {
                skipped.forEach(err)
                err("\(error)")
                return 1
            }
        }
        skipped.forEach(err)
        return 1
    }

    /// One node: ApiVersions, then (for --status) DescribeCluster, then DescribeQuorum at
    /// the highest version both sides speak; returns the text to print.
    static func describe(at address: HostPort, _ options: Options, group: EventLoopGroup,
                         logger: Logger) throws -> String {
        let client = KafkaClient(group: group, host: address.host, port: address.port,
                                 clientId: "silt-metadata-quorum", logger: logger)
        defer { client.close() }
        let timeout = TimeAmount.milliseconds(requestTimeoutMs)

        // ApiVersions v0: every Kafka-framed server answers it, and Silt's close the
        // connection on an api they do not serve, so nothing unadvertised is sent.
        let versions: ApiVersionsResponse
        do {
            versions = try client.send(ApiVersionsRequest(), version: 0, timeout: timeout).wait()
        } catch {
            throw ConnectFailure(address: address, reason: connectReason(error))
        }
        if versions.errorCode != 0 { throw QuorumError(code: versions.errorCode, message: "ApiVersions") }
        var ranges: [Int16: ClosedRange<Int16>] = [:]
        for k in versions.apiKeys where k.minVersion <= k.maxVersion { ranges[k.apiKey] = k.minVersion...k.maxVersion }

        guard let quorumVersion = pickVersion(client: describeQuorumVersions, server: ranges[DescribeQuorumRequest.apiKey]) else {
            throw Failure.terse("UNSUPPORTED_VERSION: \(address) does not serve DescribeQuorum (api key 55) "
                + "versions \(describeQuorumVersions.lowerBound)-\(describeQuorumVersions.upperBound)")
        }

        var clusterId = "unknown"
        if options.describe == .status {
            clusterId = try describeClusterId(client, address, ranges, controller: options.bootstrap.isController,
                                              timeout: timeout)
        }

        var partition = DescribeQuorumRequest.PartitionData()
        partition.partitionIndex = 0
        var topic = DescribeQuorumRequest.TopicData()
        topic.topicName = metadataTopic
        topic.partitions = [partition]
        var request = DescribeQuorumRequest()
        request.topics = [topic]
        let response: DescribeQuorumResponse
        do {
            response = try client.send(request, version: quorumVersion, timeout: timeout).wait()
        } catch {
            throw Failure.terse("DescribeQuorum v\(quorumVersion) to \(address) failed: \(error)")
        }
        let quorum = try QuorumInfo(response: response)
        switch options.describe {
        case .status:
            return try statusText(clusterId: clusterId, quorum)
        case .replication(let humanReadable):
            return try replicationText(quorum, humanReadable: humanReadable, nowMs: nowMs())
        }
    }

    /// NIO's connect errors, short: "Connection refused" rather than the whole structure.
    static func connectReason(_ error: Error) -> String {
        if let e = error as? NIOConnectionError {
            var reasons = e.connectionErrors.map { connectReason($0.error) }
            if let dns = e.dnsAError ?? e.dnsAAAAError, reasons.isEmpty { reasons.append("cannot resolve \(e.host): \(dns)") }
            if reasons.isEmpty { return "\(error)" }
            var unique: [String] = []
            for r in reasons where !unique.contains(r) { unique.append(r) }
            return unique.joined(separator: "; ")
        }
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
        return "\(error)"
    }

    static func describeClusterId(_ client: KafkaClient, _ address: HostPort, _ ranges: [Int16: ClosedRange<Int16>],
                                  controller: Bool, timeout: TimeAmount) throws -> String {
        guard let version = pickVersion(client: 0...1, server: ranges[DescribeClusterRequest.apiKey]) else {
            if controller { return "unknown" }
            throw Failure.terse("UNSUPPORTED_VERSION: \(address) does not serve DescribeCluster (api key 60)")
        }
        var request = DescribeClusterRequest()
        request.endpointType = controller ? endpointTypeController : endpointTypeBroker
        do {
            let response = try client.send(request, version: version, timeout: timeout).wait()
            if response.errorCode != 0 {
                throw QuorumError(code: response.errorCode, message: response.errorMessage)
            }
            return response.clusterId
        } catch {
            if controller { return "unknown" }
            if let e = error as? QuorumError { throw Failure.terse("DescribeCluster at \(address) failed: \(e)") }
            throw Failure.terse("DescribeCluster to \(address) failed: \(error)")
        }
    }
}
