import Foundation
import Logging
import SiltConfig
import SiltMetrics
import SiltObjectStore
import SiltRing
import SiltStreams
import SiltWAL

/// The stream state the uploader needs: where each stream's committed data ends.
public struct UploaderStreamState: Sendable, Equatable {
    public var epoch: Int64
    public var startOffset: Int64
    public var endOffset: Int64
    public init(epoch: Int64, startOffset: Int64, endOffset: Int64) {
        self.epoch = epoch
        self.startOffset = startOffset
        self.endOffset = endOffset
    }
}

/// Why a commit was refused, as the controller says it.
public enum UploaderCommitError: Error, CustomStringConvertible {
    /// Another uploader of this node opened after us: stop writing.
    case fenced(String)
    /// Our view of a stream's committed end (or epoch) is stale: re-open and re-plan.
    case stale(String)
    /// Anything else the controller refused.
    case refused(code: Int16, message: String)

    /// The controller's answer to an uploader request, by Kafka error code (0: nil).
    public static func from(code: Int16, message: String?) -> UploaderCommitError? {
        switch code {
        case 0: return nil
        case 77: return .fenced(message ?? "stale node epoch")                 // STALE_BROKER_EPOCH
        case 1, 74: return .stale(message ?? "stream state changed")           // OFFSET_OUT_OF_RANGE, FENCED_LEADER_EPOCH
        default: return .refused(code: code, message: message ?? "")
        }
    }

    public var description: String {
        switch self {
        case .fenced(let m): return "fenced: \(m)"
        case .stale(let m): return "stale stream state: \(m)"
        case .refused(let code, let m): return "refused (error \(code)): \(m)"
        }
    }
}

/// The controller operations of the object lifecycle, as the uploader uses them.
public protocol UploaderControl: Sendable {
    /// Fences earlier incarnations of this node's uploader; returns the state of every stream.
    func open() async throws -> [UInt64: UploaderStreamState]
    /// The first of `count` consecutive object ids, valid until `ttlMs` from now.
    func prepare(count: Int, ttlMs: Int64) async throws -> UInt64
    /// Commits objects atomically (fresh uploads, or a compaction replacing `compacted`).
    func commit(objects: [NewObject], epochs: [UInt64: Int64], compacted: [UInt64]) async throws
}

/// The uploader: the log buffer's second reader.
///
/// ```
///  [ log buffer ] ──peek (durable part only)──▶ StreamSetObjectBuilder ──▶ stream set object
///        ▲                                                            └──▶ stream objects (big streams)
///        │ advance reader 1 (frees the space)     prepare ids ─▶ upload (multipart, parallel parts)
///        └──────────────────────────── commit ranges (controller) ◀─┘
///                                           └──▶ trim the WAL to the object's end LSN
/// ```
///
/// One object is in flight at a time (the in-flight memory bound is one object, at most
/// `uploadThresholdBytes` plus a frame), and its frames stay in the log buffer until the
/// commit: a broker reads them from memory until the metadata log says they are in an
/// object, so a reader never sees a gap. A failed upload is retried with backoff, forever:
/// while object storage is down the buffer fills and producers feel back-pressure; nothing
/// is dropped.
public final class Uploader: @unchecked Sendable {
    let ring: LogRing
    let walState: WALState
    let trimCommands: ControlRing
    let store: ObjectStore
    let control: UploaderControl
    let clusterId: String
    public let config: UploaderConfig
    let metrics: MetricsRegion
    let logger: Logger
    private let reader: LogRingReader
    private var committer: ObjectCommitter {
        ObjectCommitter(control: control, store: store, clusterId: clusterId, config: config, metrics: metrics, logger: logger)
    }

    /// Committed end offset and epoch of each stream, as last learned or committed.
    private var streams: [UInt64: UploaderStreamState] = [:]
    private let lock = NSLock()
    private var uploadedObjects = 0

    public init(ring: LogRing, walState: WALState, trimCommands: ControlRing, store: ObjectStore, control: UploaderControl,
                clusterId: String, config: UploaderConfig, metrics: MetricsRegion, logger: Logger) {
        self.ring = ring
        self.walState = walState
        self.trimCommands = trimCommands
        self.store = store
        self.control = control
        self.clusterId = clusterId
        self.config = config
        self.metrics = metrics
        self.logger = logger
        self.reader = ring.reader(1)
    }

    /// Objects committed by this process (for tests and logs).
    public var objectsCommitted: Int { lock.withLock { uploadedObjects } }

    /// `run` returned because the controller fenced this uploader (its node epoch moved on: a
    /// WAL takeover of this node, or another incarnation), not because it was asked to stop.
    public var wasFenced: Bool { lock.withLock { fenced } }
    private var fenced = false

    /// Opens the streams (fencing older incarnations), then uploads what the WAL recovered.
    public func open() async throws {
        let states = try await control.open()
        lock.withLock { streams = states }
        try await uploadRecovered()
    }

    /// `open()`, retried with backoff while the controller and object storage come up (a node's
    /// roles start together), for at most `timeout`. A fenced open is final.
    public func openWithRetry(timeout: Duration = .seconds(600)) async throws {
        var delayMs = 100
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                try await open()
                return
            } catch UploaderCommitError.fenced(let m) {
                throw UploaderCommitError.fenced(m)
            } catch {
                if ContinuousClock.now > deadline { throw error }
                logger.info("uploader waiting for the controller and object storage: \(error)")
                try await Task.sleep(for: .milliseconds(delayMs))
                delayMs = min(delayMs * 2, 5_000)
            }
        }
    }

    /// Uploads until `shouldStop` turns true, then uploads everything durable and returns.
    public func run(shouldStop: @escaping @Sendable () -> Bool) async {
        var firstPendingAt: ContinuousClock.Instant?
        var backoffMs = 200
        while true {
            let stopping = shouldStop()
            let wanted = ring.requestedStreamUploads   // before `durable`: what was durable when asked is covered
            let position = reader.position
            let durable = ring.readPosition(0)
            // Stopping: the round below uploads everything durable, the requested streams too.
            if !wanted.isEmpty && !stopping {
                do {
                    try await uploadStreams(Set(wanted), from: position, to: durable)
                    for id in wanted { ring.completeStreamUpload(id) }
                } catch {
                    logger.warning("upload of requested streams failed; retrying", metadata: ["error": "\(error)",
                                                                                               "retryInMs": "\(backoffMs)"])
                    guard await survive(error) else { return }
                    try? await Task.sleep(for: .milliseconds(backoffMs))
                    backoffMs = min(backoffMs * 2, 10_000)
                    continue
                }
            }
            metrics.set(.walPendingBytes, durable > position ? durable - position : 0)
            metrics.set(.logBufferUsedBytes, UInt64(ring.capacityBytes - ring.freeBytes))
            metrics.set(.walUsedBytes, walState.usedBytes)
            if durable <= position {
                if stopping { return }
                firstPendingAt = nil
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            if firstPendingAt == nil { firstPendingAt = .now }
            let due = Int(durable - position) >= config.storage.uploadThresholdBytes
                || ContinuousClock.now - firstPendingAt! >= .milliseconds(config.storage.uploadIntervalMs)
                || ring.uploadRequestPosition > position
                || walIsFilling
                || stopping
            guard due else {
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            do {
                let end = min(durable, position + UInt64(config.storage.uploadThresholdBytes))
                try await uploadRing(from: position, to: end)
                firstPendingAt = nil
                backoffMs = 200
            } catch {
                logger.warning("upload failed; retrying", metadata: ["error": "\(error)", "retryInMs": "\(backoffMs)"])
                guard await survive(error) else { return }
                if stopping && backoffMs > 8_000 {
                    logger.error("stopping with data not uploaded; the WAL keeps it for the next start",
                                 metadata: ["bytes": "\(durable - position)"])
                    return
                }
                try? await Task.sleep(for: .milliseconds(backoffMs))
                backoffMs = min(backoffMs * 2, 10_000)
            }
        }
    }

    /// After a failed upload: counts it, re-learns the streams' state when it was stale, and
    /// returns false when this uploader was fenced (it must stop: `wasFenced`).
    private func survive(_ error: Error) async -> Bool {
        metrics.add(.s3Errors)
        if case UploaderCommitError.fenced = error {
            logger.critical("this uploader was fenced (a takeover of this node, or a newer incarnation); stopping")
            lock.withLock { fenced = true }
            return false
        }
        if case UploaderCommitError.stale = error, let states = try? await control.open() {
            lock.withLock { streams = states }
        }
        return true
    }

    /// Upload early when the WAL is more than half full, whatever the threshold says.
    private var walIsFilling: Bool {
        walState.capacityBytes > 0 && walState.usedBytes * 2 >= walState.capacityBytes
    }

    /// Builds, uploads and commits the frames of the log buffer in `[start, end)`; then frees
    /// the buffer space and trims the WAL.
    func uploadRing(from start: UInt64, to end: UInt64) async throws {
        var position = start
        var all: [LogRingFrame] = []
        while position < end {
            let batch = try reader.peek(from: position, maxBytes: Int(end - position))
            if batch.isEmpty { break }
            all += batch.frames
            position = batch.endLSN
        }
        let plan = UploadPlan(all, known: lock.withLock { streams }, requireKnown: false,
                              blockBytes: config.storage.objectBlockBytes)
        if plan.superseded > 0 { logSuperseded(plan) }
        if plan.added > 0 {
            try await uploadAndCommit(plan.builder, epochs: plan.epochs)
        }
        reader.advance(to: position)
        trimWAL(to: position)
    }

    /// The frames of `wanted` streams in `[start, end)` of the log buffer, in objects of
    /// their own, committed now (a partition moving away must not wait for the whole buffer).
    /// The buffer is not advanced: the next round skips these frames as committed.
    func uploadStreams(_ wanted: Set<UInt64>, from start: UInt64, to end: UInt64) async throws {
        var position = start
        var all: [LogRingFrame] = []
        while position < end {
            let batch = try reader.peek(from: position, maxBytes: Int(end - position))
            if batch.isEmpty { break }
            all += batch.frames.lazy.filter { wanted.contains($0.streamId) }
            position = batch.endLSN
        }
        let plan = UploadPlan(all, known: lock.withLock { streams }, requireKnown: false,
                              blockBytes: config.storage.objectBlockBytes)
        if plan.superseded > 0 { logSuperseded(plan) }
        if plan.added > 0 {
            try await uploadAndCommit(plan.builder, epochs: plan.epochs)
            logger.debug("requested streams uploaded", metadata: ["streams": "\(wanted.count)", "frames": "\(plan.added)"])
        }
    }

    /// The epoch each stream's frames are committed in: the newest among the frames and what
    /// the controller last said. A frame in an older epoch was superseded: the stream was
    /// reopened (here, or on another broker) after everything acknowledged in that epoch was
    /// committed, so what remains of it was never acknowledged, or was acknowledged by a
    /// broker that had lost the stream (a zombie). It is dropped, never committed.
    static func liveEpochs<S: Sequence>(_ frames: S, known: [UInt64: UploaderStreamState]) -> [UInt64: Int64]
        where S.Element == (UInt64, Int64) {
        var out: [UInt64: Int64] = [:]
        for (stream, epoch) in frames {
            out[stream] = max(out[stream] ?? known[stream]?.epoch ?? epoch, epoch)
        }
        return out
    }

    private func logSuperseded(_ plan: UploadPlan) {
        metrics.add(.walFramesSuperseded, UInt64(plan.superseded))
        logger.warning("dropping frames of a superseded stream epoch (never committed)", metadata: [
            "frames": "\(plan.superseded)", "streams": "\(plan.supersededStreams.sorted().prefix(8))"])
    }

    /// After a node restart: the WAL's records past its trim point, not yet in any object.
    func uploadRecovered() async throws {
        let tail = walState.recoveredFrames
        guard tail.count > 0 else { return }
        let frames = try WALFrameCodec.decode(tail)
        var delayMs = 200
        while true {
            let plan = UploadPlan(frames, known: lock.withLock { streams }, requireKnown: true,
                                  blockBytes: config.storage.objectBlockBytes)
            if plan.superseded > 0 { logSuperseded(plan) }
            guard plan.added > 0 else { break }
            logger.info("uploading the WAL's recovered records", metadata: ["frames": "\(plan.added)",
                                                                            "bytes": "\(plan.builder.bytesAdded)"])
            do {
                try await uploadAndCommit(plan.builder, epochs: plan.epochs)
                break
            } catch UploaderCommitError.fenced(let m) {
                throw UploaderCommitError.fenced(m)
            } catch {
                logger.warning("upload of recovered records failed; retrying", metadata: ["error": "\(error)"])
                if case UploaderCommitError.stale = error, let states = try? await control.open() {
                    lock.withLock { streams = states }
                }
                try await Task.sleep(for: .milliseconds(delayMs))
                delayMs = min(delayMs * 2, 10_000)
            }
        }
        trimWAL(to: walState.recoveredEndLSN)
    }

    private func uploadAndCommit(_ builder: StreamSetObjectBuilder, epochs live: [UInt64: Int64]) async throws {
        let (committed, epochs) = try await committer.commit(builder, epochs: live)
        lock.withLock {
            for o in committed {
                for r in o.ranges {
                    var s = streams[r.streamId] ?? UploaderStreamState(epoch: 0, startOffset: r.startOffset, endOffset: r.endOffset)
                    s.endOffset = max(s.endOffset, r.endOffset)
                    s.epoch = max(s.epoch, epochs[r.streamId] ?? s.epoch)
                    streams[r.streamId] = s
                }
            }
            uploadedObjects += committed.count
        }
    }

    private func trimWAL(to lsn: UInt64) {
        if !trimCommands.push(ControlMessage(kind: ControlMessage.kindTrim, value: lsn), timeout: .seconds(1)) {
            logger.warning("WAL trim command not delivered; the next one covers it", metadata: ["lsn": "\(lsn)"])
        }
    }
}
