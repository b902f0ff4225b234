import Foundation
import Logging
@testable import SiltController
import SiltMetadata
import XCTest

/// Partition moves on the controller: a reassignment records a target, the old leader's
/// release completes it only once the stream is committed up to the end it reached, and a
/// controlled shutdown moves everything off the broker before it may stop.
final class PartitionMoveTests: XCTestCase {
    var dir: String!
    var controller: MetadataController!
    var t0: Int64 = 0
    var epochs: [Int32: Int64] = [:]

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "silt-moves-\(UUID().uuidString)"
        controller = try MetadataController(directory: dir, logger: Logger(label: "test"), brokerSessionTimeoutMs: 9000) { _ in }
        t0 = MetadataController.wallClockMs() + 1000
        for id: Int32 in 0...2 {
            let e = try controller.registerBroker(.init(nodeId: id, incarnationId: UUID(),
                                                        listeners: [BrokerEndpoint(name: "PLAINTEXT", host: "h\(id)", port: 9092)],
                                                        rack: nil), nowMs: t0)
            _ = try controller.brokerHeartbeat(nodeId: id, brokerEpoch: e, metadataOffset: controller.image.nextOffset,
                                               wantFence: false, wantShutDown: false, nowMs: t0)
            epochs[id] = e
        }
    }

    override func tearDownWithError() throws {
        controller.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Commits `[from, to)` of `stream` as its owner's uploader would.
    func commit(_ stream: UInt64, from: Int64, to: Int64, node: Int32) throws {
        _ = try controller.openUploader(nodeId: node)
        let nodeEpoch = controller.image.nodeEpochs[node]!
        let id = try controller.prepareObjects(nodeId: node, nodeEpoch: nodeEpoch, count: 1, ttlMs: 60_000)
        try controller.commitObjects(nodeId: node, nodeEpoch: nodeEpoch,
                                     objects: [.init(objectId: id, size: 10, kind: .streamSet, ranges: [
                                         .init(streamId: stream, streamEpoch: controller.image.streamStates[stream]!.epoch,
                                               startOffset: from, endOffset: to)])],
                                     compactedObjectIds: [])
    }

    func testAMoveCompletesOnlyOnceTheTailIsCommitted() throws {
        let topic = try controller.createTopic(name: "m", partitions: 3, configs: [:], validateOnly: false)
        let stream = topic.streamIds[0]
        let from = controller.image.partitions[stream]!.leader
        let to: Int32 = (from + 1) % 3
        try commit(stream, from: 0, to: 5, node: from)
        let before = controller.image.partitions[stream]!

        let results = try controller.reassign([.init(topic: "m", partition: 0, replicas: [to])])
        XCTAssertNoThrow(try results[0].get())
        var p = controller.image.partitions[stream]!
        XCTAssertEqual(p.target, to)
        XCTAssertEqual(p.leader, from, "the old leader leads until it releases")
        XCTAssertEqual(controller.reassignments(), [.init(topic: "m", partition: 0, from: from, to: to)])

        // The old leader reached offset 8; only 5 are committed: refused, nothing changes.
        var released = try controller.releaseStreams(nodeId: from, brokerEpoch: epochs[from]!, streams: [(stream, 8)])
        guard case .failure(let e)? = released[stream] else { return XCTFail("released before the tail was committed") }
        XCTAssertEqual(e.kafkaErrorCode, 1)
        XCTAssertEqual(controller.image.partitions[stream]!.leader, from)

        try commit(stream, from: 5, to: 8, node: from)
        XCTAssertThrowsError(try controller.releaseStreams(nodeId: from, brokerEpoch: epochs[from]! + 1, streams: [(stream, 8)]))
        released = try controller.releaseStreams(nodeId: from, brokerEpoch: epochs[from]!, streams: [(stream, 8)])
        XCTAssertEqual(try released[stream]!.get(), to)
        p = controller.image.partitions[stream]!
        XCTAssertEqual(p, PartitionLeadership(leader: to, leaderEpoch: before.leaderEpoch + 1, replicas: [to],
                                              streamEpoch: before.streamEpoch + 1, target: nil))
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 8)
        XCTAssertTrue(controller.reassignments().isEmpty)

        // The old owner's late commit is refused; the new leader opens in the next epoch.
        XCTAssertThrowsError(try commit(stream, from: 8, to: 9, node: from))
        let opened = try controller.openStreams(nodeId: to, brokerEpoch: epochs[to]!, streamIds: [stream])
        XCTAssertEqual(try opened[stream]!.get(), .init(streamEpoch: before.streamEpoch + 2, startOffset: 0, endOffset: 8))
        XCTAssertNoThrow(try commit(stream, from: 8, to: 9, node: to))
    }

    func testReassignmentRefusalsWriteNothing() throws {
        try controller.createTopic(name: "r", partitions: 2, configs: [:], validateOnly: false)
        let stream = controller.image.topic(named: "r")!.streamIds[0]
        let owner = controller.image.partitions[stream]!.replicas[0]
        let other: Int32 = (owner + 1) % 3
        let offset = controller.image.nextOffset
        let results = try controller.reassign([
            .init(topic: "r", partition: 0, replicas: [owner, other]),   // two replicas
            .init(topic: "r", partition: 0, replicas: [9]),              // twice, and unknown broker
            .init(topic: "r", partition: 5, replicas: [other]),          // no such partition
            .init(topic: "nope", partition: 0, replicas: [other]),
            .init(topic: "r", partition: 1, replicas: nil),              // nothing to cancel
        ])
        XCTAssertEqual(results.map { r -> Int16 in if case .failure(let e) = r { return e.kafkaErrorCode } else { return 0 } },
                       [39, 42, 3, 3, 85])
        XCTAssertEqual(controller.image.nextOffset, offset, "no refusal wrote anything")
        // A fenced broker cannot receive a partition.
        _ = try controller.brokerHeartbeat(nodeId: other, brokerEpoch: epochs[other]!, metadataOffset: controller.image.nextOffset,
                                           wantFence: true, wantShutDown: false, nowMs: t0)
        if case .failure(let e) = try controller.reassign([.init(topic: "r", partition: 0, replicas: [other])])[0] {
            XCTAssertEqual(e.kafkaErrorCode, 39)
        } else { XCTFail("moved to a fenced broker") }
    }

    func testCancelAndTargetLostCancelTheMove() throws {
        try controller.createTopic(name: "c", partitions: 1, configs: [:], validateOnly: false)
        let stream = controller.image.topic(named: "c")!.streamIds[0]
        let from = controller.image.partitions[stream]!.leader
        let to: Int32 = (from + 1) % 3
        XCTAssertNoThrow(try controller.reassign([.init(topic: "c", partition: 0, replicas: [to])])[0].get())
        XCTAssertNoThrow(try controller.reassign([.init(topic: "c", partition: 0, replicas: nil)])[0].get())
        XCTAssertNil(controller.image.partitions[stream]!.target)
        let cancelled = try controller.releaseStreams(nodeId: from, brokerEpoch: epochs[from]!, streams: [(stream, 0)])
        if case .failure(let e)? = cancelled[stream] { XCTAssertEqual(e.kafkaErrorCode, 85) } else { XCTFail("released a cancelled move") }

        // The target is fenced before the release: the release cancels the move instead.
        XCTAssertNoThrow(try controller.reassign([.init(topic: "c", partition: 0, replicas: [to])])[0].get())
        _ = try controller.brokerHeartbeat(nodeId: to, brokerEpoch: epochs[to]!, metadataOffset: controller.image.nextOffset,
                                           wantFence: true, wantShutDown: false, nowMs: t0)
        let lost = try controller.releaseStreams(nodeId: from, brokerEpoch: epochs[from]!, streams: [(stream, 0)])
        if case .failure(let e)? = lost[stream] { XCTAssertEqual(e.kafkaErrorCode, 39) } else { XCTFail("moved to a fenced broker") }
        let p = controller.image.partitions[stream]!
        XCTAssertEqual([p.leader, p.replicas[0]], [from, from])
        XCTAssertNil(p.target)
    }

    /// SIGTERM's heartbeat: every partition of the broker gets a target on the others, evenly;
    /// the broker may stop (and is fenced) only once it leads none. New partitions avoid it.
    func testControlledShutdownMovesEverythingThenFences() throws {
        let topic = try controller.createTopic(name: "s", partitions: 6, configs: [:], validateOnly: false)
        let mine = topic.streamIds.filter { controller.image.partitions[$0]!.replicas[0] == 0 }
        XCTAssertEqual(mine.count, 2)
        var r = try controller.brokerHeartbeat(nodeId: 0, brokerEpoch: epochs[0]!, metadataOffset: controller.image.nextOffset,
                                               wantFence: false, wantShutDown: true, nowMs: t0)
        XCTAssertEqual([r.isFenced, r.shouldShutDown], [false, false])
        XCTAssertEqual(Set(mine.map { controller.image.partitions[$0]!.target! }), [1, 2], "spread over the others")
        try controller.createPartitions(name: "s", count: 9, validateOnly: false)
        let grown = controller.image.topic(named: "s")!.streamIds.suffix(3)
        XCTAssertFalse(grown.contains { controller.image.partitions[$0]!.replicas[0] == 0 }, "no new partition on a draining broker")

        for s in mine { XCTAssertNoThrow(try controller.releaseStreams(nodeId: 0, brokerEpoch: epochs[0]!, streams: [(s, 0)])[s]!.get()) }
        r = try controller.brokerHeartbeat(nodeId: 0, brokerEpoch: epochs[0]!, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: true, nowMs: t0)
        XCTAssertEqual([r.isFenced, r.shouldShutDown], [true, true])
        XCTAssertFalse(controller.image.partitions.values.contains { $0.replicas[0] == 0 })
    }

    /// The last broker standing cannot hand its partitions to anyone: it stops at once and
    /// its partitions go offline, as before moves existed.
    func testControlledShutdownWithNowhereToGoFencesAtOnce() throws {
        for id: Int32 in 1...2 {
            _ = try controller.brokerHeartbeat(nodeId: id, brokerEpoch: epochs[id]!, metadataOffset: controller.image.nextOffset,
                                               wantFence: true, wantShutDown: false, nowMs: t0)
        }
        try controller.createTopic(name: "alone", partitions: 2, configs: [:], validateOnly: false)
        let r = try controller.brokerHeartbeat(nodeId: 0, brokerEpoch: epochs[0]!, metadataOffset: controller.image.nextOffset,
                                               wantFence: false, wantShutDown: true, nowMs: t0)
        XCTAssertEqual([r.isFenced, r.shouldShutDown], [true, true])
        XCTAssertTrue(controller.image.partitions.values.allSatisfy { $0.leader == -1 && $0.target == nil })
    }
}

extension PartitionMoveTests {
    /// A WAL takeover completes only for a fenced broker, with its current node epoch (the
    /// taker's OpenUploader): every partition it owned moves to the unfenced brokers, in the
    /// next leader and stream epochs.
    func testTakeOverMovesAFencedBrokersPartitions() throws {
        let topic = try controller.createTopic(name: "t", partitions: 6, configs: [:], validateOnly: false)
        let mine = topic.streamIds.filter { controller.image.partitions[$0]!.replicas[0] == 2 }
        XCTAssertEqual(mine.count, 2)
        let nodeEpoch = try controller.openUploader(nodeId: 2).nodeEpoch
        XCTAssertThrowsError(try controller.takeOverNode(2, nodeEpoch: nodeEpoch), "broker 2 is alive")
        _ = try controller.brokerHeartbeat(nodeId: 2, brokerEpoch: epochs[2]!, metadataOffset: controller.image.nextOffset,
                                           wantFence: true, wantShutDown: false, nowMs: t0)
        XCTAssertThrowsError(try controller.takeOverNode(2, nodeEpoch: nodeEpoch - 1)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 77, "an older node epoch: fenced by a newer opener")
        }
        let before = mine.map { controller.image.partitions[$0]! }
        let moved = try controller.takeOverNode(2, nodeEpoch: nodeEpoch)
        XCTAssertEqual(Set(moved.keys), Set(mine))
        for (id, old) in zip(mine, before) {
            let p = controller.image.partitions[id]!
            XCTAssertTrue([0, 1].contains(p.leader))
            XCTAssertEqual(p.replicas, [p.leader])
            XCTAssertEqual(p.leaderEpoch, old.leaderEpoch + 1)
            XCTAssertEqual(p.streamEpoch, old.streamEpoch + 1)
        }
        XCTAssertEqual(try controller.takeOverNode(2, nodeEpoch: nodeEpoch), [:], "nothing left to move")
    }
}
