import CSupport
import Foundation

/// AWS Signature Version 4 for S3, as a pure function of its inputs.
///
/// Canonical request (joined by "\n"):
///
///     METHOD
///     canonical URI        path with every byte but A-Za-z0-9-._~ and '/' percent-encoded
///     canonical query      key=value pairs, both encoded (all but unreserved), sorted
///     canonical headers    "name:trimmed value\n" for each signed header, sorted by name
///     signed headers       "host;range;x-amz-content-sha256;x-amz-date"
///     payload hash         hex SHA-256 of the body, or UNSIGNED-PAYLOAD
///
/// String to sign: "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex(SHA-256(canonical request)).
/// Signing key: HMAC chain "AWS4"+secret → date → region → service → "aws4_request".
public enum SigV4 {
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The signed result: add `headers` (which include Authorization, x-amz-date,
    /// x-amz-content-sha256 and host) to the request.
    public struct Signed: Sendable {
        public var authorization: String
        public var amzDate: String
        public var contentSHA256: String
        public var canonicalRequest: String
        public var stringToSign: String
        public var signedHeaders: String
        /// Every header to send, lowercase names, including `authorization`.
        public var headers: [(String, String)]
    }

    /// Signs one request.
    /// - Parameters:
    ///   - path: the raw (not encoded) absolute path, e.g. "/bucket/my key"; encoded here
    ///     with `encodePath`, which the caller must also use for the URL.
    ///   - query: raw (not encoded) pairs; a flag parameter like `uploads` has value "".
    ///   - headers: extra headers to sign and send (e.g. range, x-amz-copy-source,
    ///     if-none-match, content-md5). `host` is added from `host`.
    ///   - payloadSHA256: hex SHA-256 of the body, or `SigV4.unsignedPayload`.
    public static func sign(method: String, host: String, path: String, query: [(String, String)],
                            headers: [(String, String)], payloadSHA256: String,
                            accessKey: String, secretKey: String, region: String, service: String = "s3",
                            date: Date) -> Signed {
        let amzDate = formatAmzDate(date)
        let day = String(amzDate.prefix(8))
        var all: [(String, String)] = [("host", host), ("x-amz-content-sha256", payloadSHA256), ("x-amz-date", amzDate)]
        for (name, value) in headers {
            let lname = name.lowercased()
            if lname == "host" || lname == "x-amz-content-sha256" || lname == "x-amz-date" || lname == "authorization" {
                continue
            }
            all.append((lname, value))
        }
        all.sort { $0.0 < $1.0 }
        let canonicalHeaders = all.map { "\($0.0):\(trimAll($0.1))\n" }.joined()
        let signedHeaders = all.map { $0.0 }.joined(separator: ";")
        let canonicalRequest = [method.uppercased(), encodePath(path), canonicalQuery(query),
                                canonicalHeaders, signedHeaders, payloadSHA256].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(Array(canonicalRequest.utf8))]
            .joined(separator: "\n")
        var key = hmac(Array("AWS4\(secretKey)".utf8), Array(day.utf8))
        key = hmac(key, Array(region.utf8))
        key = hmac(key, Array(service.utf8))
        key = hmac(key, Array("aws4_request".utf8))
        let signature = hex(hmac(key, Array(stringToSign.utf8)))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        var out = all
        out.append(("authorization", authorization))
        return Signed(authorization: authorization, amzDate: amzDate, contentSHA256: payloadSHA256,
                      canonicalRequest: canonicalRequest, stringToSign: stringToSign,
                      signedHeaders: signedHeaders, headers: out)
    }

    /// "20130524T000000Z" in UTC.
    public static func formatAmzDate(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tmv = tm()
        gmtime_r(&t, &tmv)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1,
                      Int(tmv.tm_mday), Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec))
    }

    /// URI-encodes every UTF-8 byte except unreserved characters (and '/' when `keepSlash`).
    public static func uriEncode(_ s: String, keepSlash: Bool) -> String {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        let hexDigits = Array("0123456789ABCDEF".utf8)
        for b in s.utf8 {
            let unreserved = (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
                || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E
            if unreserved || (keepSlash && b == 0x2F) {
                out.append(b)
            } else {
                out.append(0x25)
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical (and on-the-wire) form of a path: S3 does not normalize paths.
    public static func encodePath(_ path: String) -> String { uriEncode(path, keepSlash: true) }

    /// The canonical (and on-the-wire) form of a query: encoded pairs sorted by key, then value.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        query.map { (uriEncode($0.0, keepSlash: false), uriEncode($0.1, keepSlash: false)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Trims and collapses runs of spaces, as SigV4's Trimall.
    static func trimAll(_ v: String) -> String {
        v.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }

    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        data.withUnsafeBufferPointer { buf in
            out.withUnsafeMutableBufferPointer { o in silt_sha256(buf.baseAddress, buf.count, o.baseAddress!) }
        }
        return out
    }

    public static func sha256Hex(_ data: [UInt8]) -> String { hex(sha256(data)) }

    public static func hmac(_ key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                out.withUnsafeMutableBufferPointer { o in
                    silt_hmac_sha256(k.baseAddress ?? UnsafePointer(bitPattern: 1)!, k.count, d.baseAddress, d.count, o.baseAddress!)
                }
            }
        }
        return out
    }

    public static func md5(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        data.withUnsafeBufferPointer { buf in
            out.withUnsafeMutableBufferPointer { o in silt_md5(buf.baseAddress, buf.count, o.baseAddress!) }
        }
        return out
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
