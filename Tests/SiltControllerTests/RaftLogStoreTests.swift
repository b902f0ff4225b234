import Foundation
import SiltRaft
import XCTest
@testable import SiltController

/// The metadata quorum's disk log: what survives a reopen, the torn tail it may cut, the
/// damage it must refuse, truncation and snapshots.
final class RaftLogStoreTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = NSTemporaryDirectory() + "silt-raftlog-\(UUID().uuidString)"
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func batch(_ base: Int64, epoch: Int32 = 1, count: Int = 2, control: Bool = false) -> RaftBatch {
        RaftBatch(baseOffset: base, epoch: epoch, isControl: control,
                  records: (0..<count).map { i in Array("r\(base + Int64(i))@\(epoch)".utf8) })
    }

    func segmentPath() throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".log") }.sorted()
        return dir + "/" + names.last!
    }

    func testAppendedBatchesAndQuorumStateSurviveAReopen() throws {
        let (store, first) = try RaftLogStore.open(directory: dir)
        XCTAssertEqual(first.batches, [])
        XCTAssertEqual(first.quorum, QuorumState(epoch: 0))
        let batches = [batch(0, count: 1, control: true), batch(1), batch(3, epoch: 2)]
        try store.append(Array(batches[0..<2]))
        try store.append([batches[2]])
        try store.sync()
        try store.persist(QuorumState(epoch: 2, votedFor: 1, leaderId: 1))
        XCTAssertEqual(store.endOffset, 5)
        let (_, again) = try RaftLogStore.open(directory: dir)
        XCTAssertEqual(again.batches, batches)
        XCTAssertEqual(again.quorum, QuorumState(epoch: 2, votedFor: 1, leaderId: 1))
    }

    func testATornFinalWriteIsCutAndNothingBeforeIt() throws {
        let (store, _) = try RaftLogStore.open(directory: dir)
        try store.append([batch(0), batch(2)])
        try store.sync()
        // A crash in the middle of the next write: a frame whose bytes end early.
        var frame: [UInt8] = []
        RaftLogStore.encodeFrame(batch(4), into: &frame)
        let path = try segmentPath()
        let handle = FileHandle(forWritingAtPath: path)!
        handle.seekToEndOfFile()
        handle.write(Data(frame.prefix(frame.count - 3)))
        handle.closeFile()
        let sizeBefore = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let (reopened, persisted) = try RaftLogStore.open(directory: dir)
        XCTAssertEqual(persisted.batches, [batch(0), batch(2)])
        XCTAssertEqual(reopened.endOffset, 4)
        let sizeAfter = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        XCTAssertEqual(sizeAfter, sizeBefore - (frame.count - 3))
        // And the log goes on after the cut.
        try reopened.append([batch(4)])
        try reopened.sync()
        XCTAssertEqual(try RaftLogStore.open(directory: dir).1.batches, [batch(0), batch(2), batch(4)])
    }

    func testDamageFollowedByValidDataIsRefusedNotCut() throws {
        let (store, _) = try RaftLogStore.open(directory: dir)
        try store.append([batch(0), batch(2), batch(4)])
        try store.sync()
        let path = try segmentPath()
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[RaftLogStore.headerBytes + 20] ^= 0xFF   // inside the first batch's records
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try RaftLogStore.open(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("valid data follows"), "\(error)")
        }
        // Nothing was cut.
        XCTAssertEqual([UInt8](FileManager.default.contents(atPath: path)!), bytes)
    }

    func testTruncateCutsTheTailAtABatchBoundary() throws {
        let (store, _) = try RaftLogStore.open(directory: dir)
        try store.append([batch(0), batch(2), batch(4, epoch: 2)])
        try store.sync()
        try store.truncate(toOffset: 2)
        XCTAssertEqual(store.endOffset, 2)
        try store.append([batch(2, epoch: 3)])
        try store.sync()
        XCTAssertEqual(try RaftLogStore.open(directory: dir).1.batches, [batch(0), batch(2, epoch: 3)])
    }

    func testASnapshotReplacesTheLogBelowItAndOldFilesGo() throws {
        let (store, _) = try RaftLogStore.open(directory: dir)
        try store.append([batch(0), batch(2), batch(4)])
        try store.sync()
        let snapshot = RaftSnapshot(id: SnapshotId(endOffset: 4, epoch: 1), bytes: Array("state@4".utf8))
        try store.writeSnapshot(snapshot)
        try store.append([batch(6)])
        try store.sync()
        let second = RaftSnapshot(id: SnapshotId(endOffset: 8, epoch: 1), bytes: Array("state@8".utf8))
        try store.writeSnapshot(second)
        let (_, persisted) = try RaftLogStore.open(directory: dir)
        XCTAssertEqual(persisted.snapshot, second)
        XCTAssertEqual(persisted.batches, [])
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(names.filter { $0.hasSuffix(".checkpoint") }, [RaftLogStore.snapshotName(second.id)])
        XCTAssertFalse(names.contains(RaftLogStore.segmentName(0)), "\(names)")
    }

    func testAnInstalledSnapshotReplacesTheWholeLog() throws {
        let (store, _) = try RaftLogStore.open(directory: dir)
        try store.append([batch(0), batch(2, epoch: 2)])
        try store.sync()
        let snapshot = RaftSnapshot(id: SnapshotId(endOffset: 10, epoch: 4), bytes: Array("leader's state".utf8))
        try store.installSnapshot(snapshot)
        XCTAssertEqual(store.endOffset, 10)
        try store.append([batch(10, epoch: 4)])
        try store.sync()
        let (_, persisted) = try RaftLogStore.open(directory: dir)
        XCTAssertEqual(persisted.snapshot, snapshot)
        XCTAssertEqual(persisted.batches, [batch(10, epoch: 4)])
    }

    func testADamagedQuorumStateIsAnErrorNotAGuess() throws {
        let (store, _) = try RaftLogStore.open(directory: dir)
        try store.persist(QuorumState(epoch: 3, votedFor: 2))
        try Data("{\"leaderEpoch\": 3, ".utf8).write(to: URL(fileURLWithPath: dir + "/quorum-state"))
        XCTAssertThrowsError(try RaftLogStore.open(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("quorum-state"), "\(error)")
        }
    }
}
