import ArgumentParser
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltBroker
import SiltController
import SiltNode
import SiltStorage

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

    @Option(name: .customLong("override"), help: ArgumentHelp("Set a configuration key.", valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["SILT_LOG_LEVEL"] ?? "info"

    func run() throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "silt")

        let config: ServerConfig
        do {
            config = try ServerConfig.load(propertiesFile: propertiesFile, overrides: overrides)
        } catch {
            fail("configuration error: \(error)")
        }
        for w in config.warnings { logger.warning("\(w)") }
        logger[metadataKey: "node"] = "\(config.nodeId)"
        guard config.isBroker else {
            fail("process.roles=\(config.processRoles.map(\.rawValue).sorted().joined(separator: ",")): a controller-only node is not supported yet")
        }
        if config.logDirs.count > 1 {
            logger.warning("several log.dirs given; this version stores everything in the first", metadata: ["log.dir": "\(config.logDirs[0])"])
        }

        let clusterId: String
        do {
            clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId, clusterId: config.clusterId)
        } catch {
            fail("storage error: \(error)")
        }
        let dataDir = config.logDirs[0]
        logger.info("starting", metadata: ["cluster.id": "\(clusterId)", "log.dir": "\(dataDir)",
                                           "roles": "\(config.processRoles.map(\.rawValue).sorted())"])

        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let logs: LogManager
        let server: KafkaServer
        do {
            let controller = try MetadataController(directory: dataDir + "/__cluster_metadata", logger: logger,
                                                    validateConfigs: TopicConfig.validate)
            var storage = StorageConfig(logDir: dataDir, segmentBytes: config.logSegmentBytes)
            storage.maxBatchBytes = max(storage.maxBatchBytes, Int(config.messageMaxBytes))
            logs = try LogManager(config: storage, logger: logger)
            let broker = try Broker(config: config, clusterId: clusterId, controller: controller, logs: logs, logger: logger)
            server = KafkaServer(group: group, broker: broker, config: config, logger: logger)
            try server.start()
        } catch {
            fail("start-up failed: \(error)")
        }
        logger.info("node started")

        // Graceful stop on SIGTERM/SIGINT: stop accepting, flush the logs, exit 0.
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
        _ = sources
        logger.info("stopping: closing listeners")
        server.stop()
        logger.info("stopping: flushing partition logs")
        logs.shutdown()
        try? group.syncShutdownGracefully()
        logger.info("stopped")
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("silt: \(message)\n".utf8))
        Foundation.exit(1)
    }
}
