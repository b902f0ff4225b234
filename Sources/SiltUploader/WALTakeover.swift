import Foundation
import Logging
import SiltMetadata
import SiltMetrics
import SiltNet
import SiltObjectStore
import SiltProtocol
import SiltWAL

/// WAL takeover: a surviving node reads a dead broker's WAL, commits what it holds, and has the
/// controller move the dead broker's partitions. So a kill -9 or a power loss loses nothing
/// acknowledged, and the partitions serve again within seconds instead of waiting for the node.
/// The dead broker's WAL is reachable
/// - in S3 WAL mode, by any node whose own WAL is in S3: the dead node's records are objects
///   in the same bucket (`ObjectWAL.read`, which writes nothing);
/// - for a device or file WAL, through a path both can reach (`s3.wal.takeover.paths`; the
///   model is an EBS volume attached to another instance, on one machine the same file or
///   loop device).
///
/// ```
///  broker X fenced (session expired), partitions assigned to X, X's WAL reachable here
///   ─▶ OpenUploader(X)         X's node epoch + 1: X's own uploader (a zombie) is fenced
///   ─▶ WAL.open(X's path)      the header's generation + 1: X's writer is fenced on disk
///      or ObjectWAL.read(X)    (S3: X acknowledges nothing once its lease lapsed, before the fence)
///   ─▶ commit every frame      in its stream epoch, as node X (X still owns the streams)
///   ─▶ TakeOverNode(X, epoch)  the controller moves X's partitions to the unfenced brokers
/// ```
///
/// Who and when: a broker seen unfenced and then fenced in the same registration lost its
/// session (its lease lapsed before the controller fenced it), so the lowest-id unfenced broker
/// takes it over at once; the others wait `fencedGraceMs` more, in case that one cannot. A
/// broker first seen fenced (it may be restarting, its WAL already open again) is taken over
/// only after `fencedGraceMs`.
///
/// Safety comes from the epochs, not from who runs it: two nodes taking X over at once fence
/// each other by X's node epoch, and X coming back (a restart, or a SIGSTOPped process that
/// resumes) fences the takeover the same way, before the controller moves anything. The
/// controller refuses TakeOverNode while X is unfenced or when the node epoch moved on.
public final class WALTakeover: @unchecked Sendable {
    public let nodeId: Int32
    let paths: [Int32: String]
    /// The S3 WAL bucket when this node's own WAL is in S3: every node's WAL is readable there.
    let objectWALStore: ObjectStore?
    let client: ControllerQuorumClient
    let store: ObjectStore
    let clusterId: String
    let config: UploaderConfig
    let metrics: MetricsRegion
    let logger: Logger
    /// Payload bound of the records read back (the largest a WAL role may write).
    static let recordPayloadBytesMax = 32 << 20
    /// How long a broker must stay fenced, in one registration, before it is taken over: a
    /// restarting node's broker registers fenced while its WAL role already has the WAL open,
    /// and is unfenced within a heartbeat or two; a dead one stays fenced.
    let fencedGraceMs: Int64
    private let lock = NSLock()
    /// When each fenced broker was first seen fenced, in which registration (broker epoch), and
    /// whether it had been seen unfenced in that registration (its session expired).
    private var fencedSince: [Int32: (brokerEpoch: Int64, at: ContinuousClock.Instant, expired: Bool)] = [:]
    /// The registration each broker was last seen unfenced in.
    private var unfencedEpoch: [Int32: Int64] = [:]
    /// Brokers found without an S3 WAL and without a takeover path, in that registration.
    private var unreachable: [Int32: Int64] = [:]

    public init(nodeId: Int32, paths: [Int32: String], objectWALStore: ObjectStore?, client: ControllerQuorumClient,
                store: ObjectStore, clusterId: String, config: UploaderConfig, fencedGraceMs: Int64, metrics: MetricsRegion,
                logger: Logger) {
        precondition(fencedGraceMs >= 0)
        self.nodeId = nodeId
        self.fencedGraceMs = fencedGraceMs
        self.paths = paths
        self.objectWALStore = objectWALStore
        self.client = client
        self.store = store
        self.clusterId = clusterId
        self.config = config
        self.metrics = metrics
        self.logger = logger
    }

    /// Brokers to take over now: fenced, still owning partitions, with a WAL this node can
    /// reach, and past their grace (see the type's comment), by id.
    public func candidates(_ image: MetadataImage, now: ContinuousClock.Instant = .now) -> [Int32] {
        let owners = Set(image.partitions.values.map { $0.replicas[0] })
        let reachable = objectWALStore != nil ? Set(image.brokers.keys) : Set(paths.keys)
        let designated = image.brokers.values.filter { !$0.fenced }.map(\.nodeId).min() == nodeId
        return lock.withLock {
            for b in image.brokers.values where !b.fenced { unfencedEpoch[b.nodeId] = b.brokerEpoch }
            return reachable.sorted().filter { id in
                guard id != nodeId, owners.contains(id), let b = image.brokers[id], b.fenced,
                      unreachable[id] != b.brokerEpoch else {
                    fencedSince[id] = nil
                    return false
                }
                if fencedSince[id]?.brokerEpoch != b.brokerEpoch {
                    fencedSince[id] = (b.brokerEpoch, now, unfencedEpoch[id] == b.brokerEpoch)
                }
                let seen = fencedSince[id]!
                let graceMs = (seen.expired ? 0 : fencedGraceMs) + (designated ? 0 : fencedGraceMs)
                return now - seen.at >= .milliseconds(graceMs)
            }
        }
    }

    /// Takes broker `dead` over; returns the partitions the controller moved. Throws when
    /// anything fences it (the broker or another taker came first): nothing moved then.
    public func takeOver(_ dead: Int32, brokerEpoch: Int64 = -1) async throws -> Int {
        let started = ContinuousClock.now
        // S3 first: a node in S3 WAL mode has its head there (written before its first record).
        var scan: ObjectWAL.Scan?
        if let objectWALStore {
            let found = try await ObjectWAL.read(store: objectWALStore, clusterId: clusterId, nodeId: Int64(dead))
            if found.exists { scan = found }
        }
        guard scan != nil || paths[dead] != nil else {
            lock.withLock { unreachable[dead] = brokerEpoch }
            throw TakeoverError("node \(dead) has no S3 WAL and no takeover path: its partitions wait for it")
        }
        let control = ControllerUploaderControl(client: client, nodeId: dead)
        let known = try await control.open()
        let (recovered, source): ([RecoveredRecord], String)
        if let scan {
            (recovered, source) = (scan.records, "S3 WAL")
        } else {
            (recovered, source) = (try openDeviceWAL(dead, path: paths[dead]!), paths[dead]!)
        }
        // The frames point into this buffer until the commit is done.
        let total = recovered.reduce(0) { $0 + $1.payload.count }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 8)
        defer { buffer.deallocate() }
        var at = 0
        for r in recovered where !r.payload.isEmpty {
            r.payload.withUnsafeBytes { buffer.baseAddress!.advanced(by: at).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            at += r.payload.count
        }
        let frames = try WALFrameCodec.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<total]))
        let plan = UploadPlan(frames, known: known, requireKnown: true, blockBytes: config.storage.objectBlockBytes)
        let committedFrames = plan.added
        let committer = ObjectCommitter(control: control, store: store, clusterId: clusterId, config: config,
                                        metrics: metrics, logger: logger)
        if plan.added > 0 { _ = try await committer.commit(plan.builder, epochs: plan.epochs) }
        var req = TakeOverNodeRequest()
        req.takerId = nodeId
        req.nodeId = dead
        req.nodeEpoch = control.nodeEpoch
        let resp = try await client.send(req, version: 0, timeout: .seconds(30)).get()
        guard resp.errorCode == 0 else {
            throw TakeoverError("the controller refused the takeover of node \(dead): \(resp.errorMessage ?? KafkaErrorCode.name(resp.errorCode))")
        }
        let elapsed = ContinuousClock.now - started
        let ms = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        metrics.add(.walTakeovers)
        metrics.observe(.walTakeoverLatency, seconds: Double(ms) / 1000)
        logger.warning("took over a dead broker's WAL", metadata: [
            "node": "\(dead)", "wal": "\(source)", "records": "\(recovered.count)", "framesCommitted": "\(committedFrames)",
            "partitionsMoved": "\(resp.partitionsMoved)", "ms": "\(ms)"])
        return Int(resp.partitionsMoved)
    }

    /// Opens a dead node's device or file WAL (bumping its header's generation: its writer is
    /// fenced on disk) and returns its records.
    private func openDeviceWAL(_ dead: Int32, path: String) throws -> [RecoveredRecord] {
        let identity = try WAL.identity(path: path)
        guard identity.nodeId == Int64(dead) else {
            throw TakeoverError("\(path) holds node \(identity.nodeId)'s WAL, not node \(dead)'s: check s3.wal.takeover.paths")
        }
        // The largest record the device can hold twice (what its own node could have written).
        let fits = Int((identity.capacityBytes - 8192) / 2) / 4096 * 4096 - 4096
        let walConfig = WALConfig(maxRecordPayloadBytes: min(Self.recordPayloadBytesMax, fits), maxInFlightWrites: 1,
                                  durability: .dsyncWrite, prepare: nil)   // read and fenced, not written
        let (wal, recovered) = try WAL.open(path: path, capacityBytes: identity.capacityBytes, nodeId: Int(dead),
                                            config: walConfig, logger: logger)
        try? wal.close()
        return recovered
    }

    /// Every `intervalMs` until `shouldStop`: takes over each candidate of the image `image`
    /// returns. A refusal (the broker came back, another node took it over) is logged and
    /// the next round looks again.
    public func run(intervalMs: Int64 = 250, image: @escaping @Sendable () async throws -> MetadataImage,
                    shouldStop: @escaping @Sendable () -> Bool) async {
        logger.info("WAL takeover watching", metadata: [
            "nodes": "\(objectWALStore != nil ? "every node in S3 WAL mode" : "\(paths.keys.sorted())")"])
        while !shouldStop() {
            do {
                let current = try await image()
                for dead in candidates(current) where !shouldStop() {
                    do {
                        _ = try await takeOver(dead, brokerEpoch: current.brokers[dead]?.brokerEpoch ?? -1)
                    } catch {
                        logger.warning("WAL takeover failed", metadata: ["node": "\(dead)", "error": "\(error)"])
                    }
                }
            } catch {
                logger.debug("WAL takeover: metadata unavailable: \(error)")
            }
            try? await Task.sleep(nanoseconds: UInt64(intervalMs) * 1_000_000)
        }
    }
}

public struct TakeoverError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
