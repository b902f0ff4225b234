import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SiltController
import SiltNet
import SiltConfig
import SiltObjectStore
import SiltRecords
import SiltRing
import SiltUploader
import SiltWAL
import XCTest

/// A single-voter controller served on loopback, reached as the uploader role reaches it
/// (`ControllerQuorumClient` on its CONTROLLER listener), a file:// object store, and the
/// shared-memory regions the uploader reads: a log buffer, the WAL hand-off, the trim ring.
/// The test stands in for the WAL writer by advancing the buffer's reader 0 ("durable").
class UploaderTestCase: XCTestCase {
    var dir: String!
    var group: MultiThreadedEventLoopGroup!
    var controller: MetadataController!
    var server: KafkaServer!
    var client: ControllerQuorumClient!
    var store: LocalObjectStore!
    var ring: LogRing!
    var walState: WALState!
    var trim: ControlRing!
    var fds: [Int32] = []
    var logger: Logger = {
        var l = Logger(label: "uploader-test")
        l.logLevel = .warning
        return l
    }()

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "silt-uploader-\(UUID().uuidString)"
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        controller = try MetadataController(directory: dir + "/__cluster_metadata", logger: logger,
                                            quorum: .single(clusterId: "c"), validateConfigs: TopicConfig.validate)
        let config = try ServerConfig(properties: ["log.dirs": dir, "process.roles": "controller",
                                                   "listeners": "CONTROLLER://127.0.0.1:0"])
        server = KafkaServer(group: group, service: ControllerService(controller: controller, config: config, logger: logger),
                             frameBytesMax: 8 << 20, logger: logger)
        try server.start(endpoints: [.init(name: "CONTROLLER", host: "127.0.0.1", port: 0)])
        let port = try XCTUnwrap(server.boundPorts.first)
        client = ControllerQuorumClient(group: group, endpoints: [.init(id: nil, host: "127.0.0.1", port: port)],
                                        clientId: "silt-uploader-test", logger: logger)
        store = try LocalObjectStore(rootDirectory: dir + "/objects")
        let ringFd = try SharedMemory.createMemfd(name: "t-ring")
        let stateFd = try SharedMemory.createMemfd(name: "t-state")
        let trimFd = try SharedMemory.createMemfd(name: "t-trim")
        fds = [ringFd, stateFd, trimFd]
        ring = try LogRing.create(fd: ringFd, capacityBytes: 1 << 20)
        walState = try WALState.create(fd: stateFd, tailBytesMax: 1 << 20)
        trim = try ControlRing.create(fd: trimFd, slotCount: 64)
    }

    override func tearDownWithError() throws {
        client.close()
        controller.close()   // before the loops its long-polls are parked on
        server.stop()
        try group.syncShutdownGracefully()
        for fd in fds { close(fd) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    func uploaderConfig(thresholdBytes: Int = 64 << 10) -> UploaderConfig {
        UploaderConfig(storage: ObjectStorageConfig(uploadThresholdBytes: thresholdBytes, uploadIntervalMs: 50, blockCacheBytes: 1 << 20,
                                         objectBlockBytes: 32 << 10, objectPartBytes: 5 << 20, streamObjectSplitBytes: 8 << 20,
                                         streamSetCompactionIntervalMs: 60_000, streamObjectCompactionIntervalMs: 60_000,
                                         networkBaselineBytesPerSecond: 1 << 30, uploadParallelism: 2, prepareTTLMs: 60_000,
                                         janitorIntervalMs: 1000))
    }

    func control(node: Int32 = 0) -> ControllerUploaderControl { ControllerUploaderControl(client: client, nodeId: node) }

    func uploader(control: UploaderControl, config: UploaderConfig? = nil) -> Uploader {
        Uploader(ring: ring, walState: walState, trimCommands: trim, store: store, control: control, clusterId: "c",
                 config: config ?? uploaderConfig(), metrics: .local(), logger: logger)
    }

    /// A record batch of `count` records at `base`, as a producer's frame carries it.
    func batch(base: Int64, count: Int, value: String = "v") -> [UInt8] {
        var b = RecordBatchBuilder(baseOffset: base, partitionLeaderEpoch: 0)
        for i in 0..<count { b.append(key: nil as String?, value: "\(value)-\(base + Int64(i))", timestamp: 1) }
        return Array(b.build().readableBytesView)
    }

    /// Appends a frame to the log buffer and makes everything written so far durable (what the
    /// WAL writer does after its fsync).
    func appendDurable(stream: UInt64, epoch: Int64 = 0, base: Int64, count: Int, value: String = "v") throws {
        let payload = batch(base: base, count: count, value: value)
        _ = try payload.withUnsafeBytes {
            try ring.append(streamId: stream, streamEpoch: epoch, baseOffset: base, count: UInt32(count), payload: $0,
                            timeout: .seconds(5))
        }
        ring.reader(0).advance(to: ring.writePosition)
    }

    func waitUntil(_ what: String, timeout: TimeInterval = 20, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            if Date() > deadline { XCTFail("timed out waiting until \(what)"); return }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// Polls `condition` (without blocking the task's thread) until it holds.
    func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () -> Bool) async {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now > deadline { XCTFail("timed out waiting until \(what)"); return }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Every object key in the bucket.
    func objectKeys() async throws -> Set<String> {
        Set(try await store.list(prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 1000).objects.map(\.key)
            .filter { $0.contains("/o/") })
    }
}
