import Foundation
import XCTest
import SiltObjectStore
@testable import SiltAdmin

/// Wraps a real store; fails the `occurrence`-th call of `failOp` with `error`, and tracks
/// open multipart uploads so a test can see what a run left behind.
final class FaultyStore: ObjectStore, @unchecked Sendable {
    let inner: ObjectStore
    let failOp: String
    let occurrence: Int
    let error: ObjectStoreError
    private let lock = NSLock()
    private var calls: [String: Int] = [:]
    private var openUploads: [String: String] = [:]   // uploadId -> key

    init(inner: ObjectStore, failOp: String, occurrence: Int = 1, error: ObjectStoreError) {
        self.inner = inner
        self.failOp = failOp
        self.occurrence = occurrence
        self.error = error
    }

    var description: String { "faulty(\(inner.description))" }
    var uploadsLeft: [String] { lock.withLock { Array(openUploads.values) } }

    private func check(_ op: String) throws {
        let n: Int = lock.withLock { calls[op, default: 0] += 1; return calls[op]! }
        if op == failOp && n == occurrence { throw error }
    }

    func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String? {
        try check("put"); return try await inner.put(key, body, ifNoneMatch: ifNoneMatch)
    }
    func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8] {
        try check("get"); return try await inner.get(key, range: range)
    }
    func head(_ key: String) async throws -> ObjectInfo? { try check("head"); return try await inner.head(key) }
    func delete(_ key: String) async throws { try check("delete"); try await inner.delete(key) }
    func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError] {
        try check("deleteObjects"); return try await inner.deleteObjects(keys)
    }
    func list(prefix: String, delimiter: String?, continuationToken: String?, maxKeys: Int) async throws -> ListPage {
        try check("list")
        return try await inner.list(prefix: prefix, delimiter: delimiter, continuationToken: continuationToken, maxKeys: maxKeys)
    }
    func createMultipartUpload(_ key: String) async throws -> String {
        try check("createMultipartUpload")
        let id = try await inner.createMultipartUpload(key)
        lock.withLock { openUploads[id] = key }
        return id
    }
    func uploadPart(_ key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String {
        try check("uploadPart"); return try await inner.uploadPart(key, uploadId: uploadId, partNumber: partNumber, body: body)
    }
    func uploadPartCopy(_ key: String, uploadId: String, partNumber: Int, sourceKey: String, sourceRange: ClosedRange<Int64>?) async throws -> String {
        try check("uploadPartCopy")
        return try await inner.uploadPartCopy(key, uploadId: uploadId, partNumber: partNumber, sourceKey: sourceKey, sourceRange: sourceRange)
    }
    func completeMultipartUpload(_ key: String, uploadId: String, parts: [CompletedPart]) async throws -> String? {
        try check("completeMultipartUpload")
        let e = try await inner.completeMultipartUpload(key, uploadId: uploadId, parts: parts)
        lock.withLock { openUploads[uploadId] = nil }
        return e
    }
    func abortMultipartUpload(_ key: String, uploadId: String) async throws {
        try check("abortMultipartUpload")
        try await inner.abortMultipartUpload(key, uploadId: uploadId)
        lock.withLock { openUploads[uploadId] = nil }
    }
}

/// Every key in a store.
func allKeys(_ store: ObjectStore) async throws -> [String] {
    var keys: [String] = []
    var token: String?
    repeat {
        let page = try await store.list(prefix: "", delimiter: nil, continuationToken: token, maxKeys: 1000)
        keys += page.objects.map(\.key)
        token = page.nextContinuationToken
    } while token != nil
    return keys
}

final class PrecheckTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-admin-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func url() throws -> S3URL {
        try S3URL(endpoint: "http://127.0.0.1:9000", accessKey: "AKIAEXAMPLE", secretKey: "TOPSECRET", region: "us-east-1",
                  dataBucket: "silt-data", pathStyle: false, clusterId: "fZGPJht6Rf-o7WgrUakLxQ")
    }

    let okLines = ["[ OK ] Write object", "[ OK ] RangeRead object", "[ OK ] Delete object", "[ OK ] CreateMultipartUpload",
                   "[ OK ] UploadPart", "[ OK ] CompleteMultipartUpload", "[ OK ] UploadPartCopy", "[ OK ] Delete objects"]

    func testAllChecksPassOnLocalStore() async throws {
        let store = try LocalObjectStore(rootDirectory: dir)
        let u = try url()
        let (out, err, code) = await GenerateS3URL.render(url: u, dataStore: store)
        XCTAssertEqual(code, 0, err)
        XCTAssertEqual(err, "")
        let lines = out.components(separatedBy: "\n")
        XCTAssertEqual(Array(lines.prefix(10)), ["############  Ping s3 ########################", ""] + okLines)
        XCTAssertEqual(Array(lines[10...]), [
            "############  String of s3url ################",
            "",
            "Your s3url is: ",
            "",
            u.format(),
            "",
            "",
            "############  Usage of s3url  ################",
            "To start Silt, generate the start commandline using s3url.",
            "bin/automq-kafka-admin.sh generate-start-command \\",
            "--s3-url=\"\(u.format())\" \\",
            "--controller-list=\"192.168.0.1:9093;192.168.0.2:9093;192.168.0.3:9093\"  \\",
            "--broker-list=\"192.168.0.4:9092;192.168.0.5:9092\"   ",
            "",
            "TIPS: Please replace the controller-list and broker-list with your actual IP addresses.",
            "",
        ])
        let left = try await allKeys(store)
        XCTAssertEqual(left, [], "test objects left behind")
    }

    func testReportAPI() async throws {
        let store = try LocalObjectStore(rootDirectory: dir)
        let report = await S3Precheck.run(store: store, target: S3Target(try url()))
        XCTAssertTrue(report.passed)
        XCTAssertEqual(report.lines, okLines)
        XCTAssertNil(report.failure)
        XCTAssertEqual(report.leftovers, [])
    }

    /// Fails the given operation and checks the FAILED line, the advice, the exit code and the cleanup.
    func runFailing(_ op: String, occurrence: Int = 1, _ error: ObjectStoreError, failsAt check: S3Check,
                    advice: [String], file: StaticString = #filePath, line: UInt = #line) async throws {
        let sub = dir + "/\(op)-\(occurrence)"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        let inner = try LocalObjectStore(rootDirectory: sub)
        let store = FaultyStore(inner: inner, failOp: op, occurrence: occurrence, error: error)
        let (out, err, code) = await GenerateS3URL.render(url: try url(), dataStore: store)
        XCTAssertNotEqual(code, 0, file: file, line: line)
        let lines = out.components(separatedBy: "\n").filter { $0.hasPrefix("[ ") }
        let expected = Array(okLines.prefix(check.rawValue - 1)) + ["[ FAILED ] \(check)"]
        XCTAssertEqual(lines, expected, file: file, line: line)
        XCTAssertFalse(out.contains("Your s3url is"), file: file, line: line)
        XCTAssertTrue(err.hasPrefix("Failed to \(check) on S3. Here are your parameters about S3: s3 parameters{endpoint='http://127.0.0.1:9000', region='us-east-1', bucket='silt-data'"),
                      err, file: file, line: line)
        for a in advice { XCTAssertTrue(err.contains(a), "missing advice '\(a)' in:\n\(err)", file: file, line: line) }
        XCTAssertFalse(err.contains("TOPSECRET"), file: file, line: line)
        XCTAssertFalse(out.contains("TOPSECRET"), file: file, line: line)
        let left = try await allKeys(inner)
        XCTAssertEqual(left, [], "objects left behind", file: file, line: line)
        XCTAssertEqual(store.uploadsLeft, [], "multipart uploads left open", file: file, line: line)
    }

    func testSignatureMismatchAtWrite() async throws {
        try await runFailing("put", .signatureDoesNotMatch("The request signature we calculated does not match"), failsAt: .writeObject,
                             advice: ["SignatureDoesNotMatch", "check --s3-secret-key", "AKIAEXAMPLE", "--s3-region"])
    }

    func testNoSuchBucketAtWrite() async throws {
        try await runFailing("put", .noSuchBucket("The specified bucket does not exist"), failsAt: .writeObject,
                             advice: ["Bucket \"silt-data\" not found. Please check your bucket name", "create the bucket",
                                      "--s3-path-style=true"])
    }

    func testInvalidAccessKeyAndAccessDenied() async throws {
        try await runFailing("get", .invalidAccessKeyId("no such key id"), failsAt: .rangeReadObject,
                             advice: ["InvalidAccessKeyId", "check --s3-access-key"])
        try await runFailing("delete", .accessDenied("denied"), failsAt: .deleteObject,
                             advice: ["AccessDenied", "s3:DeleteObject"])
    }

    func testTransportErrorAdvisesEndpointAndPathStyle() async throws {
        try await runFailing("createMultipartUpload", .transport("Could not resolve host: silt-data.127.0.0.1"), failsAt: .createMultipartUpload,
                             advice: ["Unable to execute HTTP request", "--s3-endpoint", "--s3-path-style=true"])
    }

    func testFailuresMidMultipartAreCleanedUp() async throws {
        // UploadPart fails: the open upload must be aborted.
        try await runFailing("uploadPart", .signatureDoesNotMatch("bad"), failsAt: .uploadPart, advice: ["SignatureDoesNotMatch"])
        // Complete fails: the upload is aborted.
        try await runFailing("completeMultipartUpload", .noSuchBucket("gone"), failsAt: .completeMultipartUpload, advice: ["not found"])
        // UploadPartCopy fails after its source object and destination upload exist.
        try await runFailing("uploadPartCopy", .signatureDoesNotMatch("bad"), failsAt: .uploadPartCopy, advice: ["SignatureDoesNotMatch"])
        // The second complete (the copy's) fails.
        try await runFailing("completeMultipartUpload", occurrence: 2, .accessDenied("no"), failsAt: .uploadPartCopy, advice: ["AccessDenied"])
        // DeleteObjects fails after its two objects were written.
        try await runFailing("deleteObjects", .noSuchBucket("gone"), failsAt: .deleteObjects, advice: ["Bucket \"silt-data\" not found"])
        // The second object of step 8 cannot be written.
        try await runFailing("put", occurrence: 4, .signatureDoesNotMatch("bad"), failsAt: .deleteObjects, advice: ["SignatureDoesNotMatch"])
    }

    func testWrongBytesFailRangeRead() async throws {
        final class Corrupting: ObjectStore, @unchecked Sendable {
            let inner: ObjectStore
            init(_ inner: ObjectStore) { self.inner = inner }
            var description: String { "corrupting" }
            func put(_ key: String, _ body: [UInt8], ifNoneMatch: Bool) async throws -> String? { try await inner.put(key, body, ifNoneMatch: ifNoneMatch) }
            func get(_ key: String, range: ClosedRange<Int64>?) async throws -> [UInt8] { var b = try await inner.get(key, range: range); b[0] ^= 1; return b }
            func head(_ key: String) async throws -> ObjectInfo? { try await inner.head(key) }
            func delete(_ key: String) async throws { try await inner.delete(key) }
            func deleteObjects(_ keys: [String]) async throws -> [String: ObjectStoreError] { try await inner.deleteObjects(keys) }
            func list(prefix: String, delimiter: String?, continuationToken: String?, maxKeys: Int) async throws -> ListPage {
                try await inner.list(prefix: prefix, delimiter: delimiter, continuationToken: continuationToken, maxKeys: maxKeys)
            }
            func createMultipartUpload(_ key: String) async throws -> String { try await inner.createMultipartUpload(key) }
            func uploadPart(_ key: String, uploadId: String, partNumber: Int, body: [UInt8]) async throws -> String {
                try await inner.uploadPart(key, uploadId: uploadId, partNumber: partNumber, body: body)
            }
            func uploadPartCopy(_ key: String, uploadId: String, partNumber: Int, sourceKey: String, sourceRange: ClosedRange<Int64>?) async throws -> String {
                try await inner.uploadPartCopy(key, uploadId: uploadId, partNumber: partNumber, sourceKey: sourceKey, sourceRange: sourceRange)
            }
            func completeMultipartUpload(_ key: String, uploadId: String, parts: [CompletedPart]) async throws -> String? {
                try await inner.completeMultipartUpload(key, uploadId: uploadId, parts: parts)
            }
            func abortMultipartUpload(_ key: String, uploadId: String) async throws { try await inner.abortMultipartUpload(key, uploadId: uploadId) }
        }
        let inner = try LocalObjectStore(rootDirectory: dir)
        let report = await S3Precheck.run(store: Corrupting(inner), target: S3Target(try url()))
        XCTAssertEqual(report.lines, ["[ OK ] Write object", "[ FAILED ] RangeRead object"])
        XCTAssertTrue(report.failure!.message.contains("The read data is empty/wrong"))
        let left = try await allKeys(inner)
        XCTAssertEqual(left, [])
    }

    func testOpsBucketCheckedWhenDifferent() async throws {
        let data = try LocalObjectStore(rootDirectory: dir)
        let opsDir = dir + "/ops"
        try FileManager.default.createDirectory(atPath: opsDir, withIntermediateDirectories: true)
        let ops = FaultyStore(inner: try LocalObjectStore(rootDirectory: opsDir), failOp: "put", error: .noSuchBucket("no ops"))
        var u = try url()
        u.opsBucket = "silt-ops"
        let (out, err, code) = await GenerateS3URL.render(url: u, dataStore: data, opsStore: ops)
        XCTAssertEqual(code, 1)
        XCTAssertTrue(out.contains("[ FAILED ] Write object"))
        XCTAssertTrue(err.contains("Bucket \"silt-ops\" not found"), err)
    }
}
