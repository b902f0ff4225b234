import ArgumentParser
import Foundation
import Logging
import SiltAdmin
import SiltObjectStore
import SiltWAL

/// `silt admin`: AutoMQ's automq-kafka-admin.sh commands (bin/automq-kafka-admin.sh runs these).
struct Admin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Operator tools: generate-s3-url and generate-start-command, as AutoMQ's automq-kafka-admin.sh; balancer; format-wal.",
        subcommands: [AdminGenerateS3URL.self, AdminGenerateStartCommand.self, AdminBalancer.self, AdminFormatWAL.self])
}

private func adminStderr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

private func adminStdout(_ line: String) {
    print(line)
    fflush(stdout)
}

/// `silt admin generate-s3-url`: checks the bucket with eight operations, then prints the s3url.
struct AdminGenerateS3URL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-s3-url",
        abstract: "Check access to S3 (or a compatible service) and print the s3url for a new cluster.")

    @Option(name: .customLong("s3-access-key"), help: "Your accessKey that used to access S3")
    var accessKey: String
    @Option(name: .customLong("s3-secret-key"), help: "Your secretKey that used to access S3")
    var secretKey: String
    @Option(name: .customLong("s3-region"), help: "The region of S3")
    var region: String
    @Option(name: .customLong("s3-endpoint-protocol"), help: "The protocol of S3 endpoint. Default is https, other options are http")
    var endpointProtocol: String = "https"
    @Option(name: .customLong("s3-endpoint"), help: "The endpoint of S3, e.g. s3.amazonaws.com or http://127.0.0.1:9000")
    var endpoint: String
    @Option(name: .customLong("s3-data-bucket"), help: "The bucket name of S3 that used to store kafka's stream data")
    var dataBucket: String
    @Option(name: .customLong("s3-ops-bucket"), help: "The bucket name of S3 that used to store operation data (default: the data bucket)")
    var opsBucket: String?
    @Option(name: .customLong("s3-path-style"), help: "Enable s3 path style. If you are using minio, you need set it to true, default value is false.")
    var pathStyle: String = "false"

    func run() throws {
        let options = GenerateS3URLOptions(accessKey: accessKey, secretKey: secretKey, region: region, endpoint: endpoint,
                                           endpointProtocol: endpointProtocol, dataBucket: dataBucket,
                                           opsBucket: opsBucket, pathStyle: pathStyle)
        let code: Int32
        do {
            let url = try options.s3url()
            let logger = Logger(label: "silt.admin")
            let dataStore = try S3ObjectStore(config: url.s3Config(maxRetries: 2, requestTimeoutMs: 15_000), logger: logger)
            let opsStore: ObjectStore? = url.opsBucket == url.dataBucket ? nil
                : try S3ObjectStore(config: url.s3Config(bucket: url.opsBucket, maxRetries: 2, requestTimeoutMs: 15_000), logger: logger)
            code = try runBlocking {
                await GenerateS3URL.run(url: url, dataStore: dataStore, opsStore: opsStore,
                                        out: { adminStdout($0) }, err: { adminStderr($0) })
            }
        } catch {
            adminStderr("generate-s3-url: \(error)")
            throw ExitCode(2)
        }
        fflush(stdout)
        if code != 0 { throw ExitCode(code) }
    }
}

/// `silt admin generate-start-command`: one start line per node.
struct AdminGenerateStartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate-start-command",
        abstract: "Print the kafka-server-start.sh line of every node of a cluster.")

    @Option(name: .customLong("s3-url"), help: "The s3url from 'bin/automq-kafka-admin.sh generate-s3-url'")
    var s3url: String
    @Option(name: .customLong("controller-list"), help: "Your controller ip:port list, split by ';'. Example: 192.168.0.1:9093;192.168.0.2:9093")
    var controllerList: String
    @Option(name: .customLong("broker-list"), help: "Your broker ip:port list, split by ';'. Example: 192.168.0.4:9092;192.168.0.5:9092")
    var brokerList: String
    @Option(name: .customLong("controller-only-mode"), help: "true: controllers run the controller role only; false (default): controllers are brokers too")
    var controllerOnlyMode: String = "false"
    @Option(name: .customLong("network-baseline-bandwidth-mb"), help: "Accepted for compatibility; not used.")
    var networkBaselineBandwidthMB: Int?

    func run() throws {
        do {
            let only: Bool
            switch controllerOnlyMode.lowercased() {
            case "true": only = true
            case "false": only = false
            default: throw AdminError("--controller-only-mode must be true or false, got '\(controllerOnlyMode)'")
            }
            let text = try GenerateStartCommand.render(s3url: s3url, controllerList: controllerList,
                                                       brokerList: brokerList, controllerOnlyMode: only)
            print(text, terminator: "")
            fflush(stdout)
        } catch {
            adminStderr("generate-start-command: \(S3URL.maskSecrets(in: "\(error)"))")
            throw ExitCode(2)
        }
    }
}

/// `silt admin balancer`: the auto balancer's view from the active controller.
struct AdminBalancer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balancer",
        abstract: "Show per-broker load, moves in flight and the auto balancer's last decisions (from the active controller).")

    @Option(name: .customLong("bootstrap-controller"), help: "Controllers host:port[,host:port...] (their CONTROLLER listener)")
    var bootstrapController: String
    @Option(name: .customLong("decisions"), help: "How many of the last decisions to show (at most 100)")
    var decisions: Int32 = 20

    func run() throws {
        do {
            guard (0...Int32(100)).contains(decisions) else { throw AdminError("--decisions must be between 0 and 100, got \(decisions)") }
            adminStdout(BalancerTools.render(try BalancerTools.describe(controllerList: bootstrapController, decisionsMax: decisions)))
        } catch {
            adminStderr("balancer: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `silt admin format-wal`: prepares a device or file that holds something else (a filesystem,
/// fio's data) for the WAL. A node formats only a blank device by itself.
struct AdminFormatWAL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "format-wal",
        abstract: "Erase the start of a device or file so that the node formats it as its WAL at its next start.",
        discussion: """
            A node formats s3.wal.path by itself only when its first 8 KiB are zero; anything else is refused \
            so that a wrong path never destroys a filesystem. This erases those 8 KiB (the WAL's header slots). \
            A Silt WAL is erased only with --force: it may hold acknowledged records not yet in object storage.
            """)

    @Option(name: .customLong("path"), help: "The device or file (s3.wal.path)")
    var path: String
    @Flag(name: .customLong("force"), help: "Erase a Silt WAL too")
    var force = false

    func run() throws {
        do {
            adminStdout("format-wal: " + (try WAL.formatOnPurpose(path: path, force: force)))
        } catch {
            adminStderr("format-wal: \(error)")
            throw ExitCode(2)
        }
    }
}
