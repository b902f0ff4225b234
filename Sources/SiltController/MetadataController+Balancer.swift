import Foundation
import SiltMetadata

/// The controller's side of the auto balancer and of scale in: the view the planner decides
/// on, the moves it asks for (recorded as reassignments, the same targets
/// AlterPartitionReassignments and controlled shutdown record), and UnregisterBroker.
extension MetadataController {
    /// The cluster as the balancer sees it: every registered broker with its state, every
    /// partition with its broker, target and load over the window. `lastMovedMs` is the
    /// balancer's own memory and is left nil here.
    public func balancerView(nowMs: Int64 = MetadataController.wallClockMs())
        -> (brokers: [AutoBalancer.Broker], partitions: [AutoBalancer.Partition]) {
        let (image, draining) = lock.withLock { (_image, sessions.drainingBrokers) }
        let brokers = image.brokers.keys.sorted().map { id -> AutoBalancer.Broker in
            let b = image.brokers[id]!
            return AutoBalancer.Broker(id: id, state: b.fenced ? .fenced : draining.contains(id) ? .draining : .active)
        }
        let partitions = image.partitions.keys.sorted().map { id -> AutoBalancer.Partition in
            let p = image.partitions[id]!
            return AutoBalancer.Partition(streamId: id, broker: p.replicas[0], target: p.target,
                                          load: loads.load(id, nowMs: nowMs))
        }
        return (brokers, partitions)
    }

    /// Records the balancer's moves (one batch) after checking each against the image of now:
    /// the partition is still on `from` and not moving, and `to` can receive it. Returns the
    /// moves recorded; the others were overtaken (a broker fenced, someone else's move) and
    /// are dropped, to be planned again from a fresh view.
    public func startBalancerMoves(_ decisions: [AutoBalancer.Decision]) throws -> [AutoBalancer.Decision] {
        try mutate {
            var records: [MetadataRecord] = []
            var started: [AutoBalancer.Decision] = []
            for d in decisions {
                guard var p = _image.partitions[d.streamId], p.replicas[0] == d.from, p.target == nil, d.to != d.from,
                      refusalToReceive(d.to) == nil else { continue }
                p.target = d.to
                records.append(.partitionLeader(streamId: d.streamId, p))
                started.append(d)
            }
            if !records.isEmpty { try commit(records) }
            return started
        }
    }

    /// Scale in: removes broker `nodeId`'s registration (UnregisterBroker). Refused while the
    /// broker is unfenced (it is alive: stop it first; SIGTERM moves its partitions away) and
    /// while partitions are assigned or moving to it (they would be offline for good).
    public func unregisterBroker(_ nodeId: Int32) throws {
        try mutate {
            guard let broker = _image.brokers[nodeId] else {
                throw ControllerError.brokerNotRegistered("Broker \(nodeId) is not registered.")
            }
            guard broker.fenced else {
                throw ControllerError.invalidRequest(
                    "Broker \(nodeId) is alive (unfenced). Stop its node first: SIGTERM moves its partitions to the other "
                    + "brokers (controlled shutdown), then unregister it.")
            }
            let owned = _image.partitions.values.filter { $0.replicas[0] == nodeId || $0.target == nodeId }.count
            guard owned == 0 else {
                throw ControllerError.invalidRequest(
                    "Broker \(nodeId) still owns \(owned) partition(s): unregistered, they would stay offline. Start it again "
                    + "and stop it with SIGTERM (controlled shutdown moves them away), or take its WAL over.")
            }
            try commit([.unregisterBroker(nodeId: nodeId, brokerEpoch: broker.brokerEpoch)])
            logger.info("broker unregistered", metadata: ["broker": "\(nodeId)", "brokerEpoch": "\(broker.brokerEpoch)"])
        }
    }
}
