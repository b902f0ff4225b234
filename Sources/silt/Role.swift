import ArgumentParser
import Foundation
import Logging
import SiltConfig
import SiltNode

/// `silt role NAME`: one role process of a node, started by the supervisor (`silt server`)
/// with its configuration and shared memory as inherited descriptors.
struct Role: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one role process of a node (started by `silt server`; not for direct use).",
        shouldDisplay: false)

    @Argument(help: "controller, broker, wal or uploader")
    var name: String

    @Option(help: "Log level.")
    var logLevel: String = ProcessInfo.processInfo.environment["SILT_LOG_LEVEL"] ?? "info"

    func run() throws {
        // A role never outlives its supervisor, whatever way the supervisor dies.
        guard Supervisor.armParentDeathSignal() else { fail("role \(name): the supervisor is already gone") }
        do { try bootstrapLogging(level: logLevel) } catch { fail("\(error)") }
        let config: ServerConfig
        do { config = try ConfigTransfer.read(from: RoleFd.config) } catch { fail("role \(name): configuration: \(error)") }
        var logger = Logger(label: "silt.\(name)")
        logger[metadataKey: "node"] = "\(config.nodeId)"
        logger[metadataKey: "role"] = "\(name)"
        do {
            switch name {
            case "controller": try ControllerRole(config: config, logger: logger).run()
            case "broker": try BrokerRole(config: config, logger: logger).run()
            case "wal": try WALRole(config: config, logger: logger).run()
            case "uploader": try UploaderRole(config: config, logger: logger).run()
            default: fail("unknown role '\(name)'")
            }
        } catch where isConfigurationError(error) {
            logger.critical("role cannot run with this configuration: \(error)")
            fail("role \(name): \(error)", exitCode: Supervisor.configErrorExitCode)
        } catch {
            logger.critical("role failed: \(error)")
            fail("role \(name): \(error)")
        }
    }
}
