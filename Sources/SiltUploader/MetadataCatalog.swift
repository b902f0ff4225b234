import NIOCore
import SiltMetadata
import SiltObjectStore
import SiltStreams

/// The metadata image as this process follows it from the controller (the broker's
/// `MetadataCache`, which the executable hands in).
public protocol MetadataFollower: AnyObject, Sendable {
    var image: MetadataImage { get }
    /// Fetches until this copy has everything the controller had when the call began.
    func catchUp(on loop: EventLoop) -> EventLoopFuture<Void>
}

/// The compactor's view of committed objects: the metadata image, as this process follows it.
public final class MetadataCatalog: ObjectCatalog, @unchecked Sendable {
    let cache: MetadataFollower
    let control: ControllerUploaderControl
    let clusterId: String
    let loop: EventLoop

    public init(cache: MetadataFollower, control: ControllerUploaderControl, clusterId: String, loop: EventLoop) {
        self.cache = cache
        self.control = control
        self.clusterId = clusterId
        self.loop = loop
    }

    public func catchUp() async throws { try await cache.catchUp(on: loop).get() }

    /// The objects this node may rewrite: those of the streams assigned to it (see
    /// `MetadataImage.isCompacted(by:_:)`), so each stream is compacted on one node.
    public func liveObjects() async throws -> [CatalogObject] {
        let image = cache.image
        return image.committedObjects.filter { image.isCompacted(by: control.nodeId, $0) }.map { o in
            CatalogObject(objectId: o.objectId, key: ObjectKeys.object(clusterId: clusterId, objectId: o.objectId), size: o.size,
                          kind: o.kind, ranges: o.ranges, committedAtMs: o.committedAtMs, stats: o.rangeStats)
        }
    }

    public func streamStartOffset(_ streamId: UInt64) async -> Int64? { cache.image.streamStates[streamId]?.startOffset }

    public func prepareObjects(count: Int) async throws -> UInt64 { try await control.prepare(count: count, ttlMs: -1) }

    public func commitCompaction(newObjects: [NewObject], compactedObjectIds: [UInt64]) async throws {
        try await control.commit(objects: newObjects, epochs: [:], compacted: compactedObjectIds)
    }
}
