import Foundation
import SiltProtocol
import XCTest
@testable import SiltGroups

/// Kafka 4.0's group configs (`consumer.session.timeout.ms`, `consumer.heartbeat.interval.ms`
/// of one group) as the KIP-848 coordinator applies them: read at every heartbeat and tick,
/// so a change acts without a restart, and only for the group it names.
final class ConsumerGroupConfigTests: XCTestCase {
    /// The groups' configs as the broker's metadata copy would answer them.
    final class Overrides: @unchecked Sendable {
        private let lock = NSLock()
        private var byGroup: [String: (sessionTimeoutMs: Int32, heartbeatIntervalMs: Int32)] = [:]
        func set(_ group: String, session: Int32, heartbeat: Int32) { lock.withLock { byGroup[group] = (session, heartbeat) } }
        func get(_ group: String) -> (sessionTimeoutMs: Int32, heartbeatIntervalMs: Int32) {
            lock.withLock { byGroup[group] ?? (45_000, 5_000) }   // the broker's defaults
        }
    }

    func testGroupTimeoutsOverrideTheBrokersForThatGroupOnly() {
        let overrides = Overrides()
        let h = ConsumerHarness(groupTimeouts: { overrides.get($0) })
        let a = ConsumerClient("a"), other = ConsumerClient("o", group: "other")
        XCTAssertEqual(a.beat(h).heartbeatIntervalMs, 5_000)
        overrides.set("cg", session: 50_000, heartbeat: 7_000)
        XCTAssertEqual(a.beat(h).heartbeatIntervalMs, 7_000, "the group's interval, told at the next heartbeat")
        XCTAssertEqual(other.beat(h).heartbeatIntervalMs, 5_000, "another group keeps the broker's")

        // Both silent for 47 s: past the broker's 45 s session, within the group's 50 s.
        h.advance(47_000)
        XCTAssertEqual(h.describe().members.map(\.memberId), ["a"])
        XCTAssertEqual(h.describe("other").members.count, 0)
        h.advance(3_000)   // 50 s
        XCTAssertEqual(h.describe().members.count, 0)
        XCTAssertEqual(a.beat(h).error, GroupErrorCode.unknownMemberId)
    }
}
