import Foundation
import Logging
import NIOCore
import SiltMetadata
import SiltRaft

/// The controller as the quorum's state machine: committed batches fold into `committed`;
/// leadership decides whether this node takes proposals.
extension MetadataController: QuorumStateMachine {
    /// Opens the quorum's log in `directory`. A metadata directory of an earlier release
    /// (JSON records in `metadata-*.log`) becomes this log's first snapshot, at the offset
    /// where that log ended, and its files move to `legacy-json/`.
    static func openStore(directory: String, logger: Logger) throws -> (RaftLogStore, RaftPersisted) {
        let (store, persisted) = try RaftLogStore.open(directory: directory)
        let empty = persisted.snapshot == nil && persisted.batches.isEmpty && persisted.quorum.epoch == 0
        if empty {
            let legacy: (records: [MetadataRecord], endOffset: Int64)?
            do {
                legacy = try LegacyMetadataLog.read(directory: directory)
            } catch LegacyMetadataLog.LegacyError.partiallyRetired {
                legacy = nil   // an earlier start moved some files before it stopped: finish below
            }
            if let legacy, legacy.endOffset > 0 {
                let image = MetadataImage(snapshot: legacy.records, endOffset: legacy.endOffset)
                let snapshot = RaftSnapshot(id: SnapshotId(endOffset: legacy.endOffset, epoch: 0),
                                            bytes: MetadataSnapshot.encode(image.snapshotRecords))
                try store.writeSnapshot(snapshot)
                logger.notice("metadata log of an earlier release migrated", metadata: [
                    "endOffset": "\(legacy.endOffset)", "topics": "\(image.topicsByName.count)"])
                try LegacyMetadataLog.retire(directory: directory)
                return try RaftLogStore.open(directory: directory)
            }
        }
        try LegacyMetadataLog.retire(directory: directory)
        return (store, persisted)
    }

    // MARK: QuorumStateMachine

    public func loadSnapshot(_ snapshot: RaftSnapshot) throws {
        let records: [MetadataRecord]
        do {
            records = try MetadataSnapshot.decode(snapshot.bytes)
        } catch {
            throw ControllerError.storage("the metadata snapshot at offset \(snapshot.id.endOffset) cannot be decoded: \(error)")
        }
        let image = MetadataImage(snapshot: records, endOffset: snapshot.id.endOffset)
        lock.withLock {
            committed = image
            if activeEpoch == nil { _image = image }
            bytesSinceSnapshot = 0
        }
        logger.info("metadata snapshot loaded", metadata: ["endOffset": "\(snapshot.id.endOffset)",
                                                           "topics": "\(image.topicsByName.count)"])
    }

    /// Folds committed batches into `committed`. A record that passed its CRC but does not
    /// decode stops the controller, naming its offset and type: the log is never cut.
    public func apply(_ batches: [RaftBatch]) throws {
        var image = lock.withLock { committed }
        var bytes = 0
        for batch in batches {
            precondition(batch.baseOffset == image.nextOffset,
                         "committed batch at \(batch.baseOffset), the image is at \(image.nextOffset)")
            if batch.isControl {
                image.skip(to: batch.endOffset)
                continue
            }
            for (i, payload) in batch.records.enumerated() {
                do {
                    image.apply(try MetadataRecordSerde.decode(payload))
                } catch {
                    let offset = batch.baseOffset + Int64(i)
                    let type = (error as? MetadataRecordError)?.recordType.map { "\($0)" } ?? "unknown"
                    throw ControllerError.storage(
                        "metadata record at offset \(offset) (type \(type)) cannot be decoded: \(error); "
                        + "stopping rather than skip or cut a committed record (a newer release wrote it?)")
                }
                bytes += payload.count
            }
        }
        let (due, snapshot): ([EventLoopPromise<Void>], RaftSnapshot?) = lock.withLock {
            committed = image
            if activeEpoch == nil { _image = image }
            bytesSinceSnapshot += bytes
            var snapshot: RaftSnapshot?
            if bytesSinceSnapshot >= snapshotIntervalBytes, let last = batches.last {
                bytesSinceSnapshot = 0
                snapshot = RaftSnapshot(id: SnapshotId(endOffset: image.nextOffset, epoch: last.epoch),
                                        bytes: MetadataSnapshot.encode(image.snapshotRecords))
            }
            let end = image.nextOffset
            let due = commitWaiters.filter { $0.endOffset <= end }.map(\.promise)
            commitWaiters.removeAll { $0.endOffset <= end }
            return (due, snapshot)
        }
        for p in due { p.succeed(()) }
        signalWaiters()
        if let snapshot { quorum.snapshotTaken(snapshot) }
    }

    public func activeChanged(_ active: Bool, epoch: Int32) {
        let failed: [EventLoopPromise<Void>] = lock.withLock {
            _image = committed
            proposedEndOffset = committed.nextOffset
            if active {
                activeEpoch = epoch
                sessions.becameActive(nowMs: MetadataController.wallClockMs())
                loads.reset()
                return []
            }
            activeEpoch = nil
            defer { commitWaiters.removeAll() }
            return commitWaiters.map(\.promise)
        }
        logger.notice(active ? "this controller is now the active one" : "this controller is no longer the active one",
                      metadata: ["epoch": "\(epoch)"])
        let error = notController()
        for p in failed { p.fail(error) }
        signalWaiters()
    }

    // MARK: Waiting for commits

    /// Wakes `awaitCommitted` / `awaitActive` (under the condition's lock: no lost wake-up).
    private func signalWaiters() {
        commitCondition.lock()
        commitCondition.broadcast()
        commitCondition.unlock()
    }

    /// True while this node is the quorum's ready leader: it takes proposals, and the
    /// leader-only work (janitor, retention) runs here.
    public var isActive: Bool { lock.withLock { activeEpoch != nil } }

    /// The committed metadata (what every node will agree on), as opposed to `image`,
    /// which on the leader includes its proposals in flight.
    public var committedImage: MetadataImage { lock.withLock { committed } }

    /// The end offset of this node's latest proposal.
    public var lastProposedOffset: Int64 { lock.withLock { proposedEndOffset } }

    /// Succeeds once `endOffset` is committed and applied; fails if leadership is lost first.
    public func whenCommitted(_ endOffset: Int64, on loop: EventLoop) -> EventLoopFuture<Void> {
        lock.withLock {
            if committed.nextOffset >= endOffset { return loop.makeSucceededVoidFuture() }
            guard activeEpoch != nil else { return loop.makeFailedFuture(notController()) }
            let promise = loop.makePromise(of: Void.self)
            commitWaiters.append((endOffset, promise))
            return promise.futureResult
        }
    }

    /// Suspends until everything this node proposed so far is committed (fails if leadership is lost).
    public func committed() async throws {
        let target = lock.withLock { proposedEndOffset }
        try await whenCommitted(target, on: eventLoop).get()
    }

    /// Blocks until everything this node proposed so far is committed (tests, tools, and the
    /// janitor's and retention's own threads; never a network event loop).
    public func awaitCommitted(timeoutMs: Int64 = 30_000) throws {
        let target = lock.withLock { proposedEndOffset }
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        commitCondition.lock()
        defer { commitCondition.unlock() }
        while true {
            let (done, active) = lock.withLock { (committed.nextOffset >= target, activeEpoch != nil) }
            if done { return }
            guard active else { throw notController() }
            guard commitCondition.wait(until: deadline) else {
                throw ControllerError.storage("metadata commit of offset \(target) timed out after \(timeoutMs) ms")
            }
        }
    }

    /// Blocks until this node is the ready leader, or the timeout passes (false).
    func awaitActive(timeoutMs: Int64) -> Bool {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        commitCondition.lock()
        defer { commitCondition.unlock() }
        while !isActive {
            guard fatalReason.value == nil, commitCondition.wait(until: deadline) else { return isActive }
        }
        return true
    }
}

extension MetadataController {
    /// The latest snapshot stored (nil before the first); lagging voters and brokers load it.
    public var latestSnapshot: RaftSnapshot? { quorum.latestSnapshotForObservers }

    /// Blocks until a snapshot ending at `offset` or later is stored (tests and tools);
    /// nil if none is within the timeout.
    public func awaitSnapshot(atLeast offset: Int64, timeoutMs: Int64 = 10_000) -> RaftSnapshot? {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        while true {
            if let s = latestSnapshot, s.id.endOffset >= offset { return s }
            if Date() >= deadline { return nil }
            usleep(5_000)
        }
    }
}
