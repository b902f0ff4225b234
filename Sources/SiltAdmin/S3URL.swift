import Foundation

/// A problem with an s3url or with generate-s3-url / generate-start-command input.
public struct AdminError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// AutoMQ's s3url: everything a node needs to reach its buckets, plus the cluster id, in one
/// string that generate-s3-url prints and kafka-server-start.sh takes as `--s3-url`:
///
///     s3://<endpoint>?s3-access-key=..&s3-secret-key=..&s3-region=..&s3-endpoint-protocol=..
///         &s3-data-bucket=..&s3-path-style=..&s3-ops-bucket=..&cluster-id=..
///
/// Parameters are those of AutoMQ's `S3Url.parse`; any other name is refused by name.
/// Required: the endpoint, `s3-region`, `s3-data-bucket` and `cluster-id`. The keys are
/// optional as a pair: without them the node takes credentials from the environment
/// (see `S3Credentials`). `s3-endpoint-protocol` defaults to https, `s3-path-style` to
/// false, `s3-ops-bucket` to the data bucket. Values are taken verbatim (no percent
/// decoding, as AutoMQ), so a value may not contain `&`.
public struct S3URL: Equatable, Sendable, CustomStringConvertible {
    /// host[:port], without scheme.
    public var endpoint: String
    public var accessKey: String?
    public var secretKey: String?
    public var region: String
    /// "http" or "https".
    public var endpointProtocol: String
    public var dataBucket: String
    public var opsBucket: String
    public var pathStyle: Bool
    public var clusterId: String

    /// Parameter names in the order AutoMQ's generate-s3-url writes them.
    public static let parameterNames = ["s3-access-key", "s3-secret-key", "s3-region", "s3-endpoint-protocol",
                                        "s3-data-bucket", "s3-path-style", "s3-ops-bucket", "cluster-id"]
    public static let requiredParameters = ["s3-region", "s3-data-bucket", "cluster-id"]

    public init(endpoint: String, accessKey: String?, secretKey: String?, region: String,
                endpointProtocol: String = "https", dataBucket: String, opsBucket: String? = nil,
                pathStyle: Bool = false, clusterId: String) throws {
        var ep = endpoint
        var proto = endpointProtocol.lowercased()
        if let (scheme, rest) = S3URL.splitScheme(endpoint) { proto = scheme; ep = rest }
        self.endpoint = ep
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.endpointProtocol = proto
        self.dataBucket = dataBucket
        self.opsBucket = opsBucket ?? dataBucket
        self.pathStyle = pathStyle
        self.clusterId = clusterId
        try validate()
    }

    /// "http://host" → ("http", "host"); nil without a scheme.
    static func splitScheme(_ s: String) -> (String, String)? {
        for scheme in ["http", "https"] where s.lowercased().hasPrefix(scheme + "://") {
            return (scheme, String(s.dropFirst(scheme.count + 3)))
        }
        return nil
    }

    public static func parse(_ text: String) throws -> S3URL {
        var s = text.trimmingCharacters(in: .whitespacesAndNewlines)
        // The start line quotes the s3url; a wrapper may pass the quotes through.
        if s.count >= 2, (s.hasPrefix("\"") && s.hasSuffix("\"")) || (s.hasPrefix("'") && s.hasSuffix("'")) {
            s = String(s.dropFirst().dropLast())
        }
        guard !s.isEmpty else { throw AdminError("s3url is empty") }
        guard s.lowercased().hasPrefix("s3://") else {
            throw AdminError("s3url must start with s3://, got '\(S3URL.maskSecrets(in: s).prefix(40))'")
        }
        s = String(s.dropFirst(5))
        guard let q = s.firstIndex(of: "?") else {
            throw AdminError("s3url has no parameters: expected s3://<endpoint>?s3-region=..&s3-data-bucket=..&cluster-id=..")
        }
        var endpoint = String(s[..<q])
        var schemeFromEndpoint: String?
        if let (scheme, rest) = splitScheme(endpoint) { schemeFromEndpoint = scheme; endpoint = rest }
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        guard !endpoint.isEmpty else { throw AdminError("s3url has no endpoint: expected s3://<endpoint>?...") }

        var values: [String: String] = [:]
        for part in s[s.index(after: q)...].split(separator: "&", omittingEmptySubsequences: true) {
            guard let eq = part.firstIndex(of: "="), eq != part.startIndex else {
                throw AdminError("s3url parameter '\(part.prefix(40))' is not name=value")
            }
            let name = String(part[..<eq])
            let value = String(part[part.index(after: eq)...])
            guard parameterNames.contains(name) else {
                throw AdminError("unknown s3url parameter '\(name)'; known parameters: \(parameterNames.joined(separator: ", "))")
            }
            guard values[name] == nil else { throw AdminError("s3url parameter '\(name)' is given twice") }
            guard !value.isEmpty else { throw AdminError("s3url parameter '\(name)' is empty") }
            values[name] = value
        }
        for name in requiredParameters where values[name] == nil {
            throw AdminError("s3url is missing the required parameter '\(name)'")
        }
        var proto = schemeFromEndpoint ?? "https"
        if let p = values["s3-endpoint-protocol"] {
            guard ["http", "https"].contains(p.lowercased()) else {
                throw AdminError("s3url parameter 's3-endpoint-protocol' must be http or https, got '\(p)'")
            }
            proto = p.lowercased()
        }
        var pathStyle = false
        if let p = values["s3-path-style"] {
            switch p.lowercased() {
            case "true": pathStyle = true
            case "false": pathStyle = false
            default: throw AdminError("s3url parameter 's3-path-style' must be true or false, got '\(p)'")
            }
        }
        return try S3URL(endpoint: endpoint, accessKey: values["s3-access-key"], secretKey: values["s3-secret-key"],
                         region: values["s3-region"]!, endpointProtocol: proto, dataBucket: values["s3-data-bucket"]!,
                         opsBucket: values["s3-ops-bucket"], pathStyle: pathStyle, clusterId: values["cluster-id"]!)
    }

    func validate() throws {
        if endpoint.isEmpty { throw AdminError("s3 endpoint is empty") }
        if endpoint.contains("?") || endpoint.contains("&") || endpoint.contains(" ") || endpoint.contains("/") {
            throw AdminError("s3 endpoint '\(endpoint)' must be host[:port] (a scheme is allowed, a path is not)")
        }
        if let colon = endpoint.lastIndex(of: ":"), !endpoint.hasSuffix("]") {
            let port = endpoint[endpoint.index(after: colon)...]
            guard let n = Int(port), (1...65535).contains(n) else {
                throw AdminError("s3 endpoint '\(endpoint)' has an invalid port '\(port)'")
            }
        }
        guard ["http", "https"].contains(endpointProtocol) else {
            throw AdminError("s3 endpoint protocol must be http or https, got '\(endpointProtocol)'")
        }
        if (accessKey == nil) != (secretKey == nil) {
            throw AdminError(accessKey == nil ? "s3url has s3-secret-key but no s3-access-key"
                                              : "s3url has s3-access-key but no s3-secret-key")
        }
        let fields: [(String, String?)] = [("s3-access-key", accessKey), ("s3-secret-key", secretKey), ("s3-region", region),
                                           ("s3-data-bucket", dataBucket), ("s3-ops-bucket", opsBucket), ("cluster-id", clusterId)]
        for (name, value) in fields {
            guard let v = value else { continue }
            if v.isEmpty { throw AdminError("\(name) is empty") }
            if v.contains("&") || v.contains(" ") || v.contains("\"") {
                throw AdminError("\(name) contains '&', a space or a quote, which an s3url cannot carry")
            }
        }
        for (name, bucket) in [("s3-data-bucket", dataBucket), ("s3-ops-bucket", opsBucket)]
        where bucket.contains(where: { "/?=@#".contains($0) || $0.isWhitespace }) {
            throw AdminError("\(name) '\(bucket)' is not a valid bucket name")
        }
    }

    /// The s3url as AutoMQ's generate-s3-url prints it (includes the secret).
    public func format() -> String {
        var params: [(String, String)] = []
        if let a = accessKey, let s = secretKey { params += [("s3-access-key", a), ("s3-secret-key", s)] }
        params += [("s3-region", region), ("s3-endpoint-protocol", endpointProtocol), ("s3-data-bucket", dataBucket),
                   ("s3-path-style", pathStyle ? "true" : "false"), ("s3-ops-bucket", opsBucket), ("cluster-id", clusterId)]
        return "s3://" + endpoint + "?" + params.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// The s3url with the secret key masked: safe for logs and error messages.
    public var description: String {
        guard secretKey != nil else { return format() }
        return S3URL.maskSecrets(in: format())
    }

    /// Replaces the value of every `s3-secret-key=` in `text` with `******`.
    public static func maskSecrets(in text: String) -> String {
        var out = ""
        var rest = Substring(text)
        while let r = rest.range(of: "s3-secret-key=") {
            out += rest[..<r.upperBound]
            out += "******"
            rest = rest[r.upperBound...]
            if let end = rest.firstIndex(where: { $0 == "&" || $0 == "\"" || $0 == " " || $0 == "'" }) {
                rest = rest[end...]
            } else {
                rest = ""
            }
        }
        return out + rest
    }

    /// "http(s)://endpoint".
    public var endpointURL: String { "\(endpointProtocol)://\(endpoint)" }

    /// An AutoMQ bucket URI: `<index>@s3://<bucket>?region=..&endpoint=..&pathStyle=..`.
    public func bucketURI(index: Int, bucket: String) -> String {
        "\(index)@s3://\(bucket)?region=\(region)&endpoint=\(endpointURL)&pathStyle=\(pathStyle)"
    }

    /// The configuration the s3url stands for, as a `ServerConfig.load(layers:)` layer: the
    /// bucket URIs AutoMQ uses (`s3.data.buckets=0@s3://..`, `s3.ops.buckets=1@s3://..`), the
    /// older single-bucket keys AutoMQ's start script sets (`s3.endpoint`, `s3.region`,
    /// `s3.bucket`, `s3.path.style`), and `cluster.id`. Credentials are deliberately not in
    /// the layer (configuration is logged and handed to role processes); use `S3Credentials`.
    public func configLayer() -> [String: String] {
        [
            "s3.data.buckets": bucketURI(index: 0, bucket: dataBucket),
            "s3.ops.buckets": bucketURI(index: 1, bucket: opsBucket),
            "s3.endpoint": endpointURL,
            "s3.region": region,
            "s3.bucket": dataBucket,
            "s3.path.style": pathStyle ? "true" : "false",
            "cluster.id": clusterId,
        ]
    }

    /// The value of `--s3-url=<v>` / `--s3-url <v>` in a raw argument list, as AutoMQ's
    /// `S3Url.parseS3UrlValFromArgs` finds it.
    public static func valueFromArguments(_ args: [String]) -> String? {
        for (i, a) in args.enumerated() {
            if a.hasPrefix("--s3-url=") { return String(a.dropFirst("--s3-url=".count)) }
            if a == "--s3-url", i + 1 < args.count { return args[i + 1] }
        }
        return nil
    }
}
