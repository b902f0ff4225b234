extension PrometheusExporter {
    /// The configuration key holding the exporter URI (AutoMQ's name).
    public static let uriConfigKey = "s3.telemetry.metrics.exporter.uri"

    /// Parses AutoMQ's `s3.telemetry.metrics.exporter.uri` into the address to bind.
    ///
    /// Accepted forms (the scheme is case-insensitive, a trailing `/` is allowed):
    ///
    ///     prometheus://?host=127.0.0.1&port=9090     AutoMQ's form
    ///     prometheus://127.0.0.1:9090                an authority
    ///     prometheus://[::1]:9090                    an IPv6 authority
    ///
    /// Anything else throws `MetricsError.invalidExporterURI` saying what is wrong: another
    /// scheme (`otlp://` is not supported), a missing or repeated host or port, a port
    /// outside 1...65535, an unknown query parameter, a path.
    public static func parseExporterURI(_ s: String) throws -> (host: String, port: Int) {
        func bad(_ reason: String) -> MetricsError { .invalidExporterURI(s, reason: reason) }
        let text = s.trimmingWhitespace()
        guard let schemeEnd = text.firstRange(of: "://") else {
            throw bad("expected prometheus://?host=HOST&port=PORT or prometheus://HOST:PORT")
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "prometheus" else {
            throw bad("unsupported exporter '\(scheme)': only prometheus:// is supported")
        }
        var rest = text[schemeEnd.upperBound...]
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains("/") { throw bad("a path is not allowed (metrics are served at /metrics)") }

        var host: String?
        var port: String?
        if !rest.isEmpty {
            let (h, p) = try splitAuthority(rest, bad)
            host = h
            port = p
        }
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2 else { throw bad("query parameter '\(item)' has no value") }
            switch kv[0] {
            case "host":
                guard host == nil else { throw bad("host given twice") }
                host = String(kv[1])
            case "port":
                guard port == nil else { throw bad("port given twice") }
                port = String(kv[1])
            default:
                throw bad("unknown parameter '\(kv[0])' (expected host and port)")
            }
        }
        guard let host, !host.isEmpty else { throw bad("no host") }
        guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" || $0 == "_" }) else {
            throw bad("host '\(host)' has characters a host name or address cannot have")
        }
        guard let port else { throw bad("no port") }
        guard let n = Int(port), (1...65535).contains(n) else { throw bad("port '\(port)' is not in 1...65535") }
        return (host, n)
    }

    /// `host:port`, `[v6]:port`, or `host` alone.
    private static func splitAuthority(_ a: Substring, _ bad: (String) -> MetricsError) throws -> (String, String?) {
        if a.hasPrefix("[") {
            guard let close = a.firstIndex(of: "]") else { throw bad("unterminated [ in the address") }
            let host = String(a[a.index(after: a.startIndex)..<close])
            let after = a[a.index(after: close)...]
            if after.isEmpty { return (host, nil) }
            guard after.hasPrefix(":") else { throw bad("expected :PORT after ]") }
            return (host, String(after.dropFirst()))
        }
        let parts = a.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return (String(a), nil)
        case 2: return (String(parts[0]), String(parts[1]))
        default: throw bad("an IPv6 address must be in brackets: prometheus://[::1]:9090")
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
