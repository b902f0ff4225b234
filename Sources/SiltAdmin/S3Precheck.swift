import Foundation
import SiltObjectStore

/// generate-s3-url's bucket checks, in the order and with the names AutoMQ's PingS3Helper
/// prints them. Each step prints `[ OK ] <name>` or `[ FAILED ] <name>`; the run stops at the
/// first failure, then every object it wrote is deleted and every upload it opened aborted.
public enum S3Check: Int, CaseIterable, Sendable, CustomStringConvertible {
    case writeObject = 1, rangeReadObject, deleteObject, createMultipartUpload, uploadPart,
         completeMultipartUpload, uploadPartCopy, deleteObjects

    public var description: String {
        switch self {
        case .writeObject: return "Write object"
        case .rangeReadObject: return "RangeRead object"
        case .deleteObject: return "Delete object"
        case .createMultipartUpload: return "CreateMultipartUpload"
        case .uploadPart: return "UploadPart"
        case .completeMultipartUpload: return "CompleteMultipartUpload"
        case .uploadPartCopy: return "UploadPartCopy"
        case .deleteObjects: return "Delete objects"
        }
    }
}

/// What the checks were run against, for the failure message and advice.
public struct S3Target: Sendable {
    public var endpoint: String      // with scheme
    public var region: String
    public var bucket: String
    public var pathStyle: Bool
    public var accessKey: String?

    public init(endpoint: String, region: String, bucket: String, pathStyle: Bool, accessKey: String?) {
        self.endpoint = endpoint
        self.region = region
        self.bucket = bucket
        self.pathStyle = pathStyle
        self.accessKey = accessKey
    }

    public init(_ url: S3URL, bucket: String? = nil) {
        self.init(endpoint: url.endpointURL, region: url.region, bucket: bucket ?? url.dataBucket,
                  pathStyle: url.pathStyle, accessKey: url.accessKey)
    }

    /// AutoMQ's "s3 parameters{...}" summary, without the secret.
    public var summary: String {
        "s3 parameters{endpoint='\(endpoint)', region='\(region)', bucket='\(bucket)', isForcePathStyle=\(pathStyle), accessKey='\(accessKey ?? "")'}"
    }
}

public struct S3CheckFailure: Error, Sendable, CustomStringConvertible {
    public var check: S3Check
    public var error: String
    /// The explanation AutoMQ prints: "Failed to <check> on S3. Here are your parameters ...",
    /// then what the error means and advice.
    public var message: String
    public var description: String { message }
}

public struct S3CheckReport: Sendable {
    /// Each check run, in order, with its result.
    public var results: [(check: S3Check, ok: Bool)]
    public var failure: S3CheckFailure?
    /// Test objects that could not be removed afterwards (empty after a clean run).
    public var leftovers: [String]
    public var passed: Bool { failure == nil && results.count == S3Check.allCases.count }
    /// "[ OK ] Write object", "[ FAILED ] UploadPart", ...
    public var lines: [String] { results.map { S3CheckReport.line($0.check, $0.ok) } }

    public static func line(_ check: S3Check, _ ok: Bool) -> String {
        ok ? "[ OK ] \(check)" : "[ FAILED ] \(check)"
    }
}

public enum S3Precheck {
    /// Runs the eight checks against `store` (a client for the bucket in `target`).
    /// `emit` receives each `[ OK ]`/`[ FAILED ]` line as it happens.
    public static func run(store: ObjectStore, target: S3Target,
                           emit: @escaping @Sendable (String) -> Void = { _ in }) async -> S3CheckReport {
        let runner = Runner(store: store, target: target, emit: emit)
        await runner.runAll()
        let leftovers = await runner.cleanUp()
        return S3CheckReport(results: runner.results, failure: runner.failure, leftovers: leftovers)
    }

    final class Runner {
        let store: ObjectStore
        let target: S3Target
        let emit: @Sendable (String) -> Void
        var results: [(check: S3Check, ok: Bool)] = []
        var failure: S3CheckFailure?
        /// Keys written and not yet deleted.
        var written: [String] = []
        /// Multipart uploads opened and not yet completed or aborted.
        var uploads: [(key: String, id: String)] = []
        var counter: UInt64 = 0

        init(store: ObjectStore, target: S3Target, emit: @escaping @Sendable (String) -> Void) {
            self.store = store
            self.target = target
            self.emit = emit
        }

        /// AutoMQ names its test objects `<prefix>/<System.nanoTime()>`.
        func key(_ prefix: String) -> String {
            counter += 1
            return "\(prefix)/\(DispatchTime.now().uptimeNanoseconds &+ counter)"
        }

        static func content() -> [UInt8] {
            Array("\(Date()) silt generate-s3-url check \(UUID().uuidString)".utf8)
        }

        func ok(_ check: S3Check) {
            results.append((check, true))
            emit(S3CheckReport.line(check, true))
        }

        func fail(_ check: S3Check, _ error: Error) {
            results.append((check, false))
            emit(S3CheckReport.line(check, false))
            failure = S3CheckFailure(check: check, error: "\(error)",
                                     message: S3Advice.message(check: check, error: error, target: target))
        }

        /// Runs `body` for `check`; on error records the failure and returns nil.
        func step<T>(_ check: S3Check, _ body: () async throws -> T) async -> T? {
            do { return try await body() } catch {
                fail(check, error)
                return nil
            }
        }

        /// Keys whose write or complete failed: they may exist; removed best-effort.
        var uncertain: [String] = []

        func put(_ key: String, _ body: [UInt8]) async throws {
            do {
                _ = try await store.put(key, body, ifNoneMatch: false)
            } catch {
                uncertain.append(key)
                throw error
            }
            written.append(key)
        }

        func delete(_ key: String) async throws {
            try await store.delete(key)
            written.removeAll { $0 == key }
        }

        func createUpload(_ key: String) async throws -> String {
            let id = try await store.createMultipartUpload(key)
            guard !id.isEmpty else { throw PrecheckError("Failed to createMultipartUpload, uploadId is empty") }
            uploads.append((key, id))
            return id
        }

        func complete(_ key: String, _ id: String, _ parts: [CompletedPart]) async throws {
            do {
                _ = try await store.completeMultipartUpload(key, uploadId: id, parts: parts)
            } catch {
                uncertain.append(key)
                throw error
            }
            written.append(key)
            uploads.removeAll { $0.id == id }
        }

        func runAll() async {
            // 1-3: simple object.
            let content = Runner.content()
            let simple = key("check_simple_obj_available")
            guard await step(.writeObject, { try await put(simple, content) }) != nil else { return }
            ok(.writeObject)
            let read: Void? = await step(.rangeReadObject) {
                let got = try await store.get(simple, range: 0...Int64(content.count - 1))
                guard got == content else {
                    throw PrecheckError("Failed to rangeRead object. The read data is empty/wrong (\(got.count) bytes read, \(content.count) written)")
                }
            }
            guard read != nil else { return }
            ok(.rangeReadObject)
            guard await step(.deleteObject, { try await delete(simple) }) != nil else { return }
            ok(.deleteObject)

            // 4-6: multipart upload.
            let multi = key("check_multipart_obj_available")
            guard let uploadId = await step(.createMultipartUpload, { try await createUpload(multi) }) else { return }
            ok(.createMultipartUpload)
            let partBody = Runner.content()
            let etag: String? = await step(.uploadPart) {
                let e = try await store.uploadPart(multi, uploadId: uploadId, partNumber: 1, body: partBody)
                guard !e.isEmpty else { throw PrecheckError("Failed to uploadPart to s3, eTag: \(e), partNumber: 1") }
                return e
            }
            guard let etag else { return }
            ok(.uploadPart)
            let completed: Void? = await step(.completeMultipartUpload) {
                try await complete(multi, uploadId, [CompletedPart(partNumber: 1, etag: etag)])
            }
            guard completed != nil else { return }
            ok(.completeMultipartUpload)
            // AutoMQ deletes the completed object and reports a failure as "Delete object".
            guard await step(.deleteObject, { try await delete(multi) }) != nil else { return }

            // 7: UploadPartCopy from a fresh source object into a new multipart upload.
            let source = key("check_upload_part_copy_available")
            let dest = key("check_upload_part_copy_available")
            let sourceBody = Runner.content()
            let copied: Void? = await step(.uploadPartCopy) {
                try await put(source, sourceBody)
                let id = try await createUpload(dest)
                let e = try await store.uploadPartCopy(dest, uploadId: id, partNumber: 1, sourceKey: source,
                                                       sourceRange: 0...Int64(sourceBody.count - 1))
                guard !e.isEmpty else { throw PrecheckError("Failed to uploadPartCopy. The response was wrong") }
                try await complete(dest, id, [CompletedPart(partNumber: 1, etag: e)])
                try await delete(dest)
                try await delete(source)
            }
            guard copied != nil else { return }
            ok(.uploadPartCopy)

            // 8: DeleteObjects of two objects.
            let base = key("check_available/deleteObjects")
            let k1 = base
            let k2 = base + "1"
            let deleted: Void? = await step(.deleteObjects) {
                try await put(k1, Runner.content())
                try await put(k2, Runner.content())
                let errors = try await store.deleteObjects([k1, k2])
                if let (k, e) = errors.first {
                    throw PrecheckError("Failed to delete objects. The response was wrong: \(k): \(e)")
                }
                written.removeAll { $0 == k1 || $0 == k2 }
            }
            guard deleted != nil else { return }
            ok(.deleteObjects)
        }

        /// Aborts open uploads and deletes written objects; returns what could not be removed.
        func cleanUp() async -> [String] {
            var left: [String] = []
            for u in uploads {
                do { try await store.abortMultipartUpload(u.key, uploadId: u.id) } catch {
                    left.append("\(u.key) (multipart upload \(u.id))")
                }
            }
            uploads.removeAll()
            for k in written {
                do { try await store.delete(k) } catch {
                    if case ObjectStoreError.noSuchKey = error { continue }
                    left.append(k)
                }
            }
            written.removeAll()
            for k in uncertain { try? await store.delete(k) }
            uncertain.removeAll()
            return left
        }
    }
}

struct PrecheckError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// What an object-storage error means for the operator and what to try.
public enum S3Advice {
    public static func message(check: S3Check, error: Error, target: S3Target) -> String {
        var lines = ["Failed to \(check) on S3. Here are your parameters about S3: \(target.summary)."]
        lines.append(contentsOf: explain(error, target: target))
        let advice = generalAdvice(error, target: target)
        if !advice.isEmpty {
            lines.append("Here are some advices: ")
            lines.append(contentsOf: advice)
        }
        return lines.joined(separator: "\n")
    }

    /// The error and what it means.
    public static func explain(_ error: Error, target: S3Target) -> [String] {
        guard let e = error as? ObjectStoreError else { return ["Error: \(error)"] }
        switch e {
        case .noSuchBucket(let m):
            return ["Error: NoSuchBucket: \(m)",
                    "Bucket \"\(target.bucket)\" not found. Please check your bucket name, create the bucket if it does not exist, and check --s3-region and --s3-endpoint point at the service that holds it."]
        case .signatureDoesNotMatch(let m):
            return ["Error: SignatureDoesNotMatch: \(m)",
                    "The request signature does not match: check --s3-secret-key for the access key \"\(target.accessKey ?? "")\" (copy it again, without quotes or spaces), and that --s3-region is the bucket's region."]
        case .invalidAccessKeyId(let m):
            return ["Error: InvalidAccessKeyId: \(m)",
                    "The access key \"\(target.accessKey ?? "")\" does not exist on this service: check --s3-access-key, and that --s3-endpoint is the service that issued it."]
        case .accessDenied(let m):
            return ["Error: AccessDenied: \(m)",
                    "The credentials are valid but may not use bucket \"\(target.bucket)\": grant s3:PutObject, s3:GetObject, s3:DeleteObject, s3:ListBucket, s3:AbortMultipartUpload and s3:ListMultipartUploadParts on it (and check the bucket policy)."]
        case .slowDown(let m):
            return ["Error: SlowDown: \(m)", "The service is throttling requests. Wait a moment and run the command again."]
        case .transport(let m):
            return ["Error: \(m)",
                    "Unable to execute HTTP request. Please check your network connection and make sure you can access S3: check --s3-endpoint (host and port) and --s3-endpoint-protocol (http or https)."]
        case .timeout(let m):
            return ["Error: timeout: \(m)",
                    "The request timed out. Please check your network connection, --s3-endpoint and --s3-endpoint-protocol."]
        case .serviceError(let status, let code, let m)
            where status == 301 || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed"
                || code == "IllegalLocationConstraintException":
            return ["Error: HTTP \(status) \(code): \(m)",
                    "The service says the bucket is in another region or behind another endpoint: check --s3-region (now \"\(target.region)\") and --s3-endpoint."]
        case .badResponse(let m):
            return ["Error: bad response: \(m)",
                    "The endpoint did not answer like S3: check --s3-endpoint and --s3-endpoint-protocol, and try --s3-path-style=true for MinIO and similar services."]
        default:
            return ["Error: \(e)"]
        }
    }

    /// AutoMQ's general advices, kept to the ones that apply to the error.
    public static func generalAdvice(_ error: Error, target: S3Target) -> [String] {
        var out: [String] = []
        let e = error as? ObjectStoreError
        var isNetwork = false
        var isBucket = false
        var isCredentials = false
        if let e {
            switch e {
            case .transport, .timeout, .badResponse: isNetwork = true
            case .noSuchBucket: isBucket = true
            case .signatureDoesNotMatch, .invalidAccessKeyId, .accessDenied: isCredentials = true
            default: break
            }
        }
        if target.bucket.isEmpty { out.append("bucketName is blank. Please supply a valid bucketName.") }
        if let hostPart = target.endpoint.components(separatedBy: "//").last,
           let first = hostPart.split(separator: ".").first, !target.bucket.isEmpty,
           first.lowercased() == target.bucket.lowercased() {
            out.append("bucket name should not be included in endpoint.")
        }
        if isNetwork && target.endpoint.hasPrefix("https") {
            out.append("You are using https endpoint. Please make sure your object storage service supports https (use --s3-endpoint-protocol=http otherwise).")
        }
        if (isNetwork || isBucket || e == nil) && !target.pathStyle {
            out.append("forcePathStyle is set as false. Please set it as true (--s3-path-style=true) if you are using minio or another service without virtual-hosted-style bucket addressing.")
        }
        if isCredentials || isBucket {
            out.append("region is \"\(target.region)\". Please make sure it is the region of bucket \"\(target.bucket)\".")
        }
        return out
    }
}
