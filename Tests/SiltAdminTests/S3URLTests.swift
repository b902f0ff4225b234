import SiltConfig
import XCTest
@testable import SiltAdmin

final class S3URLTests: XCTestCase {
    let sample = "s3://s3.cn-northwest-1.amazonaws.com.cn?s3-access-key=xxx&s3-secret-key=yyy&s3-region=cn-northwest-1&s3-endpoint-protocol=https&s3-data-bucket=wanshao-test&s3-path-style=false&s3-ops-bucket=automq-ops-bucket&cluster-id=fZGPJht6Rf-o7WgrUakLxQ"

    func testParseAutoMQExample() throws {
        let u = try S3URL.parse(sample)
        XCTAssertEqual(u.accessKey, "xxx")
        XCTAssertEqual(u.secretKey, "yyy")
        XCTAssertEqual(u.region, "cn-northwest-1")
        XCTAssertEqual(u.endpointProtocol, "https")
        XCTAssertEqual(u.endpoint, "s3.cn-northwest-1.amazonaws.com.cn")
        XCTAssertEqual(u.dataBucket, "wanshao-test")
        XCTAssertEqual(u.opsBucket, "automq-ops-bucket")
        XCTAssertEqual(u.clusterId, "fZGPJht6Rf-o7WgrUakLxQ")
        XCTAssertFalse(u.pathStyle)
    }

    func testRoundTrip() throws {
        let u = try S3URL.parse(sample)
        XCTAssertEqual(u.format(), sample)
        XCTAssertEqual(try S3URL.parse(u.format()), u)
        let v = try S3URL(endpoint: "http://127.0.0.1:9000", accessKey: "AK", secretKey: "S/K+z", region: "us-east-1",
                          dataBucket: "data", pathStyle: true, clusterId: "id1")
        XCTAssertEqual(v.endpoint, "127.0.0.1:9000")
        XCTAssertEqual(v.endpointProtocol, "http")
        XCTAssertEqual(v.opsBucket, "data")
        XCTAssertEqual(v.format(), "s3://127.0.0.1:9000?s3-access-key=AK&s3-secret-key=S/K+z&s3-region=us-east-1&s3-endpoint-protocol=http&s3-data-bucket=data&s3-path-style=true&s3-ops-bucket=data&cluster-id=id1")
        XCTAssertEqual(try S3URL.parse(v.format()), v)
        // Quoted, as copied from a start line.
        XCTAssertEqual(try S3URL.parse("\"\(v.format())\""), v)
    }

    func testDefaultsAndOptionalKeys() throws {
        let u = try S3URL.parse("s3://minio:9000?s3-region=us-east-1&s3-data-bucket=d&cluster-id=c")
        XCTAssertEqual(u.endpointProtocol, "https")
        XCTAssertEqual(u.opsBucket, "d")
        XCTAssertNil(u.accessKey)
        XCTAssertNil(u.secretKey)
        XCTAssertFalse(u.pathStyle)
    }

    func assertFails(_ text: String, mentioning needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try S3URL.parse(text), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(needle), "'\(error)' does not mention '\(needle)'", file: file, line: line)
            XCTAssertFalse("\(error)".contains("TOPSECRET"), "error leaks the secret: \(error)", file: file, line: line)
        }
    }

    func testRequiredAndUnknownParametersRefusedByName() {
        let base = "s3://h?s3-access-key=a&s3-secret-key=TOPSECRET"
        assertFails(base + "&s3-data-bucket=d&cluster-id=c", mentioning: "'s3-region'")
        assertFails(base + "&s3-region=r&cluster-id=c", mentioning: "'s3-data-bucket'")
        assertFails(base + "&s3-region=r&s3-data-bucket=d", mentioning: "'cluster-id'")
        assertFails(base + "&s3-region=r&s3-data-bucket=d&cluster-id=c&s3-auth-method=role", mentioning: "unknown s3url parameter 's3-auth-method'")
        assertFails(base + "&s3-region=r&s3-region=q&s3-data-bucket=d&cluster-id=c", mentioning: "'s3-region' is given twice")
        assertFails("s3://h?s3-secret-key=TOPSECRET&s3-region=r&s3-data-bucket=d&cluster-id=c", mentioning: "no s3-access-key")
        assertFails(base + "&s3-region=r&s3-data-bucket=d&cluster-id=c&s3-path-style=yes", mentioning: "s3-path-style")
        assertFails(base + "&s3-region=r&s3-data-bucket=d&cluster-id=c&s3-endpoint-protocol=ftp", mentioning: "s3-endpoint-protocol")
        assertFails("http://h?s3-region=r&s3-data-bucket=d&cluster-id=c", mentioning: "s3://")
        assertFails("s3://h", mentioning: "no parameters")
        assertFails("s3://?s3-region=r&s3-data-bucket=d&cluster-id=c", mentioning: "no endpoint")
        assertFails("", mentioning: "empty")
        assertFails("s3://h:99999?s3-region=r&s3-data-bucket=d&cluster-id=c", mentioning: "port")
    }

    func testDescriptionMasksSecret() throws {
        let u = try S3URL.parse(sample.replacingOccurrences(of: "s3-secret-key=yyy", with: "s3-secret-key=TOPSECRET"))
        XCTAssertFalse(u.description.contains("TOPSECRET"))
        XCTAssertFalse("\(u)".contains("TOPSECRET"))
        XCTAssertFalse(String(describing: [u]).contains("TOPSECRET"))
        XCTAssertTrue(u.description.contains("s3-secret-key=******&s3-region=cn-northwest-1"))
        XCTAssertTrue(u.format().contains("TOPSECRET"))
        XCTAssertEqual(S3URL.maskSecrets(in: "--s3-url=\"s3://h?s3-secret-key=abc\" x"), "--s3-url=\"s3://h?s3-secret-key=******\" x")
        let creds = S3Credentials(accessKey: "a", secretKey: "TOPSECRET", source: "s3url")
        XCTAssertFalse("\(creds)".contains("TOPSECRET"))
    }

    func testConfigLayer() throws {
        let u = try S3URL.parse("s3://127.0.0.1:9000?s3-access-key=a&s3-secret-key=b&s3-region=us-east-1&s3-endpoint-protocol=http&s3-data-bucket=data&s3-path-style=true&s3-ops-bucket=ops&cluster-id=CID")
        let layer = u.configLayer()
        XCTAssertEqual(layer["s3.data.buckets"], "0@s3://data?region=us-east-1&endpoint=http://127.0.0.1:9000&pathStyle=true")
        XCTAssertEqual(layer["s3.ops.buckets"], "1@s3://ops?region=us-east-1&endpoint=http://127.0.0.1:9000&pathStyle=true")
        XCTAssertEqual(layer["s3.endpoint"], "http://127.0.0.1:9000")
        XCTAssertEqual(layer["s3.region"], "us-east-1")
        XCTAssertEqual(layer["s3.bucket"], "data")
        XCTAssertEqual(layer["s3.path.style"], "true")
        XCTAssertEqual(layer["cluster.id"], "CID")
        XCTAssertFalse(layer.values.contains { $0.contains("b") && $0 == "b" })
        XCTAssertEqual(layer.count, 7)
        // The layer is accepted by ServerConfig, and --override still wins.
        let config = try ServerConfig.load(propertiesFile: nil, layers: [layer], overrides: ["s3.region=eu-west-1"])
        XCTAssertEqual(config.clusterId, "CID")
        XCTAssertEqual(config.explicit["s3.data.buckets"], layer["s3.data.buckets"])
        XCTAssertEqual(config.explicit["s3.region"], "eu-west-1")
    }

    func testValueFromArguments() {
        XCTAssertEqual(S3URL.valueFromArguments(["--override", "a=b", "--s3-url=s3://x?y=z"]), "s3://x?y=z")
        XCTAssertEqual(S3URL.valueFromArguments(["--s3-url", "s3://q"]), "s3://q")
        XCTAssertNil(S3URL.valueFromArguments(["--override", "a=b"]))
    }

    func testCredentialSources() throws {
        let withKeys = try S3URL.parse("s3://h?s3-access-key=UA&s3-secret-key=US&s3-region=r&s3-data-bucket=d&cluster-id=c")
        let noKeys = try S3URL.parse("s3://h?s3-region=r&s3-data-bucket=d&cluster-id=c")
        let env = ["KAFKA_S3_ACCESS_KEY": "KA", "KAFKA_S3_SECRET_KEY": "KS", "AWS_ACCESS_KEY_ID": "WA", "AWS_SECRET_ACCESS_KEY": "WS"]
        XCTAssertEqual(try S3Credentials.resolve(s3url: withKeys, credentialsFile: nil, environment: env)?.accessKey, "UA")
        XCTAssertEqual(try S3Credentials.resolve(s3url: noKeys, credentialsFile: nil, environment: env)?.accessKey, "KA")
        XCTAssertEqual(try S3Credentials.resolve(s3url: noKeys, credentialsFile: nil,
                                                 environment: ["AWS_ACCESS_KEY_ID": "WA", "AWS_SECRET_ACCESS_KEY": "WS"])?.secretKey, "WS")
        XCTAssertNil(try S3Credentials.resolve(s3url: noKeys, credentialsFile: nil, environment: [:]))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-creds-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/credentials"
        try "[default]\naws_access_key_id = FA\naws_secret_access_key = FS\n".write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try S3Credentials.resolve(s3url: noKeys, credentialsFile: file, environment: env)
        XCTAssertEqual(fromFile?.accessKey, "FA")
        XCTAssertEqual(fromFile?.secretKey, "FS")
        XCTAssertEqual(try S3Credentials.resolve(s3url: noKeys, credentialsFile: nil,
                                                 environment: ["SILT_S3_CREDENTIALS_FILE": file])?.accessKey, "FA")
        let config = try ServerConfig.load(propertiesFile: nil, layers: [noKeys.configLayer()], overrides: ["s3.credentials.file=\(file)"])
        XCTAssertEqual(try NodeStart.credentials(s3url: noKeys, config: config, environment: [:])?.accessKey, "FA")
        XCTAssertThrowsError(try S3Credentials.resolve(s3url: noKeys, credentialsFile: dir + "/missing", environment: [:]))
        try "s3.access.key=only\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try S3Credentials.fromFile(file))
    }

    func testGenerateOptions() throws {
        let o = GenerateS3URLOptions(accessKey: "a", secretKey: "b", region: "r", endpoint: "https://minio.local:9000/",
                                     endpointProtocol: "http", dataBucket: "d", opsBucket: "o", pathStyle: "true")
        let u = try o.s3url(clusterId: "C")
        XCTAssertEqual(u.format(), "s3://minio.local:9000?s3-access-key=a&s3-secret-key=b&s3-region=r&s3-endpoint-protocol=https&s3-data-bucket=d&s3-path-style=true&s3-ops-bucket=o&cluster-id=C")
        let fresh = try GenerateS3URLOptions(accessKey: "a", secretKey: "b", region: "r", endpoint: "h", dataBucket: "d").s3url()
        XCTAssertEqual(fresh.clusterId.count, 22)
        XCTAssertTrue(fresh.clusterId.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        XCTAssertEqual(fresh.endpointProtocol, "https")
        XCTAssertThrowsError(try GenerateS3URLOptions(accessKey: "a", secretKey: "b", region: "r", endpoint: "h",
                                                      dataBucket: "d", pathStyle: "maybe").s3url())
        XCTAssertThrowsError(try GenerateS3URLOptions(accessKey: "a", secretKey: "b", region: "r", endpoint: "h",
                                                      endpointProtocol: "ftp", dataBucket: "d").s3url())
    }
}
