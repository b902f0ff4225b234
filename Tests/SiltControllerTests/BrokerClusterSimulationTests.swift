import Foundation
import Logging
@testable import SiltController
import SiltMetadata
import SiltRaft
import XCTest

/// Seeded simulation of brokers against the real controller (its records, its image, its
/// disk): brokers register, heartbeat, crash, restart with a new incarnation, shut down in a
/// controlled way, impostors reuse a live node id, topics and partitions come and go, and
/// the session monitor runs, all on a simulated clock. After every step the image must hold:
///
/// - a partition's leader is -1 or its assigned broker, and then that broker is unfenced;
/// - every unfenced broker leads all the partitions assigned to it;
/// - leader epochs never go back, stream epochs never change (no partition moves here);
/// - an unfenced broker has had a heartbeat within the session timeout;
/// - an impostor with the id of a live broker is refused;
/// - new partitions spread over the brokers unfenced at their creation (counts within one);
/// and at the end, once every broker is back and heartbeating, every partition has a leader.
///
/// Seeds: `CLUSTER_SIM_SEEDS` (default 30) from `CLUSTER_SIM_FIRST_SEED` (default 1). A failure
/// names its seed and step; replay one with
/// `CLUSTER_SIM_SEED=N swift test --filter SiltControllerTests.BrokerClusterSimulationTests/testReplaySeed`.
final class BrokerClusterSimulationTests: XCTestCase {
    static let sessionTimeoutMs: Int64 = 9000
    static let brokerCount = 5
    static let steps = 250

    func testSeeds() throws {
        let env = ProcessInfo.processInfo.environment
        let count = env["CLUSTER_SIM_SEEDS"].flatMap(UInt64.init) ?? 30
        let first = env["CLUSTER_SIM_FIRST_SEED"].flatMap(UInt64.init) ?? 1
        for seed in first..<(first + count) {
            try run(seed: seed)
        }
    }

    func testReplaySeed() throws {
        guard let seed = ProcessInfo.processInfo.environment["CLUSTER_SIM_SEED"].flatMap(UInt64.init) else {
            throw XCTSkip("set CLUSTER_SIM_SEED to replay one seed")
        }
        try run(seed: seed)
    }

    /// One broker process as the simulation models it.
    struct SimBroker {
        var incarnation = UUID()
        var epoch: Int64 = -1
        /// Running and heartbeating (false: crashed or shut down).
        var alive = false
        /// When the controller last accepted its heartbeat (or registration).
        var lastAckMs: Int64 = .min
    }

    private func run(seed: UInt64) throws {
        let dir = NSTemporaryDirectory() + "silt-cluster-sim-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var logger = Logger(label: "sim")
        logger.logLevel = .warning
        let controller = try MetadataController(directory: dir, logger: logger,
                                                brokerSessionTimeoutMs: Self.sessionTimeoutMs) { _ in }
        defer { controller.close() }
        var random = SplitMix64(seed: seed)
        func below(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        var now = MetadataController.wallClockMs() + 1000
        var brokers = [SimBroker](repeating: SimBroker(), count: Self.brokerCount)
        var leaderEpochs: [UInt64: Int32] = [:]
        var streamEpochs: [UInt64: Int64] = [:]
        var topics = 0
        func where_(_ step: Int) -> String { "seed \(seed) step \(step)" }

        func info(_ id: Int, _ incarnation: UUID) -> MetadataController.BrokerInfo {
            .init(nodeId: Int32(id), incarnationId: incarnation,
                  listeners: [BrokerEndpoint(name: "PLAINTEXT", host: "b\(id)", port: 9092)], rack: "r\(id % 2)")
        }
        /// A (re)started broker: registers (refused while its previous incarnation's session
        /// lives), then its first heartbeat unfences it.
        func start(_ id: Int, step: Int) throws {
            var b = SimBroker()
            do {
                b.epoch = try controller.registerBroker(info(id, b.incarnation), nowMs: now)
            } catch ControllerError.duplicateBroker {
                let previous = brokers[id]
                XCTAssertTrue(previous.lastAckMs > now - Self.sessionTimeoutMs,
                              "\(where_(step)): broker \(id) refused as a duplicate, but its last session ended long ago")
                return
            }
            b.alive = true
            b.lastAckMs = now
            brokers[id] = b
            try heartbeat(id, step: step)
        }
        func heartbeat(_ id: Int, shutDown: Bool = false, step: Int) throws {
            let r = try controller.brokerHeartbeat(nodeId: Int32(id), brokerEpoch: brokers[id].epoch,
                                                   metadataOffset: controller.image.nextOffset, wantFence: false,
                                                   wantShutDown: shutDown, nowMs: now)
            brokers[id].lastAckMs = now
            XCTAssertEqual(r.isFenced, shutDown, "\(where_(step)): heartbeat of a caught-up broker \(id)")
            if shutDown { brokers[id].alive = false }
        }

        for id in 0..<Self.brokerCount where below(3) > 0 { try start(id, step: 0) }
        for step in 1...Self.steps {
            now += Int64(below(1500))
            switch below(20) {
            case 0..<11:   // live brokers heartbeat (each may miss a beat)
                for id in 0..<Self.brokerCount where brokers[id].alive && below(4) > 0 { try heartbeat(id, step: step) }
            case 11:       // a crash: it just stops
                if let id = (0..<Self.brokerCount).filter({ brokers[$0].alive }).randomElement(using: &random) {
                    brokers[id].alive = false
                }
            case 12:       // controlled shutdown
                if let id = (0..<Self.brokerCount).filter({ brokers[$0].alive }).randomElement(using: &random) {
                    try heartbeat(id, shutDown: true, step: step)
                }
            case 13, 14:   // a restart of a stopped broker
                if let id = (0..<Self.brokerCount).filter({ !brokers[$0].alive }).randomElement(using: &random) {
                    try start(id, step: step)
                }
            case 15:       // an impostor takes the id of a live broker
                if let id = (0..<Self.brokerCount).filter({ brokers[$0].alive }).randomElement(using: &random),
                   brokers[id].lastAckMs > now - Self.sessionTimeoutMs {
                    XCTAssertThrowsError(try controller.registerBroker(info(id, UUID()), nowMs: now),
                                         "\(where_(step)): an impostor of live broker \(id) registered")
                }
            case 16, 17:   // a topic, spread over the unfenced brokers
                let partitions = Int32(1 + below(12))
                let unfenced = Set(controller.image.unfencedBrokers.map(\.nodeId))
                let t = try controller.createTopic(name: "t\(topics)", partitions: partitions, configs: [:], validateOnly: false)
                topics += 1
                let image = controller.image
                let counts = Dictionary(grouping: t.streamIds.compactMap { image.partitions[$0]?.replicas[0] }, by: { $0 })
                    .mapValues(\.count)
                if unfenced.isEmpty {
                    XCTAssertTrue(counts.isEmpty, "\(where_(step)): partitions placed with no unfenced broker")
                } else {
                    XCTAssertEqual(Set(counts.keys).subtracting(unfenced), [], "\(where_(step)): placed on a fenced broker")
                    let spread = unfenced.map { counts[$0, default: 0] }
                    XCTAssertLessThanOrEqual(spread.max()! - spread.min()!, 1, "\(where_(step)): uneven placement \(counts)")
                }
            case 18:       // growth
                if topics > 0 {
                    let name = "t\(below(topics))"
                    let count = controller.image.topic(named: name)!.partitionCount + Int32(1 + below(3))
                    _ = try controller.createPartitions(name: name, count: count, validateOnly: false)
                }
            default:       // the session monitor
                break
            }
            controller.fenceExpiredBrokers(nowMs: now)
            check(controller.image, brokers: brokers, now: now, leaderEpochs: &leaderEpochs, streamEpochs: &streamEpochs,
                  at: where_(step))
        }
        // Liveness: everyone back and heartbeating; every partition gets its leader.
        now += Self.sessionTimeoutMs
        controller.fenceExpiredBrokers(nowMs: now)
        for id in 0..<Self.brokerCount where !brokers[id].alive { try start(id, step: Self.steps + 1) }
        for id in 0..<Self.brokerCount { try heartbeat(id, step: Self.steps + 1) }
        let image = controller.image
        XCTAssertEqual(image.unfencedBrokers.count, Self.brokerCount, "seed \(seed): every broker back")
        let offline = image.streams.keys.filter { (image.partitions[$0]?.leader ?? -1) < 0 }
        XCTAssertEqual(offline, [], "seed \(seed): partitions without a leader once every broker is back")
        check(image, brokers: brokers, now: now, leaderEpochs: &leaderEpochs, streamEpochs: &streamEpochs,
              at: "seed \(seed) end")
    }

    private func check(_ image: MetadataImage, brokers: [SimBroker], now: Int64, leaderEpochs: inout [UInt64: Int32],
                       streamEpochs: inout [UInt64: Int64], at: String) {
        for (stream, p) in image.partitions {
            let owner = p.replicas[0]
            let ownerUnfenced = image.brokers[owner].map { !$0.fenced } ?? false
            if p.leader >= 0 {
                XCTAssertEqual(p.leader, owner, "\(at): stream \(stream) led by \(p.leader), assigned to \(owner)")
                XCTAssertTrue(ownerUnfenced, "\(at): stream \(stream) led by fenced broker \(p.leader)")
            } else {
                XCTAssertFalse(ownerUnfenced, "\(at): stream \(stream) offline though broker \(owner) is unfenced")
            }
            XCTAssertGreaterThanOrEqual(p.leaderEpoch, leaderEpochs[stream] ?? 0, "\(at): stream \(stream) leader epoch went back")
            leaderEpochs[stream] = p.leaderEpoch
            XCTAssertEqual(p.streamEpoch, streamEpochs[stream] ?? p.streamEpoch, "\(at): stream \(stream) epoch changed")
            streamEpochs[stream] = p.streamEpoch
        }
        for b in image.unfencedBrokers {
            let sim = brokers[Int(b.nodeId)]
            XCTAssertLessThan(now - sim.lastAckMs, Self.sessionTimeoutMs,
                              "\(at): broker \(b.nodeId) unfenced without a heartbeat for \(now - sim.lastAckMs) ms")
            XCTAssertEqual(b.incarnationId, sim.incarnation, "\(at): broker \(b.nodeId) registered by another incarnation")
        }
    }
}
