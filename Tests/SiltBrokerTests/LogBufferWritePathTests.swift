import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import SiltBroker
import SiltConfig
import SiltController
import SiltMetadata
import SiltNet
import SiltProtocol
import SiltRecords
import SiltMetrics
import SiltObjectStore
import SiltRing
import SiltStorage
import SiltStreams
import SiltUploader
import SiltWAL
import XCTest

/// The broker's WAL write path against a real shared-memory log buffer, with a stand-in WAL
/// writer thread in place of the WAL process and a real uploader over a file:// object
/// store: acks wait for the durable LSN, the high watermark follows it, tail fetches are
/// served from the buffer, and older ones from the objects the uploader committed.
final class LogBufferWritePathTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!
    var dir: String!
    var logs: StreamLogManager!
    var controller: MetadataController!
    var store: LocalObjectStore!
    var uploader: Uploader?
    var uploaderTask: Task<Void, Never>?
    let uploaderStop = NIOLockedValueBox(false)
    var broker: Broker!
    var path: LogBufferWritePath!
    var ring: LogRing!
    var durable: ControlRing!
    var trim: ControlRing!
    var fakeWAL: FakeWAL!
    var fds: [Int32] = []
    let logger = Logger(label: "test")

    /// A fixture standing in for the WAL writer: releases frames as "durable" while not
    /// paused, reports them on the durable ring, and records trims. The tests here control
    /// it (pause it, let it free the uploader's reader); the real `WALWriter` runs under
    /// `BrokerTests` (`NodeFixture`) and in the `wal` role.
    final class FakeWAL: @unchecked Sendable {
        let ring: LogRing
        let durable: ControlRing
        let trim: ControlRing
        let lock = NSLock()
        var paused = false
        var stopped = false
        /// Also consume as the uploader (reader 1) would: for tests without an uploader.
        var releaseUploaderReader = false
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
                if lock.withLock({ releaseUploaderReader }) {
                    let up = try! uploader.peek()
                    uploader.advance(to: up.endLSN)
                }
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
        controller = try MetadataController(directory: dir + "/__cluster_metadata", logger: logger, quorum: .single(clusterId: "c"),
                                            validateConfigs: TopicConfig.validate)
        let service = ControllerService(controller: controller, config: config, logger: logger)
        logs = StreamLogManager(maxBatchBytes: 1 << 20, logger: logger)
        store = try LocalObjectStore(rootDirectory: dir + "/objects")
        // The parked-produce timeout test asks for a short bound; every other test has the default.
        let appendWaitMaxMs = name.contains("TimesOut") ? 500 : LogBufferWritePath.appendWaitMaxMsDefault
        path = LogBufferWritePath(ring: ring, durableNotices: durable, logger: logger, appendWaitMaxMs: appendWaitMaxMs)
        path.start()
        broker = Broker(config: config, clusterId: "c", controllerChannel:
                            LocalControllerChannel(service: service, eventLoop: group.next(), logger: logger),
                        logs: logs, writePath: path,
                        objectReader: ObjectStreamReader(store: store, clusterId: "c", cacheBytes: 4 << 20,
                                                         metrics: .local(), logger: logger),
                        logger: logger)
        try broker.start(on: group.next())
        try broker.openAssignedPartitions(timeout: .seconds(10))
    }

    /// Runs a real uploader on the log buffer (the stand-in WAL stops releasing reader 1).
    func startUploader(thresholdBytes: Int = 64 << 10, intervalMs: Int = 50, walState: WALState? = nil) async throws -> Uploader {
        fakeWAL.lock.withLock { fakeWAL.releaseUploaderReader = false }
        let config = UploaderConfig(storage: ObjectStorageConfig(uploadThresholdBytes: thresholdBytes, uploadIntervalMs: intervalMs, blockCacheBytes: 1 << 20,
                                         objectBlockBytes: 32 << 10, objectPartBytes: 5 << 20, streamObjectSplitBytes: 8 << 20,
                                         streamSetCompactionIntervalMs: 60_000, streamObjectCompactionIntervalMs: 60_000,
                                         networkBaselineBytesPerSecond: 1 << 30, uploadParallelism: 2, prepareTTLMs: 60_000,
                                         janitorIntervalMs: 1000))
        let stateFd = try SharedMemory.createMemfd(name: "t-state")
        fds.append(stateFd)
        let state = try walState ?? WALState.create(fd: stateFd, tailBytesMax: 1 << 20)
        let u = Uploader(ring: ring, walState: state, trimCommands: trim, store: store,
                         control: LocalUploaderControl(controller: controller, nodeId: 0), clusterId: "c", config: config,
                         metrics: .local(), logger: logger)
        try await u.open()
        let stop = uploaderStop
        uploaderTask = Task { await u.run(shouldStop: { stop.withLockedValue { $0 } }) }
        uploader = u
        return u
    }

    override func tearDownWithError() throws {
        uploaderStop.withLockedValue { $0 = true }
        fakeWAL.lock.withLock { fakeWAL.stopped = true }
        path.stop()
        broker.stop()
        controller.close()   // before the loops its long-polls are parked on
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
    }

    func testManyProducesAreAckedInOrderAcrossWraps() throws {
        var create = CreateTopicsRequest()
        var ct = CreateTopicsRequest.CreatableTopic()
        ct.name = "many"
        ct.numPartitions = 1
        ct.replicationFactor = -1
        create.topics = [ct]
        XCTAssertEqual(try send(create, version: 7).wait()?.topics[0].errorCode, 0)
        fakeWAL.lock.withLock { fakeWAL.releaseUploaderReader = true }   // no uploader here: free the space
        let value = String(repeating: "v", count: 4000)
        var futures: [EventLoopFuture<ProduceResponse?>] = []
        for _ in 0..<600 {   // ~2.4 MB through a 1 MiB ring: wraps and back-pressure
            futures.append(try send(produceRequest("many", values: [value]), version: 9))
        }
        let offsets = try futures.map { try $0.wait()!.responses[0].partitionResponses[0].baseOffset }
        XCTAssertEqual(offsets, (0..<600).map(Int64.init))
        XCTAssertEqual(try fetch("many", offset: 599).highWatermark, 600)
    }

    /// A broker served over TCP by one event loop (the fixture's one-thread group), with three
    /// connections: `filler` fills the log buffer while the WAL holds back, `producer` sends the
    /// produce that finds no room, `other` is another connection on the same loop. (Answers on
    /// one connection go out in request order, so each waits only for its own.)
    struct Served {
        let server: KafkaServer
        let clients: MultiThreadedEventLoopGroup
        let filler: KafkaClient
        let producer: KafkaClient
        let other: KafkaClient
        func close() throws {
            filler.close()
            producer.close()
            other.close()
            server.stop()
            try clients.syncShutdownGracefully()
        }
    }

    func serveOverTCP() throws -> Served {
        let server = KafkaServer(group: group, service: broker, frameBytesMax: 8 << 20, logger: logger)
        try server.start(endpoints: [.init(name: "PLAINTEXT", host: "127.0.0.1", port: 0)])
        let port = try XCTUnwrap(server.boundPorts.first)
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        return Served(server: server, clients: clients,
                      filler: KafkaClient(group: clients, host: "127.0.0.1", port: port, clientId: "filler", logger: logger),
                      producer: KafkaClient(group: clients, host: "127.0.0.1", port: port, clientId: "producer", logger: logger),
                      other: KafkaClient(group: clients, host: "127.0.0.1", port: port, clientId: "other", logger: logger))
    }

    /// With the WAL paused and no reader freeing the 1 MiB log buffer, sends six 200 KiB
    /// produces (a frame holds at most a quarter of the buffer): five fit, the sixth is
    /// parked. Returns them once the sixth is parked.
    func fillTheLogBufferUntilAProduceIsParked(_ served: Served, topic: String) throws -> [EventLoopFuture<ProduceResponse>] {
        _ = try createTopic(topic, partitions: 1)
        fakeWAL.lock.withLock { fakeWAL.paused = true }
        let value = String(repeating: "x", count: 200 << 10)
        var produces: [EventLoopFuture<ProduceResponse>] = []
        for _ in 0..<5 {
            produces.append(served.filler.send(produceRequest(topic, values: [value]), version: 9, timeout: .seconds(60)))
        }
        var deadline = ContinuousClock.now + .seconds(10)
        while ring.writePosition < 5 * (200 << 10) && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
        XCTAssertEqual(path.parkedCount, 0, "five produces should fit")
        produces.append(served.producer.send(produceRequest(topic, values: [value]), version: 9, timeout: .seconds(60)))
        deadline = ContinuousClock.now + .seconds(10)
        while path.parkedCount == 0 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.005) }
        XCTAssertEqual(path.parkedCount, 1, "the sixth produce was not parked")
        XCTAssertLessThan(ring.freeBytes, 200 << 10)
        return produces
    }

    func testAProduceWaitingForLogBufferRoomIsParkedWhileItsEventLoopServesOtherConnections() throws {
        let served = try serveOverTCP()
        defer { try? served.close() }
        let produces = try fillTheLogBufferUntilAProduceIsParked(served, topic: "full")

        // The event loop that parked the produce answers another connection meanwhile (a
        // blocked loop would answer nothing for the bound's 30 s).
        let started = ContinuousClock.now
        var versionsRequest = ApiVersionsRequest()
        versionsRequest.clientSoftwareName = "silt-tests"
        versionsRequest.clientSoftwareVersion = "1"
        let versions = try served.other.send(versionsRequest, version: 3, timeout: .seconds(2)).wait()
        XCTAssertEqual(versions.errorCode, 0)
        var metadataRequest = MetadataRequest()
        metadataRequest.topics = nil   // all topics
        let meta = try served.other.send(metadataRequest, version: 12, timeout: .seconds(2)).wait()
        XCTAssertTrue(meta.topics.contains { $0.name == "full" })
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1))
        XCTAssertEqual(path.parkedCount, 1, "the produce left the queue without room")

        // Room frees: the parked produce is appended after the others, and all are acked.
        fakeWAL.lock.withLock {
            fakeWAL.releaseUploaderReader = true
            fakeWAL.paused = false
        }
        let answers = try produces.map { try $0.wait().responses[0].partitionResponses[0] }
        XCTAssertEqual(answers.map(\.errorCode), [0, 0, 0, 0, 0, 0], "\(answers.map(\.errorMessage))")
        XCTAssertEqual(answers.map(\.baseOffset), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(path.parkedCount, 0)
        XCTAssertEqual(try fetch("full", offset: 5).highWatermark, 6)
    }

    func testAParkedProduceTimesOutWithRequestTimedOutAfterTheBound() throws {
        XCTAssertEqual(path.appendWaitMaxMs, 500)
        let served = try serveOverTCP()
        defer { try? served.close() }
        let produces = try fillTheLogBufferUntilAProduceIsParked(served, topic: "stuck")
        let parkedAt = ContinuousClock.now

        let timedOut = try produces[5].wait().responses[0].partitionResponses[0]
        let waited = ContinuousClock.now - parkedAt
        XCTAssertEqual(timedOut.errorCode, ErrorCode.requestTimedOut)
        XCTAssertEqual(timedOut.baseOffset, -1)
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(350))   // parked ≤ 150 ms before `parkedAt`
        XCTAssertLessThan(waited, .seconds(5))
        XCTAssertEqual(path.parkedCount, 0)

        // The five that fit are acked once the WAL goes on; nothing took the failed one's offset.
        fakeWAL.lock.withLock {
            fakeWAL.releaseUploaderReader = true
            fakeWAL.paused = false
        }
        let answers = try produces[0..<5].map { try $0.wait().responses[0].partitionResponses[0] }
        XCTAssertEqual(answers.map(\.baseOffset), [0, 1, 2, 3, 4])
        let next = try XCTUnwrap(try send(produceRequest("stuck", values: ["after"]), version: 9).wait())
        XCTAssertEqual(next.responses[0].partitionResponses[0].baseOffset, 5)
    }

    func testStoppingThePathFailsTheProducesStillParked() throws {
        _ = try createTopic("stopping", partitions: 1)
        // The WAL keeps up, but nothing uploads: acks flow while the log buffer fills.
        let value = String(repeating: "s", count: 200 << 10)
        let fitting = try (0..<5).map { _ in try send(produceRequest("stopping", values: [value]), version: 9) }
        XCTAssertEqual(try fitting.map { try $0.wait()!.responses[0].partitionResponses[0].baseOffset }, [0, 1, 2, 3, 4])
        let parked = try send(produceRequest("stopping", values: [value]), version: 9)
        XCTAssertEqual(path.parkedCount, 1)

        let stoppedAt = ContinuousClock.now
        path.stop()
        let answer = try XCTUnwrap(try parked.wait()).responses[0].partitionResponses[0]
        XCTAssertEqual(answer.errorCode, ErrorCode.requestTimedOut)
        XCTAssertLessThan(ContinuousClock.now - stoppedAt, .seconds(2), "a stop waits out at most one 100 ms futex wait")
        XCTAssertEqual(path.parkedCount, 0)
    }

    func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = NIOLockedValueBox<Result<T, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let v = try await body()
                box.withLockedValue { $0 = .success(v) }
            } catch {
                box.withLockedValue { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        return try box.withLockedValue { $0! }.get()
    }

    func createTopic(_ name: String, partitions: Int32) throws -> TopicInfo {
        var create = CreateTopicsRequest()
        var ct = CreateTopicsRequest.CreatableTopic()
        ct.name = name
        ct.numPartitions = partitions
        ct.replicationFactor = -1
        create.topics = [ct]
        XCTAssertEqual(try send(create, version: 7).wait()?.topics[0].errorCode, 0)
        return try XCTUnwrap(controller.image.topic(named: name))
    }

    /// Every value of partition 0 of `topic` from `offset` to `end`, fetch by fetch.
    func readValues(_ topic: String, from offset: Int64, to end: Int64) throws -> [String] {
        var values: [String] = []
        var next = offset
        let deadline = Date().addingTimeInterval(30)
        while next < end && Date() < deadline {
            let data = try fetch(topic, offset: next)
            XCTAssertEqual(data.errorCode, 0)
            guard let records = data.records, records.readableBytes > 0 else { continue }
            for h in try parseBatchHeaders(records) {
                XCTAssertTrue(h.isCRCValid(in: records), "batch at \(h.baseOffset) fails its CRC")
                var reader = try RecordReader(batch: records, header: h)
                var o = h.baseOffset
                while let r = try reader.next() {
                    if o >= next { values.append(String(buffer: r.value!)); next = o + 1 }
                    o += 1
                }
            }
        }
        return values
    }

    func waitUntil(_ what: String, timeout: TimeInterval = 20, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            if Date() > deadline { XCTFail("timed out waiting until \(what)"); return }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    func testUploadedDataIsReadBackFromObjectsAfterTheBufferMovedOn() throws {
        let topic = try createTopic("up", partitions: 1)
        let stream = topic.streamIds[0]
        _ = try blocking { try await self.startUploader() }
        let pad = String(repeating: "u", count: 4000)
        var futures: [EventLoopFuture<ProduceResponse?>] = []
        for i in 0..<600 {   // ~2.4 MB through a 1 MiB log buffer: only the uploader frees it
            futures.append(try send(produceRequest("up", values: ["\(i)-" + pad]), version: 9))
        }
        XCTAssertEqual(try futures.map { try $0.wait()!.responses[0].partitionResponses[0].baseOffset }, (0..<600).map(Int64.init))
        waitUntil("all 600 offsets are committed") { controller.image.streamStates[stream]?.endOffset == 600 }

        // Objects are in the bucket, the ranges cover the stream from 0 without a gap, and the WAL was told to trim.
        let refs = controller.image.objectRanges(streamId: stream, from: 0)
        XCTAssertEqual(refs.first?.startOffset, 0)
        XCTAssertEqual(refs.last?.endOffset, 600)
        for (a, b) in zip(refs, refs.dropFirst()) { XCTAssertEqual(a.endOffset, b.startOffset, "gap between objects") }
        let keys = try blocking { try await self.store.list(prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 1000) }
            .objects.map(\.key).filter { $0.contains("/o/") }
        XCTAssertEqual(Set(keys), Set(refs.map { ObjectKeys.object(clusterId: "c", objectId: $0.objectId) }))
        waitUntil("the WAL got a trim") { fakeWAL.lock.withLock { !fakeWAL.trims.isEmpty } }
        XCTAssertLessThanOrEqual(fakeWAL.lock.withLock { fakeWAL.trims.last! }, ring.readPosition(0))

        // Offset 0 left the buffer long ago: it comes back from the objects, byte for byte.
        waitUntil("the broker's metadata shows the commit") { broker.metadata.image.streamStates[stream]?.endOffset == 600 }
        let tailBefore = path.tailReads.count
        let values = try readValues("up", from: 0, to: 600)
        XCTAssertEqual(values, (0..<600).map { "\($0)-" + pad })
        XCTAssertLessThan(path.tailReads.count - tailBefore, 600, "every fetch was served from memory")
    }

    /// A new broker process over the same buffer: what the old one appended is durable but not
    /// committed. The new one has the uploader commit it, then reopens the stream in the next
    /// epoch, at the committed end; the bytes are still served from memory.
    func testARestartedBrokerCommitsTheBufferTailThenReopensInANewEpoch() throws {
        let topic = try createTopic("again", partitions: 1)
        let stream = topic.streamIds[0]
        for v in ["a", "b", "c"] { _ = try send(produceRequest("again", values: [v]), version: 9).wait() }
        XCTAssertEqual(try fetch("again", offset: 0).highWatermark, 3)
        let oldEpoch = try XCTUnwrap(logs.partition(topic: "again", partition: 0)).streamEpoch
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 0, "nothing committed yet")
        // The old one shuts down first (controlled: it is fenced, so the new one registers at once).
        broker.stop()
        let config = try ServerConfig(properties: ["log.dirs": dir])
        let service = ControllerService(controller: controller, config: config, logger: logger)
        let freshLogs = StreamLogManager(maxBatchBytes: 1 << 20, logger: logger)
        let freshPath = LogBufferWritePath(ring: ring, durableNotices: durable, logger: logger)
        let fresh = Broker(config: config, clusterId: "c", controllerChannel:
                            LocalControllerChannel(service: service, eventLoop: group.next(), logger: logger),
                           logs: freshLogs, writePath: freshPath, logger: logger)
        defer { fresh.stop(); freshPath.stop() }
        try fresh.start(on: group.next())
        XCTAssertNil(freshLogs.partition(topic: "again", partition: 0), "no stream opens before recovery")
        // A long upload interval: only the broker's request makes the uploader upload now.
        _ = try blocking { try await self.startUploader(thresholdBytes: 64 << 20, intervalMs: 600_000) }
        try fresh.awaitLogBufferCommitted(freshPath, timeout: .seconds(10))
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 3)
        try fresh.openAssignedPartitions(timeout: .seconds(10))
        let log = try XCTUnwrap(freshLogs.partition(topic: "again", partition: 0))
        XCTAssertEqual(log.streamId, stream)
        XCTAssertEqual(log.streamEpoch, oldEpoch + 1, "each open bumps the stream epoch")
        XCTAssertEqual(controller.image.streamStates[stream]?.epoch, oldEpoch + 1)
        XCTAssertEqual(log.logEndOffset, 3)
        XCTAssertEqual(log.highWatermark, 3)
        let tail = try XCTUnwrap(freshPath.readTail(log, streamId: log.streamId, from: 0, maxBytes: 1 << 20, minOneBatch: true))
        XCTAssertEqual(try parseBatchHeaders(tail).map(\.baseOffset), [0, 1, 2])
    }

    func testRecoveredWALRecordsAreUploadedBeforeTheBrokerServes() throws {
        let topic = try createTopic("rec", partitions: 1)
        let stream = topic.streamIds[0]
        func frame(base: Int64, values: [String], stream: UInt64, epoch: Int64 = 1) -> [UInt8] {
            var b = RecordBatchBuilder(baseOffset: base, partitionLeaderEpoch: 0)
            for v in values { b.append(key: nil as String?, value: v, timestamp: 1) }
            let batch = b.build()
            var out = [UInt8](repeating: 0, count: WALFrameCodec.headerBytes)
            out.withUnsafeMutableBytes {
                WALFrameCodec.encodeHeader(streamId: stream, streamEpoch: epoch, baseOffset: base, count: UInt32(values.count),
                                           payloadLength: batch.readableBytes, into: $0)
            }
            return out + Array(batch.readableBytesView)
        }
        XCTAssertEqual(controller.image.streamStates[stream]?.epoch, 1, "the broker opened the stream in epoch 1")
        // What the WAL hands over after a node crash: two frames of a live stream in its epoch,
        // one a zombie appended in epoch 0 (superseded: never committed), one of a deleted topic.
        let tail = frame(base: 0, values: ["a", "b"], stream: stream) + frame(base: 2, values: ["c"], stream: stream)
            + frame(base: 3, values: ["zombie"], stream: stream, epoch: 0)
            + frame(base: 0, values: ["x"], stream: 9999)
        let stateFd = try SharedMemory.createMemfd(name: "t-recovered")
        fds.append(stateFd)
        let state = try WALState.create(fd: stateFd, tailBytesMax: 1 << 20)
        state.publishRecovery(startLSN: 0, endLSN: UInt64(tail.count), frames: tail)
        _ = try blocking { try await self.startUploader(walState: state) }
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 3, "open() uploads the recovered records")
        XCTAssertEqual(try broker.awaitRecoveredCommitted(state.recoveredFrames, timeout: .seconds(10)), 1)
        waitUntil("the broker sees the recovered end") { broker.metadata.image.streamStates[stream]?.endOffset == 3 }
        waitUntil("the partition's log end follows the commit") { logs.partition(topic: "rec", partition: 0)?.highWatermark == 3 }
        XCTAssertEqual(try readValues("rec", from: 0, to: 3), ["a", "b", "c"])
        // A second uploader incarnation fences the first and skips what is committed.
        let again = Uploader(ring: ring, walState: state, trimCommands: trim, store: store,
                             control: LocalUploaderControl(controller: controller, nodeId: 0), clusterId: "c",
                             config: uploader!.config, metrics: .local(), logger: logger)
        try blocking { try await again.open() }
        XCTAssertEqual(again.objectsCommitted, 0)
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 3)
    }
}

extension LogBufferWritePathTests {
    /// A reassignment, as the old leader lives it: it stops taking appends at once (a
    /// produce gets NOT_LEADER_OR_FOLLOWER naming the target, KIP-951), has the uploader
    /// commit its tail, and releases the partition: the target leads in the next leader and
    /// stream epochs, with the stream committed up to every acknowledged offset, and the log
    /// is gone from here. Broker 1 is a registration only (the controller's view of a peer).
    func testAReassignedPartitionIsCommittedThenReleasedToItsTarget() throws {
        let topic = try createTopic("mv", partitions: 1)
        let stream = topic.streamIds[0]
        XCTAssertEqual(controller.image.partitions[stream]?.leader, 0)
        let peer = try controller.registerBroker(.init(nodeId: 1, incarnationId: UUID(),
                                                       listeners: [.init(name: "PLAINTEXT", host: "127.0.0.9", port: 9092)],
                                                       rack: nil))
        _ = try controller.brokerHeartbeat(nodeId: 1, brokerEpoch: peer, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: false)
        _ = try blocking { try await self.startUploader(thresholdBytes: 64 << 20, intervalMs: 600_000) }
        for v in ["a", "b", "c"] {
            XCTAssertEqual(try send(produceRequest("mv", values: [v]), version: 9).wait()?.responses[0].partitionResponses[0].errorCode, 0)
        }
        let before = try XCTUnwrap(controller.image.partitions[stream])
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 0, "acknowledged, not committed yet")

        XCTAssertNoThrow(try controller.reassign([.init(topic: "mv", partition: 0, replicas: [1])])[0].get())
        waitUntil("the broker sees the move") { broker.metadata.image.partitions[stream]?.target == 1 || broker.metadata.image.partitions[stream]?.leader == 1 }
        let refused = try XCTUnwrap(try send(produceRequest("mv", values: ["late"]), version: 11).wait())
        let pr = refused.responses[0].partitionResponses[0]
        XCTAssertEqual(pr.errorCode, 6, pr.errorMessage ?? "")   // NOT_LEADER_OR_FOLLOWER
        XCTAssertEqual(pr.currentLeader.leaderId, 1, "the response names the target (KIP-951)")
        XCTAssertEqual(pr.currentLeader.leaderEpoch, before.leaderEpoch + 1)
        XCTAssertEqual(refused.nodeEndpoints.map(\.nodeId).sorted(), [0, 1])

        waitUntil("the partition is released to broker 1") { controller.image.partitions[stream]?.leader == 1 }
        let after = try XCTUnwrap(controller.image.partitions[stream])
        XCTAssertEqual(after, PartitionLeadership(leader: 1, leaderEpoch: before.leaderEpoch + 1, replicas: [1],
                                                  streamEpoch: before.streamEpoch + 1))
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 3, "every acknowledged offset is committed")
        waitUntil("the log is gone from the old leader") { logs.partition(topic: "mv", partition: 0) == nil }
        XCTAssertEqual(try fetch("mv", offset: 0).errorCode, 6, "reads go to the new leader too")
    }
}

extension LogBufferWritePathTests {
    /// A move recorded while its leader was down (here: after a controlled shutdown with no
    /// broker to take the partition) completes when the leader comes back: the new process
    /// commits what the old one left in the log buffer, then releases the partition at its
    /// committed end without opening it.
    func testAMoveRecordedWhileTheLeaderWasDownCompletesWhenItReturns() throws {
        let topic = try createTopic("later", partitions: 1)
        let stream = topic.streamIds[0]
        _ = try blocking { try await self.startUploader(thresholdBytes: 64 << 20, intervalMs: 600_000) }
        for v in ["a", "b"] {
            XCTAssertEqual(try send(produceRequest("later", values: [v]), version: 9).wait()?.responses[0].partitionResponses[0].errorCode, 0)
        }
        broker.stop()   // alone: fenced at once, the partition goes offline
        XCTAssertEqual(controller.image.partitions[stream]?.leader, -1)
        let peer = try controller.registerBroker(.init(nodeId: 1, incarnationId: UUID(),
                                                       listeners: [.init(name: "PLAINTEXT", host: "127.0.0.9", port: 9092)],
                                                       rack: nil))
        _ = try controller.brokerHeartbeat(nodeId: 1, brokerEpoch: peer, metadataOffset: controller.image.nextOffset,
                                           wantFence: false, wantShutDown: false)
        XCTAssertNoThrow(try controller.reassign([.init(topic: "later", partition: 0, replicas: [1])])[0].get())
        XCTAssertEqual(controller.image.partitions[stream]?.target, 1, "recorded; waits for broker 0")

        let config = try ServerConfig(properties: ["log.dirs": dir])
        let service = ControllerService(controller: controller, config: config, logger: logger)
        let freshLogs = StreamLogManager(maxBatchBytes: 1 << 20, logger: logger)
        let freshPath = LogBufferWritePath(ring: ring, durableNotices: durable, logger: logger)
        let fresh = Broker(config: config, clusterId: "c", controllerChannel:
                            LocalControllerChannel(service: service, eventLoop: group.next(), logger: logger),
                           logs: freshLogs, writePath: freshPath, logger: logger)
        defer { fresh.stop(); freshPath.stop() }
        try fresh.start(on: group.next())
        try fresh.awaitLogBufferCommitted(freshPath, timeout: .seconds(10))
        try fresh.openAssignedPartitions(timeout: .seconds(10))
        waitUntil("the partition is released to broker 1") { controller.image.partitions[stream]?.leader == 1 }
        XCTAssertEqual(controller.image.streamStates[stream]?.endOffset, 2, "what broker 0 acknowledged is committed first")
        XCTAssertNil(freshLogs.partition(topic: "later", partition: 0), "released without being opened")
        XCTAssertNil(controller.image.partitions[stream]?.target)
    }
}
