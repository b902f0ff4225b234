import Foundation

/// One `NAME://host:port` listener.
public struct Listener: Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var host: String   // empty means all interfaces
    public var port: Int

    public init(name: String, host: String, port: Int) {
        self.name = name; self.host = host; self.port = port
    }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(name)://\(h):\(port)"
    }

    public static func parse(_ text: String) -> Listener? {
        guard let sep = text.range(of: "://") else { return nil }
        let name = String(text[..<sep.lowerBound])
        var rest = Substring(text[sep.upperBound...])
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
        var host: String
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            rest = rest.dropFirst()
        } else {
            guard let colon = rest.lastIndex(of: ":") else { return nil }
            host = String(rest[..<colon])
            rest = rest[rest.index(after: colon)...]
        }
        guard let port = Int(rest), (0...65535).contains(port) else { return nil }
        if host == "0.0.0.0" { host = "" }
        return Listener(name: name.uppercased(), host: host, port: port)
    }
}

/// One `id@host:port` controller voter.
public struct QuorumVoter: Equatable, Sendable {
    public var id: Int32
    public var host: String
    public var port: Int

    public init(id: Int32, host: String, port: Int) {
        self.id = id; self.host = host; self.port = port
    }

    public static func parse(_ text: String) -> QuorumVoter? {
        guard let at = text.firstIndex(of: "@"), let id = Int32(text[..<at]), id >= 0 else { return nil }
        let hostPort = text[text.index(after: at)...]
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return QuorumVoter(id: id, host: host, port: port)
    }
}

public enum ProcessRole: String, Sendable, CaseIterable {
    case broker, controller
}

/// The node's validated configuration.
///
/// Sources, later wins: defaults, then the properties file, then the s3url, then each
/// `--override`. Unknown keys are kept (and reported in `warnings`) so that a start line
/// written for AutoMQ or Kafka still starts; a known key with a bad value fails here.
public struct ServerConfig: Sendable {
    /// Effective raw values of every key that was set explicitly.
    public private(set) var explicit: [String: String]
    public private(set) var warnings: [String] = []

    public let nodeId: Int32
    public let processRoles: Set<ProcessRole>
    public let listeners: [Listener]
    public let advertisedListeners: [Listener]
    public let controllerListenerNames: [String]
    public let quorumVoters: [QuorumVoter]
    public let logDirs: [String]
    public let clusterId: String?
    public let numPartitions: Int32
    public let autoCreateTopics: Bool
    public let deleteTopicEnable: Bool
    public let messageMaxBytes: Int32
    public let socketRequestMaxBytes: Int
    /// The broker's event loops (`num.network.threads`) when set explicitly; nil: one per core.
    public let eventLoopCount: Int?
    public let logSegmentBytes: Int
    /// The WAL device or file (`s3.wal.path`, AutoMQ's `N@file:///path?capacity=..` accepted).
    public let walPath: String
    public let walCapacityBytes: UInt64
    /// S3 WAL mode (`s3.wal.path=0@s3://bucket?...`): nil for a device or file WAL. Then
    /// `walPath` is the raw value and `walCapacityBytes` its `maxUnflushedBytes`.
    public let objectWAL: ObjectWALSettings?
    /// True when the capacity was given (`s3.wal.capacity`, or `capacity=` in the path): a
    /// block device smaller than the default capacity then is refused, not taken whole.
    public let walCapacityExplicit: Bool
    /// Other nodes' WALs this node can reach (`s3.wal.takeover.paths`), by node id.
    public let walTakeoverPaths: [Int32: String]
    /// The shared-memory log buffer's data area (`s3.wal.cache.size`), a power of two.
    public let logBufferBytes: Int
    /// Stream storage (see docs/streams.md).
    public private(set) var objectStorage: ObjectStorageConfig
    /// The S3 read cache (`s3.block.cache.size`).
    public var blockCacheBytes: Int { objectStorage.blockCacheBytes }

    public init(properties: [String: String] = [:]) throws {
        var warnings: [String] = []
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if let def = ServerConfig.keyDef(key) {
                try def.check(value)
            } else if let topicDef = TopicConfig.defsByName[key] {
                // Topic keys given at broker level are accepted as their broker synonym would be.
                try topicDef.key.check(value)
            } else {
                warnings.append("unknown configuration '\(key)' is ignored")
            }
        }
        self.explicit = properties
        self.warnings = warnings

        let raw: (String) -> String? = { key in properties[key] ?? ServerConfig.keyDef(key)?.defaultValue }
        let int: (String) -> Int32 = { key in Int32(raw(key)!)! }
        let bool: (String) -> Bool = { key in ConfigKeyDef.parseBool(raw(key)!)! }
        let list: (String) -> [String] = { key in raw(key).map(ConfigKeyDef.parseList) ?? [] }

        nodeId = int("node.id")
        let roles = list("process.roles")
        guard !roles.isEmpty else {
            throw ConfigError(key: "process.roles", value: raw("process.roles") ?? "", reason: "must name at least one role")
        }
        processRoles = Set(roles.compactMap(ProcessRole.init(rawValue:)))
        listeners = list("listeners").compactMap(Listener.parse)
        controllerListenerNames = list("controller.listener.names").map { $0.uppercased() }

        let controllerListenerNames = self.controllerListenerNames
        let listeners = self.listeners
        var names = Set<String>()
        for l in listeners where !names.insert(l.name).inserted {
            throw ConfigError(key: "listeners", value: raw("listeners")!, reason: "listener name \(l.name) appears twice")
        }
        let protocolMap = Dictionary(list("listener.security.protocol.map").compactMap { entry -> (String, String)? in
            let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
            return parts.count == 2 ? (parts[0].uppercased(), parts[1].uppercased()) : nil
        }, uniquingKeysWith: { _, b in b })
        for l in listeners {
            guard let proto = protocolMap[l.name] else {
                throw ConfigError(key: "listener.security.protocol.map", value: raw("listener.security.protocol.map")!,
                                  reason: "no security protocol for listener \(l.name)")
            }
            guard proto == "PLAINTEXT" else {
                throw ConfigError(key: "listeners", value: raw("listeners")!,
                                  reason: "listener \(l.name) uses \(proto); only PLAINTEXT is supported so far")
            }
        }
        let clientListeners = listeners.filter { !controllerListenerNames.contains($0.name) }
        if processRoles.contains(.broker) && clientListeners.isEmpty {
            throw ConfigError(key: "listeners", value: raw("listeners")!,
                              reason: "a broker needs at least one listener that is not a controller listener")
        }
        let processRoles = self.processRoles
        let nodeId = self.nodeId
        if processRoles.contains(.controller) && !listeners.contains(where: { controllerListenerNames.contains($0.name) }) {
            throw ConfigError(key: "listeners", value: raw("listeners")!,
                              reason: "a controller needs a listener named in controller.listener.names (\(controllerListenerNames.joined(separator: ",")))")
        }
        if let adv = properties["advertised.listeners"] {
            advertisedListeners = ConfigKeyDef.parseList(adv).compactMap(Listener.parse)
            for a in advertisedListeners where a.host.isEmpty {
                throw ConfigError(key: "advertised.listeners", value: adv, reason: "listener \(a.name) needs a host clients can reach")
            }
        } else {
            advertisedListeners = clientListeners.map { l in
                var a = l
                if a.host.isEmpty { a.host = "127.0.0.1" }
                return a
            }
        }

        if properties["controller.quorum.voters"] != nil {
            quorumVoters = list("controller.quorum.voters").compactMap(QuorumVoter.parse)
        } else if let c = listeners.first(where: { controllerListenerNames.contains($0.name) }),
                  processRoles.contains(.controller) {
            quorumVoters = [QuorumVoter(id: nodeId, host: c.host.isEmpty ? "127.0.0.1" : c.host, port: c.port)]
        } else {
            quorumVoters = []
        }
        if !processRoles.contains(.controller), quorumVoters.contains(where: { $0.id == nodeId }) {
            throw ConfigError(key: "controller.quorum.voters", value: raw("controller.quorum.voters") ?? "",
                              reason: "node \(nodeId) is listed as a voter but process.roles (\(raw("process.roles") ?? "")) "
                                + "has no controller: add controller to process.roles or remove the node from the voters")
        }
        if processRoles.contains(.controller) && !quorumVoters.isEmpty && !quorumVoters.contains(where: { $0.id == nodeId }) {
            throw ConfigError(key: "controller.quorum.voters", value: raw("controller.quorum.voters") ?? "",
                              reason: "this node (node.id=\(nodeId)) runs a controller but is not among the voters")
        }

        if properties["log.dirs"] != nil {
            logDirs = list("log.dirs")
            if logDirs.isEmpty { throw ConfigError(key: "log.dirs", value: "", reason: "must name a directory") }
        } else {
            logDirs = [raw("log.dir")!]
        }
        clusterId = properties["cluster.id"]
        numPartitions = int("num.partitions")
        autoCreateTopics = bool("auto.create.topics.enable")
        deleteTopicEnable = bool("delete.topic.enable")
        messageMaxBytes = int("message.max.bytes")
        socketRequestMaxBytes = Int(int("socket.request.max.bytes"))
        eventLoopCount = properties["num.network.threads"] != nil ? Int(int("num.network.threads")) : nil
        logSegmentBytes = Int(int("log.segment.bytes"))

        var capacity = UInt64(Int64(raw("s3.wal.capacity")!)!)
        var capacityExplicit = properties["s3.wal.capacity"] != nil
        if let rawPath = properties["s3.wal.path"], let settings = try ObjectWALSettings.parse(rawPath) {
            objectWAL = settings
            walPath = rawPath
            capacity = settings.maxUnflushedBytes
        } else if let rawPath = properties["s3.wal.path"] {
            objectWAL = nil
            let parsed = try ServerConfig.parseWALPath(rawPath)
            walPath = parsed.path
            if let c = parsed.capacity { capacity = c; capacityExplicit = true }
        } else {
            objectWAL = nil
            walPath = logDirs[0] + "/wal.silt"
        }
        walCapacityBytes = capacity
        walCapacityExplicit = capacityExplicit
        walTakeoverPaths = try ServerConfig.parseTakeoverPaths(raw("s3.wal.takeover.paths") ?? "")
        if walTakeoverPaths[nodeId] != nil {
            throw ConfigError(key: "s3.wal.takeover.paths", value: raw("s3.wal.takeover.paths") ?? "",
                              reason: "names this node's own WAL (node \(nodeId)); list only other nodes'")
        }
        let cacheSize = Int64(raw("s3.wal.cache.size")!)!
        var ring = cacheSize <= 0 ? 64 << 20 : Int(cacheSize)
        ring = max(ring, 1 << 20)
        if ring & (ring - 1) != 0 { ring = 1 << (Int.bitWidth - (ring - 1).leadingZeroBitCount) }
        logBufferBytes = ring
        let threshold = Int64(raw("s3.wal.upload.threshold")!)!
        let blockCache = Int64(raw("s3.block.cache.size")!)!
        objectStorage = ObjectStorageConfig(
            uploadThresholdBytes: threshold <= 0 ? min(ring / 3, 500 << 20) : Int(threshold),
            uploadIntervalMs: Int(Int64(raw("s3.wal.upload.interval.ms")!)!),
            blockCacheBytes: blockCache <= 0 ? 128 << 20 : Int(blockCache),
            objectBlockBytes: Int(int("s3.object.block.size")),
            objectPartBytes: Int(int("s3.object.part.size")),
            streamObjectSplitBytes: Int(int("s3.stream.object.split.size")),
            streamSetCompactionIntervalMs: properties["s3.stream.set.object.compaction.interval.ms"].flatMap { Int($0) }
                ?? Int(int("s3.stream.set.object.compaction.interval.minutes")) * 60_000,
            streamObjectCompactionIntervalMs: properties["s3.stream.object.compaction.interval.ms"].flatMap { Int($0) }
                ?? Int(int("s3.stream.object.compaction.interval.minutes")) * 60_000,
            networkBaselineBytesPerSecond: Int(Int64(raw("s3.network.baseline.bandwidth")!)!),
            uploadParallelism: Int(int("s3.upload.parallelism")),
            prepareTTLMs: Int64(raw("s3.object.prepare.ttl.ms")!)!,
            janitorIntervalMs: Int64(raw("s3.object.janitor.interval.ms")!)!)
        objectStorage.deletionDelayMs = Int64(raw("s3.object.deletion.delay.ms")!)!
        if objectStorage.uploadThresholdBytes > ring / 2 {
            throw ConfigError(key: "s3.wal.upload.threshold", value: String(threshold),
                              reason: "must be at most half the log buffer (\(ring / 2) bytes): the buffer holds what waits for upload")
        }
        if Int(messageMaxBytes) + 64 > logBufferBytes / 4 {
            throw ConfigError(key: "s3.wal.cache.size", value: String(cacheSize),
                              reason: "the log buffer (\(logBufferBytes) bytes) must be at least 4x message.max.bytes (\(messageMaxBytes))")
        }
    }

    /// `s3.wal.path`: a plain path, or AutoMQ's `[N@](file|block)://PATH[?capacity=BYTES&...]`.
    static func parseWALPath(_ raw: String) throws -> (path: String, capacity: UInt64?) {
        var s = Substring(raw)
        if let at = s.firstIndex(of: "@"), s[..<at].allSatisfy(\.isNumber) { s = s[s.index(after: at)...] }
        precondition(!s.hasPrefix("s3://"), "S3 WAL paths are parsed by ObjectWALSettings")
        for scheme in ["file://", "block://"] where s.hasPrefix(scheme) { s = s.dropFirst(scheme.count) }
        var capacity: UInt64?
        if let q = s.firstIndex(of: "?") {
            for pair in s[s.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 && kv[0] == "capacity" {
                    guard let c = UInt64(kv[1]), c >= 1 << 20 else {
                        throw ConfigError(key: "s3.wal.path", value: raw, reason: "capacity must be a byte count of at least 1 MiB")
                    }
                    capacity = c
                }
            }
            s = s[..<q]
        }
        guard s.hasPrefix("/") || !s.isEmpty else {
            throw ConfigError(key: "s3.wal.path", value: raw, reason: "empty path")
        }
        return (String(s), capacity)
    }

    /// Loads a properties file (optional) and applies overrides in order.
    public static func load(propertiesFile: String?, layers: [[String: String]] = [],
                            overrides: [String]) throws -> ServerConfig {
        var merged: [String: String] = [:]
        if let path = propertiesFile {
            guard let data = FileManager.default.contents(atPath: path),
                  let text = String(data: data, encoding: .utf8) else {
                throw ConfigError(key: "properties file", value: path, reason: "cannot be read")
            }
            merged.merge(try Properties.parse(text, source: path)) { _, new in new }
        }
        for layer in layers { merged.merge(layer) { _, new in new } }
        for o in overrides {
            let (k, v) = try Properties.parseOverride(o)
            merged[k] = v
        }
        return try ServerConfig(properties: merged)
    }

    /// The effective value of a broker key and whether it came from the default.
    public func value(_ key: String) -> (value: String?, isDefault: Bool) {
        if let v = explicit[key] { return (v, false) }
        return (ServerConfig.keyDef(key)?.defaultValue, true)
    }

    /// The broker-level default a topic key inherits.
    public func topicDefault(_ topicKey: String) -> (value: String?, fromBroker: Bool) {
        guard let def = TopicConfig.defsByName[topicKey] else { return (nil, false) }
        if let v = explicit[topicKey] { return (v, true) }
        if let syn = def.brokerSynonym {
            if topicKey == "retention.ms", explicit["log.retention.ms"] == nil, let h = explicit["log.retention.hours"],
               let hours = Int64(h) {
                return (String(hours < 0 ? -1 : hours * 3_600_000), true)
            }
            if let v = explicit[syn] { return (v, true) }
        }
        return (def.key.defaultValue, false)
    }

    public var isBroker: Bool { processRoles.contains(.broker) }
    public var isController: Bool { processRoles.contains(.controller) }

    /// Listeners that serve Kafka clients (not controller listeners).
    public var clientListeners: [Listener] { listeners.filter { !controllerListenerNames.contains($0.name) } }

    // MARK: validators used by the key table

    @Sendable static func validateListeners(_ raw: String) -> String? {
        for item in ConfigKeyDef.parseList(raw) where Listener.parse(item) == nil {
            return "'\(item)' is not NAME://host:port"
        }
        return nil
    }

    @Sendable static func validateVoters(_ raw: String) -> String? {
        var ids = Set<Int32>()
        for item in ConfigKeyDef.parseList(raw) {
            guard let v = QuorumVoter.parse(item) else { return "'\(item)' is not id@host:port" }
            guard ids.insert(v.id).inserted else { return "voter id \(v.id) appears twice" }
        }
        return nil
    }

    /// The authorizer classes Silt answers to: Kafka's KRaft StandardAuthorizer (and
    /// nothing else: the ZooKeeper-era AclAuthorizer has no KRaft form).
    public static let authorizerClasses = ["org.apache.kafka.metadata.authorizer.StandardAuthorizer"]

    @Sendable static func validateAuthorizer(_ raw: String) -> String? {
        let v = raw.trimmingCharacters(in: .whitespaces)
        guard v.isEmpty || authorizerClasses.contains(v) else {
            return "Silt's authorizer is Kafka's StandardAuthorizer: set \(authorizerClasses[0]) (or leave empty for none)"
        }
        return nil
    }

    @Sendable static func validateProtocolMap(_ raw: String) -> String? {
        for item in ConfigKeyDef.parseList(raw) where item.split(separator: ":").count != 2 {
            return "'\(item)' is not LISTENER:PROTOCOL"
        }
        return nil
    }
}

/// Stream storage settings (AutoMQ's `s3.*` names).
public struct ObjectStorageConfig: Sendable {
    /// Bytes waiting in the log buffer that trigger an upload (`s3.wal.upload.threshold`).
    public var uploadThresholdBytes: Int
    /// Longest wait before pending bytes are uploaded (`s3.wal.upload.interval.ms`).
    public var uploadIntervalMs: Int
    public var blockCacheBytes: Int
    public var objectBlockBytes: Int
    public var objectPartBytes: Int
    public var streamObjectSplitBytes: Int
    public var streamSetCompactionIntervalMs: Int
    public var streamObjectCompactionIntervalMs: Int
    public var networkBaselineBytesPerSecond: Int
    public var uploadParallelism: Int
    public var prepareTTLMs: Int64
    public var janitorIntervalMs: Int64
    /// How long a dead object stays in the bucket, for reads that started before it died.
    public var deletionDelayMs: Int64 = 60_000

    public init(uploadThresholdBytes: Int, uploadIntervalMs: Int, blockCacheBytes: Int, objectBlockBytes: Int,
                objectPartBytes: Int, streamObjectSplitBytes: Int, streamSetCompactionIntervalMs: Int,
                streamObjectCompactionIntervalMs: Int, networkBaselineBytesPerSecond: Int, uploadParallelism: Int,
                prepareTTLMs: Int64, janitorIntervalMs: Int64) {
        self.uploadThresholdBytes = uploadThresholdBytes
        self.uploadIntervalMs = uploadIntervalMs
        self.blockCacheBytes = blockCacheBytes
        self.objectBlockBytes = objectBlockBytes
        self.objectPartBytes = objectPartBytes
        self.streamObjectSplitBytes = streamObjectSplitBytes
        self.streamSetCompactionIntervalMs = streamSetCompactionIntervalMs
        self.streamObjectCompactionIntervalMs = streamObjectCompactionIntervalMs
        self.networkBaselineBytesPerSecond = networkBaselineBytesPerSecond
        self.uploadParallelism = uploadParallelism
        self.prepareTTLMs = prepareTTLMs
        self.janitorIntervalMs = janitorIntervalMs
    }
}

extension ServerConfig {
    /// `group.consumer.assignors`: KIP-848's server-side assignors, by Kafka's short name or
    /// class name, in order of preference (the first is the default). Returns short names.
    public static func parseConsumerAssignors(_ value: String) throws -> [String] {
        let known = ["uniform": "uniform", "org.apache.kafka.coordinator.group.assignor.UniformAssignor": "uniform",
                     "range": "range", "org.apache.kafka.coordinator.group.assignor.RangeAssignor": "range"]
        var out: [String] = []
        for item in value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            guard let name = known[item] else {
                throw ConfigError(key: "group.consumer.assignors", value: value,
                                  reason: "'\(item)' is not an assignor Silt has (uniform, range)")
            }
            if !out.contains(name) { out.append(name) }
        }
        guard !out.isEmpty else { throw ConfigError(key: "group.consumer.assignors", value: value, reason: "names no assignor") }
        return out
    }

    /// `s3.wal.takeover.paths`: `nodeId@path` items, comma-separated; empty for none.
    public static func parseTakeoverPaths(_ value: String) throws -> [Int32: String] {
        var out: [Int32: String] = [:]
        for item in value.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "@", maxSplits: 1).map(String.init)
            guard parts.count == 2, let id = Int32(parts[0]), id >= 0, parts[1].hasPrefix("/") else {
                throw ConfigError(key: "s3.wal.takeover.paths", value: value,
                                  reason: "'\(item)' is not nodeId@/absolute/path (e.g. 3@/dev/nvme1n1 or 3@/data/node3/wal.silt)")
            }
            guard out[id] == nil else {
                throw ConfigError(key: "s3.wal.takeover.paths", value: value, reason: "node \(id) is listed twice")
            }
            out[id] = parts[1]
        }
        return out
    }
}
