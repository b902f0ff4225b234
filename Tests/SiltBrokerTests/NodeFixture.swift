import Foundation
import Logging
import NIOCore
@testable import SiltBroker
import SiltConfig
import SiltController
import SiltObjectStore
import SiltRing
import SiltStorage
import SiltWAL
import XCTest

/// The data path of one node as production runs it, in this process: the shared-memory log
/// buffer and control rings, and the real WAL writer (`WALWriter`: io_uring, O_DIRECT,
/// RWF_DSYNC) on a temp file under /var/tmp (a real filesystem: O_DIRECT) on its own thread.
/// Brokers started on it run `StreamLogManager` + `LogBufferWritePath` with an object reader
/// over a file:// store, through the broker role's start sequence (`start(_:)`).
///
/// What differs from `silt server`: one process instead of one per role, the controller in
/// process, and no uploader (nothing the tests here do needs committed objects; the log
/// buffer is sized so that they never fill it. `LogBufferWritePathTests` runs the real one).
/// A broker restart (`BrokerTests.restart`) is a restart of the broker role alone: the log
/// buffer and the WAL writer carry on, and the new broker re-learns the tail from the buffer.
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

    /// Starts `broker` as the broker role does: metadata first, then what the WAL recovered
    /// must be committed, then the durable LSN is followed and what an earlier broker left in
    /// the log buffer becomes the streams' tail.
    func start(_ broker: Broker, path: LogBufferWritePath, on loop: EventLoop) throws {
        try broker.start(on: loop)
        _ = try broker.awaitRecoveredCommitted(walState.recoveredFrames, timeout: .seconds(10))
        path.start()
        guard path.waitUntilDurable(timeout: .seconds(10)) else {
            throw RecoveryError(description: "the WAL did not catch up with the log buffer")
        }
        try broker.recoverLogBufferTail(path)
    }

    /// Stops the WAL writer once everything appended is durable, then releases the node.
    func shutdown() {
        guard !closed else { return }
        closed = true
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
