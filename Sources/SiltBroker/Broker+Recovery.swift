import Foundation
import Logging
import NIOCore
import SiltMetadata
import SiltProtocol
import SiltStorage
import SiltWAL

/// Startup, in the order the broker role runs it: what this node acknowledged in earlier
/// stream epochs reaches object storage before the broker opens any stream in a new one.
///
/// ```
///  start()                    catch up, register, unfenced: leads its partitions, opens none
///  awaitRecoveredCommitted    the WAL's tail after a node restart: the uploader commits it
///  awaitLogBufferCommitted    what an earlier broker process left in the log buffer: uploaded now
///  openAssignedPartitions     OpenStreams: each stream's epoch + 1, logs open at the committed end
/// ```
///
/// Until a stream is open its requests get NOT_LEADER_OR_FOLLOWER ("still opening").
extension Broker {
    /// After a whole-node restart the WAL hands over what it held past its trim point: data
    /// the uploader had not committed to object storage. The uploader commits that first (in
    /// the epoch each frame carries); this waits until the metadata log shows it committed.
    /// Frames of an epoch the stream has left behind are never committed and not waited for.
    /// Returns the streams waited for.
    public func awaitRecoveredCommitted(_ tail: UnsafeRawBufferPointer, timeout: Duration) throws -> Int {
        let image = metadata.image
        var ends: [UInt64: Int64] = [:]
        for frame in try WALFrameCodec.decode(tail) where image.streamStates[frame.streamId]?.epoch == frame.streamEpoch {
            ends[frame.streamId] = max(ends[frame.streamId] ?? 0, frame.baseOffset + Int64(frame.count))
        }
        try awaitCommitted(ends, what: "the WAL's recovered data", timeout: timeout)
        return ends.count
    }

    /// What an earlier broker process left in the log buffer (durable in the WAL, maybe not
    /// uploaded): asks the uploader to upload it now and waits for the commit, so that the
    /// streams can reopen in a new epoch. Its bytes stay readable from memory meanwhile.
    public func awaitLogBufferCommitted(_ path: LogBufferWritePath, timeout: Duration) throws {
        let image = metadata.image
        let ends = try path.recoverTail { id, epoch in image.streamStates[id]?.epoch == epoch }
        guard !ends.isEmpty else { return }
        path.requestUpload()
        try awaitCommitted(ends, what: "the log buffer's tail", timeout: timeout)
    }

    private func awaitCommitted(_ wanted: [UInt64: Int64], what: String, timeout: Duration) throws {
        var ends = wanted.filter { id, _ in metadata.image.streams[id] != nil }   // deleted topics' data is dead
        guard !ends.isEmpty else { return }
        logger.info("waiting for the uploader to commit \(what)", metadata: ["streams": "\(ends.count)"])
        let deadline = ContinuousClock.now + timeout
        var nextLog = ContinuousClock.now + .seconds(5)
        while true {
            let image = metadata.image
            ends = ends.filter { id, end in image.streams[id] != nil && (image.streamStates[id]?.endOffset ?? 0) < end }
            if ends.isEmpty { return }
            if ContinuousClock.now > deadline {
                throw RecoveryError(description: "the uploader did not commit \(what) of \(ends.count) streams "
                                    + "within \(timeout) (is object storage reachable?)")
            }
            if ContinuousClock.now > nextLog {
                logger.info("still waiting for \(what) to be committed", metadata: ["streams": "\(ends.count)"])
                nextLog = ContinuousClock.now + .seconds(5)
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// Opens every partition this broker leads (after recovery), and from then on every one
    /// it comes to lead. Blocks the calling thread (not an event loop) until the first round
    /// is answered.
    public func openAssignedPartitions(timeout: TimeAmount) throws {
        streamOpening.withLockedValue { $0.openable = true }
        // Moves this broker left unfinished when it stopped complete now (Broker+Moves.swift).
        releaseMovingPartitions(metadata.image)
        let deadline = NIODeadline.now() + timeout
        while true {
            let image = metadata.image
            let missing = partitionsToOpen(image).count
            if missing == 0 { return }
            do {
                let opened = try openMissingPartitions(image: image, retry: false).wait()
                logger.info("partitions opened", metadata: ["count": "\(opened)"])
            } catch {
                if NIODeadline.now() > deadline { throw error }
                logger.info("opening partitions: \(error); retrying")
                Thread.sleep(forTimeInterval: 0.2)
            }
            if NIODeadline.now() > deadline {
                throw RecoveryError(description: "\(partitionsToOpen(metadata.image).count) partitions did not open within \(timeout)")
            }
        }
    }

    /// Partitions this broker leads whose stream is not open here and not being opened.
    func partitionsToOpen(_ image: MetadataImage) -> [(topic: TopicInfo, partition: Int32, streamId: UInt64)] {
        let (inFlight, releasing) = streamOpening.withLockedValue { ($0.inFlight, $0.releasing) }
        var out: [(TopicInfo, Int32, UInt64)] = []
        for topic in image.topicsByName.values {
            for p in 0..<topic.partitionCount {
                let streamId = topic.streamIds[Int(p)]
                guard let l = image.leadership(topic: topic, partition: p), l.leader == nodeId, !l.isMoving,
                      !inFlight.contains(streamId), !releasing.contains(streamId),
                      logs.partition(topic: topic.name, partition: p) == nil else { continue }
                out.append((topic, p, streamId))
            }
        }
        return out
    }

    /// One OpenStreams round trip for the partitions `partitionsToOpen` finds; their logs open
    /// when the controller answers. Never blocks: called from metadata changes. With `retry`,
    /// a failed round is tried again shortly (the controller may be changing hands).
    @discardableResult
    func openMissingPartitions(image: MetadataImage, retry: Bool = true) -> EventLoopFuture<Int> {
        let loop = controllerLoop
        let candidates = partitionsToOpen(image)
        // Claimed under the lock, with the open logs checked again there: the answer is applied
        // under the same lock, so a stream is never asked for while it is being opened or once
        // it is open (a second OpenStreams would bump the epoch under the open log's appends).
        let wanted = streamOpening.withLockedValue { s in
            guard s.openable else { return [(topic: TopicInfo, partition: Int32, streamId: UInt64)]() }
            return candidates.filter { c in
                !s.releasing.contains(c.streamId) && logs.partition(topic: c.topic.name, partition: c.partition) == nil
                    && s.inFlight.insert(c.streamId).inserted
            }
        }
        guard !wanted.isEmpty else { return loop.makeSucceededFuture(0) }
        let ids = wanted.map(\.streamId)
        var req = OpenStreamsRequest()
        req.nodeId = nodeId
        req.brokerEpoch = lifecycle.currentBrokerEpoch
        req.streamIds = ids.map { Int64(bitPattern: $0) }
        return controllerChannel.send(req, version: 0, timeout: .seconds(10)).flatMapThrowing { resp -> Int in
            guard resp.errorCode == 0 else {
                throw OpenStreamsRefused(code: resp.errorCode, message: resp.errorMessage ?? "")
            }
            let now = self.metadata.image
            var toLoad: [(StreamLog, @Sendable (StreamLog) async throws -> Void)] = []
            let opened: Int = try self.streamOpening.withLockedValue { s in
                defer { s.inFlight.subtract(ids) }
                var opened = 0
                for r in resp.streams {
                    let id = UInt64(bitPattern: r.streamId)
                    guard let (topic, p, _) = wanted.first(where: { $0.streamId == id }) else { continue }
                    guard r.errorCode == 0 else {
                        self.logger.info("stream not opened", metadata: ["topic": "\(topic.name)", "partition": "\(p)",
                                                                         "error": "\(r.errorMessage ?? "\(r.errorCode)")"])
                        continue
                    }
                    // Deleted (or deleted and re-created) while the request was out: nothing to open.
                    guard let current = now.topic(named: topic.name), current.id == topic.id else { continue }
                    let log = try self.logs.openStream(topic: topic.name, partition: p, streamId: id, streamEpoch: r.streamEpoch,
                                                       streamStart: r.startOffset, streamEnd: r.endOffset)
                    precondition(log.streamEpoch == r.streamEpoch, "stream \(id) opened twice: \(log.streamEpoch), \(r.streamEpoch)")
                    if let loader = s.loader {
                        s.loading.insert(id)
                        toLoad.append((log, loader))
                    }
                    opened += 1
                    self.logger.debug("stream opened", metadata: ["topic": "\(topic.name)", "partition": "\(p)",
                                                                  "streamEpoch": "\(r.streamEpoch)", "end": "\(r.endOffset)"])
                }
                return opened
            }
            for (log, loader) in toLoad { self.load(log, with: loader) }
            return opened
        }.flatMapError { error in
            self.streamOpening.withLockedValue { $0.inFlight.subtract(ids) }
            if retry {
                self.logger.warning("opening streams failed; retrying", metadata: ["error": "\(error)"])
                loop.scheduleTask(in: .milliseconds(500)) { self.openMissingPartitions(image: self.metadata.image) }
            }
            return loop.makeFailedFuture(error)
        }
    }
}

extension Broker {
    /// Succeeds once every partition this broker leads is open, or `within` has passed
    /// (the partitions then answer "still opening", which clients retry). Never blocks: it
    /// checks again every few milliseconds on `loop`.
    func whenPartitionsOpen(on loop: EventLoop, within: TimeAmount) -> EventLoopFuture<Void> {
        let deadline = NIODeadline.now() + within
        let promise = loop.makePromise(of: Void.self)
        func check() {
            let done = partitionsToOpen(metadata.image).isEmpty
                && streamOpening.withLockedValue { $0.inFlight.isEmpty && $0.loading.isEmpty }
            if done || NIODeadline.now() > deadline || !streamOpening.withLockedValue({ $0.openable }) {
                promise.succeed(())
            } else {
                loop.scheduleTask(in: .milliseconds(2)) { check() }
            }
        }
        check()
        return promise.futureResult
    }
}

extension Broker {
    /// Loads `log`'s state with `loader`, then lets requests reach it; retried while it
    /// fails (object storage unreachable) and the log is still the open one.
    func load(_ log: StreamLog, with loader: @escaping @Sendable (StreamLog) async throws -> Void) {
        Task {
            var delayMs: UInt64 = 100
            while true {
                do {
                    try await loader(log)
                    break
                } catch {
                    guard logs.partition(topic: log.topic, partition: log.partition) === log else { break }
                    logger.warning("loading a partition's state failed; retrying", metadata: [
                        "topic": "\(log.topic)", "partition": "\(log.partition)", "error": "\(error)"])
                    try? await Task.sleep(nanoseconds: delayMs * 1_000_000)
                    delayMs = min(delayMs * 2, 5_000)
                }
            }
            streamOpening.withLockedValue { _ = $0.loading.remove(log.streamId) }
        }
    }

    /// Partitions opened from now on load their state with `loader` before they are served.
    public func setPartitionLoader(_ loader: @escaping @Sendable (StreamLog) async throws -> Void) {
        streamOpening.withLockedValue { $0.loader = loader }
    }

    /// Whether `streamId` is opened but still loading its state.
    func isLoading(_ streamId: UInt64) -> Bool { streamOpening.withLockedValue { $0.loading.contains(streamId) } }
}

/// Which streams are being opened, and whether opening has started at all (after recovery).
struct StreamOpening {
    var openable = false
    var inFlight: Set<UInt64> = []
    /// Opened, loading their idempotent-producer state: not served yet.
    var loading: Set<UInt64> = []
    /// Released to another broker, not removed yet (Broker+Moves.swift).
    var releasing: Set<UInt64> = []
    /// Loads a newly opened partition's state before it is served (set once the broker's
    /// startup recovery is done; startup loads every partition itself).
    var loader: (@Sendable (StreamLog) async throws -> Void)?
}

struct OpenStreamsRefused: Error, CustomStringConvertible {
    let code: Int16
    let message: String
    var description: String { "OpenStreams refused (error \(code)): \(message)" }
}

public struct RecoveryError: Error, CustomStringConvertible {
    public var description: String
}
