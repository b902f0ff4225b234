import Foundation
import SiltBroker
import SiltController
import SiltMetadata
import SiltObjectStore
import SiltStreams
import SiltUploader
import XCTest

// The role follows the metadata log with the broker's cache; so do these tests.
extension MetadataCache: MetadataFollower {}

/// The compactor's catalog and the compaction loop, on the metadata image followed from the
/// controller over loopback, as the uploader role follows it.
final class CompactionTests: UploaderTestCase {
    func testConfigDerivesTheCompactionBounds() {
        var c = uploaderConfig(thresholdBytes: 1 << 20)
        XCTAssertEqual(c.compactionBytesMax, 64 << 20, "at least 64 MiB")
        c.storage.uploadThresholdBytes = 32 << 20
        XCTAssertEqual(c.compactionBytesMax, 128 << 20, "4 uploads' worth")
        c.storage.uploadThresholdBytes = 128 << 20
        XCTAssertEqual(c.compactionBytesMax, 256 << 20, "at most 256 MiB")
        c.storage.streamObjectSplitBytes = 3 << 20
        XCTAssertEqual(c.compaction.streamSetBytesMax, 256 << 20)
        XCTAssertEqual(c.compaction.streamSplitBytes, 3 << 20)
        XCTAssertEqual(c.compaction.partBytes, c.storage.objectPartBytes)
        c.cleanerStreamBytesMax = 7 << 20
        XCTAssertEqual(c.logCleaner.streamBytesMax, 7 << 20)
        XCTAssertEqual(c.logCleaner.bandwidthBytesPerSecond, Int64(c.storage.networkBaselineBytesPerSecond))
    }

    private func join(_ id: Int32) throws {
        let now = MetadataController.wallClockMs()
        let epoch = try controller.registerBroker(
            .init(nodeId: id, incarnationId: UUID(), listeners: [BrokerEndpoint(name: "PLAINTEXT", host: "h\(id)", port: 9092)],
                  rack: nil), nowMs: now)
        _ = try controller.brokerHeartbeat(nodeId: id, brokerEpoch: epoch, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: false, nowMs: now)
    }

    /// Each node's catalog lists only the objects of the streams assigned to it, so no
    /// stream is compacted on two nodes.
    func testCatalogListsOnlyTheObjectsThisNodeCompacts() async throws {
        try join(0)
        try join(1)
        let topic = try controller.createTopic(name: "k", partitions: 2, configs: [:], validateOnly: false)
        let image = controller.image
        var streamOf: [Int32: UInt64] = [:]
        for s in topic.streamIds { streamOf[image.partitions[s]!.replicas[0]] = s }
        XCTAssertEqual(Set(streamOf.keys), [0, 1], "one partition on each broker")

        var objectOf: [Int32: UInt64] = [:]
        for node: Int32 in [0, 1] {
            let control = control(node: node)
            _ = try await control.open()
            let id = try await control.prepare(count: 1, ttlMs: 60_000)
            try await control.commit(objects: [NewObject(objectId: id, size: 10 + Int64(node), kind: .streamSet,
                                                         ranges: [StreamRange(streamId: streamOf[node]!, startOffset: 0, endOffset: 4)])],
                                     epochs: [:], compacted: [])
            objectOf[node] = id
        }

        let cache = MetadataCache(channel: client, clusterId: "c", logger: logger)
        defer { cache.stop() }
        for node: Int32 in [0, 1] {
            let catalog = MetadataCatalog(cache: cache, control: control(node: node), clusterId: "c", loop: group.next())
            try await catalog.catchUp()
            let live = try await catalog.liveObjects()
            XCTAssertEqual(live.map(\.objectId), [objectOf[node]!], "node \(node)")
            XCTAssertEqual(live.first?.key, ObjectKeys.object(clusterId: "c", objectId: objectOf[node]!))
            XCTAssertEqual(live.first?.size, 10 + Int64(node))
            XCTAssertEqual(live.first?.kind, .streamSet)
            XCTAssertEqual(live.first?.ranges, [StreamRange(streamId: streamOf[node]!, startOffset: 0, endOffset: 4)])
            let start = await catalog.streamStartOffset(streamOf[node]!)
            XCTAssertEqual(start, 0)
            let deleted = await catalog.streamStartOffset(424_242)
            XCTAssertNil(deleted)
        }
    }

    /// Small stream set objects are merged by the loop on its period, through the catalog,
    /// and the stream's ranges still cover it without a gap.
    func testTheLoopMergesSmallStreamSetObjects() async throws {
        let topic = try controller.createTopic(name: "small", partitions: 1, configs: [:], validateOnly: false)
        let stream = topic.streamIds[0]
        let control = control()
        var config = uploaderConfig(thresholdBytes: 2 << 10)
        config.storage.streamSetCompactionIntervalMs = 100
        config.cleanerEnabled = false
        let uploader = uploader(control: control, config: config)
        try await uploader.open()
        let stopUploads = StopBox()
        let uploading = Task { await uploader.run(shouldStop: { stopUploads.isSet }) }
        let pad = String(repeating: "s", count: 1000)
        for i in 0..<12 {
            try appendDurable(stream: stream, base: Int64(i) * 2, count: 2, value: pad)
            try await Task.sleep(for: .milliseconds(60))   // past the upload interval: one object each, or nearly
        }
        await eventually("everything is uploaded") { controller.image.streamStates[stream]?.endOffset == 24 }
        stopUploads.set()
        await uploading.value
        let before = controller.image.committedObjects.count
        XCTAssertGreaterThanOrEqual(before, 3)

        let cache = MetadataCache(channel: client, clusterId: "c", logger: logger)
        defer { cache.stop() }
        let loop = CompactionLoop(store: store, control: control, cache: cache, clusterId: "c", loop: group.next(), config: config,
                                  topicCleanerSettings: { _, _ in
                                      TopicCleanerSettings(compact: false, deleteRetentionMs: 0, minCleanableDirtyRatio: 0.5,
                                                           minCompactionLagMs: 0)
                                  },
                                  metrics: .local(), logger: logger)
        let stop = StopBox()
        let compacting = Task { await loop.run(shouldStop: { stop.isSet }) }
        await eventually("the small objects are merged into one") { controller.image.committedObjects.count == 1 }
        stop.set()
        await compacting.value
        let refs = controller.image.objectRanges(streamId: stream, from: 0)
        XCTAssertEqual(refs.first?.startOffset, 0)
        XCTAssertEqual(refs.last?.endOffset, 24)
        for (x, y) in zip(refs, refs.dropFirst()) { XCTAssertEqual(x.endOffset, y.startOffset, "gap between objects") }
    }

    /// The log cleaner's input: every stream of a topic whose policy has `compact`, with the
    /// topic's settings, in stream id order; streams without state (deleted) are left out.
    func testCleanableStreamsAreTheCompactTopicsStreams() throws {
        let compacted = try controller.createTopic(name: "compacted", partitions: 2, configs: ["cleanup.policy": "compact"],
                                                   validateOnly: false)
        _ = try controller.createTopic(name: "plain", partitions: 2, configs: [:], validateOnly: false)
        let both = try controller.createTopic(name: "both", partitions: 1,
                                              configs: ["cleanup.policy": "compact,delete", "delete.retention.ms": "5"],
                                              validateOnly: false)
        let image = controller.image
        let streams = CompactionLoop.cleanableStreams(image: image) { topic in
            let policy = (topic.configs["cleanup.policy"] ?? "delete").split(separator: ",")
            return TopicCleanerSettings(compact: policy.contains("compact"),
                                        deleteRetentionMs: Int64(topic.configs["delete.retention.ms"] ?? "") ?? 86_400_000,
                                        minCleanableDirtyRatio: 0.25, minCompactionLagMs: 7)
        }
        XCTAssertEqual(streams.map(\.streamId), (compacted.streamIds + both.streamIds).sorted())
        for s in streams {
            XCTAssertEqual(s.deleteRetentionMs, both.streamIds.contains(s.streamId) ? 5 : 86_400_000)
            XCTAssertEqual(s.minCleanableDirtyRatio, 0.25)
            XCTAssertEqual(s.minCompactionLagMs, 7)
        }
    }
}
