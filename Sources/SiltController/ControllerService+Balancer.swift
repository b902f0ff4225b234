import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol

/// The auto balancer and scale in on the controller's listener: Silt's DescribeBalancer
/// (`silt admin balancer`) and Kafka's UnregisterBroker (`kafka-cluster.sh unregister`).
extension ControllerService {
    /// Load reports a heartbeat may carry at most; a longer report is refused whole.
    static let loadReportPartitionsMax = Int(MetadataController.partitionsMax)

    /// The heartbeat's load report (Silt's tagged fields), as the controller keeps it. A report
    /// past the bound is dropped with a warning (the heartbeat itself is served).
    func loadReport(_ req: BrokerHeartbeatRequest) -> [(streamId: UInt64, load: PartitionLoad)] {
        guard req.reportIntervalMs > 0 else { return [] }
        guard req.partitionLoads.count <= Self.loadReportPartitionsMax else {
            logger.warning("load report dropped: more partitions than a report may name", metadata: [
                "broker": "\(req.brokerId)", "partitions": "\(req.partitionLoads.count)", "max": "\(Self.loadReportPartitionsMax)"])
            return []
        }
        return req.partitionLoads.map { l in
            (UInt64(bitPattern: l.streamId), PartitionLoad(bytesIn: l.bytesInPerSec, bytesOut: l.bytesOutPerSec,
                                                           produceRequests: l.produceRequestsPerSec,
                                                           fetchRequests: l.fetchRequestsPerSec))
        }
    }

    func describeBalancer(_ req: DescribeBalancerRequest) -> DescribeBalancerResponse {
        var resp = DescribeBalancerResponse()
        guard controller.isActive else {
            (resp.errorCode, resp.errorMessage) = Self.refusal(ControllerError.notController(
                "Load reports and decisions live on the active controller; this one is not active."))
            return resp
        }
        resp.enabled = balancer?.config.enabled ?? false
        let (brokers, partitions) = controller.balancerView()
        let loads = AutoBalancer.brokerLoads(brokers: brokers, partitions: partitions)
        resp.brokers = brokers.map { b in
            var out = DescribeBalancerResponse.BrokerLoad()
            let l = loads[b.id] ?? AutoBalancer.BrokerLoad()
            (out.brokerId, out.state, out.partitions) = (b.id, b.state.rawValue, Int32(l.partitions))
            (out.bytesInPerSec, out.bytesOutPerSec) = (l.bytesIn, l.bytesOut)
            return out
        }
        resp.movesInFlight = controller.reassignments().map { m in
            var out = DescribeBalancerResponse.Move()
            (out.topic, out.partition, out.from, out.to) = (m.topic, m.partition, m.from, m.to)
            return out
        }
        let streams = controller.image.streams
        let limit = Int(max(0, min(req.decisionsMax, Int32(AutoBalancerService.decisionsMax))))
        resp.decisions = (balancer?.decisions(limit: limit) ?? []).map { r in
            var out = DescribeBalancerResponse.Decision()
            out.timeMs = r.atMs
            let owner = streams[r.decision.streamId]
            (out.topic, out.partition) = (owner?.topic ?? "(deleted)", owner?.partition ?? -1)
            (out.from, out.to, out.goal, out.reason) = (r.decision.from, r.decision.to, r.decision.goal.rawValue, r.decision.reason)
            return out
        }
        return resp
    }

    func unregisterBroker(_ req: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
        var resp = UnregisterBrokerResponse()
        do {
            try controller.unregisterBroker(req.brokerId)
        } catch {
            (resp.errorCode, resp.errorMessage) = Self.refusal(error)
        }
        return resp
    }
}
