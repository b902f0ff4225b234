// Fetches from objects across the gaps the log cleaner leaves: an offset inside a removed
// batch, even one at the end of an object's range, reads from the next batch, in the next
// object if need be (Kafka's semantics). The image comes from a real MetadataController.

import Foundation
import Logging
import NIOCore
@testable import SiltBroker
import SiltController
import SiltObjectStore
import SiltRecords
import SiltStreams
import XCTest

final class ObjectStreamReaderGapTests: XCTestCase {
    var dir = ""
    override func tearDown() { if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) } }

    func batch(_ base: Int64, keys: [String]) -> [UInt8] {
        var b = RecordBatchBuilder(baseOffset: base, baseTimestamp: 1_000)
        for k in keys { b.append(key: k, value: "v", timestamp: 1_000) }
        return Array(b.build().readableBytesView)
    }

    func testAnOffsetInATrailingGapReadsTheNextObject() async throws {
        dir = NSTemporaryDirectory() + "silt-gaps-\(UUID().uuidString)"
        let logger = Logger(label: "t")
        let store = try LocalObjectStore(rootDirectory: dir + "/objects")
        let controller = try MetadataController(directory: dir + "/meta", logger: logger) { _ in }
        let topic = try controller.createTopic(name: "t", partitions: 1, configs: [:], validateOnly: false)
        let stream = topic.streamIds[0]
        let (epoch, _) = try controller.openUploader(nodeId: 1)
        let first = try controller.prepareObjects(nodeId: 1, nodeEpoch: epoch, count: 2, ttlMs: 60_000)

        // Object A claims [0, 10) but its batches end at 4 (5..<10 cleaned away); object B holds [10, 12).
        let a = StreamSetObjectBuilder(blockBytesTarget: 1 << 20)
        let bytesA = batch(0, keys: ["a", "b"]) + batch(2, keys: ["c", "d", "e"])
        bytesA.withUnsafeBytes { a.add(streamId: stream, baseOffset: 0, endOffset: 10, payload: $0) }
        let objA = a.finish(splitBytes: 0).streamObjects[0]
        let b = StreamSetObjectBuilder(blockBytesTarget: 1 << 20)
        batch(10, keys: ["f", "g"]).withUnsafeBytes { b.add(streamId: stream, baseOffset: 10, endOffset: 12, payload: $0) }
        let objB = b.finish(splitBytes: 0).streamObjects[0]
        var commits: [MetadataController.CommitObject] = []
        for (i, o) in [objA, objB].enumerated() {
            let id = first + UInt64(i)
            _ = try await store.put(ObjectKeys.object(clusterId: "c", objectId: id), o.bytes, ifNoneMatch: false)
            commits.append(.init(objectId: id, size: Int64(o.bytes.count), kind: o.kind, ranges: o.ranges.map {
                .init(streamId: $0.streamId, streamEpoch: 0, startOffset: $0.startOffset, endOffset: $0.endOffset)
            }))
        }
        try controller.commitObjects(nodeId: 1, nodeEpoch: epoch, objects: commits, compactedObjectIds: [])
        let image = controller.image

        let reader = ObjectStreamReader(store: store, clusterId: "c", cacheBytes: 1 << 20, metrics: .local(), logger: logger)
        func firstBatches(from offset: Int64, maxBytes: Int = 1 << 20) async throws -> [Int64] {
            let buf = try await reader.read(streamId: stream, from: offset, maxBytes: maxBytes, minOneBatch: true, image: image)
            return try parseBatchHeaders(buf).map(\.baseOffset)
        }
        let fromZero = try await firstBatches(from: 0)
        XCTAssertEqual(fromZero, [0, 2], "a fetch stops where object A's data ends; the client asks again from 5")
        for offset in Int64(5)..<10 {
            let got = try await firstBatches(from: offset)
            XCTAssertEqual(got, [10], "fetch at \(offset), inside the gap at the end of object A")
        }
        let atFour = try await firstBatches(from: 4)
        XCTAssertEqual(atFour, [2], "4 is the last offset of the batch at 2")
        let past = try await firstBatches(from: 12)
        XCTAssertEqual(past, [], "nothing committed at 12 yet")
    }
}
