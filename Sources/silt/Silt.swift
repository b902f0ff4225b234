import ArgumentParser

@main
struct Silt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silt",
        abstract: "Silt: a Kafka-compatible streaming platform on object storage.",
        subcommands: [Server.self, Role.self, Debug.self, Admin.self, MetadataQuorumCommand.self, KafkaTopicsCommand.self,
                      KafkaConfigsCommand.self, KafkaReassignPartitionsCommand.self,
                      KafkaConsoleProducerCommand.self, KafkaConsoleConsumerCommand.self, KafkaConsumerGroupsCommand.self,
                      KafkaClusterCommand.self, KafkaAclsCommand.self])
}
