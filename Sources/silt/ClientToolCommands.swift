import ArgumentParser
import Foundation
import SiltAdmin

/// `silt kafka-console-producer <Kafka's arguments>`: Kafka's kafka-console-producer.sh
/// (which bin/kafka-console-producer.sh runs). Lines come from standard input.
struct KafkaConsoleProducerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-console-producer",
        abstract: "Send each line of standard input as a record, as Kafka's kafka-console-producer.sh.",
        discussion: ConsoleProducer.usage)

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-console-producer.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        try runClientTool({ try ConsoleProducer.parse(arguments) }, usage: ConsoleProducer.usage, tool: ConsoleProducer.toolName) {
            ConsoleProducer.run($0, err: printError)
        }
    }
}

/// `silt kafka-console-consumer <Kafka's arguments>`: Kafka's kafka-console-consumer.sh
/// (which bin/kafka-console-consumer.sh runs). SIGINT and SIGTERM stop it after the fetch
/// in flight, committing (with --group) and printing the total, as Kafka's does.
struct KafkaConsoleConsumerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-console-consumer",
        abstract: "Print the records of a topic, as Kafka's kafka-console-consumer.sh.",
        discussion: ConsoleConsumer.usage)

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-console-consumer.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        try runClientTool({ try ConsoleConsumer.parse(arguments) }, usage: ConsoleConsumer.usage, tool: ConsoleConsumer.toolName) {
            let stop = StopSignals()
            return ConsoleConsumer.run($0, stop: { stop.received }, out: { print($0, terminator: ""); fflush(stdout) }, err: printError)
        }
    }
}

/// `silt kafka-consumer-groups <Kafka's arguments>`: Kafka's kafka-consumer-groups.sh (which
/// bin/kafka-consumer-groups.sh runs).
struct KafkaConsumerGroupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-consumer-groups",
        abstract: "List, describe, reset and delete consumer groups, as Kafka's kafka-consumer-groups.sh.",
        discussion: ConsumerGroups.usage)

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-consumer-groups.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        try runClientTool({ try ConsumerGroups.parse(arguments) }, usage: ConsumerGroups.usage, tool: ConsumerGroups.toolName) {
            ConsumerGroups.run($0, out: { print($0, terminator: "") }, err: printError)
        }
    }
}

/// SIGINT and SIGTERM, observed instead of killing the process (a dispatch source each).
final class StopSignals: @unchecked Sendable {
    // @unchecked Sendable: `stopped` is only touched under `lock`; the sources are kept alive here.
    private let lock = NSLock()
    private var stopped = false
    private var sources: [DispatchSourceSignal] = []

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.lock.withLock { self?.stopped = true } }
            source.resume()
            sources.append(source)
        }
    }

    var received: Bool { lock.withLock { stopped } }
}
