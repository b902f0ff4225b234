// Uploads a built object: one PUT when small, a parallel multipart upload when big
// (S3 caps a PUT's throughput per connection; parts in flight multiply it).

import SiltObjectStore

/// PUT-class requests and bytes of an upload.
public struct UploadStats: Sendable, Equatable {
    /// PutObject, CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload.
    public var requests: Int
    public var bytes: Int
    public var parts: Int

    public init(requests: Int = 0, bytes: Int = 0, parts: Int = 0) {
        self.requests = requests
        self.bytes = bytes
        self.parts = parts
    }
}

public enum ObjectUploader {
    /// S3's limit on the parts of one upload.
    public static let partsMax = 10_000

    /// Uploads `bytes` to `key`: a single PUT when the object is smaller than two parts, else a
    /// multipart upload of `partBytes` parts, the last one taking the remainder (so no part is
    /// ever smaller than `partBytes`, and no request is spent on a small tail), at most
    /// `parallelism` in flight, aborted (best effort) on failure. Every request costs the same
    /// whatever its size, so this is the fewest requests that keep parts of `partBytes`.
    public static func upload(_ bytes: [UInt8], key: String, store: ObjectStore, partBytes: Int,
                              parallelism: Int) async throws -> UploadStats {
        precondition(partBytes >= Int(multipartMinimumPartBytes), "parts must be >= \(multipartMinimumPartBytes) bytes")
        precondition(parallelism >= 1)
        if bytes.count < 2 * partBytes {
            _ = try await store.put(key, bytes, ifNoneMatch: false)
            return UploadStats(requests: 1, bytes: bytes.count, parts: 0)
        }
        let partSize = max(partBytes, (bytes.count + partsMax - 1) / partsMax)
        let partCount = bytes.count / partSize
        let uploadId = try await store.createMultipartUpload(key)
        do {
            var etags = [String](repeating: "", count: partCount)
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                var next = 0
                func addPart() {
                    let n = next
                    next += 1
                    let body = Array(bytes[(n * partSize)..<(n == partCount - 1 ? bytes.count : (n + 1) * partSize)])
                    group.addTask { (n, try await store.uploadPart(key, uploadId: uploadId, partNumber: n + 1, body: body)) }
                }
                while next < min(parallelism, partCount) { addPart() }
                while let (n, etag) = try await group.next() {
                    etags[n] = etag
                    if next < partCount { addPart() }
                }
            }
            let parts = etags.enumerated().map { CompletedPart(partNumber: $0.offset + 1, etag: $0.element) }
            _ = try await store.completeMultipartUpload(key, uploadId: uploadId, parts: parts)
        } catch {
            try? await store.abortMultipartUpload(key, uploadId: uploadId)
            throw error
        }
        return UploadStats(requests: partCount + 2, bytes: bytes.count, parts: partCount)
    }
}
