import CSupport
import Foundation
import XCTest
@testable import SiltMetrics

/// A memfd for one test; closed at the end.
func makeMemfd(_ test: XCTestCase, name: String = "silt-metrics-test") throws -> Int32 {
    let fd = silt_memfd_create(name, UInt32(SILT_MEMFD_CLOEXEC))
    guard fd >= 0 else { throw MetricsError.system(operation: "memfd_create", errno: -fd) }
    test.addTeardownBlock { close(fd) }
    return fd
}

final class MetricsRegionTests: XCTestCase {
    func testCatalogueFollowsTheRules() {
        XCTAssertEqual(MetricCatalogue.problems(), [])
        // One slot per counter at its raw value, then the histograms, all inside one region.
        XCTAssertEqual(Metric.allCases.map(\.rawValue), Array(0..<Metric.allCases.count))
        // The histograms follow the counters, each after the slots of the one before.
        var next = Metric.allCases.count
        for (i, h) in HistogramMetric.allCases.enumerated() {
            XCTAssertEqual(MetricsLayout.histogramBase[i], next, "\(h)")
            next += MetricsLayout.histogramSlots(bucketCount: h.bucketsSeconds.count)
        }
        XCTAssertEqual(next, MetricsLayout.kafkaBase)
        XCTAssertEqual(next + KafkaMetricsLayout.slotCount, MetricsLayout.slotCount)
        XCTAssertLessThanOrEqual(MetricsLayout.headerBytes + 8 * MetricsLayout.slotCount, MetricsLayout.regionBytes)
        XCTAssertEqual(Metric.objectsUploaded(.stream).descriptor.labels, [.init(name: "kind", value: "stream")])
        XCTAssertEqual(Metric.compactions(.streamSet).name, "silt_compactions_total")
    }

    func testTwoMappingsOfOneMemfdAgree() throws {
        let fd = try makeMemfd(self)
        let a = try MetricsRegion.create(fd: fd)
        let b = try MetricsRegion.attach(fd: fd)
        for m in Metric.allCases { XCTAssertEqual(a.value(m), 0, "\(m)") }

        a.add(.s3PutRequests)
        b.add(.s3PutRequests, 41)
        b.add(.objectsUploaded(.streamSet), 3)
        a.set(.walCapacityBytes, 1 << 30)
        b.set(.walPendingBytes, 100)
        a.subtract(.walPendingBytes, 40)
        b.observe(.uploadLatency, seconds: 0.2)

        for region in [a, b] {
            XCTAssertEqual(region.value(.s3PutRequests), 42)
            XCTAssertEqual(region.value(.objectsUploadedStreamSet), 3)
            XCTAssertEqual(region.value(.objectsUploadedStream), 0)
            XCTAssertEqual(region.value(.walCapacityBytes), 1 << 30)
            XCTAssertEqual(region.value(.walPendingBytes), 60)
            XCTAssertEqual(region.histogram(.uploadLatency).count, 1)
        }
        // A third mapping, attached after the writes, sees them too.
        XCTAssertEqual(try MetricsRegion.attach(fd: fd).value(.s3PutRequests), 42)
    }

    func testConcurrentAddsThroughTwoMappingsAreNotLost() throws {
        let fd = try makeMemfd(self)
        let regions = [try MetricsRegion.create(fd: fd), try MetricsRegion.attach(fd: fd)]
        let threads = 8
        let perThread = 20_000
        DispatchQueue.concurrentPerform(iterations: threads) { i in
            let r = regions[i % 2]
            for _ in 0..<perThread {
                r.add(.blockCacheHits)
                r.observe(.uploadLatency, seconds: 0.001)
            }
        }
        XCTAssertEqual(regions[0].value(.blockCacheHits), UInt64(threads * perThread))
        let h = regions[1].histogram(.uploadLatency)
        XCTAssertEqual(h.count, UInt64(threads * perThread))
        XCTAssertEqual(h.buckets[0].count, UInt64(threads * perThread))
        XCTAssertEqual(h.sumSeconds, Double(threads * perThread) * 0.001, accuracy: 1e-6)
    }

    func testCreateZeroesAnOldRegion() throws {
        let fd = try makeMemfd(self)
        try MetricsRegion.create(fd: fd).add(.s3Errors, 7)
        XCTAssertEqual(try MetricsRegion.create(fd: fd).value(.s3Errors), 0)
    }

    func testAttachRejectsWhatIsNotARegion() throws {
        let empty = try makeMemfd(self)
        XCTAssertThrowsError(try MetricsRegion.attach(fd: empty)) { XCTAssertEqual($0 as? MetricsError, .notInitialized) }

        // The right size but never formatted (the creator died between ftruncate and format).
        let unformatted = try makeMemfd(self)
        XCTAssertEqual(silt_shm_resize(unformatted, UInt64(MetricsLayout.regionBytes)), 0)
        XCTAssertThrowsError(try MetricsRegion.attach(fd: unformatted)) { XCTAssertEqual($0 as? MetricsError, .notInitialized) }

        let small = try makeMemfd(self)
        XCTAssertEqual(silt_shm_resize(small, 64), 0)
        XCTAssertThrowsError(try MetricsRegion.attach(fd: small)) {
            guard case .badLayout = $0 as? MetricsError else { return XCTFail("\($0)") }
        }

        // Another kind of region, and a region from a binary with another catalogue.
        let fd = try makeMemfd(self)
        _ = try MetricsRegion.create(fd: fd)
        XCTAssertEqual(pwriteWord(fd, offset: MetricsLayout.catalogueHashOffset, 12345), 8)
        XCTAssertThrowsError(try MetricsRegion.attach(fd: fd)) {
            guard case .badLayout = $0 as? MetricsError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(pwriteWord(fd, offset: MetricsLayout.magicOffset, 0xdead), 8)
        XCTAssertThrowsError(try MetricsRegion.attach(fd: fd)) { XCTAssertEqual($0 as? MetricsError, .badMagic(found: 0xdead)) }
    }

    func testLocalRegionIsPrivate() {
        let a = MetricsRegion.local()
        let b = MetricsRegion.local()
        a.add(.fetchTailReads, 5)
        XCTAssertEqual(a.value(.fetchTailReads), 5)
        XCTAssertEqual(b.value(.fetchTailReads), 0)
    }

    private func pwriteWord(_ fd: Int32, offset: Int, _ value: UInt64) -> Int {
        var v = value
        return withUnsafeBytes(of: &v) { pwrite(fd, $0.baseAddress!, 8, off_t(offset)) }
    }
}

final class HistogramTests: XCTestCase {
    func testBucketIndexUsesLessOrEqual() {
        let bounds: [Double] = [0.005, 0.01, 1, 60]
        XCTAssertEqual(MetricsRegion.bucketIndex(seconds: 0, bounds: bounds), 0)
        XCTAssertEqual(MetricsRegion.bucketIndex(seconds: -3, bounds: bounds), 0)
        XCTAssertEqual(MetricsRegion.bucketIndex(seconds: 0.005, bounds: bounds), 0, "a value on a bound is in that bucket")
        XCTAssertEqual(MetricsRegion.bucketIndex(seconds: 0.0050001, bounds: bounds), 1)
        XCTAssertEqual(MetricsRegion.bucketIndex(seconds: 1, bounds: bounds), 2)
        XCTAssertEqual(MetricsRegion.bucketIndex(seconds: 60, bounds: bounds), 3)
        XCTAssertEqual(MetricsRegion.bucketIndex(seconds: 60.001, bounds: bounds), 4, "+Inf")
        XCTAssertEqual(MetricsRegion.bucketIndex(seconds: .infinity, bounds: bounds), 4)
    }

    func testMicrosecondsRoundAndClamp() {
        XCTAssertEqual(MetricsRegion.microseconds(1.5), 1_500_000)
        XCTAssertEqual(MetricsRegion.microseconds(0.0000004), 0)
        XCTAssertEqual(MetricsRegion.microseconds(0.0000006), 1)
        XCTAssertEqual(MetricsRegion.microseconds(-1), 0)
        XCTAssertEqual(MetricsRegion.microseconds(.infinity), 1_000_000_000_000_000)
    }

    func testSnapshotIsCumulative() {
        let r = MetricsRegion.local()
        for s in [0.001, 0.005, 0.02, 0.02, 0.7, 3, 120] { r.observe(.uploadLatency, seconds: s) }
        let h = r.histogram(.uploadLatency)
        XCTAssertEqual(h.buckets.map(\.le), HistogramDescriptor.latencyBucketsSeconds)
        let expected: [Double: UInt64] = [0.005: 2, 0.01: 2, 0.025: 4, 0.05: 4, 0.1: 4, 0.25: 4, 0.5: 4,
                                          1: 5, 2.5: 5, 5: 6, 10: 6, 30: 6, 60: 6]
        for b in h.buckets { XCTAssertEqual(b.count, expected[b.le], "le=\(b.le)") }
        XCTAssertEqual(h.count, 7, "+Inf holds the 120 s observation")
        XCTAssertEqual(h.sumSeconds, 123.746, accuracy: 1e-9)
    }

    func testObserveSinceAnInstant() {
        let r = MetricsRegion.local()
        r.observe(.uploadLatency, since: ContinuousClock.now - .milliseconds(30))
        let h = r.histogram(.uploadLatency)
        XCTAssertEqual(h.count, 1)
        XCTAssertGreaterThanOrEqual(h.sumSeconds, 0.03)
        XCTAssertEqual(h.buckets.first { $0.le == 0.025 }?.count, 0)
    }
}
