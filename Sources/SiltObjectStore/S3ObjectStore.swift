import CSupport
import Foundation
import Logging

/// Connection and retry settings of an S3-compatible store.
public struct S3Config: Sendable {
    /// "https://fly.storage.tigris.dev", "http://127.0.0.1:5000", or a host[:port] without
    /// scheme (then `scheme` applies).
    public var endpoint: String
    /// The s3-endpoint-protocol used when `endpoint` has no scheme.
    public var scheme: String = "https"
    /// Any region string, including Tigris's "auto".
    public var region: String
    public var bucket: String
    public var accessKey: String
    public var secretKey: String
    /// Path style (`http://host/bucket/key`) or virtual-hosted style (`http://bucket.host/key`).
    public var pathStyle: Bool
    /// Retries after the first attempt of a retryable failure.
    public var maxRetries: Int = 5
    public var requestTimeoutMs: Int = 30_000
    public var connectTimeoutMs: Int = 5_000
    public var retryBaseDelayMs: Int = 50
    public var retryMaxDelayMs: Int = 2_000
    /// Send UNSIGNED-PAYLOAD instead of the body's SHA-256; honoured only over https
    /// (over http the payload is always signed).
    public var unsignedPayload: Bool

    public init(endpoint: String, scheme: String = "https", region: String, bucket: String,
                accessKey: String, secretKey: String, pathStyle: Bool, maxRetries: Int = 5,
                requestTimeoutMs: Int = 30_000, connectTimeoutMs: Int = 5_000,
                retryBaseDelayMs: Int = 50, retryMaxDelayMs: Int = 2_000, unsignedPayload: Bool = false) {
        self.endpoint = endpoint
        self.scheme = scheme
        self.region = region
        self.bucket = bucket
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.pathStyle = pathStyle
        self.maxRetries = maxRetries
        self.requestTimeoutMs = requestTimeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        self.retryBaseDelayMs = retryBaseDelayMs
        self.retryMaxDelayMs = retryMaxDelayMs
        self.unsignedPayload = unsignedPayload
    }
}

/// An S3-compatible object store over libcurl (see `CurlEngine`) with SigV4 signing.
///
/// Retry rule: every operation is retried on a retryable error (`ObjectStoreError.isRetryable`:
/// 5xx, SlowDown, 429, timeouts, connection resets, truncated bodies) up to
/// `maxRetries` times with exponential backoff and full jitter
/// (sleep uniform in 0...min(retryMaxDelayMs, retryBaseDelayMs * 2^attempt)). All operations
/// are idempotent except CompleteMultipartUpload: when a retry of it fails with NoSuchUpload,
/// an earlier attempt may have completed the upload and lost the response, so the store
/// HEADs the key and returns its ETag if the object exists with a multipart ETag of
/// `parts.count` parts ("…-N"); otherwise NoSuchUpload is thrown. 4xx errors are final.
public final class S3ObjectStore: ObjectStore, @unchecked Sendable {
    public let description: String
    private let config: S3Config
    private let logger: Logger
    private let engine: CurlEngine
    private let scheme: String
    /// host[:port] of the endpoint.
    private let endpointHost: String

    public init(config: S3Config, logger: Logger) throws {
        var ep = config.endpoint.trimmingCharacters(in: .whitespaces)
        var scheme = config.scheme.lowercased()
        if let r = ep.range(of: "://") {
            scheme = ep[..<r.lowerBound].lowercased()
            ep = String(ep[r.upperBound...])
        }
        while ep.hasSuffix("/") { ep.removeLast() }
        guard scheme == "http" || scheme == "https" else {
            throw ObjectStoreError.invalidArgument("endpoint scheme must be http or https, not \(scheme)")
        }
        guard !ep.isEmpty, !ep.contains("/"), !ep.contains("@") else {
            throw ObjectStoreError.invalidArgument("endpoint must be scheme://host[:port] (got \(ep))")
        }
        guard !config.bucket.isEmpty else { throw ObjectStoreError.invalidArgument("bucket is empty") }
        precondition(config.maxRetries >= 0 && config.retryBaseDelayMs >= 0 && config.retryMaxDelayMs >= 0)
        self.config = config
        self.logger = logger
        self.scheme = scheme
        self.endpointHost = ep
        self.engine = try CurlEngine()
        self.description = "s3://\(config.bucket) at \(scheme)://\(ep) (\(config.pathStyle ? "path" : "virtual-hosted") style, region \(config.region))"
    }

    deinit {
        engine.shutdown()
    }

    // MARK: - Operations

    public func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String? {
        try checkKey(key)
        var headers: [(String, String)] = []
        if ifNoneMatch { headers.append(("if-none-match", "*")) }
        let r = try await retrying("PutObject", key) {
            try await self.send("PUT", key: key, headers: headers, body: body)
        }
        return S3XML.unquote(r.headers["etag"])
    }

    public func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8] {
        try checkKey(key)
        var headers: [(String, String)] = []
        if let range {
            precondition(range.lowerBound >= 0)
            headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound)"))
        }
        return try await retrying("GetObject", key) {
            let r = try await self.send("GET", key: key, headers: headers)
            if let range, r.status == 200 {
                // The server ignored Range: cut the range out ourselves.
                let start = Int(min(range.lowerBound, Int64(r.body.count)))
                let end = Int(min(range.upperBound + 1, Int64(r.body.count)))
                if start >= r.body.count && !r.body.isEmpty {
                    throw ObjectStoreError.invalidRange("range \(range) beyond object size \(r.body.count) (\(key))")
                }
                return Array(r.body[start..<end])
            }
            if let range, r.status == 206 {
                let want = range.upperBound - range.lowerBound + 1
                if Int64(r.body.count) > want {
                    throw ObjectStoreError.badResponse("206 with \(r.body.count) bytes for a \(want)-byte range (\(key))")
                }
            }
            return r.body
        }
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        try checkKey(key)
        return try await retrying("HeadObject", key) {
            do {
                let r = try await self.send("HEAD", key: key)
                guard let len = r.headers["content-length"].flatMap({ Int64($0) }) else {
                    throw ObjectStoreError.badResponse("HEAD without Content-Length (\(key))")
                }
                return ObjectInfo(key: key, size: len, etag: S3XML.unquote(r.headers["etag"]))
            } catch ObjectStoreError.noSuchKey {
                return nil
            }
        }
    }

    public func delete(_ key: String) async throws {
        try checkKey(key)
        _ = try await retrying("DeleteObject", key) {
            try await self.send("DELETE", key: key)
        }
    }

    public func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError] {
        var errors: [String: ObjectStoreError] = [:]
        var start = 0
        while start < keys.count {
            let batch = Array(keys[start..<min(start + deleteObjectsBatchMaxKeys, keys.count)])
            start += batch.count
            var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            for k in batch { xml += "<Object><Key>\(S3XML.escape(k))</Key></Object>" }
            xml += "</Delete>"
            let body = Array(xml.utf8)
            let md5 = Data(SigV4.md5(body)).base64EncodedString()
            let r = try await retrying("DeleteObjects", "\(batch.count) keys") {
                let r = try await self.send("POST", key: nil, query: [("delete", "")],
                                            headers: [("content-md5", md5), ("content-type", "application/xml")], body: body)
                guard let root = S3XML.parse(r.body), root.name == "DeleteResult" else {
                    throw ObjectStoreError.badResponse("DeleteObjects: no DeleteResult document")
                }
                return root
            }
            for e in r.all("Error") {
                guard let k = e.value("Key") else { continue }
                let code = e.value("Code") ?? "InternalError"
                errors[k] = ObjectStoreError.fromS3(status: 0, code: code, message: e.value("Message") ?? code)
            }
        }
        return errors
    }

    public func list(prefix: String, delimiter: String?, continuationToken: String?, maxKeys: Int) async throws -> ListPage {
        precondition(maxKeys > 0 && maxKeys <= 1000, "maxKeys must be 1...1000")
        var query: [(String, String)] = [("list-type", "2"), ("max-keys", String(maxKeys))]
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let delimiter { query.append(("delimiter", delimiter)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        query.append(("encoding-type", "url"))
        return try await retrying("ListObjectsV2", prefix) {
            let r = try await self.send("GET", key: nil, query: query)
            guard let root = S3XML.parse(r.body), root.name == "ListBucketResult" else {
                throw ObjectStoreError.badResponse("ListObjectsV2: no ListBucketResult document")
            }
            let urlEncoded = root.value("EncodingType") == "url"
            func dec(_ s: String) -> String { urlEncoded ? (s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? s) : s }
            var objects: [ObjectInfo] = []
            for c in root.all("Contents") {
                guard let k = c.value("Key"), let size = c.value("Size").flatMap({ Int64($0) }) else {
                    throw ObjectStoreError.badResponse("ListObjectsV2: entry without Key or Size")
                }
                objects.append(ObjectInfo(key: dec(k), size: size, etag: S3XML.unquote(c.value("ETag"))))
            }
            let prefixes = root.all("CommonPrefixes").compactMap { $0.value("Prefix") }.map(dec)
            let truncated = root.value("IsTruncated") == "true"
            let next = truncated ? root.value("NextContinuationToken") : nil
            if truncated && next == nil {
                throw ObjectStoreError.badResponse("ListObjectsV2: truncated page without NextContinuationToken")
            }
            return ListPage(objects: objects, commonPrefixes: prefixes, nextContinuationToken: next)
        }
    }

    public func createMultipartUpload(_ key: String) async throws -> String {
        try checkKey(key)
        return try await retrying("CreateMultipartUpload", key) {
            let r = try await self.send("POST", key: key, query: [("uploads", "")])
            guard let root = S3XML.parse(r.body), let id = root.value("UploadId"), !id.isEmpty else {
                throw ObjectStoreError.badResponse("CreateMultipartUpload: no UploadId (\(key))")
            }
            return id
        }
    }

    public func uploadPart(_ key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String {
        try checkKey(key)
        precondition(partNumber >= 1 && partNumber <= 10_000)
        return try await retrying("UploadPart", key) {
            let r = try await self.send("PUT", key: key, query: [("partNumber", String(partNumber)), ("uploadId", uploadId)], body: body)
            guard let etag = S3XML.unquote(r.headers["etag"]) else {
                throw ObjectStoreError.badResponse("UploadPart: no ETag (\(key) part \(partNumber))")
            }
            return etag
        }
    }

    public func uploadPartCopy(_ key: String, uploadId: String, partNumber: Int, sourceKey: String,
                               sourceRange: ClosedRange<Int64>?) async throws -> String {
        try checkKey(key)
        try checkKey(sourceKey)
        precondition(partNumber >= 1 && partNumber <= 10_000)
        var headers = [("x-amz-copy-source", SigV4.encodePath("/\(config.bucket)/\(sourceKey)"))]
        if let sourceRange { headers.append(("x-amz-copy-source-range", "bytes=\(sourceRange.lowerBound)-\(sourceRange.upperBound)")) }
        return try await retrying("UploadPartCopy", key) {
            let r = try await self.send("PUT", key: key, query: [("partNumber", String(partNumber)), ("uploadId", uploadId)], headers: headers)
            // S3 may answer 200 with an <Error> document for copies.
            guard let root = S3XML.parse(r.body) else { throw ObjectStoreError.badResponse("UploadPartCopy: unparseable body (\(key))") }
            if root.name == "Error" { throw S3XML.error(status: 500, body: r.body, resource: key) }
            guard let etag = S3XML.unquote(root.value("ETag")) else {
                throw ObjectStoreError.badResponse("UploadPartCopy: no ETag (\(key) part \(partNumber))")
            }
            return etag
        }
    }

    public func completeMultipartUpload(_ key: String, uploadId: String, parts: [CompletedPart]) async throws -> String? {
        try checkKey(key)
        precondition(!parts.isEmpty)
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for p in parts {
            xml += "<Part><PartNumber>\(p.partNumber)</PartNumber><ETag>\"\(S3XML.escape(p.etag))\"</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        var attempted = false
        do {
            return try await retrying("CompleteMultipartUpload", key) {
                do {
                    attempted = true
                    let r = try await self.send("POST", key: key, query: [("uploadId", uploadId)],
                                                headers: [("content-type", "application/xml")], body: body)
                    // 200 with an <Error> document: the completion failed (retryable when 5xx-like).
                    guard let root = S3XML.parse(r.body) else {
                        throw ObjectStoreError.badResponse("CompleteMultipartUpload: unparseable body (\(key))")
                    }
                    if root.name == "Error" { throw S3XML.error(status: 500, body: r.body, resource: key) }
                    return S3XML.unquote(root.value("ETag"))
                }
            }
        } catch ObjectStoreError.noSuchUpload(let m) where attempted {
            // See the retry rule in the type's documentation.
            if let info = try await head(key), let etag = info.etag, etag.hasSuffix("-\(parts.count)") {
                logger.info("CompleteMultipartUpload: upload already completed by an earlier attempt",
                            metadata: ["key": "\(key)"])
                return etag
            }
            throw ObjectStoreError.noSuchUpload(m)
        }
    }

    public func abortMultipartUpload(_ key: String, uploadId: String) async throws {
        try checkKey(key)
        _ = try await retrying("AbortMultipartUpload", key) {
            try await self.send("DELETE", key: key, query: [("uploadId", uploadId)])
        }
    }

    // MARK: - Transport

    private func checkKey(_ key: String) throws {
        guard !key.isEmpty, key.utf8.count <= 1024 else {
            throw ObjectStoreError.invalidArgument("object key must be 1...1024 bytes")
        }
    }

    /// Runs `op` with the retry rule of this type.
    private func retrying<T>(_ operation: String, _ what: String, _ op: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await op()
            } catch let error as ObjectStoreError where error.isRetryable && attempt < config.maxRetries {
                let capMs = min(Double(config.retryMaxDelayMs), Double(config.retryBaseDelayMs) * pow(2, Double(attempt)))
                let delayMs = capMs > 0 ? Double.random(in: 0...capMs) : 0
                attempt += 1
                logger.debug("S3 request failed, retrying",
                             metadata: ["op": "\(operation)", "target": "\(what)", "attempt": "\(attempt)",
                                        "delayMs": "\(Int(delayMs))", "error": "\(error)"])
                if delayMs > 0 { try await Task.sleep(nanoseconds: UInt64(delayMs * 1_000_000)) }
            }
        }
    }

    /// One signed attempt. Returns 2xx responses with a complete body; throws typed errors.
    private func send(_ method: String, key: String?, query: [(String, String)] = [],
                      headers: [(String, String)] = [], body: [UInt8] = []) async throws -> CurlEngine.Response {
        let host: String
        var path: String
        if config.pathStyle {
            host = endpointHost
            path = "/\(config.bucket)"
            if let key { path += "/\(key)" }
        } else {
            host = "\(config.bucket).\(endpointHost)"
            path = "/\(key ?? "")"
        }
        let payloadHash = (config.unsignedPayload && scheme == "https") ? SigV4.unsignedPayload : SigV4.sha256Hex(body)
        let signed = SigV4.sign(method: method, host: host, path: path, query: query, headers: headers,
                                payloadSHA256: payloadHash, accessKey: config.accessKey, secretKey: config.secretKey,
                                region: config.region, date: Date())
        var url = "\(scheme)://\(host)\(SigV4.encodePath(path))"
        if !query.isEmpty { url += "?" + SigV4.canonicalQuery(query) }
        // curl sets Host itself from the URL (same value); everything else is sent as signed.
        let sendHeaders = signed.headers.filter { $0.0 != "host" }
        let request = CurlEngine.Request(method: method, url: url, headers: sendHeaders, body: body,
                                         connectTimeoutMs: config.connectTimeoutMs, totalTimeoutMs: config.requestTimeoutMs)
        let resource = "\(method) \(key ?? "bucket \(config.bucket)")"
        switch await engine.perform(request) {
        case .failure(let code, let detail):
            if code == Int32(SILT_CURLE_OPERATION_TIMEDOUT) { throw ObjectStoreError.timeout("\(resource): \(detail)") }
            throw ObjectStoreError.transport("\(resource): \(detail)")
        case .response(let r):
            // A body shorter (or longer) than Content-Length is never data. curl reports a short
            // body as CURLE_PARTIAL_FILE; this check backs it up.
            if method != "HEAD", let cl = r.headers["content-length"].flatMap({ Int($0) }), cl != r.body.count {
                throw ObjectStoreError.transport("\(resource): body has \(r.body.count) bytes, Content-Length \(cl)")
            }
            if (200..<300).contains(r.status) { return r }
            if r.status == 429 { throw ObjectStoreError.slowDown("HTTP 429 (\(resource))") }
            if method == "HEAD" && r.status == 404 { throw ObjectStoreError.noSuchKey("HTTP 404 (\(resource))") }
            throw S3XML.error(status: r.status, body: r.body, resource: resource)
        }
    }
}
