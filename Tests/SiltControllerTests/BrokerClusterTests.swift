import Foundation
import Logging
@testable import SiltController
import SiltMetadata
import SiltStreams
import XCTest

/// Brokers on the controller: registration, heartbeats, fencing by session, partition
/// placement and leadership, and commits refused from a broker that does not own a stream.
/// Time is passed in (`nowMs`), so sessions are tested without sleeping.
final class BrokerClusterTests: XCTestCase {
    var dir: String!
    var controller: MetadataController!
    /// After the controller became active (its sessions count from then at the latest); set
    /// in setUp, since XCTest creates every test case object before it runs the first.
    var t0: Int64 = 0

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "silt-cluster-\(UUID().uuidString)"
        controller = try MetadataController(directory: dir, logger: Logger(label: "test"),
                                            brokerSessionTimeoutMs: 9000) { _ in }
        t0 = MetadataController.wallClockMs() + 1000
    }

    override func tearDownWithError() throws {
        controller.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func info(_ id: Int32, rack: String? = nil, incarnation: UUID = UUID()) -> MetadataController.BrokerInfo {
        .init(nodeId: id, incarnationId: incarnation, listeners: [BrokerEndpoint(name: "PLAINTEXT", host: "h\(id)", port: 9092)],
              rack: rack)
    }

    /// Registers and unfences `id` at time `now`; returns its broker epoch.
    @discardableResult
    private func join(_ id: Int32, rack: String? = nil, at now: Int64? = nil) throws -> Int64 {
        let now = now ?? t0
        let epoch = try controller.registerBroker(info(id, rack: rack), nowMs: now)
        let r = try controller.brokerHeartbeat(nodeId: id, brokerEpoch: epoch, metadataOffset: controller.image.nextOffset,
                                               wantFence: false, wantShutDown: false, nowMs: now)
        XCTAssertFalse(r.isFenced)
        return epoch
    }

    private func leaders(_ topic: String) -> [Int32] {
        let image = controller.image
        let t = image.topic(named: topic)!
        return (0..<t.partitionCount).map { image.leadership(topic: t, partition: $0)!.leader }
    }

    func testNewPartitionsSpreadEvenlyOverUnfencedBrokers() throws {
        for id: Int32 in 0...4 { try join(id) }
        try controller.createTopic(name: "t", partitions: 10, configs: [:], validateOnly: false)
        let counts = Dictionary(grouping: leaders("t"), by: { $0 }).mapValues(\.count)
        XCTAssertEqual(counts, [0: 2, 1: 2, 2: 2, 3: 2, 4: 2])
        // Growth keeps the spread: the next 5 go one to each.
        _ = try controller.createPartitions(name: "t", count: 15, validateOnly: false)
        XCTAssertEqual(Dictionary(grouping: leaders("t"), by: { $0 }).mapValues(\.count), [0: 3, 1: 3, 2: 3, 3: 3, 4: 3])
    }

    func testPlacementAlternatesRacks() throws {
        try join(0, rack: "a")
        try join(1, rack: "a")
        try join(2, rack: "b")
        try controller.createTopic(name: "r", partitions: 4, configs: [:], validateOnly: false)
        let racks = leaders("r").map { $0 == 2 ? "b" : "a" }
        XCTAssertEqual(racks.filter { $0 == "b" }.count, 2, "half of the partitions on the lone broker of rack b: \(leaders("r"))")
    }

    func testPartitionsWaitForTheFirstBrokerThenComeToIt() throws {
        try controller.createTopic(name: "early", partitions: 3, configs: [:], validateOnly: false)
        XCTAssertTrue(controller.image.partitions.isEmpty, "no broker: nobody leads yet")
        try join(7)
        XCTAssertEqual(leaders("early"), [7, 7, 7])
    }

    func testExpiredSessionFencesAndTakesPartitionsOfflineUntilTheBrokerIsBack() throws {
        let e0 = try join(0)
        let e1 = try join(1)
        try controller.createTopic(name: "f", partitions: 4, configs: [:], validateOnly: false)
        let before = controller.image
        // Broker 1 keeps heartbeating, broker 0 goes silent.
        _ = try controller.brokerHeartbeat(nodeId: 1, brokerEpoch: e1, metadataOffset: 0, wantFence: false, wantShutDown: false,
                                           nowMs: t0 + 8000)
        XCTAssertEqual(controller.fenceExpiredBrokers(nowMs: t0 + 8999), [], "within the session")
        XCTAssertEqual(controller.fenceExpiredBrokers(nowMs: t0 + 9000), [0])
        let image = controller.image
        XCTAssertEqual(image.brokers[0]?.fenced, true)
        let topic = image.topic(named: "f")!
        for p in 0..<topic.partitionCount {
            let was = before.leadership(topic: topic, partition: p)!
            let now = image.leadership(topic: topic, partition: p)!
            if was.leader == 0 {
                XCTAssertEqual(now.leader, -1, "offline, never moved to a broker that lacks its tail")
                XCTAssertEqual(now.replicas, [0])
                XCTAssertEqual(now.leaderEpoch, was.leaderEpoch + 1)
                XCTAssertEqual(now.streamEpoch, was.streamEpoch, "the same broker keeps the stream")
            } else {
                XCTAssertEqual(now, was)
            }
        }
        // Back: the same registration heartbeats again and is unfenced; its partitions return.
        let r = try controller.brokerHeartbeat(nodeId: 0, brokerEpoch: e0, metadataOffset: controller.image.nextOffset,
                                               wantFence: false, wantShutDown: false, nowMs: t0 + 20_000)
        XCTAssertFalse(r.isFenced)
        XCTAssertEqual(Set(leaders("f")), [0, 1])
        let back = controller.image.leadership(topic: topic, partition: 0)!
        XCTAssertEqual(back.leaderEpoch, before.leadership(topic: topic, partition: 0)!.leaderEpoch + 2)
    }

    func testSecondNodeWithTheSameIdIsRefusedWhileTheFirstIsAlive() throws {
        let first = UUID()
        let epoch = try controller.registerBroker(info(3, incarnation: first), nowMs: t0)
        _ = try controller.brokerHeartbeat(nodeId: 3, brokerEpoch: epoch, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: false, nowMs: t0)
        XCTAssertThrowsError(try controller.registerBroker(info(3), nowMs: t0 + 1000)) { error in
            guard case ControllerError.duplicateBroker(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("node.id 3"), message)
            XCTAssertEqual((error as! ControllerError).kafkaErrorCode, 101)
        }
        // The same incarnation registering again (a retried request) is fine; so is a new one
        // once the first's session has expired (a restart after kill -9).
        XCTAssertNoThrow(try controller.registerBroker(info(3, incarnation: first), nowMs: t0 + 2000))
        XCTAssertNoThrow(try controller.registerBroker(info(3), nowMs: t0 + 2000 + 9000))
    }

    func testControlledShutdownFencesAtOnceAndStaleEpochsAreRefused() throws {
        let e = try join(5)
        try controller.createTopic(name: "s", partitions: 2, configs: [:], validateOnly: false)
        let r = try controller.brokerHeartbeat(nodeId: 5, brokerEpoch: e, metadataOffset: 0, wantFence: false, wantShutDown: true,
                                               nowMs: t0 + 10)
        XCTAssertTrue(r.isFenced)
        XCTAssertTrue(r.shouldShutDown)
        XCTAssertEqual(leaders("s"), [-1, -1])
        // The restarted process registers at once (the old one is fenced) with a newer epoch;
        // the old epoch's heartbeats are refused.
        let e2 = try controller.registerBroker(info(5), nowMs: t0 + 20)
        XCTAssertGreaterThan(e2, e)
        XCTAssertThrowsError(try controller.brokerHeartbeat(nodeId: 5, brokerEpoch: e, metadataOffset: 0, wantFence: false,
                                                            wantShutDown: false, nowMs: t0 + 30)) { error in
            XCTAssertEqual((error as? ControllerError)?.kafkaErrorCode, 77)   // STALE_BROKER_EPOCH
        }
    }

    /// A stale leader cannot write: the uploader of a node that does not own a stream has its
    /// commit refused, and nothing of it lands in the image.
    func testCommitFromANodeThatDoesNotOwnTheStreamIsRefused() throws {
        try join(0)
        try join(1)
        let topic = try controller.createTopic(name: "c", partitions: 2, configs: [:], validateOnly: false)
        let image = controller.image
        let stream = topic.streamIds[0]
        let owner = image.partitions[stream]!.replicas[0]
        let other: Int32 = owner == 0 ? 1 : 0
        _ = try controller.openUploader(nodeId: other)
        let nodeEpoch = controller.image.nodeEpochs[other]!
        let id = try controller.prepareObjects(nodeId: other, nodeEpoch: nodeEpoch, count: 1, ttlMs: 60_000)
        let before = controller.image.streamStates[stream]
        XCTAssertThrowsError(try controller.commitObjects(
            nodeId: other, nodeEpoch: nodeEpoch,
            objects: [.init(objectId: id, size: 10, kind: .streamSet,
                            ranges: [.init(streamId: stream, streamEpoch: 0, startOffset: 0, endOffset: 1)])],
            compactedObjectIds: [])) { error in
            XCTAssertEqual((error as? ControllerError)?.kafkaErrorCode, 74, "\(error)")   // FENCED_LEADER_EPOCH
        }
        XCTAssertEqual(controller.image.streamStates[stream], before)
    }

    /// Leadership survives a snapshot: the records a snapshot carries rebuild it exactly.
    func testSnapshotRecordsRebuildBrokersAndLeaders() throws {
        try join(0, rack: "x")
        try join(1)
        try controller.createTopic(name: "snap", partitions: 3, configs: [:], validateOnly: false)
        _ = controller.fenceExpiredBrokers(nowMs: t0 + 60_000)
        let image = controller.image
        let rebuilt = MetadataImage(snapshot: image.snapshotRecords, endOffset: image.nextOffset)
        XCTAssertEqual(rebuilt.brokers, image.brokers)
        XCTAssertEqual(rebuilt.partitions, image.partitions)
        XCTAssertEqual(rebuilt.streamStates, image.streamStates)
    }
}

extension BrokerClusterTests {
    /// Each object has one compacting node: the broker its streams are assigned to.
    func testEachObjectIsCompactedByTheOwnerOfItsStreams() throws {
        try join(0)
        try join(1)
        let topic = try controller.createTopic(name: "k", partitions: 2, configs: [:], validateOnly: false)
        let image = controller.image
        let owners = topic.streamIds.map { image.partitions[$0]!.replicas[0] }
        func object(_ streams: [UInt64]) -> CommittedObject {
            CommittedObject(objectId: 1, size: 1, kind: .streamSet,
                            ranges: streams.map { StreamRange(streamId: $0, startOffset: 0, endOffset: 1) }, committedAtMs: 0)
        }
        let first = object([topic.streamIds[0], 999])   // 999: a deleted topic's stream
        XCTAssertTrue(image.isCompacted(by: owners[0], first))
        XCTAssertFalse(image.isCompacted(by: owners[1], first))
        XCTAssertFalse([0, 1].contains { image.isCompacted(by: $0, object(topic.streamIds)) },
                       "mixed owners: nobody (only after a move)")
    }
}

extension BrokerClusterTests {
    /// A stale leader's commit is refused by its stream epoch: once the stream's epoch has
    /// moved on (its assigned broker changed and came back), ranges written in the old epoch
    /// are refused, and ranges of the current one accepted. Nothing refused reaches the image.
    func testCommitCarryingAnOlderStreamEpochIsRefused() throws {
        try join(0)
        let topic = try controller.createTopic(name: "e", partitions: 1, configs: [:], validateOnly: false)
        let stream = topic.streamIds[0]
        var leadership = controller.image.partitions[stream]!
        XCTAssertEqual(leadership.streamEpoch, 0)
        // What a move away and back does to the record (partition mobility writes it).
        leadership.streamEpoch += 1
        leadership.leaderEpoch += 1
        try controller.mutate { try controller.commit([.partitionLeader(streamId: stream, leadership)]) }
        _ = try controller.openUploader(nodeId: 0)
        let nodeEpoch = controller.image.nodeEpochs[0]!
        func commit(epoch: Int64) throws {
            let id = try controller.prepareObjects(nodeId: 0, nodeEpoch: nodeEpoch, count: 1, ttlMs: 60_000)
            try controller.commitObjects(nodeId: 0, nodeEpoch: nodeEpoch,
                                         objects: [.init(objectId: id, size: 10, kind: .streamSet,
                                                         ranges: [.init(streamId: stream, streamEpoch: epoch, startOffset: 0,
                                                                        endOffset: 5)])],
                                         compactedObjectIds: [])
        }
        XCTAssertThrowsError(try commit(epoch: 0)) { error in
            XCTAssertEqual((error as? ControllerError)?.kafkaErrorCode, 74, "\(error)")   // FENCED_LEADER_EPOCH
        }
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 0, "nothing of the refused commit landed")
        XCTAssertNoThrow(try commit(epoch: 1))
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 5)
    }
}

extension BrokerClusterTests {
    /// Each open of a stream by its leader bumps the stream epoch by one (one batch for all),
    /// returns the committed range, and fences commits of the epoch before. Everything else
    /// is refused per stream (not led here, unknown) or as a whole (a stale broker epoch, a
    /// fenced broker, the same stream twice), and a refusal writes nothing.
    func testOpenStreamsBumpsTheEpochOfStreamsLedHereOnly() throws {
        let e0 = try join(0)
        try join(1)
        let topic = try controller.createTopic(name: "o", partitions: 4, configs: [:], validateOnly: false)
        let image = controller.image
        let mine = topic.streamIds.filter { image.partitions[$0]!.leader == 0 }
        let theirs = topic.streamIds.filter { image.partitions[$0]!.leader == 1 }
        XCTAssertEqual([mine.count, theirs.count], [2, 2])

        let opened = try controller.openStreams(nodeId: 0, brokerEpoch: e0, streamIds: mine + [theirs[0], 4242])
        for id in mine {
            XCTAssertEqual(try opened[id]!.get(), .init(streamEpoch: 1, startOffset: 0, endOffset: 0))
            XCTAssertEqual(controller.image.streamStates[id]?.epoch, 1)
            XCTAssertEqual(controller.image.partitions[id]?.streamEpoch, 1)
            XCTAssertEqual(controller.image.partitions[id]?.leaderEpoch, image.partitions[id]?.leaderEpoch,
                           "a reopen by the same leader is not a leader change")
        }
        XCTAssertEqual(opened[theirs[0]].flatMap { try? $0.get() }, nil)
        if case .failure(let e)? = opened[theirs[0]] { XCTAssertEqual(e.kafkaErrorCode, 6) }   // NOT_LEADER_OR_FOLLOWER
        if case .failure(let e)? = opened[4242] { XCTAssertEqual(e.kafkaErrorCode, 3) }       // UNKNOWN_TOPIC_OR_PARTITION
        XCTAssertEqual(controller.image.streamStates[theirs[0]]?.epoch, 0, "a refused open bumps nothing")

        // The epoch before the open is fenced: a commit carrying it is refused.
        _ = try controller.openUploader(nodeId: 0)
        let nodeEpoch = controller.image.nodeEpochs[0]!
        let id = try controller.prepareObjects(nodeId: 0, nodeEpoch: nodeEpoch, count: 1, ttlMs: 60_000)
        XCTAssertThrowsError(try controller.commitObjects(
            nodeId: 0, nodeEpoch: nodeEpoch,
            objects: [.init(objectId: id, size: 10, kind: .streamSet,
                            ranges: [.init(streamId: mine[0], streamEpoch: 0, startOffset: 0, endOffset: 1)])],
            compactedObjectIds: []))

        // A second open: the next epoch, with the committed range.
        XCTAssertEqual(try controller.openStreams(nodeId: 0, brokerEpoch: e0, streamIds: [mine[0]])[mine[0]]!.get().streamEpoch, 2)

        let before = controller.image.nextOffset
        XCTAssertThrowsError(try controller.openStreams(nodeId: 0, brokerEpoch: e0 + 1, streamIds: mine)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 77)   // STALE_BROKER_EPOCH
        }
        XCTAssertThrowsError(try controller.openStreams(nodeId: 0, brokerEpoch: e0, streamIds: [mine[0], mine[0]])) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 42)   // INVALID_REQUEST
        }
        XCTAssertThrowsError(try controller.openStreams(nodeId: 9, brokerEpoch: 1, streamIds: mine))
        _ = try controller.brokerHeartbeat(nodeId: 0, brokerEpoch: e0, metadataOffset: controller.image.nextOffset,
                                           wantFence: true, wantShutDown: false, nowMs: t0)
        XCTAssertThrowsError(try controller.openStreams(nodeId: 0, brokerEpoch: e0, streamIds: mine), "a fenced broker opens nothing")
        XCTAssertEqual(controller.image.streamStates[mine[1]]?.epoch, 1)
        XCTAssertGreaterThan(controller.image.nextOffset, before, "only the fence was written")
    }
}
