import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
@testable import SiltBroker
import SiltConfig
import SiltController
import SiltObjectStore
import SiltRing
import SiltStorage
import SiltUploader
import SiltWAL
import XCTest

/// The data path of one node as production runs it, in this process: the shared-memory log
/// buffer and control rings, and the real WAL writer (`WALWriter`: io_uring, O_DIRECT,
/// RWF_DSYNC) on a temp file under /var/tmp (a real filesystem: O_DIRECT) on its own thread.
/// Brokers started on it run `StreamLogManager` + `LogBufferWritePath` with an object reader
/// over a file:// store, through the broker role's start sequence (`start(_:)`).
///
/// What differs from `silt server`: one process instead of one per role, and the controller
/// in process. The real uploader runs beside each broker (`start`), with a long upload
/// interval: it uploads when the broker asks (a reopen) and when it stops.
/// A broker restart (`BrokerTests.restart`) is a restart of the broker role (and here of its
/// uploader): the log buffer and the WAL writer carry on, and the new broker has the tail
/// the old one left committed before it reopens the streams in a new epoch.
final class NodeFixture {
    static let ringBytes = 4 << 20
    static let walCapacityBytes: UInt64 = 16 << 20

    let dir: String
    let walPath: String
    let ring: LogRing
    let durableNotices: ControlRing
    let trimCommands: ControlRing
    let walState: WALState
    let writer: WALWriter
    let store: LocalObjectStore
    let logger: Logger
    private var fds: [Int32]
    private let writerDone = DispatchSemaphore(value: 0)
    private var uploaderTask: Task<Void, Never>?
    private let uploaderStop = NIOLockedValueBox(false)
    private var closed = false

    /// A fresh node whose data lives under `dir` (objects) and /var/tmp (the WAL file).
    init(dir: String, logger: Logger) throws {
        self.dir = dir
        self.logger = logger
        walPath = "/var/tmp/silt-broker-test-\(getpid())-\(UUID().uuidString).wal"
        let ringFd = try SharedMemory.createMemfd(name: "t-ring")
        let durableFd = try SharedMemory.createMemfd(name: "t-durable")
        let trimFd = try SharedMemory.createMemfd(name: "t-trim")
        let stateFd = try SharedMemory.createMemfd(name: "t-walstate")
        fds = [ringFd, durableFd, trimFd, stateFd]
        ring = try LogRing.create(fd: ringFd, capacityBytes: NodeFixture.ringBytes)
        durableNotices = try ControlRing.create(fd: durableFd, slotCount: 64)
        trimCommands = try ControlRing.create(fd: trimFd, slotCount: 64)
        walState = try WALState.create(fd: stateFd, tailBytesMax: 1 << 20)
        store = try LocalObjectStore(rootDirectory: dir + "/objects")
        // The broker's largest frame (max.message.bytes, 1 MiB by default) fits in one record.
        let config = WALConfig(maxRecordPayloadBytes: 2 << 20, maxInFlightWrites: 4, durability: .dsyncWrite)
        let (wal, recovered) = try WAL.open(path: walPath, capacityBytes: NodeFixture.walCapacityBytes, nodeId: 0,
                                            config: config, logger: logger)
        writer = WALWriter(wal: wal, ring: ring, durableNotices: durableNotices, trimCommands: trimCommands,
                           state: walState, logger: logger)
        try writer.attach(recovered: recovered)
        let (writer, done) = (writer, writerDone)
        let thread = Thread {
            do { try writer.run() } catch { XCTFail("WAL writer failed: \(error)") }
            done.signal()
        }
        thread.name = "silt-test-wal"
        thread.start()
    }

    /// A broker on this node's log buffer, not started yet.
    func makeBroker(config: ServerConfig, clusterId: String, controllerChannel: ControllerChannel)
        -> (broker: Broker, logs: StreamLogManager, path: LogBufferWritePath) {
        let logs = StreamLogManager(maxBatchBytes: max(64 << 20, Int(config.messageMaxBytes)), logger: logger)
        let path = LogBufferWritePath(ring: ring, durableNotices: durableNotices, logger: logger)
        let reader = ObjectStreamReader(store: store, clusterId: clusterId, cacheBytes: 4 << 20, metrics: .local(), logger: logger)
        let broker = Broker(config: config, clusterId: clusterId, controllerChannel: controllerChannel, logs: logs,
                            writePath: path, objectReader: reader, logger: logger)
        return (broker, logs, path)
    }

    /// Starts `broker` as the broker role does, with this node's uploader committing to
    /// `controller`: metadata first, then what the WAL recovered must be committed, then the
    /// durable LSN is followed, what an earlier broker left in the log buffer is committed,
    /// and the broker's partitions open.
    func start(_ broker: Broker, path: LogBufferWritePath, controller: MetadataController, on loop: EventLoop) throws {
        try broker.start(on: loop)
        try startUploader(controller: controller, clusterId: broker.clusterId)
        _ = try broker.awaitRecoveredCommitted(walState.recoveredFrames, timeout: .seconds(10))
        path.start()
        guard path.waitUntilDurable(timeout: .seconds(10)) else {
            throw RecoveryError(description: "the WAL did not catch up with the log buffer")
        }
        try broker.awaitLogBufferCommitted(path, timeout: .seconds(10))
        try broker.openAssignedPartitions(timeout: .seconds(10))
    }

    private func startUploader(controller: MetadataController, clusterId: String) throws {
        stopUploader()
        uploaderStop.withLockedValue { $0 = false }
        let storage = ObjectStorageConfig(uploadThresholdBytes: 8 << 20, uploadIntervalMs: 600_000, blockCacheBytes: 1 << 20,
                                          objectBlockBytes: 32 << 10, objectPartBytes: 5 << 20, streamObjectSplitBytes: 8 << 20,
                                          streamSetCompactionIntervalMs: 600_000, streamObjectCompactionIntervalMs: 600_000,
                                          networkBaselineBytesPerSecond: 1 << 30, uploadParallelism: 2, prepareTTLMs: 60_000,
                                          janitorIntervalMs: 600_000)
        let uploader = Uploader(ring: ring, walState: walState, trimCommands: trimCommands, store: store,
                                control: LocalUploaderControl(controller: controller, nodeId: 0), clusterId: clusterId,
                                config: UploaderConfig(storage: storage), metrics: .local(), logger: logger)
        let opened = DispatchSemaphore(value: 0)
        let stop = uploaderStop
        uploaderTask = Task {
            do { try await uploader.openWithRetry(timeout: .seconds(10)) } catch { XCTFail("uploader open: \(error)") }
            opened.signal()
            await uploader.run(shouldStop: { stop.withLockedValue { $0 } })
        }
        guard opened.wait(timeout: .now() + 15) == .success else { throw RecoveryError(description: "the uploader did not open") }
    }

    /// Stops the uploader once it has uploaded everything durable (as the node's uploader does
    /// when it stops).
    func stopUploader() {
        guard let task = uploaderTask else { return }
        uploaderStop.withLockedValue { $0 = true }
        let done = DispatchSemaphore(value: 0)
        Task { await task.value; done.signal() }
        if done.wait(timeout: .now() + 20) == .timedOut { XCTFail("the uploader did not stop") }
        uploaderTask = nil
    }

    /// Stops the WAL writer once everything appended is durable, then releases the node.
    func shutdown() {
        guard !closed else { return }
        closed = true
        stopUploader()
        writer.stop()
        if writerDone.wait(timeout: .now() + 10) == .timedOut {
            XCTFail("the WAL writer did not drain")
        } else {
            // Everything any broker appended went through the real WAL and was made durable.
            XCTAssertEqual(writer.wal.durableLSN, ring.writePosition, "appended but not durable in the WAL")
            XCTAssertEqual(walState.durableLSN, ring.writePosition, "durable but not reported")
        }
        try? writer.wal.close()
        for fd in fds { close(fd) }
        try? FileManager.default.removeItem(atPath: walPath)
    }

    deinit { shutdown() }
}
