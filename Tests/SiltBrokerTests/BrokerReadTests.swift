import NIOCore
@testable import SiltBroker
import SiltRecords
import XCTest

/// `Broker.scanPartition`: what the group coordinator and producer-state recovery read with.
extension BrokerTests {
    func testScanPartitionVisitsEveryBatchFromAnOffsetToTheHighWatermark() async throws {
        try createTopic("scan")
        for i in 0..<5 { _ = try produce("scan", batch(["a\(i)", "b\(i)"])) }   // offsets 0...9, two per batch
        var seen: [(Int64, Int64)] = []
        let next = try await broker.scanPartition(topic: "scan", partition: 0, from: 3, chunkBytes: 100) { header, bytes in
            XCTAssertEqual(bytes.readableBytes, header.totalSize)
            XCTAssertEqual(header.index, 0)
            seen.append((header.baseOffset, header.lastOffset))
        }
        // The batch holding offset 3 comes first; small chunks still yield whole batches.
        XCTAssertEqual(seen.map(\.0), [2, 4, 6, 8])
        XCTAssertEqual(seen.map(\.1), [3, 5, 7, 9])
        XCTAssertEqual(next, 10)

        var bounded: [Int64] = []
        let stop = try await broker.scanPartition(topic: "scan", partition: 0, from: 0, to: 4) { h, _ in bounded.append(h.baseOffset) }
        XCTAssertEqual(bounded, [0, 2])
        XCTAssertEqual(stop, 4)

        let atEnd = try await broker.scanPartition(topic: "scan", partition: 0, from: 10) { _, _ in XCTFail("no batch past the end") }
        XCTAssertEqual(atEnd, 10)
    }

    func testScanPartitionOfAnUnknownPartitionFails() async throws {
        do {
            try await broker.scanPartition(topic: "nope", partition: 0, from: 0) { _, _ in }
            XCTFail("expected an error")
        } catch let e as Broker.PartitionReadError {
            XCTAssertEqual(e.description, "partition nope-0 does not exist")
        }
    }
}
