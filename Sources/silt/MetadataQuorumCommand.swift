import ArgumentParser
import Foundation
import SiltAdmin

/// `silt metadata-quorum <Kafka's arguments>`: Kafka's kafka-metadata-quorum.sh (which
/// bin/kafka-metadata-quorum.sh runs). Kafka's flags come before its subcommand, so the
/// arguments are passed through whole and parsed by `MetadataQuorum.parse`.
struct MetadataQuorumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metadata-quorum",
        abstract: "Describe the controller quorum, as Kafka's kafka-metadata-quorum.sh.",
        discussion: MetadataQuorum.usage)

    @Argument(parsing: .captureForPassthrough, help: "Kafka's kafka-metadata-quorum.sh arguments.")
    var arguments: [String] = []

    func run() throws {
        let err: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        let options: MetadataQuorum.Options
        do {
            switch try MetadataQuorum.parse(arguments) {
            case .help:
                print(MetadataQuorum.usage)
                return
            case .run(let o):
                options = o
            }
        } catch MetadataQuorum.Failure.usage(let message) {
            err(MetadataQuorum.usage)
            err("\(MetadataQuorum.toolName): error: \(message)")
            throw ExitCode(1)
        } catch {
            err("\(error)")
            throw ExitCode(1)
        }
        let code = MetadataQuorum.run(options, out: { print($0, terminator: "") }, err: err)
        fflush(stdout)
        if code != 0 { throw ExitCode(code) }
    }
}
