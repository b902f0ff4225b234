import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltBroker
import SiltController
import SiltNet
import SiltObjectStore

/// `silt debug objects --controller HOST:PORT [--cluster-id ID]`: the controller's view of
/// stream storage as JSON: committed objects with their keys and stream ranges, prepared
/// ids, objects awaiting deletion, and every stream's range. For operators and tests.
struct DebugObjects: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "objects",
        abstract: "Print the committed objects, prepared ids and streams the controller knows, as JSON.")

    @Option(help: "The controllers' listeners, HOST:PORT[,HOST:PORT...] (the active one answers).")
    var controller: String

    @Option(help: "Cluster id for the object keys (default: read from --log-dir's meta.properties).")
    var clusterId: String?

    @Option(help: "A log directory of the node, to read the cluster id from.")
    var logDir: String?

    func run() throws {
        let endpoints = try controller.split(separator: ",").map { hp -> ControllerQuorumClient.Endpoint in
            let parts = hp.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--controller must be HOST:PORT[,HOST:PORT...]") }
            return ControllerQuorumClient.Endpoint(id: nil, host: String(parts[0]), port: port)
        }
        var logger = Logger(label: "silt.debug")
        logger.logLevel = .warning
        let cluster = try clusterId ?? readClusterId()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let client = ControllerQuorumClient(group: group, endpoints: endpoints, clientId: "silt-debug", logger: logger)
        defer { client.close() }
        let cache = MetadataCache(channel: client, clusterId: cluster, logger: logger)
        try cache.catchUp(on: group.next()).wait()
        let image = cache.image
        var objects: [[String: Any]] = []
        for o in image.committedObjects.sorted(by: { $0.objectId < $1.objectId }) {
            objects.append([
                "id": o.objectId,
                "key": cluster.map { ObjectKeys.object(clusterId: $0, objectId: o.objectId) } ?? NSNull(),
                "size": o.size,
                "kind": o.kind == .streamSet ? "stream_set" : "stream",
                "ranges": o.ranges.map { ["stream": $0.streamId, "start": $0.startOffset, "end": $0.endOffset] },
            ])
        }
        var streams: [[String: Any]] = []
        for (id, owner) in image.streams.sorted(by: { $0.key < $1.key }) {
            let s = image.streamStates[id]
            streams.append(["id": id, "topic": owner.topic, "partition": owner.partition, "start": s?.startOffset ?? 0,
                            "end": s?.endOffset ?? 0, "epoch": s?.epoch ?? 0])
        }
        let out: [String: Any] = [
            "objects": objects,
            "prepared": image.preparedObjects.keys.sorted(),
            "awaitingDeletion": image.objectsAwaitingDeletion.sorted(),
            "streams": streams,
        ]
        let data = try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    private func readClusterId() throws -> String? {
        guard let dir = logDir else { return nil }
        guard let text = try? String(contentsOfFile: dir + "/meta.properties", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("cluster.id=") {
            return String(line.dropFirst("cluster.id=".count))
        }
        return nil
    }
}
