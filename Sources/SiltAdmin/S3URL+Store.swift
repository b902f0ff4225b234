import Foundation
import Logging
import SiltObjectStore

extension S3URL {
    /// An `S3Config` for one of this s3url's buckets (`dataBucket` by default).
    /// Throws when there are no credentials.
    public func s3Config(bucket: String? = nil, credentials: S3Credentials? = nil,
                         maxRetries: Int = 5, requestTimeoutMs: Int = 30_000) throws -> S3Config {
        guard let creds = credentials ?? accessKey.flatMap({ a in secretKey.map { S3Credentials(accessKey: a, secretKey: $0, source: "s3url") } }) else {
            throw AdminError("no S3 credentials: put s3-access-key and s3-secret-key in the s3url, or set KAFKA_S3_ACCESS_KEY/KAFKA_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or name a file with \(S3Credentials.fileConfigKey)")
        }
        return S3Config(endpoint: endpointURL, scheme: endpointProtocol, region: region, bucket: bucket ?? dataBucket,
                        accessKey: creds.accessKey, secretKey: creds.secretKey, pathStyle: pathStyle,
                        maxRetries: maxRetries, requestTimeoutMs: requestTimeoutMs)
    }
}
