import ArgumentParser
import Foundation
import SiltAdmin

/// `silt kafka-acls <Kafka's arguments>`: Kafka's kafka-acls.sh (which bin/kafka-acls.sh
/// runs): add, remove and list ACLs.
struct KafkaAclsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-acls",
        abstract: "Add, remove and list ACLs, as Kafka's kafka-acls.sh.",
        discussion: KafkaAcls.usage)

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-acls.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        try runClientTool({ try KafkaAcls.parse(arguments) }, usage: KafkaAcls.usage, tool: KafkaAcls.toolName) {
            KafkaAcls.run($0, out: { print($0, terminator: "") }, err: printError)
        }
    }
}
