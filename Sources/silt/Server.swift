import ArgumentParser
import Foundation
import Logging
import SiltAdmin
import SiltBroker
import SiltConfig
import SiltMetrics
import SiltNode
import SiltObjectStore
import SiltRing
import SiltWAL

/// `silt server`: the node's supervisor. It validates the configuration, formats storage
/// on first start, creates the shared memory (log buffer, control rings, WAL hand-off),
/// and runs each role as a child process of its own binary.
struct Server: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a node.",
        discussion: """
        With no arguments, starts a single node (process.roles=broker,controller) on \
        127.0.0.1:9092 with its data under ./silt-data. Configuration comes from an optional \
        properties file, then each --override key=value (later wins).
        """)

    @Argument(help: "A Kafka-style server.properties file.")
    var propertiesFile: String?

    @Option(name: .customLong("s3-url"), help: ArgumentHelp("The s3url printed by `silt admin generate-s3-url`.", valueName: "s3url"))
    var s3url: String?

    @Option(name: .customLong("override"), help: ArgumentHelp("Set a configuration key.", valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["SILT_LOG_LEVEL"] ?? "info"

    func run() throws {
        do { try bootstrapLogging(level: logLevel) } catch { fail("\(error)") }
        var logger = Logger(label: "silt.supervisor")

        // The s3url may carry the secret key: take it out of this process's argv (what `ps`
        // and /proc/<pid>/cmdline show) as soon as it is parsed.
        let parsedURL: S3URL?
        do { parsedURL = try s3url.map(S3URL.parse) } catch { fail("--s3-url: \(error)") }
        Server.scrubSecretsFromArgv()

        let config: ServerConfig
        do {
            config = try ServerConfig.load(propertiesFile: propertiesFile, layers: NodeStart.layers(s3url: parsedURL),
                                           overrides: overrides)
        } catch {
            fail("configuration error: \(error)")
        }
        for w in config.warnings { logger.warning("\(w)") }
        // The metrics exporter's address is checked before anything is created.
        let exporterAddress: (host: String, port: Int)?
        do { exporterAddress = try Server.metricsExporterAddress(config) } catch {
            fail("configuration error: \(PrometheusExporter.uriConfigKey): \(error)")
        }
        logger[metadataKey: "node"] = "\(config.nodeId)"
        if config.logDirs.count > 1 {
            logger.warning("several log.dirs given; this version stores everything in the first", metadata: ["log.dir": "\(config.logDirs[0])"])
        }
        if let url = parsedURL {
            // The s3url names the cluster; the bucket is checked before local storage is formatted.
            let markerClusterId = config.clusterId ?? url.clusterId
            // Bind the ops bucket to this cluster on first start; refuse another cluster's bucket.
            do {
                let credentials = try NodeStart.credentials(s3url: url, config: config)
                let store = try S3ObjectStore(config: url.s3Config(bucket: url.opsBucket, credentials: credentials), logger: logger)
                let outcome = try NodeStart.prepareNodeStartBlocking(clusterId: markerClusterId, nodeId: config.nodeId,
                                                                     store: store, bucket: url.opsBucket)
                logger.info("object storage ready", metadata: ["s3url": "\(url.description)", "clusterMarker": "\(outcome)"])
            } catch {
                fail("object storage: \(error)")
            }
        }
        // Formatted here, before any role starts: roles read the cluster id (object keys carry it).
        let clusterId: String
        do {
            clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId, clusterId: config.clusterId)
        } catch {
            fail("storage error: \(error)")
        }
        logger.info("starting node", metadata: ["cluster.id": "\(clusterId)", "log.dir": "\(config.logDirs[0])",
                                                "roles": "\(config.processRoles.map(\.rawValue).sorted())"])

        // The node's metrics: one region every role maps (fd RoleFd.metrics), served from here.
        let metricsFd: Int32
        let metrics: MetricsRegion
        do {
            metricsFd = try SharedMemory.createMemfd(name: "silt-metrics")
            metrics = try MetricsRegion.create(fd: metricsFd)
        } catch {
            fail("start-up failed: metrics region: \(error)")
        }
        if config.isBroker { metrics.set(.walCapacityBytes, config.walCapacityBytes) }

        let roles: [RoleSpec]
        do {
            roles = try makeRoles(config, parsedS3URL: parsedURL, metricsFd: metricsFd)
        } catch {
            fail("start-up failed: \(error)")
        }
        var exporter: PrometheusExporter?
        if let address = exporterAddress {
            let e = PrometheusExporter(region: metrics, host: address.host, port: address.port, logger: logger)
            do { try e.start() } catch { fail("metrics exporter (\(PrometheusExporter.uriConfigKey)): \(error)") }
            exporter = e
        }
        let supervisor = Supervisor(roles: roles, policy: RestartPolicy(), logger: logger)
        let code: Int32
        do { code = try supervisor.run() } catch { fail("supervisor: \(error)") }
        exporter?.stop()
        if code == Supervisor.configErrorExitCode {
            logger.error("node stopped: a role cannot run with this configuration (its reason is above)",
                         metadata: ["exit_code": "\(code)"])
        } else if code != 0 {
            logger.error("node stopped with exit code \(code)")
        }
        Foundation.exit(code)
    }

    /// Overwrites the values of secret parameters in this process's argv strings, in place.
    static func scrubSecretsFromArgv() {
        let markers = ["s3-secret-key=", "s3-access-key=", "s3.secret.key=", "s3.access.key="]
        for i in 1..<Int(CommandLine.argc) {
            guard let arg = CommandLine.unsafeArgv[i] else { continue }
            let length = strlen(arg)
            let text = String(cString: arg)
            for marker in markers {
                var searchFrom = text.startIndex
                while let r = text.range(of: marker, range: searchFrom..<text.endIndex) {
                    var j = text.utf8.distance(from: text.utf8.startIndex, to: r.upperBound)
                    while j < length && arg[j] != Int8(UInt8(ascii: "&")) && arg[j] != Int8(UInt8(ascii: " ")) {
                        arg[j] = Int8(UInt8(ascii: "*"))
                        j += 1
                    }
                    searchFrom = r.upperBound
                }
            }
        }
    }

    /// The address `s3.telemetry.metrics.exporter.uri` asks for, or nil when it is unset or empty.
    static func metricsExporterAddress(_ config: ServerConfig) throws -> (host: String, port: Int)? {
        guard let uri = config.explicit[PrometheusExporter.uriConfigKey],
              !uri.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        return try PrometheusExporter.parseExporterURI(uri)
    }

    /// The role processes `process.roles` implies, with the descriptors each inherits.
    private func makeRoles(_ config: ServerConfig, parsedS3URL: S3URL?, metricsFd: Int32) throws -> [RoleSpec] {
        let executable = Supervisor.currentExecutablePath()
        // SILT_ARGS (the systemd env file's start line) and the credential variables may carry
        // S3 secrets: roles get their configuration and credentials through descriptors,
        // never through the environment.
        var environment = Supervisor.parentEnvironment(removing: Set(["SILT_ARGS"]).union(S3Credentials.secretEnvironmentVariables))
        environment["SILT_LOG_LEVEL"] = logLevel

        let configFd = try SharedMemory.createMemfd(name: "silt-config")
        try ConfigTransfer.write(config.explicit, to: configFd)
        // Credentials for the data bucket: resolved here, once, from the s3url, a file or
        // the environment.
        let credentialsFd = try SharedMemory.createMemfd(name: "silt-credentials")
        try CredentialsTransfer.write(try NodeStart.credentials(s3url: parsedS3URL, config: config), to: credentialsFd)
        // Every role inherits these: configuration, credentials and the metrics region.
        let configFds = [(source: configFd, target: RoleFd.config), (source: credentialsFd, target: RoleFd.credentials),
                         (source: metricsFd, target: RoleFd.metrics)]

        var roles: [RoleSpec] = []
        if config.isController {
            roles.append(RoleSpec(name: "controller", executable: executable, arguments: ["role", "controller"],
                                  environment: environment, inheritedFds: configFds, stopOrder: 3,
                                  stopTimeout: .seconds(10)))
        }
        if config.isBroker {
            let ringFd = try SharedMemory.createMemfd(name: "silt-log-buffer")
            _ = try LogRing.create(fd: ringFd, capacityBytes: config.logBufferBytes)
            let durableFd = try SharedMemory.createMemfd(name: "silt-durable")
            _ = try ControlRing.create(fd: durableFd, slotCount: 4096)
            let trimFd = try SharedMemory.createMemfd(name: "silt-trim")
            _ = try ControlRing.create(fd: trimFd, slotCount: 256)
            let stateFd = try SharedMemory.createMemfd(name: "silt-wal-state")
            _ = try WALState.create(fd: stateFd, tailBytesMax: Int(config.walCapacityBytes))
            let shared = configFds + [(ringFd, RoleFd.logRing), (durableFd, RoleFd.durableNotices),
                                      (trimFd, RoleFd.trimCommands), (stateFd, RoleFd.walState)]
            roles.append(RoleSpec(name: "wal", executable: executable, arguments: ["role", "wal"],
                                  environment: environment, inheritedFds: shared, stopOrder: 1, stopTimeout: .seconds(10)))
            // After the WAL drained: the uploader uploads and commits what is pending.
            roles.append(RoleSpec(name: "uploader", executable: executable, arguments: ["role", "uploader"],
                                  environment: environment, inheritedFds: shared, stopOrder: 2, stopTimeout: .seconds(60)))
            roles.append(RoleSpec(name: "broker", executable: executable, arguments: ["role", "broker"],
                                  environment: environment, inheritedFds: shared, stopOrder: 0, stopTimeout: .seconds(15)))
        }
        return roles
    }
}
