import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltNet
import SiltProtocol

/// One connection from a command-line tool (kafka-topics, kafka-configs) to the first
/// bootstrap broker that answers, with the api versions it advertised. Every request goes
/// at the highest version both Silt's generated code and the broker speak; an api the
/// broker does not advertise is a clear error instead of a closed connection.
///
///     addresses ──connect + ApiVersions v0 (first that answers)──▶ AdminSession ──send──▶ typed response
public final class AdminSession {
    /// Bound on each request (connect is bounded by KafkaClient at 5 s).
    public static let requestTimeoutMs: Int64 = 30_000

    public let address: MetadataQuorum.HostPort
    let client: KafkaClient
    let ranges: [Int16: ClosedRange<Int16>]
    private let group: MultiThreadedEventLoopGroup

    /// A failure to print: the tool exits 1 with this text.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    private init(address: MetadataQuorum.HostPort, client: KafkaClient, ranges: [Int16: ClosedRange<Int16>],
                 group: MultiThreadedEventLoopGroup) {
        self.address = address
        self.client = client
        self.ranges = ranges
        self.group = group
    }

    /// Connects to the first of `addresses` that answers ApiVersions. When none does, the
    /// error names each address and why.
    public static func connect(_ addresses: [MetadataQuorum.HostPort], clientId: String) throws -> AdminSession {
        precondition(!addresses.isEmpty)
        var logger = Logger(label: "silt.\(clientId)")
        logger.logLevel = .critical
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var reasons: [String] = []
        for address in addresses {
            let client = KafkaClient(group: group, host: address.host, port: address.port, clientId: clientId, logger: logger)
            do {
                let versions = try client.send(ApiVersionsRequest(), version: 0,
                                               timeout: .milliseconds(requestTimeoutMs)).wait()
                guard versions.errorCode == 0 else {
                    reasons.append("\(address): ApiVersions failed with \(KafkaErrorCode.name(versions.errorCode))")
                    client.close()
                    continue
                }
                var ranges: [Int16: ClosedRange<Int16>] = [:]
                for k in versions.apiKeys where k.minVersion <= k.maxVersion { ranges[k.apiKey] = k.minVersion...k.maxVersion }
                return AdminSession(address: address, client: client, ranges: ranges, group: group)
            } catch {
                reasons.append("Failed to connect to \(address): \(MetadataQuorum.connectReason(error))")
                client.close()
            }
        }
        try? group.syncShutdownGracefully()
        throw Failure(reasons.joined(separator: "\n"))
    }

    public func close() {
        client.close()
        try? group.syncShutdownGracefully()
    }

    /// The version `R` goes at: the highest both sides speak.
    public func version<R: KafkaRequest>(of _: R.Type) throws -> Int16 {
        let ours = R.lowestSupportedVersion...R.highestSupportedVersion
        guard let v = MetadataQuorum.pickVersion(client: ours, server: ranges[R.apiKey]) else {
            throw Failure("UNSUPPORTED_VERSION: \(address) does not serve \(R.self) (api key \(R.apiKey)) "
                + "at any version from \(ours.lowerBound) to \(ours.upperBound)")
        }
        return v
    }

    /// Sends `request` at the negotiated version and waits for the typed response.
    public func send<R: KafkaRequest>(_ request: R) throws -> R.Response {
        let v = try version(of: R.self)
        do {
            return try client.send(request, version: v, timeout: .milliseconds(AdminSession.requestTimeoutMs)).wait()
        } catch {
            throw Failure("\(R.self) v\(v) to \(address) failed: \(error)")
        }
    }
}

/// What a client tool's command line asks for: a run with its options, or the usage.
public enum ToolCommand<Options: Equatable & Sendable>: Equatable, Sendable {
    case run(Options)
    case help
}

/// Kafka's command-line conventions shared by the tools (joptsimple's forms).
public enum ToolArguments {
    /// The error for an argument a tool does not take: why, for the flags Kafka's tool has
    /// and Silt's refuses (`refused`), else Kafka's words.
    static func unknown(_ arg: String, refused: [String: String]) -> AdminSession.Failure {
        let flag = self.flag(arg)
        if let why = refused[flag] { return AdminSession.Failure("\(flag) is not supported: \(why).") }
        return AdminSession.Failure(arg.hasPrefix("-") ? "\(arg) is not a recognized option" : "Unexpected argument '\(arg)'")
    }

    /// Walks a command line: `-h`/`--help` ends the walk (nil), `--bootstrap-server` is
    /// collected, every other argument goes to `each(arg, flag, &i)`, which may consume
    /// values by advancing `i`. Returns the `--bootstrap-server` value, if any.
    static func walk(_ args: [String], _ each: (String, String, inout Int) throws -> Void) throws -> String?? {
        var bootstrap: String?
        var i = 0
        while i < args.count {
            let flag = self.flag(args[i])
            switch flag {
            case "-h", "--help": return nil
            case "--bootstrap-server": bootstrap = try value(args, &i, flag)
            default: try each(args[i], flag, &i)
            }
            i += 1
        }
        return .some(bootstrap)
    }

    /// The required `--bootstrap-server`, parsed.
    static func requiredBootstrap(_ list: String?) throws -> [MetadataQuorum.HostPort] {
        guard let list else { throw AdminSession.Failure("Missing required argument \"[bootstrap-server]\"") }
        return try bootstrap(list)
    }

    /// `--name value` or `--name=value`: the value, advancing `i` past it when separate.
    static func value(_ args: [String], _ i: inout Int, _ name: String) throws -> String {
        let arg = args[i]
        if arg.hasPrefix(name + "=") { return String(arg.dropFirst(name.count + 1)) }
        i += 1
        guard i < args.count, !args[i].hasPrefix("--") else {
            throw AdminSession.Failure("Option \(name) requires an argument")
        }
        return args[i]
    }

    /// `key=value` (of `--property`, `--producer-property`, `--consumer-property`).
    static func keyValue(_ text: String, flag: String) throws -> (String, String) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw AdminSession.Failure("Option \(flag): '\(text)' is not in the form key=value")
        }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    /// An integer option's value, with Kafka's words when it is not one.
    static func integer<T: FixedWidthInteger>(_ args: [String], _ i: inout Int, _ name: String, as _: T.Type = T.self) throws -> T {
        let v = try value(args, &i, name)
        guard let n = T(v) else { throw AdminSession.Failure("Option \(name): '\(v)' is not an integer") }
        return n
    }

    /// The flag part of `--name=value` (or the whole argument).
    static func flag(_ arg: String) -> String {
        guard arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") else { return arg }
        return String(arg[..<eq])
    }

    /// `--bootstrap-server host:port[,host:port...]`.
    static func bootstrap(_ list: String) throws -> [MetadataQuorum.HostPort] {
        do {
            return try MetadataQuorum.parseHostPorts(list, flag: "--bootstrap-server")
        } catch {
            throw AdminSession.Failure("\(error)")
        }
    }

    /// The `--command-config` warning: Silt's tools connect over PLAINTEXT with default
    /// client settings, so the file's properties are read and ignored.
    static func commandConfigWarning(_ path: String?, tool: String) throws -> String? {
        guard let path else { return nil }
        let keys = try MetadataQuorum.commandConfigKeys(path: path)
        guard !keys.isEmpty else { return nil }
        return "Warning: ignoring \(keys.count) \(keys.count == 1 ? "property" : "properties") of \(path) "
            + "(\(keys.joined(separator: ", "))): Silt's \(tool) connects over PLAINTEXT with default client settings"
    }
}
