import ArgumentParser
import Foundation
import SiltAdmin

/// `silt kafka-topics <Kafka's arguments>`: Kafka's kafka-topics.sh (which
/// bin/kafka-topics.sh runs). The arguments pass through whole to `KafkaTopics.parse`.
struct KafkaTopicsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-topics",
        abstract: "Create, list, describe, alter and delete topics, as Kafka's kafka-topics.sh.",
        discussion: KafkaTopics.usage)

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-topics.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        let options: KafkaTopics.Options
        switch try parseToolArguments({ try KafkaTopics.parse(arguments) }, usage: KafkaTopics.usage, tool: KafkaTopics.toolName) {
        case .help:
            print(KafkaTopics.usage)
            return
        case .run(let o):
            options = o
        }
        let code = KafkaTopics.run(options, out: { print($0, terminator: "") }, err: printError)
        fflush(stdout)
        if code != 0 { throw ExitCode(code) }
    }
}

/// `silt kafka-configs <Kafka's arguments>`: Kafka's kafka-configs.sh for topics, brokers,
/// groups and users (which bin/kafka-configs.sh runs).
struct KafkaConfigsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-configs",
        abstract: "Describe and alter topic, broker and group configs and SCRAM credentials, as Kafka's kafka-configs.sh.",
        discussion: KafkaConfigs.usage)

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-configs.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        let options: KafkaConfigs.Options
        switch try parseToolArguments({ try KafkaConfigs.parse(arguments) }, usage: KafkaConfigs.usage, tool: KafkaConfigs.toolName) {
        case .help:
            print(KafkaConfigs.usage)
            return
        case .run(let o):
            options = o
        }
        let code = KafkaConfigs.run(options, args: arguments, out: { print($0, terminator: "") }, err: printError)
        fflush(stdout)
        if code != 0 { throw ExitCode(code) }
    }
}

/// `silt kafka-reassign-partitions <Kafka's arguments>`: Kafka's kafka-reassign-partitions.sh
/// (which bin/kafka-reassign-partitions.sh runs), one broker per partition.
struct KafkaReassignPartitionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-reassign-partitions",
        abstract: "Generate, execute, verify, cancel and list partition reassignments, as Kafka's kafka-reassign-partitions.sh.",
        discussion: KafkaReassignPartitions.usage)

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-reassign-partitions.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        let options: KafkaReassignPartitions.Options
        switch try parseToolArguments({ try KafkaReassignPartitions.parse(arguments) }, usage: KafkaReassignPartitions.usage,
                                      tool: KafkaReassignPartitions.toolName) {
        case .help:
            print(KafkaReassignPartitions.usage)
            return
        case .run(let o):
            options = o
        }
        let code = KafkaReassignPartitions.run(options, out: { print($0, terminator: "") }, err: printError)
        fflush(stdout)
        if code != 0 { throw ExitCode(code) }
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Parses a tool's command line; a bad one prints the reason and a pointer to --help, exit 1.
private func parseToolArguments<T>(_ parse: () throws -> T, usage: String, tool: String) throws -> T {
    do {
        return try parse()
    } catch {
        printError("\(tool): \(error)")
        printError("Run with --help for the options Silt's \(tool) takes.")
        throw ExitCode(1)
    }
}

/// Runs a client tool: a bad command line exits 1 (`parseToolArguments`), `--help` prints
/// the usage, anything else exits with `body`'s code.
func runClientTool<Options>(_ parse: () throws -> ToolCommand<Options>, usage: String, tool: String,
                            _ body: (Options) -> Int32) throws {
    switch try parseToolArguments(parse, usage: usage, tool: tool) {
    case .help:
        print(usage)
    case .run(let options):
        let code = body(options)
        fflush(stdout)
        if code != 0 { throw ExitCode(code) }
    }
}

/// `silt kafka-cluster <Kafka's arguments>`: Kafka's kafka-cluster.sh (`cluster-id`, and
/// `unregister --id N` for scale in), which bin/kafka-cluster.sh runs.
struct KafkaClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-cluster",
        abstract: "Show the cluster id or unregister a stopped broker, as Kafka's kafka-cluster.sh.")

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-cluster.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        let code = BalancerTools.kafkaCluster(arguments, out: { print($0, terminator: "") }, err: printError)
        fflush(stdout)
        if code != 0 { throw ExitCode(code) }
    }
}
