import NIOCore
@testable import SiltBroker
import XCTest

/// The broker's load report: rates over the period since the previous report, every led
/// partition named (idle ones at zero), served-but-no-longer-led ones left out, a new period
/// after each report.
final class PartitionLoadMeterTests: XCTestCase {
    func testRatesCoverThePeriodAndEveryLedPartition() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let meter = PartitionLoadMeter(now: t0)
        meter.produced(1, bytes: 4000)
        meter.produced(1, bytes: 6000)
        meter.fetched(1, bytes: 20_000)
        meter.fetched(9, bytes: 500)   // served, then moved away
        let r = meter.report(led: [1, 2], now: t0 + .seconds(2))
        XCTAssertEqual(r.intervalMs, 2000)
        XCTAssertEqual(r.loads.map(\.streamId), [1, 2])
        XCTAssertEqual(r.loads[0].bytesInPerSec, 5000)
        XCTAssertEqual(r.loads[0].bytesOutPerSec, 10_000)
        XCTAssertEqual(r.loads[0].produceRequestsPerSec, 1)
        XCTAssertEqual(r.loads[0].fetchRequestsPerSec, 0.5)
        XCTAssertEqual(r.loads[1].bytesInPerSec, 0, "an idle partition is reported idle")
        let next = meter.report(led: [1], now: t0 + .seconds(3))
        XCTAssertEqual(next.intervalMs, 1000)
        XCTAssertEqual(next.loads[0].bytesInPerSec, 0, "a report starts a new period")
    }

    func testAReportNamesTheBusiestPartitionsUpToItsBound() {
        let t0 = NIODeadline.uptimeNanoseconds(0)
        let meter = PartitionLoadMeter(now: t0)
        let led = (0..<UInt64(PartitionLoadMeter.reportPartitionsMax + 5))
        meter.produced(led.upperBound - 1, bytes: 100)
        let r = meter.report(led: Array(led), now: t0 + .seconds(1))
        XCTAssertEqual(r.loads.count, PartitionLoadMeter.reportPartitionsMax)
        XCTAssertEqual(r.loads.first?.streamId, Int64(led.upperBound - 1), "the busiest first")
    }
}
