/// S3 WAL mode: `s3.wal.path=0@s3://bucket?region=R&endpoint=URL[&pathStyle=true][&batchInterval=MS]
/// [&maxBytesInBatch=BYTES][&maxUnflushedBytes=BYTES][&maxInflightUploadCount=N]`, AutoMQ's syntax
/// and parameter names (and defaults: 250 ms, 8 MiB, 1 GiB, 50).
///
/// A produce is acknowledged once its batch is in an object in the bucket, so a node needs no
/// local disk for data, and a dead node's acknowledged tail is readable by any other node.
/// The WAL writer puts what waits into one object when `batchIntervalMs` has passed since the
/// previous object began, or at once when `maxBytesInBatch` bytes wait; at most
/// `maxInflightUploadCount` puts are in flight; `maxUnflushedBytes` bounds what the WAL holds
/// before the uploader has moved it into stream objects (back-pressure beyond it).
public struct ObjectWALSettings: Equatable, Sendable {
    /// The bucket URI without the WAL parameters (`0@s3://bucket?region=..&endpoint=..`), in the
    /// form of `s3.data.buckets`.
    public var bucketURI: String
    public var batchIntervalMs: Int
    public var maxBytesInBatch: Int
    public var maxUnflushedBytes: UInt64
    public var maxInflightUploadCount: Int

    public static let batchIntervalMsBounds = 0...60_000
    public static let maxBytesInBatchBounds = (64 << 10)...(32 << 20)
    public static let maxUnflushedBytesBounds: ClosedRange<UInt64> = UInt64(16 << 20)...UInt64(64 << 30)
    public static let maxInflightUploadCountBounds = 1...256

    public init(bucketURI: String, batchIntervalMs: Int = 250, maxBytesInBatch: Int = 8 << 20,
                maxUnflushedBytes: UInt64 = 1 << 30, maxInflightUploadCount: Int = 50) {
        self.bucketURI = bucketURI
        self.batchIntervalMs = batchIntervalMs
        self.maxBytesInBatch = maxBytesInBatch
        self.maxUnflushedBytes = maxUnflushedBytes
        self.maxInflightUploadCount = maxInflightUploadCount
    }

    /// Parses an `s3.wal.path` value; nil when it is not an `s3://` WAL. Unknown parameters are
    /// kept in the bucket URI (the bucket parser reads region, endpoint and pathStyle).
    public static func parse(_ raw: String) throws -> ObjectWALSettings? {
        var prefix = ""
        var rest = Substring(raw)
        if let at = rest.firstIndex(of: "@"), rest[..<at].allSatisfy(\.isNumber) {
            prefix = String(rest[...at])
            rest = rest[rest.index(after: at)...]
        }
        guard rest.hasPrefix("s3://") else { return nil }
        let base = rest.prefix { $0 != "?" }
        guard base.count > "s3://".count else {
            throw ConfigError(key: "s3.wal.path", value: raw, reason: "names no bucket (0@s3://bucket?region=..&endpoint=..)")
        }
        var settings = ObjectWALSettings(bucketURI: "")
        var kept: [String] = []
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") where !pair.isEmpty {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                let value = kv.count == 2 ? kv[1] : ""
                func number<T: FixedWidthInteger>(_ bounds: ClosedRange<T>) throws -> T {
                    guard let n = T(value), bounds.contains(n) else {
                        throw ConfigError(key: "s3.wal.path", value: raw,
                                          reason: "\(kv[0])=\(value) must be a whole number in \(bounds.lowerBound)...\(bounds.upperBound)")
                    }
                    return n
                }
                switch kv[0] {
                case "batchInterval": settings.batchIntervalMs = try number(batchIntervalMsBounds)
                case "maxBytesInBatch": settings.maxBytesInBatch = try number(maxBytesInBatchBounds)
                case "maxUnflushedBytes": settings.maxUnflushedBytes = try number(maxUnflushedBytesBounds)
                case "maxInflightUploadCount": settings.maxInflightUploadCount = try number(maxInflightUploadCountBounds)
                case "capacity":
                    throw ConfigError(key: "s3.wal.path", value: raw,
                                      reason: "capacity= is for a device or file WAL; an S3 WAL is bounded by maxUnflushedBytes=")
                default: kept.append(String(pair))
                }
            }
        }
        guard settings.maxUnflushedBytes >= UInt64(2 * settings.maxBytesInBatch) else {
            throw ConfigError(key: "s3.wal.path", value: raw,
                              reason: "maxUnflushedBytes (\(settings.maxUnflushedBytes)) must be at least twice maxBytesInBatch (\(settings.maxBytesInBatch))")
        }
        settings.bucketURI = prefix + base + (kept.isEmpty ? "" : "?" + kept.joined(separator: "&"))
        return settings
    }
}
