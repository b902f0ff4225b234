import Dispatch
import Foundation
import Logging
import SiltAdmin
import NIOCore
import SiltBroker
import SiltConfig
import SiltNet
import SiltObjectStore
import SiltRing
import SiltWAL

/// The fixed descriptor numbers a role process inherits from the supervisor.
enum RoleFd {
    static let config: Int32 = 3
    static let logRing: Int32 = 4
    static let durableNotices: Int32 = 5
    static let trimCommands: Int32 = 6
    static let walState: Int32 = 7
    /// S3 credentials as JSON (`{"accessKey":..,"secretKey":..}`), or an empty memfd.
    static let credentials: Int32 = 8
    /// The node's shared metrics counters.
    static let metrics: Int32 = 9
}

/// S3 credentials travel to role processes in their own memfd: never on argv, in the
/// environment, or in the configuration (which is logged).
enum CredentialsTransfer {
    static func write(_ credentials: S3Credentials?, to fd: Int32) throws {
        guard let c = credentials else { return }
        let data = try JSONEncoder().encode(["accessKey": c.accessKey, "secretKey": c.secretKey, "source": c.source])
        try data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue }; throw ConfigError(key: "credentials fd", value: "\(fd)", reason: String(cString: strerror(errno))) }
                done += n
            }
        }
    }

    static func read(from fd: Int32 = RoleFd.credentials) throws -> S3Credentials? {
        let bytes = try readAll(fd: fd)
        if bytes.isEmpty { return nil }
        let fields = try JSONDecoder().decode([String: String].self, from: Data(bytes))
        guard let a = fields["accessKey"], let s = fields["secretKey"] else { return nil }
        return S3Credentials(accessKey: a, secretKey: s, source: fields["source"] ?? "supervisor")
    }
}

/// Everything in a memfd, read with pread from offset 0.
func readAll(fd: Int32) throws -> [UInt8] {
    var bytes = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    var offset: off_t = 0
    while true {
        let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
        if n < 0 { if errno == EINTR { continue }; throw ConfigError(key: "fd \(fd)", value: "\(fd)", reason: String(cString: strerror(errno))) }
        if n == 0 { break }
        bytes += chunk[0..<n]
        offset += off_t(n)
    }
    return bytes
}

/// The shared memory a broker-side role attaches to (created by the supervisor).
struct NodeRegions {
    let ring: LogRing
    let durableNotices: ControlRing
    let trimCommands: ControlRing
    let walState: WALState

    static func attach() throws -> NodeRegions {
        NodeRegions(ring: try LogRing.attach(fd: RoleFd.logRing),
                    durableNotices: try ControlRing.attach(fd: RoleFd.durableNotices),
                    trimCommands: try ControlRing.attach(fd: RoleFd.trimCommands),
                    walState: try WALState.attach(fd: RoleFd.walState))
    }
}

/// The node's effective configuration travels to role processes as JSON in a memfd (never
/// on argv: it may hold secrets).
enum ConfigTransfer {
    static func write(_ properties: [String: String], to fd: Int32) throws {
        let data = try JSONEncoder().encode(properties)
        try data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue }; throw ConfigError(key: "config fd", value: "\(fd)", reason: String(cString: strerror(errno))) }
                done += n
            }
        }
    }

    static func read(from fd: Int32) throws -> ServerConfig {
        let bytes = try readAll(fd: fd)
        let properties = try JSONDecoder().decode([String: String].self, from: Data(bytes))
        return try ServerConfig(properties: properties)
    }
}

/// Logging for every process of a node: stderr, one line an event, the role in each line.
func bootstrapLogging(level: String) throws {
    guard let level = Logger.Level(rawValue: level) else {
        throw ConfigError(key: "--log-level", value: level, reason: "expected trace, debug, info, notice, warning, error or critical")
    }
    LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = level
        return h
    }
}

/// Blocks until SIGTERM or SIGINT.
func waitForStopSignal() {
    let stopped = DispatchSemaphore(value: 0)
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    signal(SIGPIPE, SIG_IGN)
    let queue = DispatchQueue(label: "silt.signals")
    let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
        let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
        s.setEventHandler { stopped.signal() }
        s.resume()
        return s
    }
    stopped.wait()
    withExtendedLifetime(sources) {}
}

func fail(_ message: String, exitCode: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("silt: \(message)\n".utf8))
    exit(exitCode)
}

/// An error no restart can cure: what the role was configured with (or the device it was
/// given) is wrong. The role exits with `Supervisor.configErrorExitCode` and the node stops.
func isConfigurationError(_ error: Error) -> Bool {
    switch error {
    case let e as WALError: return e.isConfigurationError
    case is ConfigError, is Properties.ParseError, is NodeObjectStores.BucketURIError: return true
    // A bucket that does not exist or credentials it refuses (the S3 WAL's, read at open).
    case let e as ObjectStoreError:
        switch e {
        case .noSuchBucket, .accessDenied, .invalidAccessKeyId, .signatureDoesNotMatch: return true
        default: return false
        }
    default: return false
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private var done = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
    var drained: Bool { lock.withLock { done } }
    func markDrained() { lock.withLock { done = true } }
}

struct RoleError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The client a broker, uploader or tool uses to reach the active controller: the voters of
/// `controller.quorum.voters`, else `controller.quorum.bootstrap.servers`.
func controllerQuorumClient(config: ServerConfig, group: EventLoopGroup, clientId: String, logger: Logger) throws
    -> ControllerQuorumClient {
    var endpoints = config.quorumVoters.map { ControllerQuorumClient.Endpoint(id: $0.id, host: $0.host, port: $0.port) }
    if endpoints.isEmpty {
        endpoints = (config.value("controller.quorum.bootstrap.servers").value ?? "").split(separator: ",").compactMap { s in
            let parts = s.trimmingCharacters(in: .whitespaces).split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else { return nil }
            return ControllerQuorumClient.Endpoint(id: nil, host: String(parts[0]), port: port)
        }
    }
    guard !endpoints.isEmpty else {
        throw RoleError("neither controller.quorum.voters nor controller.quorum.bootstrap.servers names a controller")
    }
    // Leave from the node's own listener address (an IP literal only: a name may resolve to
    // an address this host does not have), as the controllers' own quorum traffic does.
    let localHost = config.listeners.first.map(\.host).flatMap { host in
        (try? SocketAddress(ipAddress: host, port: 0)) != nil && host != "0.0.0.0" && host != "::" ? host : nil
    }
    return ControllerQuorumClient(group: group, endpoints: endpoints, clientId: clientId, logger: logger, localHost: localHost)
}
