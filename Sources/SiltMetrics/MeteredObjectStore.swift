import SiltObjectStore

/// An `ObjectStore` that counts every call into a `MetricsRegion`, then forwards it.
///
/// It counts calls (logical requests), not HTTP attempts: the retries an `S3ObjectStore`
/// makes inside one call are not seen here. A call that throws counts as a request and as
/// an error (`silt_s3_errors_total`), and its error is rethrown unchanged.
///
///     class   calls                                                         bytes
///     PUT     put, createMultipartUpload, uploadPart, uploadPartCopy,      body sent (put, uploadPart)
///             completeMultipartUpload
///     GET     get, head                                                     body received (get)
///     DELETE  delete, deleteObjects (one per 1000 keys), abortMultipartUpload
///     LIST    list
public final class MeteredObjectStore: ObjectStore, @unchecked Sendable {
    // @unchecked Sendable: both stored properties are immutable and Sendable.
    public let inner: ObjectStore
    public let metrics: MetricsRegion

    public init(_ inner: ObjectStore, metrics: MetricsRegion) {
        self.inner = inner
        self.metrics = metrics
    }

    public var description: String { inner.description }

    /// Counts `requests` of class `metric` (and an error when `body` throws).
    @inline(__always)
    private func counted<T>(_ metric: Metric, requests: UInt64 = 1, _ body: () async throws -> T) async throws -> T {
        metrics.add(metric, requests)
        do {
            return try await body()
        } catch {
            metrics.add(.s3Errors)
            throw error
        }
    }

    public func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String? {
        let etag = try await counted(.s3PutRequests) { try await inner.put(key, body, ifNoneMatch: ifNoneMatch) }
        metrics.add(.s3PutBytes, UInt64(body.count))
        return etag
    }

    public func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8] {
        let bytes = try await counted(.s3GetRequests) { try await inner.get(key, range: range) }
        metrics.add(.s3GetBytes, UInt64(bytes.count))
        return bytes
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        try await counted(.s3GetRequests) { try await inner.head(key) }
    }

    public func delete(_ key: String) async throws {
        try await counted(.s3DeleteRequests) { try await inner.delete(key) }
    }

    public func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError] {
        let batches = (keys.count + deleteObjectsBatchMaxKeys - 1) / deleteObjectsBatchMaxKeys
        return try await counted(.s3DeleteRequests, requests: UInt64(batches)) { try await inner.deleteObjects(keys) }
    }

    public func list(prefix: String, delimiter: String?, continuationToken: String?, maxKeys: Int) async throws -> ListPage {
        try await counted(.s3ListRequests) {
            try await inner.list(prefix: prefix, delimiter: delimiter, continuationToken: continuationToken, maxKeys: maxKeys)
        }
    }

    public func createMultipartUpload(_ key: String) async throws -> String {
        try await counted(.s3PutRequests) { try await inner.createMultipartUpload(key) }
    }

    public func uploadPart(_ key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String {
        let etag = try await counted(.s3PutRequests) {
            try await inner.uploadPart(key, uploadId: uploadId, partNumber: partNumber, body: body)
        }
        metrics.add(.s3PutBytes, UInt64(body.count))
        return etag
    }

    public func uploadPartCopy(_ key: String, uploadId: String, partNumber: Int, sourceKey: String,
                               sourceRange: ClosedRange<Int64>?) async throws -> String {
        try await counted(.s3PutRequests) {
            try await inner.uploadPartCopy(key, uploadId: uploadId, partNumber: partNumber, sourceKey: sourceKey,
                                           sourceRange: sourceRange)
        }
    }

    public func completeMultipartUpload(_ key: String, uploadId: String, parts: [CompletedPart]) async throws -> String? {
        try await counted(.s3PutRequests) { try await inner.completeMultipartUpload(key, uploadId: uploadId, parts: parts) }
    }

    public func abortMultipartUpload(_ key: String, uploadId: String) async throws {
        try await counted(.s3DeleteRequests) { try await inner.abortMultipartUpload(key, uploadId: uploadId) }
    }
}
