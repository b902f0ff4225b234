// The object-storage abstraction: one protocol, two implementations (S3 and file://).

/// One object as listed or HEADed.
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: Int64
    /// The ETag with its quotes removed (nil when the store does not report one).
    public var etag: String?
    public init(key: String, size: Int64, etag: String?) {
        self.key = key
        self.size = size
        self.etag = etag
    }
}

/// One page of a ListObjectsV2-style listing.
public struct ListPage: Sendable {
    public var objects: [ObjectInfo]
    public var commonPrefixes: [String]
    /// Pass back as `continuationToken` for the next page; nil on the last page.
    public var nextContinuationToken: String?
    public init(objects: [ObjectInfo], commonPrefixes: [String], nextContinuationToken: String?) {
        self.objects = objects
        self.commonPrefixes = commonPrefixes
        self.nextContinuationToken = nextContinuationToken
    }
}

/// A part of a multipart upload, as CompleteMultipartUpload wants it.
public struct CompletedPart: Sendable {
    public var partNumber: Int
    public var etag: String
    public init(partNumber: Int, etag: String) {
        self.partNumber = partNumber
        self.etag = etag
    }
}

/// Errors of an object store, typed from the S3 error XML (`Code`, `Message`, `RequestId`)
/// or from the transport. The associated string is a human-readable detail (message and
/// request id); it never contains a credential.
public enum ObjectStoreError: Error, Equatable, CustomStringConvertible {
    case noSuchKey(String)
    case noSuchBucket(String)
    case noSuchUpload(String)
    case preconditionFailed(String)
    case accessDenied(String)
    case invalidAccessKeyId(String)
    case signatureDoesNotMatch(String)
    case slowDown(String)
    case invalidRange(String)
    case invalidArgument(String)
    case entityTooSmall(String)
    case invalidPart(String)
    case serviceError(status: Int, code: String, message: String)
    case transport(String)
    case timeout(String)
    case badResponse(String)

    /// Whether retrying the same (idempotent) request may succeed: throttling, 5xx,
    /// timeouts, transport failures (connection reset, truncated body) and unparseable
    /// responses (a truncated error body). Client errors (4xx) are final.
    public var isRetryable: Bool {
        switch self {
        case .slowDown, .transport, .timeout, .badResponse:
            return true
        case .serviceError(let status, let code, _):
            return status >= 500 || status == 429 || code == "InternalError" || code == "ServiceUnavailable"
                || code == "RequestTimeout" || code == "Throttling" || code == "ThrottlingException"
        default:
            return false
        }
    }

    public var description: String {
        switch self {
        case .noSuchKey(let m): return "NoSuchKey: \(m)"
        case .noSuchBucket(let m): return "NoSuchBucket: \(m)"
        case .noSuchUpload(let m): return "NoSuchUpload: \(m)"
        case .preconditionFailed(let m): return "PreconditionFailed: \(m)"
        case .accessDenied(let m): return "AccessDenied: \(m)"
        case .invalidAccessKeyId(let m): return "InvalidAccessKeyId: \(m)"
        case .signatureDoesNotMatch(let m): return "SignatureDoesNotMatch: \(m)"
        case .slowDown(let m): return "SlowDown: \(m)"
        case .invalidRange(let m): return "InvalidRange: \(m)"
        case .invalidArgument(let m): return "InvalidArgument: \(m)"
        case .entityTooSmall(let m): return "EntityTooSmall: \(m)"
        case .invalidPart(let m): return "InvalidPart: \(m)"
        case .serviceError(let status, let code, let message): return "HTTP \(status) \(code): \(message)"
        case .transport(let m): return "transport error: \(m)"
        case .timeout(let m): return "timeout: \(m)"
        case .badResponse(let m): return "bad response: \(m)"
        }
    }

    /// Maps an S3 error code (and HTTP status) to a typed case.
    public static func fromS3(status: Int, code: String, message: String) -> ObjectStoreError {
        switch code {
        case "NoSuchKey": return .noSuchKey(message)
        case "NoSuchBucket": return .noSuchBucket(message)
        case "NoSuchUpload": return .noSuchUpload(message)
        case "PreconditionFailed": return .preconditionFailed(message)
        case "AccessDenied": return .accessDenied(message)
        case "InvalidAccessKeyId": return .invalidAccessKeyId(message)
        case "SignatureDoesNotMatch": return .signatureDoesNotMatch(message)
        case "SlowDown": return .slowDown(message)
        case "InvalidRange": return .invalidRange(message)
        case "InvalidArgument": return .invalidArgument(message)
        case "EntityTooSmall": return .entityTooSmall(message)
        case "InvalidPart", "InvalidPartOrder": return .invalidPart(message)
        default: return .serviceError(status: status, code: code, message: message)
        }
    }
}

/// An object store: S3 (`S3ObjectStore`) or a local directory (`LocalObjectStore`).
///
/// Semantics follow S3: deleting an absent key succeeds; `get` of an absent key throws
/// `noSuchKey`; ranges are inclusive byte ranges like HTTP `Range: bytes=a-b`.
public protocol ObjectStore: AnyObject, Sendable {
    /// A printable identity, e.g. "s3://bucket at http://127.0.0.1:5000 (path style)". Never a secret.
    var description: String { get }
    /// Writes the whole object; returns its ETag. `ifNoneMatch`: create only if absent
    /// (`If-None-Match: *`), else `preconditionFailed`.
    func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String?
    /// Reads the object or the inclusive byte `range` of it.
    func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8]
    /// Size and ETag, or nil when absent.
    func head(_ key: String) async throws -> ObjectInfo?
    /// Deletes; an absent key is not an error.
    func delete(_ key: String) async throws
    /// Deletes many keys (split into requests of at most 1000); returns per-key errors.
    func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError]
    /// ListObjectsV2: keys in ascending order, `commonPrefixes` when `delimiter` is set.
    func list(prefix: String, delimiter: String?, continuationToken: String?, maxKeys: Int) async throws -> ListPage
    func createMultipartUpload(_ key: String) async throws -> String
    func uploadPart(_ key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String
    func uploadPartCopy(_ key: String, uploadId: String, partNumber: Int, sourceKey: String,
                        sourceRange: ClosedRange<Int64>?) async throws -> String
    func completeMultipartUpload(_ key: String, uploadId: String, parts: [CompletedPart]) async throws -> String?
    func abortMultipartUpload(_ key: String, uploadId: String) async throws
}

/// Minimum size of every part but the last in a multipart upload (S3's rule, enforced by both stores).
public let multipartMinimumPartBytes: Int64 = 5 * 1024 * 1024
/// Keys per DeleteObjects request (S3's limit).
public let deleteObjectsBatchMaxKeys = 1000
