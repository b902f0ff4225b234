import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltAdmin
import SiltBroker
import SiltConfig
import SiltController
import SiltMetrics
import SiltNet
import SiltObjectStore
import SiltProtocol
import SiltRing
import SiltStreams

/// The uploader role: the log buffer's second reader. It builds stream set objects (and
/// stream objects for big streams) from what the WAL has made durable, uploads them,
/// commits them through the controller, then frees the buffer and trims the WAL. It also
/// runs compaction on its schedule. See `Uploader` and `Compactor`.
struct UploaderRole {
    let config: ServerConfig
    let logger: Logger

    func run() throws {
        let regions = try NodeRegions.attach()
        let state = regions.walState
        guard state.waitReady(timeout: .seconds(600)) else { throw RoleError("the WAL never became ready") }
        let metrics = try MetricsRegion.attach(fd: RoleFd.metrics)
        let clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId,
                                                           clusterId: config.clusterId)
        let store = MeteredObjectStore(try NodeObjectStores.data(config: config, credentials: try CredentialsTransfer.read(),
                                                                 logger: logger), metrics: metrics)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = try controllerQuorumClient(config: config, group: group, clientId: "silt-uploader-\(config.nodeId)",
                                                logger: logger)
        let control = ControllerUploaderControl(client: client, nodeId: config.nodeId)
        let uploader = Uploader(ring: regions.ring, walState: state, trimCommands: regions.trimCommands, store: store,
                                control: control, clusterId: clusterId, config: config.objectStorage, metrics: metrics,
                                logger: logger)
        // The metadata image, followed like a broker follows it: the compactor's catalog.
        let cache = MetadataCache(channel: client, clusterId: clusterId, logger: logger)
        let stop = StopFlag()
        let done = DispatchSemaphore(value: 0)
        let role = self
        Task {
            do {
                try await role.openWithRetry(uploader)
                role.logger.info("uploader ready", metadata: ["position": "\(regions.ring.readPosition(1))"])
                let compaction = Task { await role.compactionLoop(store: store, control: control, cache: cache, clusterId: clusterId,
                                                                 metrics: metrics, group: group, stop: stop) }
                await uploader.run(shouldStop: { stop.isSet })
                compaction.cancel()
                _ = await compaction.value
            } catch {
                role.logger.critical("uploader failed: \(error)")
                Foundation.exit(2)
            }
            done.signal()
        }
        waitForStopSignal()
        logger.info("uploader stopping: uploading what is pending")
        stop.set()
        done.wait()
        cache.stop()
        client.close()
        try? group.syncShutdownGracefully()
        logger.info("uploader stopped", metadata: ["objects": "\(uploader.objectsCommitted)"])
    }

    private func openWithRetry(_ uploader: Uploader) async throws {
        var delayMs = 100
        let deadline = ContinuousClock.now + .seconds(600)
        while true {
            do {
                try await uploader.open()
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

    /// Stream set compaction and stream object compaction, each on its own period, and the
    /// log cleaner every `log.cleaner.backoff.ms`.
    private func compactionLoop(store: ObjectStore, control: ControllerUploaderControl, cache: MetadataCache, clusterId: String,
                                metrics: MetricsRegion, group: EventLoopGroup, stop: StopFlag) async {
        let storage = config.objectStorage
        let catalog = MetadataCatalog(cache: cache, control: control, clusterId: clusterId, loop: group.next())
        var compaction = CompactionConfig(blockBytes: storage.objectBlockBytes, partBytes: storage.objectPartBytes,
                                          parallelism: storage.uploadParallelism,
                                          bandwidthBytesPerSecond: Int64(storage.networkBaselineBytesPerSecond),
                                          streamSetBytesMax: Int64(UploaderRole.compactionBytesMax(storage)))
        compaction.streamSplitBytes = Int64(storage.streamObjectSplitBytes)
        let compactor = Compactor(store: store, catalog: catalog, clusterId: clusterId, config: compaction, logger: logger)
        let cleaner = LogCleaner(store: store, catalog: catalog, clusterId: clusterId, config: logCleanerConfig(), logger: logger)
        var nextClean = ContinuousClock.now + .milliseconds(cleanerBackoffMs)
        var nextStreamSet = ContinuousClock.now + .milliseconds(storage.streamSetCompactionIntervalMs)
        var nextStream = ContinuousClock.now + .milliseconds(storage.streamObjectCompactionIntervalMs)
        while !Task.isCancelled && !stop.isSet {
            try? await Task.sleep(for: .milliseconds(200))
            let now = ContinuousClock.now
            let cleanDue = cleanerEnabled && now >= nextClean
            guard now >= nextStreamSet || now >= nextStream || cleanDue else { continue }
            do {
                try await catalog.catchUp()
                metrics.set(.objectsCommitted, UInt64(cache.image.committedObjects.count))
                if now >= nextStreamSet {
                    nextStreamSet = now + .milliseconds(storage.streamSetCompactionIntervalMs)
                    // Several rounds while there is work: each round's input is bounded.
                    for _ in 0..<16 where !stop.isSet {
                        let r = try await compactor.compactStreamSetObjects()
                        record(r, kind: .streamSet, metrics: metrics)
                        if r.objectsBefore == 0 { break }
                        try await catalog.catchUp()
                    }
                }
                if now >= nextStream {
                    nextStream = now + .milliseconds(storage.streamObjectCompactionIntervalMs)
                    try await catalog.catchUp()
                    let r = try await compactor.compactStreamObjects()
                    record(r, kind: .stream, metrics: metrics)
                }
                if cleanDue {
                    // Log compaction (cleanup.policy=compact): same loop, so it never races the compactor.
                    try await catalog.catchUp()
                    let streams = UploaderRole.cleanableStreams(image: cache.image, config: config)
                    _ = await cleaner.cleanDirtyStreams(streams, nowMs: MetadataController.wallClockMs(),
                                                        beforeEach: { try await catalog.catchUp() })
                    nextClean = ContinuousClock.now + .milliseconds(cleanerBackoffMs)
                }
            } catch {
                logger.warning("compaction failed; next period retries", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Stream set compaction holds its input (and its output) in memory: 4 uploads' worth,
    /// at least 64 MiB, at most 256 MiB. Stream set objects of at least half this are left
    /// as they are (big enough), so large uploads are never rewritten.
    static func compactionBytesMax(_ storage: ObjectStorageConfig) -> Int {
        min(max(4 * storage.uploadThresholdBytes, 64 << 20), 256 << 20)
    }

    private func record(_ r: CompactionResult, kind: ObjectKind, metrics: MetricsRegion) {
        guard r.objectsBefore > 0 else { return }
        metrics.add(kind == .streamSet ? .compactionsStreamSet : .compactionsStream)
        metrics.add(.compactionBytesRead, UInt64(r.bytesRead))
        metrics.add(.compactionBytesWritten, UInt64(r.bytesWritten))
        metrics.add(.compactionBytesCopied, UInt64(r.bytesCopiedServerSide))
        logger.info("compaction", metadata: ["kind": "\(kind)", "objectsBefore": "\(r.objectsBefore)",
                                              "objectsAfter": "\(r.objectsAfter)", "bytesRead": "\(r.bytesRead)",
                                              "bytesWritten": "\(r.bytesWritten)", "bytesCopied": "\(r.bytesCopiedServerSide)"])
    }
}

/// The object lifecycle requests on the controller's listener.
final class ControllerUploaderControl: UploaderControl, @unchecked Sendable {
    let client: ControllerQuorumClient
    let nodeId: Int32
    private let lock = NSLock()
    private var epoch: Int64 = -1

    init(client: ControllerQuorumClient, nodeId: Int32) {
        self.client = client
        self.nodeId = nodeId
    }

    var nodeEpoch: Int64 { lock.withLock { epoch } }

    func open() async throws -> [UInt64: UploaderStreamState] {
        var req = OpenUploaderRequest()
        req.nodeId = nodeId
        let resp = try await client.send(req, version: 0, timeout: .seconds(30)).get()
        try Self.check(resp.errorCode, resp.errorMessage)
        lock.withLock { epoch = resp.nodeEpoch }
        var out: [UInt64: UploaderStreamState] = [:]
        for s in resp.streams {
            out[UInt64(bitPattern: s.streamId)] = UploaderStreamState(epoch: s.epoch, startOffset: s.startOffset, endOffset: s.endOffset)
        }
        return out
    }

    func prepare(count: Int, ttlMs: Int64) async throws -> UInt64 {
        var req = PrepareS3ObjectRequest()
        req.nodeId = nodeId
        req.nodeEpoch = nodeEpoch
        req.count = Int32(count)
        req.ttlMs = ttlMs
        let resp = try await client.send(req, version: 0, timeout: .seconds(30)).get()
        try Self.check(resp.errorCode, resp.errorMessage)
        return UInt64(bitPattern: resp.firstObjectId)
    }

    func commit(objects: [NewObject], epochs: [UInt64: Int64], compacted: [UInt64]) async throws {
        var req = CommitS3ObjectsRequest()
        req.nodeId = nodeId
        req.nodeEpoch = nodeEpoch
        req.objects = objects.map { o in
            var obj = CommitS3ObjectsRequest.S3Object()
            obj.objectId = Int64(bitPattern: o.objectId)
            obj.objectSize = o.size
            obj.kind = o.kind.rawValue
            obj.ranges = o.ranges.enumerated().map { i, r in
                var range = CommitS3ObjectsRequest.StreamRange()
                if let s = o.stats?[i] {
                    range.bytes = s.bytes
                    range.maxTimestampMs = s.maxTimestampMs
                }
                range.streamId = Int64(bitPattern: r.streamId)
                range.streamEpoch = epochs[r.streamId] ?? 0
                range.startOffset = r.startOffset
                range.endOffset = r.endOffset
                return range
            }
            return obj
        }
        req.compactedObjectIds = compacted.map { Int64(bitPattern: $0) }
        let resp = try await client.send(req, version: 0, timeout: .seconds(30)).get()
        try Self.check(resp.errorCode, resp.errorMessage)
    }

    static func check(_ code: Int16, _ message: String?) throws {
        if let error = UploaderCommitError.from(code: code, message: message) { throw error }
    }
}

/// The compactor's view of committed objects: the metadata image, as this process follows it.
final class MetadataCatalog: ObjectCatalog, @unchecked Sendable {
    let cache: MetadataCache
    let control: ControllerUploaderControl
    let clusterId: String
    let loop: EventLoop

    init(cache: MetadataCache, control: ControllerUploaderControl, clusterId: String, loop: EventLoop) {
        self.cache = cache
        self.control = control
        self.clusterId = clusterId
        self.loop = loop
    }

    func catchUp() async throws { try await cache.catchUp(on: loop).get() }

    /// The objects this node may rewrite: those of the streams assigned to it (see
    /// `MetadataImage.isCompacted(by:_:)`), so each stream is compacted on one node.
    func liveObjects() async throws -> [CatalogObject] {
        let image = cache.image
        return image.committedObjects.filter { image.isCompacted(by: control.nodeId, $0) }.map { o in
            CatalogObject(objectId: o.objectId, key: ObjectKeys.object(clusterId: clusterId, objectId: o.objectId), size: o.size,
                          kind: o.kind, ranges: o.ranges, committedAtMs: o.committedAtMs, stats: o.rangeStats)
        }
    }

    func streamStartOffset(_ streamId: UInt64) async -> Int64? { cache.image.streamStates[streamId]?.startOffset }

    func prepareObjects(count: Int) async throws -> UInt64 { try await control.prepare(count: count, ttlMs: -1) }

    func commitCompaction(newObjects: [NewObject], compactedObjectIds: [UInt64]) async throws {
        try await control.commit(objects: newObjects, epochs: [:], compacted: compactedObjectIds)
    }
}
