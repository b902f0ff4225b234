import Foundation
import Logging
@testable import SiltController
import SiltMetadata
import XCTest

/// The auto balancer's decision function (`AutoBalancer.plan`), its load window, and the
/// controller's side (moves recorded as reassignments, UnregisterBroker).
final class AutoBalancerTests: XCTestCase {
    static let mib = 1_048_576.0

    func config(concurrency: Int = 10, cooldownMs: Int64 = 60_000, thresholdBytes: Double = 1024) -> AutoBalancer.Config {
        var c = AutoBalancer.Config()
        c.enabled = true
        c.executionConcurrency = concurrency
        c.partitionCooldownMs = cooldownMs
        c.networkInThresholdBytes = thresholdBytes
        c.networkOutThresholdBytes = thresholdBytes
        return c
    }

    func load(_ inMiB: Double, _ outMiB: Double = 0) -> PartitionLoad {
        PartitionLoad(bytesIn: inMiB * Self.mib, bytesOut: outMiB * Self.mib, produceRequests: 10, fetchRequests: 0)
    }

    func active(_ ids: Int32...) -> [AutoBalancer.Broker] { ids.map { AutoBalancer.Broker(id: $0, state: .active) } }

    /// Applies decisions as completed moves.
    func moved(_ parts: [AutoBalancer.Partition], _ decisions: [AutoBalancer.Decision], at nowMs: Int64) -> [AutoBalancer.Partition] {
        parts.map { p in
            guard let d = decisions.first(where: { $0.streamId == p.streamId }) else { return p }
            var q = p
            q.broker = d.to
            q.lastMovedMs = nowMs
            return q
        }
    }

    func bytesIn(_ parts: [AutoBalancer.Partition]) -> [Int32: Double] {
        AutoBalancer.brokerLoads(brokers: active(1, 2, 3), partitions: parts).mapValues(\.bytesIn)
    }

    func testEightHotPartitionsOnOneBrokerSpreadOverTwo() {
        let parts = (1...8).map { AutoBalancer.Partition(streamId: UInt64($0), broker: 1, load: load(1)) }
        let d = AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: config(), nowMs: 0)
        XCTAssertEqual(d.count, 4, "\(d)")
        XCTAssertTrue(d.allSatisfy { $0.from == 1 && $0.to == 2 && $0.goal == .networkIn }, "\(d)")
        XCTAssertTrue(d.allSatisfy { $0.reason.contains("outside ±15%") }, "\(d.map(\.reason))")
        let after = moved(parts, d, at: 0)
        XCTAssertEqual(bytesIn(after)[1], 4 * Self.mib)
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2), partitions: after, config: config(), nowMs: 1).count, 0,
                       "balanced: nothing more to do")
    }

    func testConcurrencyCountsMovesInFlight() {
        var parts = (1...8).map { AutoBalancer.Partition(streamId: UInt64($0), broker: 1, load: load(1)) }
        parts[0].target = 2
        let d = AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: config(concurrency: 2), nowMs: 0)
        XCTAssertEqual(d.count, 1, "one move in flight + one new = the limit of 2: \(d)")
        XCTAssertFalse(d.contains { $0.streamId == 1 }, "a moving partition is not planned again")
    }

    func testCooldownKeepsARecentlyMovedPartitionInPlace() {
        let parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(4), lastMovedMs: 1000),
                     AutoBalancer.Partition(streamId: 2, broker: 1, load: load(4), lastMovedMs: 1000)]
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: config(cooldownMs: 60_000), nowMs: 30_000), [])
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: config(cooldownMs: 60_000), nowMs: 61_001).count, 1)
    }

    func testAHotPartitionWiderThanTheBandDoesNotPingPong() {
        // 10 MiB/s on one partition and 1 MiB/s on two: no placement is inside ±15 %, and moving
        // the hot one only makes the other broker the hot one.
        var parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(10)),
                     AutoBalancer.Partition(streamId: 2, broker: 1, load: load(1)),
                     AutoBalancer.Partition(streamId: 3, broker: 2, load: load(1))]
        var total = 0
        for round in 0..<20 {
            let d = AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: config(cooldownMs: 0), nowMs: Int64(round))
            total += d.count
            parts = moved(parts, d, at: Int64(round))
        }
        XCTAssertLessThanOrEqual(total, 1, "at most the small partition moves, once")
        XCTAssertEqual(parts[0].broker, 1, "the hot partition stays")
    }

    func testTwoShortBrokersCloserThanTheBandAreLeftAlone() {
        // Broker 1 carries one partition hotter than the mean: nothing can share it, so brokers 2
        // and 3 are both short of the band for good. They are 0.3 MiB/s apart (8 % of the mean,
        // inside the band's width): moving 0.15 MiB/s between them would only follow the reports'
        // noise, back and forth, one cooldown after another.
        let parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(6)),
                     AutoBalancer.Partition(streamId: 2, broker: 2, load: load(1)),
                     AutoBalancer.Partition(streamId: 3, broker: 2, load: load(1)),
                     AutoBalancer.Partition(streamId: 4, broker: 2, load: load(0.5)),
                     AutoBalancer.Partition(streamId: 5, broker: 3, load: load(1)),
                     AutoBalancer.Partition(streamId: 6, broker: 3, load: load(1)),
                     AutoBalancer.Partition(streamId: 7, broker: 3, load: load(0.5)),
                     AutoBalancer.Partition(streamId: 8, broker: 3, load: load(0.15)),
                     AutoBalancer.Partition(streamId: 9, broker: 3, load: load(0.15))]
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2, 3), partitions: parts, config: config(), nowMs: 0), [])
        // Further apart than the band's width, the same two brokers are evened.
        var apart = parts
        apart[2].broker = 3
        let d = AutoBalancer.plan(brokers: active(1, 2, 3), partitions: apart, config: config(), nowMs: 0)
        XCTAssertTrue(d.contains { $0.from == 3 && $0.to == 2 }, "\(d)")
    }

    func testAMoveForABrokerOutsideTheBandBringsItNearerInThatDirection() {
        // Broker 1 is above the band in bytes out only (8.2 MiB/s, mean 7.1). Moving its small
        // bytes-in-only partition to broker 3 would cut the bytes-in spread a little and do
        // nothing for bytes out; the partition-count goal then moved it back, once a cooldown.
        let parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(0.6, 0)),
                     AutoBalancer.Partition(streamId: 2, broker: 1, load: load(9.6, 8.2)),
                     AutoBalancer.Partition(streamId: 3, broker: 2, load: load(9.6, 6.1)),
                     AutoBalancer.Partition(streamId: 4, broker: 3, load: load(9.3, 7.0))]
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2, 3), partitions: parts, config: config(), nowMs: 0), [])
    }

    func testABrokerAboveTheBandInOneDirectionStillTakesLoadInTheOther() {
        // Broker 3 is short of bytes in (5.4 MiB/s, mean 7.1) and above the band in bytes out
        // (5.6, mean 4.8). A bytes-in-only partition from broker 1 raises nothing of broker 3's
        // above the band: it is moved (refused before, the broker stayed so until the noise of
        // the reports dipped under the band's edge).
        let parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(1.4, 0)),
                     AutoBalancer.Partition(streamId: 2, broker: 1, load: load(6.5, 4.0)),
                     AutoBalancer.Partition(streamId: 3, broker: 2, load: load(8.1, 4.7)),
                     AutoBalancer.Partition(streamId: 4, broker: 3, load: load(5.4, 5.6))]
        let d = AutoBalancer.plan(brokers: active(1, 2, 3), partitions: parts, config: config(), nowMs: 0)
        XCTAssertEqual(d.first.map { [$0.streamId, UInt64($0.from), UInt64($0.to)] }, [1, 1, 3], "\(d)")
    }

    func testAMoveNeverFillsOneDirectionOfABrokerShortInTheOther() {
        // Means: in 3 MiB/s, out 2 MiB/s (band ±15 %). Broker 3 is empty: a move that takes it
        // above the mean in bytes in, adds no bytes out and leaves it short of them is refused
        // (its room in bytes in would be spent, and every partition that carries bytes out would
        // then take it above the band); one that fills both, or raises one direction only up to
        // the mean, is not.
        let parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(4, 0)),
                     AutoBalancer.Partition(streamId: 2, broker: 1, load: load(0.5, 3)),
                     AutoBalancer.Partition(streamId: 3, broker: 2, load: load(4.5, 3))]
        let model = AutoBalancer.Model(brokers: active(1, 2, 3), partitions: parts, config: config())
        func after(_ inMiB: Double, _ outMiB: Double) -> Bool {
            model.fillsOneSideFirst(3, in: [1: 0, 2: 0, 3: inMiB * Self.mib], out: [1: 0, 2: 0, 3: outMiB * Self.mib])
        }
        XCTAssertTrue(after(4, 0), "above the mean in, nothing out, short of the band out")
        XCTAssertTrue(after(0, 2.5), "above the mean out, nothing in, short of the band in")
        XCTAssertFalse(after(3.2, 0.6), "above the mean in, but it fills the short direction too")
        XCTAssertFalse(after(2.9, 0), "in raised, but not past the mean")
        XCTAssertFalse(after(3.2, 1.8), "above the mean in, inside the band out")
        XCTAssertFalse(after(0, 0), "nothing raised")
    }

    func testAnExchangeWhenNoSingleMoveFits() {
        // Broker 1 is heavy in bytes in, broker 2 in bytes out; any single move puts its target
        // above the band, an exchange (1 for 4, or 2 for 3) evens both.
        let parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(2, 0)),
                     AutoBalancer.Partition(streamId: 2, broker: 1, load: load(1, 1)),
                     AutoBalancer.Partition(streamId: 3, broker: 2, load: load(0, 2)),
                     AutoBalancer.Partition(streamId: 4, broker: 2, load: load(1, 1))]
        let d = AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: config(), nowMs: 0)
        XCTAssertEqual(d.count, 2, "\(d)")
        XCTAssertEqual(Set(d.map(\.to)), [1, 2])
        XCTAssertTrue(d[0].reason.contains("exchange"), d[0].reason)
        let after = AutoBalancer.brokerLoads(brokers: active(1, 2), partitions: moved(parts, d, at: 0))
        XCTAssertEqual(after[1]!.bytesIn, after[2]!.bytesIn)
        XCTAssertEqual(after[1]!.bytesOut, after[2]!.bytesOut)
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: config(concurrency: 1), nowMs: 0), [],
                       "an exchange needs room for two moves")
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2), partitions: moved(parts, d, at: 0), config: config(), nowMs: 1), [])
    }

    func testBelowTheUsageThresholdOnlyCountsAreBalanced() {
        let parts = (1...6).map { AutoBalancer.Partition(streamId: UInt64($0), broker: 1, load: load(0.001)) }
        let d = AutoBalancer.plan(brokers: active(1, 2, 3), partitions: parts, config: config(thresholdBytes: Self.mib), nowMs: 0)
        XCTAssertEqual(d.count, 4, "\(d)")
        XCTAssertTrue(d.allSatisfy { $0.goal == .partitionCount }, "\(d)")
        let counts = AutoBalancer.brokerLoads(brokers: active(1, 2, 3), partitions: moved(parts, d, at: 0)).mapValues(\.partitions)
        XCTAssertEqual(counts, [1: 2, 2: 2, 3: 2])
    }

    func testCountMovesNeverTakeABrokerOutOfTheLoadBand() {
        // Broker 1 has one 4 MiB/s partition; broker 2 four of 1 MiB/s: loads are even, counts
        // are not, and any count move would unbalance the load.
        let parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(4))]
            + (2...5).map { AutoBalancer.Partition(streamId: UInt64($0), broker: 2, load: load(1)) }
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: config(), nowMs: 0), [])
    }

    func testMinimumImprovementRefusesSmallGains() {
        // Broker 1 at 1.2 MiB/s, broker 2 at 0.8: outside ±15 %, but the only move (0.2 MiB/s)
        // cuts the spread by 0.4 of the mean... and a 0.5 minimum refuses it.
        let parts = [AutoBalancer.Partition(streamId: 1, broker: 1, load: load(1.0)),
                     AutoBalancer.Partition(streamId: 2, broker: 1, load: load(0.2)),
                     AutoBalancer.Partition(streamId: 3, broker: 2, load: load(0.8))]
        var c = config()
        c.minImprovementRatio = 0.5
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: c, nowMs: 0), [])
        c.minImprovementRatio = 0.05
        XCTAssertEqual(AutoBalancer.plan(brokers: active(1, 2), partitions: parts, config: c, nowMs: 0).map(\.streamId), [2])
    }

    func testDrainingBrokerIsEmptiedAndFencedBrokersAreLeftAlone() {
        let brokers = [AutoBalancer.Broker(id: 1, state: .draining), AutoBalancer.Broker(id: 2, state: .active),
                       AutoBalancer.Broker(id: 3, state: .active), AutoBalancer.Broker(id: 4, state: .fenced)]
        let parts = (1...4).map { AutoBalancer.Partition(streamId: UInt64($0), broker: 1, load: load(1), lastMovedMs: 0) }
            + [AutoBalancer.Partition(streamId: 9, broker: 4, load: load(5))]
        let d = AutoBalancer.plan(brokers: brokers, partitions: parts, config: config(), nowMs: 1)
        XCTAssertEqual(d.filter { $0.goal == .drain }.map(\.streamId), [1, 2, 3, 4], "cooldown does not hold a drain")
        XCTAssertFalse(d.contains { $0.streamId == 9 }, "a fenced broker's partitions wait for it")
        XCTAssertFalse(d.contains { $0.to == 4 || $0.to == 1 }, "nothing goes to a fenced or draining broker")
        let counts = Dictionary(grouping: d, by: \.to).mapValues(\.count)
        XCTAssertEqual(counts, [2: 2, 3: 2], "the drained partitions spread evenly")
    }

    func testLoadWindowAveragesRecentReportsAndForgetsOldOnes() {
        let w = LoadWindow(windowMs: 10_000)
        w.record([(7, load(1))], intervalMs: 2000, nowMs: 1000)
        w.record([(7, load(3))], intervalMs: 2000, nowMs: 3000)
        XCTAssertEqual(w.load(7, nowMs: 3000).bytesIn, 2 * Self.mib, accuracy: 1)
        XCTAssertEqual(w.load(7, nowMs: 12_000).bytesIn, 3 * Self.mib, accuracy: 1, "the first report left the window")
        XCTAssertEqual(w.load(7, nowMs: 20_000), .zero, "no report in the window: idle")
        w.record([(8, PartitionLoad(bytesIn: -1, bytesOut: 0, produceRequests: 0, fetchRequests: 0))], intervalMs: 2000, nowMs: 20_000)
        XCTAssertEqual(w.load(8, nowMs: 20_000), .zero, "a negative rate is refused")
        for i in 0..<(LoadWindow.samplesPerStreamMax + 10) {
            w.record([(9, load(1))], intervalMs: 1, nowMs: 30_000 + Int64(i))
        }
        XCTAssertEqual(w.load(9, nowMs: 30_200).bytesIn, Self.mib, accuracy: 1, "bounded samples still average right")
    }

    // MARK: The controller's side

    func makeController(_ dir: String) throws -> MetadataController {
        var logger = Logger(label: "balancer-test")
        logger.logLevel = .warning
        return try MetadataController(directory: dir, logger: logger) { _ in }
    }

    func testBalancerServiceRecordsMovesFromHeartbeatReportsAndUnregisterNeedsADrainedStoppedBroker() throws {
        let dir = NSTemporaryDirectory() + "silt-balancer-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let controller = try makeController(dir)
        defer { controller.close() }
        let now = MetadataController.wallClockMs()
        func register(_ id: Int32) throws -> Int64 {
            let epoch = try controller.registerBroker(.init(nodeId: id, incarnationId: UUID(), listeners: [
                BrokerEndpoint(name: "PLAINTEXT", host: "b\(id)", port: 9092)], rack: nil), nowMs: now)
            _ = try controller.brokerHeartbeat(nodeId: id, brokerEpoch: epoch, metadataOffset: controller.image.nextOffset,
                                               wantFence: false, wantShutDown: false, nowMs: now)
            return epoch
        }
        let e1 = try register(1)
        let topic = try controller.createTopic(name: "hot", partitions: 8, configs: [:], validateOnly: false)
        let e2 = try register(2)
        XCTAssertTrue(topic.streamIds.allSatisfy { controller.image.partitions[$0]!.replicas == [1] })
        _ = try controller.brokerHeartbeat(nodeId: 1, brokerEpoch: e1, metadataOffset: controller.image.nextOffset, wantFence: false,
                                           wantShutDown: false, loads: topic.streamIds.map { ($0, load(1)) },
                                           reportIntervalMs: 2000, nowMs: now)
        let service = AutoBalancerService(controller: controller, config: config(), logger: Logger(label: "b"), nowMs: { now })
        let started = service.runOnce()
        XCTAssertEqual(started.count, 4)
        XCTAssertEqual(controller.reassignments().count, 4, "the moves are reassignments")
        XCTAssertEqual(Set(controller.reassignments().map(\.to)), [2])
        XCTAssertEqual(service.decisions().map(\.decision), started)
        XCTAssertEqual(service.runOnce(), [], "moves in flight count for their target: nothing more")

        // Scale in: broker 2 is alive, then owns partitions: both refused.
        XCTAssertThrowsError(try controller.unregisterBroker(2)) { XCTAssertTrue("\($0)".contains("alive"), "\($0)") }
        XCTAssertThrowsError(try controller.unregisterBroker(7)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 102)
        }
        for m in controller.reassignments() {
            XCTAssertNoThrow(try controller.reassign([.init(topic: m.topic, partition: m.partition, replicas: nil)])[0].get())
        }
        _ = try controller.brokerHeartbeat(nodeId: 2, brokerEpoch: e2, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: true, nowMs: now)
        XCTAssertTrue(controller.image.brokers[2]!.fenced, "owning nothing, it is fenced at once")
        XCTAssertNoThrow(try controller.unregisterBroker(2))
        XCTAssertNil(controller.image.brokers[2])
        let again = try register(2)
        XCTAssertGreaterThan(again, e2, "a node that registers again never reuses an epoch")
    }
}
