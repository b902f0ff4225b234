import Foundation
import XCTest
@testable import SiltObjectStore

/// SigV4 against botocore's S3SigV4Auth as the oracle (helpers/sigv4_oracle.py).
final class SigV4Tests: XCTestCase {
    struct Case {
        var name: String
        var method: String
        var scheme: String
        var host: String
        var path: String
        var query: [(String, String)]
        var headers: [(String, String)]
        var body: [UInt8]
        var unsigned: Bool
        var region = "us-east-1"
    }

    static let accessKey = "AKIDEXAMPLE"
    static let secretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let date = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z

    func testMatchesBotocore() throws {
        let cases: [Case] = [
            Case(name: "path style GET", method: "GET", scheme: "http", host: "127.0.0.1:5000",
                 path: "/bucket/dir/object.bin", query: [], headers: [], body: [], unsigned: false),
            Case(name: "virtual-hosted GET", method: "GET", scheme: "https", host: "bucket.fly.storage.tigris.dev",
                 path: "/dir/object.bin", query: [], headers: [], body: [], unsigned: false, region: "auto"),
            Case(name: "list query", method: "GET", scheme: "http", host: "127.0.0.1:5000", path: "/bucket",
                 query: [("list-type", "2"), ("prefix", "a b/+=~%ü"), ("continuation-token", "1/abc+def=="),
                         ("max-keys", "3"), ("delimiter", "/"), ("encoding-type", "url")],
                 headers: [], body: [], unsigned: false),
            Case(name: "unusual key", method: "PUT", scheme: "http", host: "127.0.0.1:5000",
                 path: "/bucket/a b/c+d=e/ünï~cödé%41/x!*'()&$@,;:?.txt", query: [],
                 headers: [], body: Array("hello".utf8), unsigned: false),
            Case(name: "range header", method: "GET", scheme: "http", host: "s3.us-west-2.amazonaws.com",
                 path: "/bucket/key", query: [], headers: [("Range", "bytes=100-199")], body: [], unsigned: false,
                 region: "us-west-2"),
            Case(name: "unsigned payload", method: "PUT", scheme: "https", host: "bucket.s3.amazonaws.com",
                 path: "/key with space", query: [("partNumber", "2"), ("uploadId", "abc/def+g")],
                 headers: [], body: Array(repeating: 7, count: 1000), unsigned: true),
            Case(name: "hashed payload + copy source", method: "PUT", scheme: "http", host: "127.0.0.1:9000",
                 path: "/bucket/dst", query: [("partNumber", "1"), ("uploadId", "X")],
                 headers: [("x-amz-copy-source", SigV4.encodePath("/bucket/src key+1")),
                           ("x-amz-copy-source-range", "bytes=0-5242879")],
                 body: [], unsigned: false),
            Case(name: "delete objects with content-md5", method: "POST", scheme: "http", host: "127.0.0.1:5000",
                 path: "/bucket", query: [("delete", "")],
                 headers: [("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="), ("if-none-match", "*")],
                 body: Array("<Delete></Delete>".utf8), unsigned: false),
        ]
        var json: [[String: Any]] = []
        for c in cases {
            json.append([
                "method": c.method, "scheme": c.scheme, "host": c.host, "path": c.path,
                "query": c.query.map { [$0.0, $0.1] },
                "headers": Dictionary(uniqueKeysWithValues: c.headers.map { ($0.0, $0.1) }),
                "body_hex": SigV4.hex(c.body), "unsigned": c.unsigned, "access_key": Self.accessKey,
                "secret_key": Self.secretKey, "region": c.region, "timestamp": SigV4.formatAmzDate(Self.date),
            ])
        }
        let input = try JSONSerialization.data(withJSONObject: json)
        let (status, out, err) = try TestSupport.run(
            [TestSupport.python, TestSupport.repoRoot + "/Tests/SiltObjectStoreTests/helpers/sigv4_oracle.py"], stdin: input)
        XCTAssertEqual(status, 0, "oracle failed: \(err)")
        let results = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: String]])
        XCTAssertEqual(results.count, cases.count)
        for (c, r) in zip(cases, results) {
            let payload = c.unsigned ? SigV4.unsignedPayload : SigV4.sha256Hex(c.body)
            XCTAssertEqual(payload, r["content_sha256"], c.name)
            let s = SigV4.sign(method: c.method, host: c.host, path: c.path, query: c.query, headers: c.headers,
                               payloadSHA256: payload, accessKey: Self.accessKey, secretKey: Self.secretKey,
                               region: c.region, date: Self.date)
            XCTAssertEqual(s.canonicalRequest, r["canonical_request"], "canonical request: \(c.name)")
            XCTAssertEqual(s.stringToSign, r["string_to_sign"], "string to sign: \(c.name)")
            XCTAssertEqual(s.authorization, r["authorization"], "authorization: \(c.name)")
        }
    }

    /// The AWS documentation's GET Object example (Range header), known signature.
    func testAWSDocumentationExample() {
        let s = SigV4.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [],
                           headers: [("range", "bytes=0-9")], payloadSHA256: SigV4.emptyPayloadSHA256,
                           accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                           region: "us-east-1", date: Self.date)
        XCTAssertEqual(s.signedHeaders, "host;range;x-amz-content-sha256;x-amz-date")
        XCTAssertTrue(s.authorization.hasSuffix("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
                      s.authorization)
    }

    func testEncoding() {
        XCTAssertEqual(SigV4.encodePath("/b/a b+c=d~e%f/ü"), "/b/a%20b%2Bc%3Dd~e%25f/%C3%BC")
        XCTAssertEqual(SigV4.canonicalQuery([("uploads", ""), ("a", "x/y")]), "a=x%2Fy&uploads=")
        XCTAssertEqual(SigV4.sha256Hex([]), SigV4.emptyPayloadSHA256)
    }
}
