import Foundation
import SiltProtocol

/// The elastic-cluster tools:
/// - `silt admin balancer --bootstrap-controller HOST:PORT[,...]` (bin/silt-balancer.sh): the
///   auto balancer's view from the active controller: per-broker load, moves in flight, its
///   last decisions with their reasons;
/// - `kafka-cluster.sh unregister --bootstrap-server HOST:PORT --id N` (Kafka's form): scale
///   in, once the node was stopped with SIGTERM (which moved its partitions away).
public enum BalancerTools {
    /// DescribeBalancer from the active controller: each controller in turn until one answers
    /// without NOT_CONTROLLER (the others keep no load reports).
    public static func describe(controllerList: String, decisionsMax: Int32 = 20) throws -> DescribeBalancerResponse {
        let controllers = try MetadataQuorum.parseHostPorts(controllerList, flag: "--bootstrap-controller")
        var reasons: [String] = []
        for address in controllers {
            let session: AdminSession
            do {
                session = try AdminSession.connect([address], clientId: "silt-balancer")
            } catch {
                reasons.append("\(error)")
                continue
            }
            defer { session.close() }
            var req = DescribeBalancerRequest()
            req.decisionsMax = decisionsMax
            let resp = try session.send(req)
            if resp.errorCode == KafkaErrorCode.notController {
                reasons.append("\(address): not the active controller")
                continue
            }
            guard resp.errorCode == KafkaErrorCode.none else {
                throw AdminSession.Failure("\(address): \(KafkaErrorCode.name(resp.errorCode)): \(resp.errorMessage ?? "")")
            }
            return resp
        }
        throw AdminSession.Failure("No active controller answered DescribeBalancer:\n" + reasons.joined(separator: "\n"))
    }

    /// The human-readable report `silt admin balancer` prints.
    public static func render(_ r: DescribeBalancerResponse) -> String {
        func rate(_ v: Double) -> String { String(format: "%.1f KiB/s", v / 1024) }
        var out = "Auto balancer: \(r.enabled ? "enabled" : "disabled (autobalancer.controller.enable=false)")\n\n"
        out += "Broker  State     Partitions  BytesIn        BytesOut\n"
        for b in r.brokers {
            out += String(format: "%-7d %-9@ %-11d %-14@ %@\n", b.brokerId, b.state as NSString, b.partitions,
                          rate(b.bytesInPerSec) as NSString, rate(b.bytesOutPerSec) as NSString)
        }
        out += "\nMoves in flight: \(r.movesInFlight.count)\n"
        for m in r.movesInFlight { out += "  \(m.topic)-\(m.partition): \(m.from) -> \(m.to)\n" }
        out += "\nLast decisions (newest last): \(r.decisions.count)\n"
        let iso = ISO8601DateFormatter()
        for d in r.decisions {
            let when = iso.string(from: Date(timeIntervalSince1970: Double(d.timeMs) / 1000))
            out += "  \(when) \(d.topic)-\(d.partition): \(d.from) -> \(d.to) [\(d.goal)] \(d.reason)\n"
        }
        return out
    }

    /// `kafka-cluster.sh unregister --bootstrap-server HOST:PORT[,...] --id N` (Kafka's form;
    /// `cluster-id` is Kafka's other subcommand and is answered too). Returns the exit code.
    public static func kafkaCluster(_ args: [String], out: (String) -> Void, err: (String) -> Void) -> Int32 {
        let usage = "usage: kafka-cluster (cluster-id | unregister) --bootstrap-server HOST:PORT[,...] [--id BROKER_ID]"
        guard let command = args.first, ["unregister", "cluster-id"].contains(command) else {
            err(usage)
            return 1
        }
        var bootstrap: String?
        var id: Int32?
        var i = 1
        do {
            while i < args.count {
                switch ToolArguments.flag(args[i]) {
                case "--bootstrap-server", "-b": bootstrap = try ToolArguments.value(args, &i, ToolArguments.flag(args[i]))
                case "--id", "-i":
                    let raw = try ToolArguments.value(args, &i, ToolArguments.flag(args[i]))
                    guard let v = Int32(raw), v >= 0 else { throw AdminSession.Failure("--id must be a broker id (0 or more), got '\(raw)'") }
                    id = v
                case "--config", "-c", "--command-config": _ = try ToolArguments.value(args, &i, ToolArguments.flag(args[i]))
                default: throw AdminSession.Failure("Unknown option \(args[i])\n\(usage)")
                }
                i += 1
            }
            guard let bootstrap else { throw AdminSession.Failure("--bootstrap-server is required\n\(usage)") }
            let session = try AdminSession.connect(try ToolArguments.bootstrap(bootstrap), clientId: "kafka-cluster")
            defer { session.close() }
            if command == "cluster-id" {
                let resp = try session.send(DescribeClusterRequest())
                out("Cluster ID: \(resp.clusterId)\n")
                return 0
            }
            guard let id else { throw AdminSession.Failure("--id is required for unregister\n\(usage)") }
            var req = UnregisterBrokerRequest()
            req.brokerId = id
            let resp = try session.send(req)
            guard resp.errorCode == KafkaErrorCode.none else {
                throw AdminSession.Failure("Failed to unregister broker \(id): \(KafkaErrorCode.name(resp.errorCode)): "
                                           + (resp.errorMessage ?? ""))
            }
            out("Broker \(id) is no longer registered.\n")
            return 0
        } catch {
            err("\(error)")
            return 1
        }
    }
}
