import Foundation

/// An access key pair and where it came from (for logs; never log the secret).
public struct S3Credentials: Equatable, Sendable, CustomStringConvertible {
    public var accessKey: String
    public var secretKey: String
    /// "s3url", "file <path>", "KAFKA_S3_ACCESS_KEY/KAFKA_S3_SECRET_KEY", "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".
    public var source: String

    public init(accessKey: String, secretKey: String, source: String) {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.source = source
    }

    public var description: String { "S3Credentials(accessKey: \(accessKey), secretKey: ******, source: \(source))" }

    /// Configuration key naming a credentials file.
    public static let fileConfigKey = "s3.credentials.file"
    /// Environment variable naming a credentials file (used when the config key is absent).
    public static let fileEnvironmentVariable = "SILT_S3_CREDENTIALS_FILE"

    /// The environment variables that may hold secrets. The supervisor resolves credentials
    /// once and hands them to its roles through a descriptor; these never reach a role.
    public static let secretEnvironmentVariables: Set<String> = [
        "KAFKA_S3_ACCESS_KEY", "KAFKA_S3_SECRET_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    ]

    /// Resolves credentials, first match wins:
    /// 1. `s3-access-key`/`s3-secret-key` in the s3url;
    /// 2. the file named by `s3.credentials.file` (config) or `$SILT_S3_CREDENTIALS_FILE`;
    /// 3. `KAFKA_S3_ACCESS_KEY`/`KAFKA_S3_SECRET_KEY` (AutoMQ's variables);
    /// 4. `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
    /// Returns nil when none is set. A named file that is missing or incomplete is an error.
    public static func resolve(s3url: S3URL?, credentialsFile: String?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Credentials? {
        if let u = s3url, let a = u.accessKey, let s = u.secretKey {
            return S3Credentials(accessKey: a, secretKey: s, source: "s3url")
        }
        if let path = credentialsFile ?? environment[fileEnvironmentVariable].flatMap({ $0.isEmpty ? nil : $0 }) {
            return try fromFile(path)
        }
        for (a, s) in [("KAFKA_S3_ACCESS_KEY", "KAFKA_S3_SECRET_KEY"), ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")] {
            if let ak = environment[a], let sk = environment[s], !ak.isEmpty, !sk.isEmpty {
                return S3Credentials(accessKey: ak, secretKey: sk, source: "\(a)/\(s)")
            }
        }
        return nil
    }

    /// Reads a credentials file: `key=value` or `key = value` lines, `#`/`;` comments and
    /// `[section]` headers ignored (so an AWS shared credentials file with one profile works).
    /// Accepted names: `aws_access_key_id`/`aws_secret_access_key`,
    /// `s3.access.key`/`s3.secret.key`, `access.key`/`secret.key`, `accessKey`/`secretKey`.
    public static func fromFile(_ path: String) throws -> S3Credentials {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw AdminError("cannot read S3 credentials file \(path)")
        }
        var access: String?
        var secret: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") || line.hasPrefix("[") { continue }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let k = line[..<eq].trimmingCharacters(in: .whitespaces)
            let v = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            switch k {
            case "aws_access_key_id", "s3.access.key", "access.key", "accessKey": if access == nil { access = v }
            case "aws_secret_access_key", "s3.secret.key", "secret.key", "secretKey": if secret == nil { secret = v }
            default: continue
            }
        }
        guard let a = access, !a.isEmpty, let s = secret, !s.isEmpty else {
            throw AdminError("S3 credentials file \(path) must set both aws_access_key_id and aws_secret_access_key (or s3.access.key and s3.secret.key)")
        }
        return S3Credentials(accessKey: a, secretKey: s, source: "file \(path)")
    }
}
