import Foundation
import Logging
@testable import SiltController
import SiltMetadata
import SiltRaft
import XCTest

/// Seeded simulation of brokers against the real controller (its records, its image, its
/// disk): brokers register, heartbeat, crash, restart with a new incarnation, shut down in a
/// controlled way (moving their partitions away), impostors reuse a live node id, topics and
/// partitions come and go, partitions are reassigned and reassignments cancelled, and the
/// session monitor runs, all on a simulated clock.
///
/// Each broker is modelled as the real one behaves: it opens the streams it leads
/// (OpenStreams) only once its WAL holds nothing of them, appends (acknowledging at once) in
/// the epoch it opened, uploads its WAL in the epoch of each frame, and releases a moving
/// stream once its tail is committed. After every step the image must hold:
///
/// - a partition's leader is -1 or its assigned broker, and then that broker is unfenced;
/// - every unfenced broker leads all the partitions assigned to it;
/// - a move's target is never the assigned broker; leader and stream epochs never go back;
/// - an unfenced broker has had a heartbeat within the session timeout;
/// - an impostor with the id of a live broker is refused;
/// - new partitions spread over the brokers unfenced (and not shutting down) at their
///   creation (counts within one);
/// - a broker opens a stream exactly at its last acknowledged offset, and no commit of
///   acknowledged data is ever refused (nothing acknowledged is lost or forked);
/// - a broker told it may shut down holds nothing un-uploaded when others could take over;
/// and at the end, once every broker is back and heartbeating, every partition has a leader,
/// no move is left in flight, and every stream is committed up to its last acknowledged offset.
///
/// Seeds: `CLUSTER_SIM_SEEDS` (default 30) from `CLUSTER_SIM_FIRST_SEED` (default 1). A failure
/// names its seed and step; replay one with
/// `CLUSTER_SIM_SEED=N swift test --filter SiltControllerTests.BrokerClusterSimulationTests/testReplaySeed`.
final class BrokerClusterSimulationTests: XCTestCase {
    static let sessionTimeoutMs: Int64 = 9000
    static let brokerCount = 5
    static let steps = 300

    func testSeeds() throws {
        let env = ProcessInfo.processInfo.environment
        let count = env["CLUSTER_SIM_SEEDS"].flatMap(UInt64.init) ?? 30
        let first = env["CLUSTER_SIM_FIRST_SEED"].flatMap(UInt64.init) ?? 1
        var moves = 0
        for seed in first..<(first + count) {
            moves += try run(seed: seed)
        }
        XCTAssertGreaterThan(moves, Int(count), "the seeds moved partitions (\(moves) moves completed)")
    }

    func testReplaySeed() throws {
        guard let seed = ProcessInfo.processInfo.environment["CLUSTER_SIM_SEED"].flatMap(UInt64.init) else {
            throw XCTSkip("set CLUSTER_SIM_SEED to replay one seed")
        }
        _ = try run(seed: seed)
    }

    /// A WAL frame not yet committed: offsets `[from, to)` appended in `epoch`.
    struct Frame: Equatable {
        var epoch: Int64
        var from: Int64
        var to: Int64
    }

    /// One broker process as the simulation models it.
    struct SimBroker {
        var incarnation = UUID()
        var epoch: Int64 = -1
        var nodeEpoch: Int64 = -1
        /// Running and heartbeating (false: crashed or shut down).
        var alive = false
        /// In controlled shutdown since its last registration.
        var draining = false
        /// When the controller last accepted its heartbeat (or registration).
        var lastAckMs: Int64 = .min
        /// Streams open here: the epoch opened in and the end offset reached. Lost in a crash.
        var open: [UInt64: (epoch: Int64, end: Int64)] = [:]
        /// The node's WAL: frames not yet committed, per stream. Survives a crash.
        var wal: [UInt64: [Frame]] = [:]
    }

    /// Runs one seed; returns the moves completed.
    @discardableResult
    private func run(seed: UInt64) throws -> Int {
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
        /// Per stream, the end of what clients were told is written.
        var acked: [UInt64: Int64] = [:]
        var topics = 0
        var step = 0
        var moves = 0
        func where_() -> String { "seed \(seed) step \(step)" }

        func info(_ id: Int, _ incarnation: UUID) -> MetadataController.BrokerInfo {
            .init(nodeId: Int32(id), incarnationId: incarnation,
                  listeners: [BrokerEndpoint(name: "PLAINTEXT", host: "b\(id)", port: 9092)], rack: "r\(id % 2)")
        }
        /// Commits broker `id`'s WAL (all of it, or `only` one stream), each frame in its epoch,
        /// skipping what is committed. A refusal of acknowledged data is a failure; it stays
        /// in the WAL (object storage down is not modelled).
        func upload(_ id: Int, only: UInt64? = nil) throws {
            for stream in brokers[id].wal.keys.sorted() where only == nil || only == stream {
                guard let state = controller.image.streamStates[stream] else {
                    brokers[id].wal[stream] = nil   // the topic was deleted: dead data
                    continue
                }
                var frames = brokers[id].wal[stream]!.filter { $0.to > state.endOffset }
                while let f = frames.first {
                    let objectId = try controller.prepareObjects(nodeId: Int32(id), nodeEpoch: brokers[id].nodeEpoch, count: 1,
                                                                 ttlMs: 60_000)
                    do {
                        try controller.commitObjects(nodeId: Int32(id), nodeEpoch: brokers[id].nodeEpoch, objects: [
                            .init(objectId: objectId, size: 1, kind: .streamSet,
                                  ranges: [.init(streamId: stream, streamEpoch: f.epoch, startOffset: f.from, endOffset: f.to)])],
                                                     compactedObjectIds: [])
                    } catch {
                        XCTFail("\(where_()): broker \(id)'s commit of acknowledged \(stream) [\(f.from), \(f.to)) "
                                + "in epoch \(f.epoch) refused: \(error)")
                        break
                    }
                    frames.removeFirst()
                }
                brokers[id].wal[stream] = frames.isEmpty ? nil : frames
            }
        }
        /// A (re)started broker: registers (refused while its previous incarnation's session
        /// lives), opens its uploader, which commits what its WAL holds, then heartbeats.
        func start(_ id: Int) throws {
            var b = SimBroker()
            b.wal = brokers[id].wal
            do {
                b.epoch = try controller.registerBroker(info(id, b.incarnation), nowMs: now)
            } catch ControllerError.duplicateBroker {
                let previous = brokers[id]
                XCTAssertTrue(previous.lastAckMs > now - Self.sessionTimeoutMs,
                              "\(where_()): broker \(id) refused as a duplicate, but its last session ended long ago")
                return
            }
            b.nodeEpoch = try controller.openUploader(nodeId: Int32(id)).nodeEpoch
            b.alive = true
            b.lastAckMs = now
            brokers[id] = b
            try upload(id)
            try heartbeat(id)
        }
        func heartbeat(_ id: Int) throws {
            let shutDown = brokers[id].draining
            let wasFenced = controller.image.brokers[Int32(id)]?.fenced ?? true
            let r = try controller.brokerHeartbeat(nodeId: Int32(id), brokerEpoch: brokers[id].epoch,
                                                   metadataOffset: controller.image.nextOffset, wantFence: false,
                                                   wantShutDown: shutDown, nowMs: now)
            brokers[id].lastAckMs = now
            if !shutDown {
                XCTAssertFalse(r.isFenced, "\(where_()): heartbeat of a caught-up broker \(id)")
            } else if r.shouldShutDown {
                // A broker fenced before it asked (its session had lapsed) cannot hand its
                // partitions over: its WAL keeps their tail for its next start.
                let others = controller.image.unfencedBrokers.contains { !brokers[Int($0.nodeId)].draining }
                if others && !wasFenced {
                    XCTAssertTrue(brokers[id].wal.isEmpty, "\(where_()): broker \(id) stopped with \(brokers[id].wal) not uploaded")
                }
                brokers[id].alive = false
                brokers[id].open = [:]
            }
        }
        /// What a live broker does when the metadata log changes: releases the streams moving
        /// away (tail committed first), drops what it no longer leads, opens what it leads.
        func sync(_ id: Int) throws {
            guard brokers[id].alive else { return }
            let image = controller.image
            for stream in brokers[id].open.keys.sorted() {
                guard let p = image.partitions[stream] else { brokers[id].open[stream] = nil; continue }
                if p.leader == Int32(id), p.target != nil {
                    try upload(id, only: stream)
                    guard brokers[id].wal[stream] == nil else { continue }
                    let r = try controller.releaseStreams(nodeId: Int32(id), brokerEpoch: brokers[id].epoch,
                                                          streams: [(stream, brokers[id].open[stream]!.end)])
                    if case .failure(let e)? = r[stream], e.kafkaErrorCode == 1 {
                        XCTFail("\(where_()): broker \(id) released \(stream) with its tail committed, refused: \(e)")
                    }
                    if case .success? = r[stream] { moves += 1 }
                    brokers[id].open[stream] = nil   // released, or the move was cancelled: reopens below
                } else if p.replicas[0] != Int32(id) {
                    brokers[id].open[stream] = nil
                }
            }
            // Moving streams not open here (this broker restarted meanwhile): its recovery
            // committed their tail, so they are released at their committed end.
            for stream in image.partitions.keys.sorted() where brokers[id].open[stream] == nil {
                let p = image.partitions[stream]!
                guard p.leader == Int32(id), p.target != nil else { continue }
                try upload(id, only: stream)
                guard brokers[id].wal[stream] == nil else { continue }
                let end = controller.image.streamStates[stream]!.endOffset
                XCTAssertEqual(end, acked[stream] ?? 0, "\(where_()): broker \(id) releases \(stream) behind its acknowledged tail")
                let r = try controller.releaseStreams(nodeId: Int32(id), brokerEpoch: brokers[id].epoch, streams: [(stream, end)])
                if case .success? = r[stream] { moves += 1 }
            }
            let image2 = controller.image
            let wanted = image2.partitions.keys.sorted().filter { s in
                let p = image2.partitions[s]!
                return p.leader == Int32(id) && p.target == nil && brokers[id].open[s] == nil
            }
            guard !wanted.isEmpty else { return }
            for s in wanted { try upload(id, only: s) }
            let ready = wanted.filter { brokers[id].wal[$0] == nil }
            guard !ready.isEmpty else { return }
            let opened = try controller.openStreams(nodeId: Int32(id), brokerEpoch: brokers[id].epoch, streamIds: ready)
            for s in ready {
                guard case .success(let o)? = opened[s] else { continue }
                XCTAssertEqual(o.endOffset, acked[s] ?? 0, "\(where_()): broker \(id) opened \(s) behind its acknowledged tail")
                brokers[id].open[s] = (o.streamEpoch, o.endOffset)
            }
        }
        /// A client's produce to a partition a live broker leads (and is not moving).
        func produce(_ id: Int) {
            let image = controller.image
            guard brokers[id].alive, image.brokers[Int32(id)].map({ !$0.fenced }) ?? false else { return }
            let candidates = brokers[id].open.keys.sorted().filter { s in
                image.partitions[s].map { $0.leader == Int32(id) && $0.target == nil } ?? false
            }
            guard !candidates.isEmpty else { return }
            let s = candidates[below(candidates.count)]
            let (epoch, end) = brokers[id].open[s]!
            XCTAssertEqual(end, acked[s] ?? 0, "\(where_()): broker \(id) appends to \(s) at \(end), acknowledged \(acked[s] ?? 0)")
            let count = Int64(1 + below(5))
            brokers[id].wal[s, default: []].append(Frame(epoch: epoch, from: end, to: end + count))
            brokers[id].open[s]!.end = end + count
            acked[s] = end + count
        }
        func live() -> [Int] { (0..<Self.brokerCount).filter { brokers[$0].alive } }

        for id in 0..<Self.brokerCount where below(3) > 0 { try start(id) }
        for s in 1...Self.steps {
            step = s
            now += Int64(below(1500))
            switch below(24) {
            case 0..<8:    // live brokers heartbeat (each may miss a beat)
                for id in live() where below(4) > 0 { try heartbeat(id) }
            case 8..<11:   // clients produce
                for _ in 0..<3 { if let id = live().randomElement(using: &random) { produce(id) } }
            case 11:       // a crash: it just stops; its WAL stays
                if let id = live().randomElement(using: &random) {
                    brokers[id].alive = false
                    brokers[id].open = [:]
                }
            case 12:       // controlled shutdown begins
                if let id = live().filter({ !brokers[$0].draining }).randomElement(using: &random) {
                    brokers[id].draining = true
                    try heartbeat(id)
                }
            case 13, 14:   // a restart of a stopped broker
                if let id = (0..<Self.brokerCount).filter({ !brokers[$0].alive }).randomElement(using: &random) {
                    try start(id)
                }
            case 15:       // an impostor takes the id of a live broker
                if let id = live().randomElement(using: &random), brokers[id].lastAckMs > now - Self.sessionTimeoutMs {
                    XCTAssertThrowsError(try controller.registerBroker(info(id, UUID()), nowMs: now),
                                         "\(where_()): an impostor of live broker \(id) registered")
                }
            case 16, 17:   // a topic, spread over the unfenced brokers not shutting down
                let partitions = Int32(1 + below(12))
                let eligible = Set(controller.image.unfencedBrokers.map(\.nodeId).filter { !brokers[Int($0)].draining })
                let t = try controller.createTopic(name: "t\(topics)", partitions: partitions, configs: [:], validateOnly: false)
                topics += 1
                let image = controller.image
                let counts = Dictionary(grouping: t.streamIds.compactMap { image.partitions[$0]?.replicas[0] }, by: { $0 })
                    .mapValues(\.count)
                if eligible.isEmpty {
                    XCTAssertTrue(counts.isEmpty, "\(where_()): partitions placed with no eligible broker")
                } else {
                    XCTAssertEqual(Set(counts.keys).subtracting(eligible), [], "\(where_()): placed on a fenced or draining broker")
                    let spread = eligible.map { counts[$0, default: 0] }
                    XCTAssertLessThanOrEqual(spread.max()! - spread.min()!, 1, "\(where_()): uneven placement \(counts)")
                }
            case 18:       // growth
                if topics > 0 {
                    let name = "t\(below(topics))"
                    let count = controller.image.topic(named: name)!.partitionCount + Int32(1 + below(3))
                    _ = try controller.createPartitions(name: name, count: count, validateOnly: false)
                }
            case 19, 20:   // a reassignment (to any broker: the controller refuses the ones that cannot take it)
                if topics > 0 {
                    let name = "t\(below(topics))"
                    let count = controller.image.topic(named: name)!.partitionCount
                    let to = Int32(below(Self.brokerCount))
                    let partition = Int32(below(Int(count)))
                    let stream = controller.image.topic(named: name)!.streamIds[Int(partition)]
                    let owner = controller.image.partitions[stream]?.replicas[0]
                    let r = try controller.reassign([.init(topic: name, partition: partition, replicas: [to])])
                    if case .success = r[0], owner != to {
                        XCTAssertTrue(controller.image.brokers[to].map { !$0.fenced } ?? false,
                                      "\(where_()): a move to fenced broker \(to) accepted")
                    }
                }
            case 21:       // a cancel
                if let m = controller.reassignments().randomElement(using: &random) {
                    XCTAssertNoThrow(try controller.reassign([.init(topic: m.topic, partition: m.partition, replicas: nil)])[0].get())
                }
            case 22:       // uploads
                for id in live() { try upload(id) }
            default:       // the session monitor
                break
            }
            for id in live() { try sync(id) }
            controller.fenceExpiredBrokers(nowMs: now)
            check(controller.image, brokers: brokers, now: now, leaderEpochs: &leaderEpochs, streamEpochs: &streamEpochs,
                  at: where_())
        }
        // Liveness: everyone back and heartbeating; moves complete, every partition gets its
        // leader, and everything acknowledged is committed.
        step = Self.steps + 1
        now += Self.sessionTimeoutMs
        controller.fenceExpiredBrokers(nowMs: now)
        for id in 0..<Self.brokerCount { brokers[id].draining = false }
        for id in 0..<Self.brokerCount where !brokers[id].alive { try start(id) }
        for _ in 0..<4 {
            for id in 0..<Self.brokerCount { try heartbeat(id) }
            for id in 0..<Self.brokerCount { try sync(id) }
        }
        for id in 0..<Self.brokerCount { try upload(id) }
        let image = controller.image
        XCTAssertEqual(image.unfencedBrokers.count, Self.brokerCount, "seed \(seed): every broker back")
        let offline = image.streams.keys.filter { (image.partitions[$0]?.leader ?? -1) < 0 }
        XCTAssertEqual(offline, [], "seed \(seed): partitions without a leader once every broker is back")
        XCTAssertEqual(controller.reassignments(), [], "seed \(seed): moves still in flight with every broker back")
        for (s, end) in acked where image.streamStates[s] != nil {
            XCTAssertEqual(image.streamStates[s]!.endOffset, end, "seed \(seed): stream \(s) committed short of what was acknowledged")
        }
        check(image, brokers: brokers, now: now, leaderEpochs: &leaderEpochs, streamEpochs: &streamEpochs,
              at: "seed \(seed) end")
        return moves
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
            XCTAssertNotEqual(p.target, owner, "\(at): stream \(stream) moving to its own broker")
            XCTAssertGreaterThanOrEqual(p.leaderEpoch, leaderEpochs[stream] ?? 0, "\(at): stream \(stream) leader epoch went back")
            leaderEpochs[stream] = p.leaderEpoch
            XCTAssertGreaterThanOrEqual(p.streamEpoch, streamEpochs[stream] ?? 0, "\(at): stream \(stream) epoch went back")
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
