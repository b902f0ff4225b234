import Foundation
import SiltConfig
import SiltObjectStore

/// Node start with an s3url: the configuration layer, credentials, and the cluster marker
/// that binds a bucket to one cluster.
///
/// Server.swift (sketch):
///
///     let s3 = try s3urlText.map(S3URL.parse)                       // --s3-url
///     let config = try ServerConfig.load(propertiesFile: file, layers: NodeStart.layers(s3url: s3),
///                                        overrides: overrides)
///     let clusterId = try MetaProperties.ensureFormatted(logDirs: config.logDirs, nodeId: config.nodeId,
///                                                        clusterId: config.clusterId)
///     let creds = try NodeStart.credentials(s3url: s3, config: config)
///     let opsStore: ObjectStore? = ...   // S3ObjectStore for s3.ops.buckets with creds, or nil
///     let marker = try NodeStart.prepareNodeStartBlocking(clusterId: clusterId, nodeId: config.nodeId, store: opsStore)
public enum NodeStart {
    /// Prefix of cluster marker objects in the ops bucket: `cluster/<cluster-id>`.
    public static let markerPrefix = "cluster/"

    public static func markerKey(clusterId: String) -> String { markerPrefix + clusterId }

    public struct ClusterMismatch: Error, CustomStringConvertible, Sendable {
        public var clusterId: String
        public var existing: [String]
        public var bucket: String
        public var description: String {
            "bucket \(bucket) belongs to cluster \(existing.joined(separator: ", ")) (marker \(existing.map { NodeStart.markerKey(clusterId: $0) }.joined(separator: ", "))), "
                + "but this node starts cluster \(clusterId). Use the s3url (cluster-id) the cluster was created with, "
                + "or a fresh bucket for a new cluster; delete the marker object only if that cluster's data is gone for good."
        }
    }

    public enum MarkerOutcome: Equatable, Sendable {
        /// No store (no s3url / object storage): nothing checked.
        case skipped
        /// This start wrote the marker: a new cluster on this bucket.
        case created
        /// The marker for this cluster was already there.
        case matched
    }

    /// The config layers for `ServerConfig.load(layers:)`: the s3url's, or none.
    public static func layers(s3url: S3URL?) -> [[String: String]] {
        s3url.map { [$0.configLayer()] } ?? []
    }

    /// Credentials for the node (see `S3Credentials.resolve`); the file comes from
    /// `s3.credentials.file` in the configuration.
    public static func credentials(s3url: S3URL?, config: ServerConfig,
                                   environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Credentials? {
        let file = config.explicit[S3Credentials.fileConfigKey].flatMap { $0.isEmpty ? nil : $0 }
        return try S3Credentials.resolve(s3url: s3url, credentialsFile: file, environment: environment)
    }

    /// Binds the ops bucket behind `store` to `clusterId` on first start, and refuses a start
    /// for another cluster: lists `cluster/`; another cluster's marker → `ClusterMismatch`;
    /// our marker → `.matched`; none → writes `cluster/<id>` with If-None-Match and lists again
    /// (two clusters racing for one bucket both see each other and stop) → `.created`.
    public static func prepareNodeStart(clusterId: String, nodeId: Int32, store: ObjectStore?,
                                        bucket: String? = nil) async throws -> MarkerOutcome {
        guard let store else { return .skipped }
        let bucketName = bucket ?? store.description
        guard !clusterId.isEmpty, !clusterId.contains("/") else {
            throw AdminError("cluster id '\(clusterId)' cannot name a cluster marker")
        }
        let before = try await markers(store)
        let others = before.filter { $0 != clusterId }
        if !others.isEmpty { throw ClusterMismatch(clusterId: clusterId, existing: others, bucket: bucketName) }
        if before.contains(clusterId) { return .matched }

        let body = "version=1\ncluster.id=\(clusterId)\ncreated.by.node.id=\(nodeId)\ncreated.at=\(ISO8601DateFormatter().string(from: Date()))\n"
        var outcome = MarkerOutcome.created
        do {
            _ = try await store.put(markerKey(clusterId: clusterId), Array(body.utf8), ifNoneMatch: true)
        } catch ObjectStoreError.preconditionFailed {
            outcome = .matched   // another node of this cluster wrote it first
        }
        let after = try await markers(store).filter { $0 != clusterId }
        if !after.isEmpty { throw ClusterMismatch(clusterId: clusterId, existing: after, bucket: bucketName) }
        return outcome
    }

    /// Same, taking the cluster id the configuration implies (`cluster.id`, which the s3url
    /// layer sets, else the s3url's) — for callers that have not formatted storage yet.
    public static func prepareNodeStart(s3url: S3URL?, config: ServerConfig, store: ObjectStore?) async throws -> MarkerOutcome {
        guard let store else { return .skipped }
        guard let id = config.clusterId ?? s3url?.clusterId else {
            throw AdminError("no cluster id: give cluster-id in the s3url or --override cluster.id=...")
        }
        return try await prepareNodeStart(clusterId: id, nodeId: config.nodeId, store: store, bucket: s3url?.opsBucket)
    }

    /// `prepareNodeStart` for synchronous callers (ParsableCommand.run).
    public static func prepareNodeStartBlocking(clusterId: String, nodeId: Int32, store: ObjectStore?,
                                                bucket: String? = nil) throws -> MarkerOutcome {
        try runBlocking { try await prepareNodeStart(clusterId: clusterId, nodeId: nodeId, store: store, bucket: bucket) }
    }

    /// Cluster ids with a marker in the bucket.
    public static func markers(_ store: ObjectStore) async throws -> [String] {
        var ids: [String] = []
        var token: String?
        repeat {
            let page = try await store.list(prefix: markerPrefix, delimiter: nil, continuationToken: token, maxKeys: 1000)
            ids += page.objects.map { String($0.key.dropFirst(markerPrefix.count)) }.filter { !$0.isEmpty }
            token = page.nextContinuationToken
        } while token != nil
        return ids
    }
}

/// Runs async work to completion from synchronous code (the `silt` commands are synchronous).
public func runBlocking<T>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = BlockingResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

final class BlockingResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
    init() {}
}
