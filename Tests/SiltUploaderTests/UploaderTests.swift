import Foundation
import SiltController
import SiltMetadata
import SiltMetrics
import SiltObjectStore
import SiltRing
import SiltStreams
import SiltUploader
import SiltWAL
import XCTest

/// The uploader on a real log buffer and WAL hand-off, committing through the controller's
/// listener on loopback (the role's path), into a file:// store.
final class UploaderTests: UploaderTestCase {
    func testCommitErrorsMapByKafkaErrorCode() {
        XCTAssertNil(UploaderCommitError.from(code: 0, message: "ignored"))
        guard case .fenced(let m) = UploaderCommitError.from(code: 77, message: nil) else { return XCTFail("77 is fenced") }
        XCTAssertEqual(m, "stale node epoch")
        for code: Int16 in [1, 74] {
            guard case .stale(let m) = UploaderCommitError.from(code: code, message: "why") else { return XCTFail("\(code) is stale") }
            XCTAssertEqual(m, "why")
        }
        guard case .refused(let code, let m) = UploaderCommitError.from(code: 42, message: nil) else { return XCTFail("42") }
        XCTAssertEqual(code, 42)
        XCTAssertEqual(m, "")
    }

    /// Open, prepare and commit on the wire; the controller's refusals come back typed.
    func testControlCommitsOverTheWireAndMapsRefusals() async throws {
        let topic = try controller.createTopic(name: "t", partitions: 1, configs: [:], validateOnly: false)
        let stream = topic.streamIds[0]
        let control = control()
        XCTAssertEqual(control.nodeEpoch, -1)
        let states = try await control.open()
        XCTAssertGreaterThanOrEqual(control.nodeEpoch, 0)
        XCTAssertEqual(states[stream], UploaderStreamState(epoch: 0, startOffset: 0, endOffset: 0))

        let id = try await control.prepare(count: 2, ttlMs: 60_000)
        let object = NewObject(objectId: id, size: 10, kind: .streamSet,
                               ranges: [StreamRange(streamId: stream, startOffset: 0, endOffset: 5)])
        try await control.commit(objects: [object], epochs: [stream: 0], compacted: [])
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 5)
        XCTAssertEqual(controller.image.objects[id]?.size, 10)

        // A range that leaves a gap: our view of the stream is stale (OFFSET_OUT_OF_RANGE).
        let gap = NewObject(objectId: id + 1, size: 10, kind: .streamSet,
                            ranges: [StreamRange(streamId: stream, startOffset: 7, endOffset: 9)])
        await assertThrows(try await control.commit(objects: [gap], epochs: [stream: 0], compacted: [])) {
            guard case UploaderCommitError.stale = $0 else { return XCTFail("\($0) is not stale") }
        }
        // An object id never prepared: refused as it is (INVALID_REQUEST).
        let unprepared = NewObject(objectId: id + 100, size: 10, kind: .streamSet,
                                   ranges: [StreamRange(streamId: stream, startOffset: 5, endOffset: 6)])
        await assertThrows(try await control.commit(objects: [unprepared], epochs: [stream: 0], compacted: [])) {
            guard case UploaderCommitError.refused(let code, _) = $0 else { return XCTFail("\($0) is not refused") }
            XCTAssertEqual(code, 42)
        }

        // A newer incarnation of this node's uploader fences the older one.
        let newer = self.control()
        _ = try await newer.open()
        XCTAssertGreaterThan(newer.nodeEpoch, control.nodeEpoch)
        await assertThrows(try await control.prepare(count: 1, ttlMs: 60_000)) {
            guard case UploaderCommitError.fenced = $0 else { return XCTFail("\($0) is not fenced") }
        }
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 5)
    }

    /// Durable frames become objects, their ranges are committed without a gap, the log
    /// buffer is freed and the WAL is told to trim; frames not yet durable stay where they are;
    /// stopping uploads what is durable first.
    func testUploadsTheDurableBufferThenFreesItAndTrimsTheWAL() async throws {
        let topic = try controller.createTopic(name: "up", partitions: 2, configs: [:], validateOnly: false)
        let (a, b) = (topic.streamIds[0], topic.streamIds[1])
        let uploader = uploader(control: control(), config: uploaderConfig(thresholdBytes: 16 << 10))
        try await uploader.openWithRetry(timeout: .seconds(10))
        let stop = StopBox()
        let running = Task { await uploader.run(shouldStop: { stop.isSet }) }

        var next: [UInt64: Int64] = [a: 0, b: 0]
        let pad = String(repeating: "x", count: 200)
        for i in 0..<300 {   // ~150 KB against a 16 KiB upload threshold: several objects
            let s = i % 3 == 0 ? b : a
            try appendDurable(stream: s, base: next[s]!, count: 2, value: pad)
            next[s]! += 2
        }
        await eventually("every durable offset is committed") {
            controller.image.streamStates[a]?.endOffset == next[a] && controller.image.streamStates[b]?.endOffset == next[b]
        }
        let image = controller.image
        for s in [a, b] {
            let refs = image.objectRanges(streamId: s, from: 0)
            XCTAssertEqual(refs.first?.startOffset, 0)
            XCTAssertEqual(refs.last?.endOffset, next[s])
            for (x, y) in zip(refs, refs.dropFirst()) { XCTAssertEqual(x.endOffset, y.startOffset, "gap between objects") }
        }
        XCTAssertGreaterThan(image.committedObjects.count, 1, "the threshold splits the uploads")
        await eventually("the uploader counts what the controller committed") {
            uploader.objectsCommitted == image.committedObjects.count
        }
        let keys = try await objectKeys()
        XCTAssertEqual(keys, Set(image.committedObjects.map { ObjectKeys.object(clusterId: "c", objectId: $0.objectId) }))
        await eventually("the buffer is freed") { ring.readPosition(1) == ring.writePosition }
        var trims: [UInt64] = []
        while let m = trim.tryPop() {
            XCTAssertEqual(m.kind, ControlMessage.kindTrim)
            trims.append(m.value)
        }
        XCTAssertEqual(trims, trims.sorted(), "trims move forward")
        XCTAssertEqual(trims.last, ring.writePosition, "the WAL may trim everything uploaded")

        // Written but not durable: never uploaded, the buffer keeps it.
        let payload = batch(base: next[a]!, count: 1)
        let written = try payload.withUnsafeBytes {
            try ring.append(streamId: a, streamEpoch: 0, baseOffset: next[a]!, count: 1, payload: $0, timeout: .seconds(5))
        }
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(ring.readPosition(1), written.startLSN)
        XCTAssertEqual(controller.image.streamStates[a]?.endOffset, next[a])

        // Durable, then a stop right away: the stop uploads it before returning.
        ring.reader(0).advance(to: ring.writePosition)
        stop.set()
        await running.value
        XCTAssertEqual(controller.image.streamStates[a]?.endOffset, next[a]! + 1)
        XCTAssertEqual(ring.readPosition(1), written.endLSN)
    }

    /// After a node restart the WAL hands over its tail: open() uploads the frames of live
    /// streams (not those of deleted topics) and trims the WAL past them; the next
    /// incarnation skips what is committed and fences this one.
    func testRecoveredWALFramesAreUploadedOnceOnOpen() async throws {
        let topic = try controller.createTopic(name: "rec", partitions: 1, configs: [:], validateOnly: false)
        let stream = topic.streamIds[0]
        func frame(base: Int64, count: Int, stream: UInt64) -> [UInt8] {
            let payload = batch(base: base, count: count)
            var out = [UInt8](repeating: 0, count: WALFrameCodec.headerBytes)
            out.withUnsafeMutableBytes {
                WALFrameCodec.encodeHeader(streamId: stream, streamEpoch: 0, baseOffset: base, count: UInt32(count),
                                           payloadLength: payload.count, into: $0)
            }
            return out + payload
        }
        let tail = frame(base: 0, count: 2, stream: stream) + frame(base: 2, count: 1, stream: stream)
            + frame(base: 0, count: 1, stream: 9999)
        walState.publishRecovery(startLSN: 100, endLSN: 100 + UInt64(tail.count), frames: tail)

        let first = uploader(control: control())
        try await first.open()
        XCTAssertEqual(first.objectsCommitted, 1)
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 3)
        XCTAssertEqual(controller.image.committedObjects.flatMap(\.ranges).map(\.streamId), [stream], "the deleted stream is dropped")
        XCTAssertEqual(trim.tryPop()?.value, walState.recoveredEndLSN)

        let second = uploader(control: control())
        try await second.open()
        XCTAssertEqual(second.objectsCommitted, 0, "what is committed is not uploaded again")
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 3)

        // The first incarnation is fenced: its loop stops by itself at its next upload.
        try appendDurable(stream: stream, base: 3, count: 1)
        let stop = StopBox()
        let fenced = Task { await first.run(shouldStop: { stop.isSet }) }
        let deadline = ContinuousClock.now + .seconds(20)
        await fenced.value
        XCTAssertLessThan(ContinuousClock.now, deadline)
        XCTAssertEqual(first.objectsCommitted, 1)
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 3)
    }
}

/// A flag the uploader's loop polls.
final class StopBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Asserts that `body` throws, and checks the error.
func assertThrows<T>(_ body: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line,
                     _ check: (Error) -> Void) async {
    do {
        _ = try await body()
        XCTFail("no error thrown", file: file, line: line)
    } catch {
        check(error)
    }
}

extension UploaderTests {
    /// Frames carry the stream epoch they were appended in. Frames of an epoch the stream has
    /// left (a zombie's, or what a broker left before it reopened the stream) are dropped,
    /// never committed; the rest commit in their own epoch. An upload request on the ring
    /// makes the uploader upload at once instead of at its interval.
    func testSupersededEpochFramesAreDroppedAndRequestsUploadAtOnce() async throws {
        let brokerEpoch = try controller.registerBroker(
            .init(nodeId: 0, incarnationId: UUID(), listeners: [.init(name: "PLAINTEXT", host: "127.0.0.1", port: 9092)], rack: nil))
        _ = try controller.brokerHeartbeat(nodeId: 0, brokerEpoch: brokerEpoch, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: false)
        let topic = try controller.createTopic(name: "ep", partitions: 1, configs: [:], validateOnly: false)
        let stream = topic.streamIds[0]
        XCTAssertEqual(try controller.openStreams(nodeId: 0, brokerEpoch: brokerEpoch, streamIds: [stream])[stream]!.get().streamEpoch, 1)

        var config = uploaderConfig(thresholdBytes: 8 << 20)
        config.storage.uploadIntervalMs = 600_000
        let uploader = uploader(control: control(), config: config)
        try await uploader.openWithRetry(timeout: .seconds(10))
        let stop = StopBox()
        let running = Task { await uploader.run(shouldStop: { stop.isSet }) }

        try appendDurable(stream: stream, epoch: 0, base: 0, count: 2, value: "zombie")
        try appendDurable(stream: stream, epoch: 1, base: 0, count: 3, value: "live")
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 0, "nothing is due before the interval")

        ring.requestUpload(through: ring.writePosition)
        await eventually("the request is uploaded") { controller.image.streamStates[stream]?.endOffset == 3 }
        let image = controller.image
        XCTAssertEqual(image.streamStates[stream]?.epoch, 1)
        let refs = image.objectRanges(streamId: stream, from: 0)
        XCTAssertEqual(refs.map { [$0.startOffset, $0.endOffset] }, [[0, 3]])
        let object = try XCTUnwrap(image.committedObjects.first { $0.objectId == refs[0].objectId })
        let reader = ObjectReader(store: store, cache: BlockCache(capacityBytes: 1 << 20), logger: logger)
        let bytes = try await reader.read(objectId: object.objectId, key: ObjectKeys.object(clusterId: "c", objectId: object.objectId),
                                          objectSize: object.size, streamId: stream, from: 0, maxBytes: 1 << 20)
        XCTAssertEqual(bytes, batch(base: 0, count: 3, value: "live"), "the object holds the live epoch's batch only")
        stop.set()
        await running.value
    }
}

extension UploaderTests {
    /// A stream asked for on its own is uploaded at once in an object of its own while the
    /// rest waits for its interval; the buffer does not move until the whole round, which
    /// then skips what was committed.
    func testAStreamUploadRequestCommitsThatStreamAlone() async throws {
        let topic = try controller.createTopic(name: "one", partitions: 2, configs: [:], validateOnly: false)
        let (a, b) = (topic.streamIds[0], topic.streamIds[1])
        var config = uploaderConfig(thresholdBytes: 8 << 20)
        config.storage.uploadIntervalMs = 600_000
        let uploader = uploader(control: control(), config: config)
        try await uploader.openWithRetry(timeout: .seconds(10))
        let stop = StopBox()
        let running = Task { await uploader.run(shouldStop: { stop.isSet }) }
        try appendDurable(stream: a, base: 0, count: 2)
        try appendDurable(stream: b, base: 0, count: 3)
        try appendDurable(stream: a, base: 2, count: 1)
        let start = ring.readPosition(1)

        XCTAssertTrue(ring.requestStreamUpload(a))
        await eventually("stream a is committed") { controller.image.streamStates[a]?.endOffset == 3 }
        await eventually("the request is taken") { ring.requestedStreamUploads.isEmpty }
        XCTAssertEqual(controller.image.streamStates[b]?.endOffset, 0, "the other stream waits")
        XCTAssertEqual(ring.readPosition(1), start, "the buffer is not freed by a stream upload")
        XCTAssertEqual(controller.image.objectRanges(streamId: a, from: 0).map { [$0.startOffset, $0.endOffset] }, [[0, 3]])

        ring.requestUpload(through: ring.writePosition)
        await eventually("the whole round commits the rest") { controller.image.streamStates[b]?.endOffset == 3 }
        await eventually("the buffer is freed") { ring.readPosition(1) == ring.writePosition }
        XCTAssertEqual(controller.image.objectRanges(streamId: a, from: 0).map { [$0.startOffset, $0.endOffset] }, [[0, 3]],
                       "stream a's frames were not committed twice")
        stop.set()
        await running.value
    }
}

extension UploaderTests {
    /// A dead broker's WAL taken over by another node over the wire: its uploader is fenced
    /// (the zombie's commits are refused), every acknowledged frame in its WAL is committed
    /// in its epoch (a superseded one is not), and its partitions move to the live broker.
    func testWALTakeoverCommitsTheDeadNodesTailAndMovesItsPartitions() async throws {
        let path = dir + "/node3.wal"
        try await takeOverNode3(write: { records in
            let (wal, _) = try WAL.open(path: path, capacityBytes: 4 << 20, nodeId: 3, logger: self.logger)
            var lsn = wal.headLSN
            for bytes in records {
                try wal.submit(bytes: bytes, startLSN: lsn)
                lsn += UInt64(bytes.count)
                _ = try wal.reap(wait: true)
            }
            try wal.close()
        }, takeover: { metrics in WALTakeover(nodeId: 4, paths: [3: path], objectWALStore: nil, client: self.client, store: self.store,
                                   clusterId: "c", config: self.uploaderConfig(), fencedGraceMs: 3000, metrics: metrics,
                                   logger: self.logger) },
           seenUnfencedFirst: false)
    }

    /// The same in S3 WAL mode: node 3's records are objects in the WAL bucket, which node 4
    /// (whose own WAL is there too) reads without a takeover path; node 3 was seen unfenced,
    /// then fenced (its session expired), so node 4, the lowest live broker, takes it at once.
    func testS3WALTakeoverNeedsNoPathAndStartsOnceTheSessionExpired() async throws {
        let walStore = try LocalObjectStore(rootDirectory: dir + "/wal-bucket")
        try await takeOverNode3(write: { records in
            let settings = ObjectWAL.Settings(batchIntervalMs: 0, maxBytesInBatch: 64 << 10, maxUnflushedBytes: 1 << 20,
                                              maxInflightUploadCount: 2, maxRecordPayloadBytes: 128 << 10)
            let (wal, _) = try ObjectWAL.open(store: walStore, clusterId: "c", nodeId: 3, settings: settings, logger: self.logger)
            var lsn = wal.headLSN
            for bytes in records {
                try bytes.withUnsafeBytes { _ = try wal.submit(payloads: [$0], startLSN: lsn, endLSN: lsn + UInt64(bytes.count)) }
                lsn += UInt64(bytes.count)
                while wal.durableLSN < lsn { _ = try wal.reap(wait: true) }
            }
            try wal.close()
        }, takeover: { metrics in WALTakeover(nodeId: 4, paths: [:], objectWALStore: walStore, client: self.client, store: self.store,
                                   clusterId: "c", config: self.uploaderConfig(), fencedGraceMs: 3000, metrics: metrics,
                                   logger: self.logger) },
           seenUnfencedFirst: true)
    }

    /// Broker 3 leads stream `tk` in epoch 1 and dies; its WAL (written by `write`) holds a frame
    /// of epoch 0 (superseded) and two of epoch 1 (acknowledged). Node 4's takeover must commit
    /// those two, move the partition to itself, and fence node 3's uploader.
    private func takeOverNode3(write: ([[UInt8]]) throws -> Void, takeover makeTakeover: (MetricsRegion) -> WALTakeover,
                               seenUnfencedFirst: Bool) async throws {
        func join(_ id: Int32) throws -> Int64 {
            let e = try controller.registerBroker(.init(nodeId: id, incarnationId: UUID(),
                                                        listeners: [.init(name: "PLAINTEXT", host: "127.0.0.\(id + 1)", port: 9092)],
                                                        rack: nil))
            _ = try controller.brokerHeartbeat(nodeId: id, brokerEpoch: e, metadataOffset: controller.image.nextOffset,
                                               wantFence: false, wantShutDown: false)
            return e
        }
        let deadEpoch = try join(3)
        let topic = try controller.createTopic(name: "tk", partitions: 1, configs: [:], validateOnly: false)
        let stream = topic.streamIds[0]
        _ = try join(4)
        XCTAssertEqual(try controller.openStreams(nodeId: 3, brokerEpoch: deadEpoch, streamIds: [stream])[stream]!.get().streamEpoch, 1)
        let zombie = control(node: 3)
        _ = try await zombie.open()

        // Node 3's WAL: frames of its stream in epoch 1 (acknowledged), one in epoch 0 (superseded).
        func record(_ frames: [(epoch: Int64, base: Int64, count: Int)]) -> [UInt8] {
            var bytes: [UInt8] = []
            for f in frames {
                let payload = batch(base: f.base, count: f.count, value: "e\(f.epoch)")
                var header = [UInt8](repeating: 0, count: WALFrameCodec.headerBytes)
                header.withUnsafeMutableBytes {
                    WALFrameCodec.encodeHeader(streamId: stream, streamEpoch: f.epoch, baseOffset: f.base, count: UInt32(f.count),
                                               payloadLength: payload.count, into: $0)
                }
                bytes += header + payload
            }
            return bytes
        }
        try write([record([(0, 0, 9)]), record([(1, 0, 2), (1, 2, 3)])])

        let metrics = MetricsRegion.local()
        let takeover = makeTakeover(metrics)
        let seen = ContinuousClock.now
        if seenUnfencedFirst {
            XCTAssertEqual(takeover.candidates(controller.image, now: seen), [], "alive")
        }
        // Broker 3 dies: fenced by its session.
        _ = try controller.brokerHeartbeat(nodeId: 3, brokerEpoch: deadEpoch, metadataOffset: controller.image.nextOffset,
                                           wantFence: true, wantShutDown: false)
        if seenUnfencedFirst {
            XCTAssertEqual(takeover.candidates(controller.image, now: seen), [3], "its session expired: at once")
        } else {
            XCTAssertEqual(takeover.candidates(controller.image, now: seen), [], "just fenced: perhaps a restart")
            XCTAssertEqual(takeover.candidates(controller.image, now: seen + .milliseconds(2999)), [])
            XCTAssertEqual(takeover.candidates(controller.image, now: seen + .milliseconds(3000)), [3], "fenced for the grace")
        }
        let moved = try await takeover.takeOver(3)
        XCTAssertEqual(moved, 1)
        XCTAssertEqual(metrics.value(.walTakeovers), 1)
        let image = controller.image
        XCTAssertEqual(image.streamStates[stream]?.endOffset, 5, "every acknowledged frame is committed")
        XCTAssertEqual(image.objectRanges(streamId: stream, from: 0).map { [$0.startOffset, $0.endOffset] }, [[0, 5]])
        let p = try XCTUnwrap(image.partitions[stream])
        XCTAssertEqual([p.leader, p.replicas[0]], [4, 4])
        XCTAssertEqual(p.streamEpoch, 2)
        XCTAssertEqual(takeover.candidates(image), [], "nothing left to take over")
        // The zombie's uploader is fenced.
        await assertThrows(try await zombie.prepare(count: 1, ttlMs: 60_000)) {
            guard case UploaderCommitError.fenced = $0 else { return XCTFail("\($0) is not fenced") }
        }
    }
}
