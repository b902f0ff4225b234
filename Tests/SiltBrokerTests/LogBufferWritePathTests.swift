import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import SiltBroker
import SiltController
import SiltNet
import SiltNode
import SiltProtocol
import SiltRecords
import SiltRing
import SiltStorage
import XCTest

/// The broker's WAL write path against a real shared-memory log buffer, with a stand-in WAL
/// writer thread in place of the WAL process: acks wait for the durable LSN, the high
/// watermark follows it, and tail fetches are served from the buffer.
final class LogBufferWritePathTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!
    var dir: String!
    var logs: LogManager!
    var broker: Broker!
    var path: LogBufferWritePath!
    var ring: LogRing!
    var durable: ControlRing!
    var trim: ControlRing!
    var fakeWAL: FakeWAL!
    var fds: [Int32] = []
    let logger = Logger(label: "test")

    /// Stands in for the WAL process: releases frames as "durable" while not paused,
    /// reports them on the durable ring, and records trims.
    final class FakeWAL: @unchecked Sendable {
        let ring: LogRing
        let durable: ControlRing
        let trim: ControlRing
        let lock = NSLock()
        var paused = false
        var stopped = false
        var trims: [UInt64] = []
        var framesSeen = 0
        init(ring: LogRing, durable: ControlRing, trim: ControlRing) {
            self.ring = ring; self.durable = durable; self.trim = trim
        }
        func run() {
            let wal = ring.reader(0)
            let uploader = ring.reader(1)
            while !lock.withLock({ stopped }) {
                if let m = trim.tryPop() { lock.withLock { trims.append(m.value) } }
                if lock.withLock({ paused }) { Thread.sleep(forTimeInterval: 0.005); continue }
                guard wal.waitForData(after: wal.position, timeout: .milliseconds(20)) else { continue }
                if lock.withLock({ paused }) { continue }
                let batch = try! wal.peek()
                lock.withLock { framesSeen += batch.frames.count }
                wal.advance(to: batch.endLSN)
                _ = durable.tryPush(ControlMessage(kind: ControlMessage.kindDurable, value: batch.endLSN))
                let up = try! uploader.peek()
                uploader.advance(to: up.endLSN)
            }
        }
    }

    override func setUpWithError() throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-wp-\(UUID())").path
        let ringFd = try SharedMemory.createMemfd(name: "t-ring")
        let durableFd = try SharedMemory.createMemfd(name: "t-durable")
        let trimFd = try SharedMemory.createMemfd(name: "t-trim")
        fds = [ringFd, durableFd, trimFd]
        ring = try LogRing.create(fd: ringFd, capacityBytes: 1 << 20)
        durable = try ControlRing.create(fd: durableFd, slotCount: 64)
        trim = try ControlRing.create(fd: trimFd, slotCount: 64)
        fakeWAL = FakeWAL(ring: ring, durable: durable, trim: trim)
        Thread { [fakeWAL] in fakeWAL!.run() }.start()

        let config = try ServerConfig(properties: ["log.dirs": dir])
        let controller = try MetadataController(directory: dir + "/__cluster_metadata", logger: logger,
                                                validateConfigs: TopicConfig.validate)
        let service = ControllerService(controller: controller, config: config, logger: logger)
        var storage = StorageConfig(logDir: dir)
        storage.externalDurability = true
        logs = try LogManager(config: storage, logger: logger)
        path = LogBufferWritePath(ring: ring, durableNotices: durable, trimCommands: trim, logs: logs,
                                  trimIntervalMs: 50, logger: logger)
        path.start()
        broker = Broker(config: config, clusterId: "c", controllerChannel:
                            LocalControllerChannel(service: service, eventLoop: group.next(), logger: logger),
                        logs: logs, writePath: path, logger: logger)
        try broker.start(on: group.next())
    }

    override func tearDownWithError() throws {
        fakeWAL.lock.withLock { fakeWAL.stopped = true }
        path.stop()
        broker.stop()
        logs.shutdown()
        try group.syncShutdownGracefully()
        for fd in fds { close(fd) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    func send<R: KafkaRequest>(_ request: R, version: Int16) throws -> EventLoopFuture<R.Response?> {
        var frame = frameRequest(request, version: version, correlationId: 9, clientId: "t")
        frame.moveReaderIndex(forwardBy: 4)
        let ctx = RequestContext(eventLoop: group.next(), listenerName: "PLAINTEXT", logger: logger)
        return try broker.handle(frame: frame, context: ctx).flatMapThrowing { out in
            guard var out else { return nil }
            out.moveReaderIndex(forwardBy: 4)
            _ = try ResponseHeader(from: &out, version: responseHeaderVersion(apiKey: R.apiKey, apiVersion: version))
            return try R.Response(from: &out, version: version)
        }
    }

    func produceRequest(_ topic: String, values: [String]) -> ProduceRequest {
        var b = RecordBatchBuilder()
        for v in values { b.append(key: nil as String?, value: v, timestamp: Int64(Date().timeIntervalSince1970 * 1000)) }
        var req = ProduceRequest()
        req.acks = -1
        req.timeoutMs = 5000
        var t = ProduceRequest.TopicProduceData()
        t.name = topic
        var p = ProduceRequest.PartitionProduceData()
        p.records = b.build()
        t.partitionData = [p]
        req.topicData = [t]
        return req
    }

    func fetch(_ topic: String, offset: Int64) throws -> FetchResponse.PartitionData {
        var req = FetchRequest()
        req.maxBytes = 1 << 20
        var t = FetchRequest.FetchTopic()
        t.topic = topic
        var p = FetchRequest.FetchPartition()
        p.fetchOffset = offset
        p.partitionMaxBytes = 1 << 20
        t.partitions = [p]
        req.topics = [t]
        return try send(req, version: 12).wait()!.responses[0].partitions[0]
    }

    func testAckWaitsForTheDurableLSNAndTailIsServedFromTheBuffer() throws {
        var create = CreateTopicsRequest()
        var ct = CreateTopicsRequest.CreatableTopic()
        ct.name = "wal"
        ct.numPartitions = 1
        ct.replicationFactor = -1
        create.topics = [ct]
        XCTAssertEqual(try send(create, version: 7).wait()?.topics[0].errorCode, 0)

        // While the WAL holds back, the produce is not answered and consumers see nothing.
        fakeWAL.lock.withLock { fakeWAL.paused = true }
        let pending = try send(produceRequest("wal", values: ["a", "b", "c"]), version: 9)
        let answered = NIOLockedValueBox(false)
        pending.whenComplete { _ in answered.withLockedValue { $0 = true } }
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertFalse(answered.withLockedValue { $0 }, "acked before the WAL made it durable")
        XCTAssertEqual(try fetch("wal", offset: 0).highWatermark, 0)

        fakeWAL.lock.withLock { fakeWAL.paused = false }
        let resp = try XCTUnwrap(try pending.wait())
        XCTAssertEqual(resp.responses[0].partitionResponses[0].errorCode, 0)
        XCTAssertEqual(resp.responses[0].partitionResponses[0].baseOffset, 0)

        XCTAssertEqual(try send(produceRequest("wal", values: ["d"]), version: 9).wait()?
            .responses[0].partitionResponses[0].baseOffset, 3)
        let before = path.tailReads.count
        let data = try fetch("wal", offset: 1)   // mid-batch: the whole first batch comes back
        XCTAssertEqual(data.highWatermark, 4)
        let headers = try parseBatchHeaders(data.records!)
        XCTAssertEqual(headers.map(\.baseOffset), [0, 3])
        XCTAssertTrue(headers.allSatisfy { $0.isCRCValid(in: data.records!) })
        XCTAssertEqual(path.tailReads.count, before + 1, "the tail fetch did not come from the log buffer")
        // The same bytes are in the segment files.
        let fromFile = try logs.partition(topic: "wal", partition: 0)!.read(from: 0, maxBytes: 1 << 20, minOneBatch: true)
        XCTAssertEqual(fromFile, data.records)

        // Trims follow the durable LSN once the segments are synced.
        let deadline = Date().addingTimeInterval(5)
        while fakeWAL.lock.withLock({ fakeWAL.trims.isEmpty }) && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let lastTrim = try XCTUnwrap(fakeWAL.lock.withLock { fakeWAL.trims.last })
        XCTAssertLessThanOrEqual(lastTrim, ring.readPosition(0))
        XCTAssertGreaterThan(lastTrim, 0)
    }

    func testManyProducesAreAckedInOrderAcrossWraps() throws {
        var create = CreateTopicsRequest()
        var ct = CreateTopicsRequest.CreatableTopic()
        ct.name = "many"
        ct.numPartitions = 1
        ct.replicationFactor = -1
        create.topics = [ct]
        XCTAssertEqual(try send(create, version: 7).wait()?.topics[0].errorCode, 0)
        let value = String(repeating: "v", count: 4000)
        var futures: [EventLoopFuture<ProduceResponse?>] = []
        for _ in 0..<600 {   // ~2.4 MB through a 1 MiB ring: wraps and back-pressure
            futures.append(try send(produceRequest("many", values: [value]), version: 9))
        }
        let offsets = try futures.map { try $0.wait()!.responses[0].partitionResponses[0].baseOffset }
        XCTAssertEqual(offsets, (0..<600).map(Int64.init))
        XCTAssertEqual(try fetch("many", offset: 599).highWatermark, 600)
    }
}

/// WAL replay: the broker re-appends what its segment files lost, at the same offsets.
final class WALReplayTests: XCTestCase {
    func testReplayAppendsMissingFramesSkipsPresentOnesAndRefusesGaps() throws {
        let logger = Logger(label: "test")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-replay-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try ServerConfig(properties: ["log.dirs": dir])
        let controller = try MetadataController(directory: dir + "/__cluster_metadata", logger: logger,
                                                validateConfigs: TopicConfig.validate)
        let topic = try controller.createTopic(name: "r", partitions: 1, configs: [:], validateOnly: false)
        var storage = StorageConfig(logDir: dir)
        storage.externalDurability = true
        let logs = try LogManager(config: storage, logger: logger)
        defer { logs.shutdown() }
        let broker = Broker(config: config, clusterId: "c", controllerChannel: LocalControllerChannel(
            service: ControllerService(controller: controller, config: config, logger: logger),
            eventLoop: group.next(), logger: logger), logs: logs, writePath: LocalFsyncWritePath(), logger: logger)
        try broker.start(on: group.next())
        defer { broker.stop() }

        func frame(base: Int64, values: [String], stream: UInt64) -> [UInt8] {
            var b = RecordBatchBuilder(baseOffset: base, partitionLeaderEpoch: 0)
            for v in values { b.append(key: nil as String?, value: v, timestamp: 1) }
            let batch = b.build()
            var out = [UInt8](repeating: 0, count: WALFrameCodec.headerBytes)
            out.withUnsafeMutableBytes {
                WALFrameCodec.encodeHeader(streamId: stream, baseOffset: base, count: UInt32(values.count),
                                           payloadLength: batch.readableBytes, into: $0)
            }
            return out + Array(batch.readableBytesView)
        }
        let stream = topic.streamIds[0]
        let tail = frame(base: 0, values: ["a", "b"], stream: stream) + frame(base: 2, values: ["c"], stream: stream)
            + frame(base: 0, values: ["x"], stream: 9999)   // a deleted topic's stream
        var result = try tail.withUnsafeBytes { try broker.replayWAL($0) }
        XCTAssertEqual(result.replayed, 2)
        XCTAssertEqual(result.skipped, 1)
        let log = try XCTUnwrap(logs.partition(topic: "r", partition: 0))
        XCTAssertEqual(log.logEndOffset, 3)
        XCTAssertEqual(log.highWatermark, 3)
        XCTAssertEqual(try parseBatchHeaders(log.read(from: 0, maxBytes: 1 << 20, minOneBatch: true)).map(\.baseOffset), [0, 2])

        // Replaying the same tail again changes nothing.
        result = try tail.withUnsafeBytes { try broker.replayWAL($0) }
        XCTAssertEqual(result.replayed, 0)
        XCTAssertEqual(log.logEndOffset, 3)

        // A frame past the log end means lost data: refuse, loudly.
        let gap = frame(base: 10, values: ["z"], stream: stream)
        XCTAssertThrowsError(try gap.withUnsafeBytes { try broker.replayWAL($0) })
        XCTAssertEqual(log.logEndOffset, 3)

        // Garbage in the hand-off region is refused, not trusted.
        let garbage = [UInt8](repeating: 0xFF, count: 40)
        XCTAssertThrowsError(try garbage.withUnsafeBytes { try broker.replayWAL($0) })
    }
}
