import Foundation
import Logging
import SiltConfig
import SiltObjectStore

/// The data bucket a node's roles read and write, from `s3.data.buckets`.
///
/// AutoMQ's bucket URI form: `0@s3://bucket?region=R&endpoint=http://host:port&pathStyle=true`
/// (what `--s3-url` expands to), or `0@file:///directory` for a local directory. Without the
/// key the embedded default applies: `file://<first log dir>/objects`. Only the first entry
/// of a list is used.
public enum NodeObjectStores {
    public struct BucketURIError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func dataBucketURI(_ config: ServerConfig) -> String {
        if let raw = config.explicit["s3.data.buckets"], !raw.isEmpty {
            return String(raw.split(separator: ",")[0]).trimmingCharacters(in: .whitespaces)
        }
        return "0@file://" + absolutePath(config.logDirs[0]) + "/objects"
    }

    /// The data bucket's store. S3 needs `credentials` (see `NodeStart.credentials`).
    public static func data(config: ServerConfig, credentials: S3Credentials?, logger: Logger,
                            maxRetries: Int = 8) throws -> ObjectStore {
        try bucket(dataBucketURI(config), key: "s3.data.buckets", config: config, credentials: credentials,
                   logger: logger, maxRetries: maxRetries)
    }

    /// The S3 WAL's bucket (S3 WAL mode), or nil for a device or file WAL.
    public static func wal(config: ServerConfig, credentials: S3Credentials?, logger: Logger,
                           maxRetries: Int = 8) throws -> ObjectStore? {
        guard let settings = config.objectWAL else { return nil }
        return try bucket(settings.bucketURI, key: "s3.wal.path", config: config, credentials: credentials,
                          logger: logger, maxRetries: maxRetries)
    }

    /// The store a bucket URI (`key`'s value) names.
    static func bucket(_ uri: String, key: String, config: ServerConfig, credentials: S3Credentials?, logger: Logger,
                       maxRetries: Int) throws -> ObjectStore {
        var rest = Substring(uri)
        if let at = rest.firstIndex(of: "@"), rest[..<at].allSatisfy(\.isNumber) { rest = rest[rest.index(after: at)...] }
        if rest.hasPrefix("file://") {
            return try LocalObjectStore(rootDirectory: String(rest))
        }
        guard rest.hasPrefix("s3://") else {
            throw BucketURIError(description: "\(key): '\(uri)' is neither s3://bucket?... nor file:///dir")
        }
        rest = rest.dropFirst("s3://".count)
        let bucket = String(rest.prefix { $0 != "?" })
        guard !bucket.isEmpty else { throw BucketURIError(description: "\(key): '\(uri)' names no bucket") }
        var params: [String: String] = [:]
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 { params[kv[0]] = kv[1].removingPercentEncoding ?? kv[1] }
            }
        }
        let endpoint = params["endpoint"] ?? config.explicit["s3.endpoint"]
        guard let endpoint, !endpoint.isEmpty else {
            throw BucketURIError(description: "\(key): '\(uri)' has no endpoint= (nor is s3.endpoint set)")
        }
        guard let credentials else {
            throw BucketURIError(description: "\(key): no credentials for bucket \(bucket): give them in the s3url, "
                                 + "KAFKA_S3_ACCESS_KEY/KAFKA_S3_SECRET_KEY, or s3.credentials.file")
        }
        let region = params["region"] ?? config.explicit["s3.region"] ?? "us-east-1"
        let pathStyle = (params["pathStyle"] ?? config.explicit["s3.path.style"] ?? "false").lowercased() == "true"
        let s3 = S3Config(endpoint: endpoint, region: region, bucket: bucket, accessKey: credentials.accessKey,
                          secretKey: credentials.secretKey, pathStyle: pathStyle, maxRetries: maxRetries)
        return try S3ObjectStore(config: s3, logger: logger)
    }

    static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return FileManager.default.currentDirectoryPath + "/" + path
    }
}
