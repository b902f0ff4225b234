import Dispatch
import Foundation
import Logging
import SiltConfig
import SiltObjectStore

/// Deletes from the data bucket what the metadata log no longer needs, then records that
/// it did. Runs in the controller process every `s3.object.janitor.interval.ms`.
///
/// Each pass:
/// 1. asks the controller for dead objects (compacted away, or every range trimmed or
///    deleted) and prepared ids past their expiry (which the controller then refuses to
///    commit, even if the clock steps back);
/// 2. deletes their keys (`ObjectKeys.object`) with DeleteObjects; an absent key counts
///    as deleted;
/// 3. commits `destroyObjects` for the ids whose keys are gone.
///
/// Metadata is never lost: a key is deleted only for an id the log already says is dead
/// or expired, and an id leaves the log only after its key is gone. An S3 or log failure
/// is logged and the pass is retried at the next interval (deleting twice is harmless).
///
/// A dead object is deleted only `deletionDelayMs` after this janitor first saw it dead,
/// so that a broker reading it when it was compacted away can finish its read.
///
/// Not done: aborting stale multipart uploads (the `ObjectStore` protocol has no
/// ListMultipartUploads); a bucket lifecycle rule for incomplete uploads covers it.
public final class ObjectJanitor: @unchecked Sendable {
    /// Default wait between an object becoming dead and its deletion.
    public static let deletionDelayMsDefault: Int64 = 60_000
    /// Ids handled per pass (the rest wait for the next pass).
    public static let idsPerPassMax = 10_000

    let controller: MetadataController
    let store: ObjectStore
    let clusterId: String
    let intervalMs: Int64
    let deletionDelayMs: Int64
    let logger: Logger
    let nowMs: @Sendable () -> Int64

    private let lock = NSLock()
    /// When each dead object was first seen dead (in memory: a restart only delays deletions).
    private var firstSeenDeadMs: [UInt64: Int64] = [:]
    private var task: Task<Void, Never>?

    /// What one pass did.
    public struct Pass: Equatable, Sendable {
        /// Ids whose keys are gone and which left the metadata log.
        public var destroyed: [UInt64] = []
        /// Ids whose key deletion (or whose destroy record) failed; retried next pass.
        public var failed: [UInt64] = []
    }

    public init(controller: MetadataController, store: ObjectStore, clusterId: String, intervalMs: Int64,
                deletionDelayMs: Int64 = ObjectJanitor.deletionDelayMsDefault, logger: Logger,
                nowMs: @escaping @Sendable () -> Int64 = { MetadataController.wallClockMs() }) {
        precondition(intervalMs >= 1 && deletionDelayMs >= 0)
        self.controller = controller
        self.store = store
        self.clusterId = clusterId
        self.intervalMs = intervalMs
        self.deletionDelayMs = deletionDelayMs
        self.logger = logger
        self.nowMs = nowMs
    }

    /// A janitor with the node's `s3.object.janitor.interval.ms` and `s3.object.deletion.delay.ms`.
    public convenience init(controller: MetadataController, store: ObjectStore, clusterId: String, config: ServerConfig,
                            logger: Logger) {
        self.init(controller: controller, store: store, clusterId: clusterId, intervalMs: config.objectStorage.janitorIntervalMs,
                  deletionDelayMs: config.objectStorage.deletionDelayMs, logger: logger)
    }

    /// Starts the background loop (a pass at once, then one every interval).
    public func start() {
        lock.withLock {
            precondition(task == nil, "janitor started twice")
            task = Task { [self] in
                logger.info("object janitor started", metadata: [
                    "intervalMs": "\(intervalMs)", "store": "\(store.description)"])
                while !Task.isCancelled {
                    await runOnce()
                    try? await Task.sleep(nanoseconds: UInt64(intervalMs) * 1_000_000)
                }
            }
        }
    }

    /// Stops the loop and waits (at most `timeoutMs`) for a pass in flight to end. True if it ended.
    @discardableResult
    public func stop(timeoutMs: Int = 10_000) -> Bool {
        guard let task = lock.withLock({ () -> Task<Void, Never>? in defer { self.task = nil }; return self.task }) else {
            return true
        }
        task.cancel()
        let done = DispatchSemaphore(value: 0)
        Task { await task.value; done.signal() }
        let ended = done.wait(timeout: .now() + .milliseconds(timeoutMs)) == .success
        if !ended { logger.warning("object janitor did not stop within \(timeoutMs) ms") }
        return ended
    }

    /// One pass: delete what is dead or expired, then destroy it in the metadata log.
    @discardableResult
    public func runOnce() async -> Pass {
        let now = nowMs()
        let candidates = controller.destroyCandidates(nowMs: now)
        let dead: [UInt64] = lock.withLock {
            let current = Set(candidates.awaitingDeletion)
            firstSeenDeadMs = firstSeenDeadMs.filter { current.contains($0.key) }
            for id in candidates.awaitingDeletion where firstSeenDeadMs[id] == nil { firstSeenDeadMs[id] = now }
            return candidates.awaitingDeletion.filter { now - firstSeenDeadMs[$0]! >= deletionDelayMs }
        }
        let ids = Array((dead + candidates.expiredPrepared).prefix(ObjectJanitor.idsPerPassMax))
        var pass = Pass()
        guard !ids.isEmpty else { return pass }
        let keys = ids.map { ObjectKeys.object(clusterId: clusterId, objectId: $0) }
        let errors: [String: ObjectStoreError]
        do {
            errors = try await store.deleteObjects(keys)
        } catch {
            logger.warning("object janitor: delete failed; retrying next pass", metadata: [
                "objects": "\(ids.count)", "error": "\(error)"])
            pass.failed = ids
            return pass
        }
        for (id, key) in zip(ids, keys) {
            switch errors[key] {
            case nil, .noSuchKey?: pass.destroyed.append(id)
            default: pass.failed.append(id)
            }
        }
        if let (key, error) = errors.first(where: { if case .noSuchKey = $0.value { return false }; return true }) {
            logger.warning("object janitor: some keys were not deleted; retrying next pass", metadata: [
                "failed": "\(pass.failed.count)", "example": "\(key)", "error": "\(error)"])
        }
        guard !pass.destroyed.isEmpty else { return pass }
        do {
            try controller.destroyObjects(ids: pass.destroyed)
            try await controller.committed()   // the next pass reads the committed image
            logger.info("object janitor: objects deleted", metadata: [
                "dead": "\(dead.count)", "expiredPrepared": "\(candidates.expiredPrepared.count)",
                "destroyed": "\(pass.destroyed.count)"])
        } catch {
            logger.error("object janitor: keys deleted but the destroy record failed; retrying next pass", metadata: [
                "objects": "\(pass.destroyed.count)", "error": "\(error)"])
            pass.failed += pass.destroyed
            pass.destroyed = []
        }
        return pass
    }
}
