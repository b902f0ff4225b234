import Foundation
import SiltObjectStore
import XCTest
@testable import SiltMetrics

final class MeteredObjectStoreTests: XCTestCase {
    private func makeStore() throws -> (MeteredObjectStore, MetricsRegion) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-metrics-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let region = MetricsRegion.local()
        return (MeteredObjectStore(try LocalObjectStore(rootDirectory: dir), metrics: region), region)
    }

    func testCountsRequestsAndBytes() async throws {
        let (store, m) = try makeStore()
        XCTAssertTrue(store.description.hasPrefix("file://"))
        let body = [UInt8](repeating: 7, count: 1000)
        _ = try await store.put("a/one", body, ifNoneMatch: false)
        _ = try await store.put("a/two", [1, 2, 3], ifNoneMatch: true)
        XCTAssertEqual(m.value(.s3PutRequests), 2)
        XCTAssertEqual(m.value(.s3PutBytes), 1003)

        let whole = try await store.get("a/one", range: nil)
        let slice = try await store.get("a/one", range: 10...19)
        let info = try await store.head("a/two")
        XCTAssertEqual(whole, body)
        XCTAssertEqual(slice.count, 10)
        XCTAssertEqual(info?.size, 3)
        XCTAssertEqual(m.value(.s3GetRequests), 3)
        XCTAssertEqual(m.value(.s3GetBytes), 1010)

        let page = try await store.list(prefix: "a/", delimiter: nil, continuationToken: nil, maxKeys: 10)
        XCTAssertEqual(page.objects.count, 2)
        XCTAssertEqual(m.value(.s3ListRequests), 1)

        try await store.delete("a/one")
        _ = try await store.deleteObjects(["a/two", "a/absent"])
        XCTAssertEqual(m.value(.s3DeleteRequests), 2)
        XCTAssertEqual(m.value(.s3Errors), 0)
    }

    func testErrorsAreCountedAndRethrown() async throws {
        let (store, m) = try makeStore()
        do {
            _ = try await store.get("missing", range: nil)
            XCTFail("get of a missing key succeeded")
        } catch let e as ObjectStoreError {
            guard case .noSuchKey = e else { return XCTFail("\(e)") }
        }
        _ = try await store.put("k", [1], ifNoneMatch: true)
        do {
            _ = try await store.put("k", [1, 2], ifNoneMatch: true)
            XCTFail("a second ifNoneMatch put succeeded")
        } catch let e as ObjectStoreError {
            guard case .preconditionFailed = e else { return XCTFail("\(e)") }
        }
        XCTAssertEqual(m.value(.s3GetRequests), 1)
        XCTAssertEqual(m.value(.s3GetBytes), 0)
        XCTAssertEqual(m.value(.s3PutRequests), 2)
        XCTAssertEqual(m.value(.s3PutBytes), 1, "a failed put sent no counted bytes")
        XCTAssertEqual(m.value(.s3Errors), 2)
    }

    func testMultipartIsPutClass() async throws {
        let (store, m) = try makeStore()
        let part = [UInt8](repeating: 1, count: Int(multipartMinimumPartBytes))
        _ = try await store.put("src", [9, 9, 9, 9], ifNoneMatch: false)
        let id = try await store.createMultipartUpload("big")
        let e1 = try await store.uploadPart("big", uploadId: id, partNumber: 1, body: part)
        let e2 = try await store.uploadPartCopy("big", uploadId: id, partNumber: 2, sourceKey: "src", sourceRange: nil)
        _ = try await store.completeMultipartUpload("big", uploadId: id,
                                                    parts: [CompletedPart(partNumber: 1, etag: e1), CompletedPart(partNumber: 2, etag: e2)])
        XCTAssertEqual(m.value(.s3PutRequests), 5, "put + create + part + copy + complete")
        XCTAssertEqual(m.value(.s3PutBytes), UInt64(part.count) + 4, "a copy sends no body")
        let other = try await store.createMultipartUpload("aborted")
        try await store.abortMultipartUpload("aborted", uploadId: other)
        XCTAssertEqual(m.value(.s3PutRequests), 6)
        XCTAssertEqual(m.value(.s3DeleteRequests), 1)
        let big = try await store.head("big")
        XCTAssertEqual(big?.size, Int64(part.count) + 4)
    }

    func testDeleteObjectsCountsOneRequestPerBatch() async throws {
        let (store, m) = try makeStore()
        _ = try await store.deleteObjects([])
        XCTAssertEqual(m.value(.s3DeleteRequests), 0)
        _ = try await store.deleteObjects((0..<2001).map { "k\($0)" })
        XCTAssertEqual(m.value(.s3DeleteRequests), 3)
    }
}
