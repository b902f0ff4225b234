import Foundation
import Logging
import XCTest
@testable import SiltObjectStore

/// One conformance suite, run against every ObjectStore implementation.
/// Subclasses provide `makeStore()`; each test uses a fresh key prefix.
class ObjectStoreConformance: XCTestCase {
    var store: ObjectStore!
    var prefix = ""
    /// What `put(ifNoneMatch: true)` does on an existing key: `true` when the store refuses
    /// it with preconditionFailed (file:// and moto ≥ 5 both do).
    var enforcesIfNoneMatch: Bool { true }

    func makeStore() throws -> ObjectStore { fatalError("subclass") }

    override func setUpWithError() throws {
        if type(of: self) == ObjectStoreConformance.self { throw XCTSkip("abstract suite") }
        store = try makeStore()
        prefix = "t-\(UUID().uuidString.prefix(8))/"
    }

    override func tearDown() { store = nil }

    func testPutGetHeadDelete() async throws {
        let key = prefix + "obj"
        let body = TestSupport.randomBytes(12_345)
        let etag = try await store.put(key, body, ifNoneMatch: false)
        XCTAssertEqual(etag, SigV4.hex(SigV4.md5(body)))
        let got = try await store.get(key, range: nil)
        XCTAssertEqual(got, body)
        let info = try await store.head(key)
        XCTAssertEqual(info?.size, 12_345)
        XCTAssertEqual(info?.etag, etag)
        // Overwrite, then an empty object.
        let body2 = TestSupport.randomBytes(100)
        _ = try await store.put(key, body2, ifNoneMatch: false)
        let got2 = try await store.get(key, range: nil)
        XCTAssertEqual(got2, body2)
        _ = try await store.put(prefix + "empty", [], ifNoneMatch: false)
        let empty = try await store.get(prefix + "empty", range: nil)
        XCTAssertEqual(empty, [])
        try await store.delete(key)
        let afterDelete = try await store.head(key)
        XCTAssertNil(afterDelete)
        try await store.delete(key)  // absent: not an error
        do {
            _ = try await store.get(key, range: nil)
            XCTFail("get of an absent key must throw")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .noSuchKey(e.detail), "\(e)")
        }
    }

    func testUnusualKeys() async throws {
        for name in ["a b+c=d", "ü/ñ~x%41", "q?x&y=z#h", "semi;colon:at@!*'()"] {
            let key = prefix + name
            let body = Array(name.utf8)
            _ = try await store.put(key, body, ifNoneMatch: false)
            let got = try await store.get(key, range: nil)
            XCTAssertEqual(got, body, key)
        }
        let page = try await store.list(prefix: prefix, delimiter: nil, continuationToken: nil, maxKeys: 100)
        XCTAssertEqual(Set(page.objects.map(\.key)),
                       Set(["a b+c=d", "ü/ñ~x%41", "q?x&y=z#h", "semi;colon:at@!*'()"].map { prefix + $0 }))
    }

    func testRangeReads() async throws {
        let key = prefix + "range"
        let body = TestSupport.randomBytes(1000)
        _ = try await store.put(key, body, ifNoneMatch: false)
        let a = try await store.get(key, range: 0...0)
        XCTAssertEqual(a, [body[0]])
        let b = try await store.get(key, range: 10...19)
        XCTAssertEqual(b, Array(body[10...19]))
        let c = try await store.get(key, range: 990...5000)  // clamped at the end, as HTTP
        XCTAssertEqual(c, Array(body[990...]))
        do {
            _ = try await store.get(key, range: 1000...1010)
            XCTFail("range beyond the end must throw")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .invalidRange(e.detail), "\(e)")
        }
    }

    func testIfNoneMatch() async throws {
        let key = prefix + "cond"
        let first = try await store.put(key, [1, 2, 3], ifNoneMatch: true)
        XCTAssertNotNil(first)
        if enforcesIfNoneMatch {
            do {
                _ = try await store.put(key, [4, 5, 6], ifNoneMatch: true)
                XCTFail("conditional create over an existing key must fail")
            } catch let e as ObjectStoreError {
                XCTAssertEqual(e, .preconditionFailed(e.detail), "\(e)")
            }
            let got = try await store.get(key, range: nil)
            XCTAssertEqual(got, [1, 2, 3])
        }
    }

    func testListPaging() async throws {
        var expected: [String] = []
        for i in 0..<7 {
            let k = prefix + "list/k\(i)"
            expected.append(k)
            _ = try await store.put(k, [UInt8(i)], ifNoneMatch: false)
        }
        _ = try await store.put(prefix + "list/sub/x", [9], ifNoneMatch: false)
        _ = try await store.put(prefix + "list/sub/y", [9, 9], ifNoneMatch: false)
        var keys: [String] = []
        var token: String?
        var pages = 0
        repeat {
            let page = try await store.list(prefix: prefix + "list/", delimiter: nil, continuationToken: token, maxKeys: 3)
            XCTAssertLessThanOrEqual(page.objects.count, 3)
            keys += page.objects.map(\.key)
            token = page.nextContinuationToken
            pages += 1
        } while token != nil && pages < 10
        XCTAssertEqual(pages, 3)
        XCTAssertEqual(keys, expected + [prefix + "list/sub/x", prefix + "list/sub/y"])
        // Delimiter: the two sub/ keys roll up into one common prefix.
        var objs: [ObjectInfo] = []
        var cps: [String] = []
        token = nil
        pages = 0
        repeat {
            let page = try await store.list(prefix: prefix + "list/", delimiter: "/", continuationToken: token, maxKeys: 5)
            objs += page.objects
            cps += page.commonPrefixes
            token = page.nextContinuationToken
            pages += 1
        } while token != nil && pages < 10
        XCTAssertEqual(objs.map(\.key), expected)
        XCTAssertEqual(objs.map(\.size), Array(repeating: 1, count: 7))
        XCTAssertEqual(cps, [prefix + "list/sub/"])
        XCTAssertEqual(pages, 2)
    }

    func testDeleteObjectsWithAbsentKeys() async throws {
        var keys: [String] = []
        for i in 0..<5 {
            keys.append(prefix + "del/\(i)")
            _ = try await store.put(keys.last!, [UInt8(i)], ifNoneMatch: false)
        }
        let errors = try await store.deleteObjects(keys + [prefix + "del/absent1", prefix + "nope/absent2"])
        XCTAssertEqual(errors, [:])
        let page = try await store.list(prefix: prefix + "del/", delimiter: nil, continuationToken: nil, maxKeys: 100)
        XCTAssertEqual(page.objects, [])
    }

    func testMultipartWithPartCopyAndCrossBoundaryRange() async throws {
        let mib = 1024 * 1024
        let source = TestSupport.randomBytes(7 * mib)
        let srcKey = prefix + "mp-source"
        _ = try await store.put(srcKey, source, ifNoneMatch: false)
        let key = prefix + "mp-target"
        let uploadId = try await store.createMultipartUpload(key)
        let part1 = TestSupport.randomBytes(5 * mib + 3)
        let e1 = try await store.uploadPart(key, uploadId: uploadId, partNumber: 1, body: part1)
        let copyRange: ClosedRange<Int64> = Int64(mib)...Int64(6 * mib + 999)  // 5 MiB + 1000 bytes
        let e2 = try await store.uploadPartCopy(key, uploadId: uploadId, partNumber: 2, sourceKey: srcKey, sourceRange: copyRange)
        let part3 = TestSupport.randomBytes(4321)
        let e3 = try await store.uploadPart(key, uploadId: uploadId, partNumber: 3, body: part3)
        let etag = try await store.completeMultipartUpload(key, uploadId: uploadId, parts: [
            CompletedPart(partNumber: 1, etag: e1), CompletedPart(partNumber: 2, etag: e2), CompletedPart(partNumber: 3, etag: e3),
        ])
        XCTAssertNotNil(etag)
        let expected = part1 + Array(source[Int(copyRange.lowerBound)...Int(copyRange.upperBound)]) + part3
        let info = try await store.head(key)
        XCTAssertEqual(info?.size, Int64(expected.count))
        // A range across both part boundaries.
        let lo = part1.count - 100, hi = part1.count + (5 * mib + 1000) + 50
        let got = try await store.get(key, range: Int64(lo)...Int64(hi))
        XCTAssertEqual(got.count, hi - lo + 1)
        XCTAssertTrue(got == Array(expected[lo...hi]), "cross-boundary range differs")
        let whole = try await store.get(key, range: nil)
        XCTAssertTrue(whole == expected, "multipart object differs")
    }

    func testAbortMultipart() async throws {
        let key = prefix + "aborted"
        let uploadId = try await store.createMultipartUpload(key)
        let e1 = try await store.uploadPart(key, uploadId: uploadId, partNumber: 1, body: [1, 2, 3])
        try await store.abortMultipartUpload(key, uploadId: uploadId)
        // The upload is gone: a second abort is NoSuchUpload (S3, moto and file://). (Completing
        // an aborted upload is NoSuchUpload on S3 too, but moto 5.2 answers it with a 500.)
        do {
            try await store.abortMultipartUpload(key, uploadId: uploadId)
            XCTFail("abort of an aborted upload must fail")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .noSuchUpload(e.detail), "\(e)")
        }
        if store is LocalObjectStore {
            do {
                _ = try await store.completeMultipartUpload(key, uploadId: uploadId, parts: [CompletedPart(partNumber: 1, etag: e1)])
                XCTFail("complete after abort must fail")
            } catch let e as ObjectStoreError {
                XCTAssertEqual(e, .noSuchUpload(e.detail), "\(e)")
            }
        }
        let info = try await store.head(key)
        XCTAssertNil(info)
    }

    func testSmallPartIsRejected() async throws {
        let key = prefix + "small"
        let uploadId = try await store.createMultipartUpload(key)
        let e1 = try await store.uploadPart(key, uploadId: uploadId, partNumber: 1, body: [1])
        let e2 = try await store.uploadPart(key, uploadId: uploadId, partNumber: 2, body: [2])
        do {
            _ = try await store.completeMultipartUpload(key, uploadId: uploadId, parts: [
                CompletedPart(partNumber: 1, etag: e1), CompletedPart(partNumber: 2, etag: e2)])
            XCTFail("a 1-byte non-final part must be rejected")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .entityTooSmall(e.detail), "\(e)")
        }
        try await store.abortMultipartUpload(key, uploadId: uploadId)
    }
}

extension ObjectStoreError {
    /// The associated detail string (for comparing the case only).
    var detail: String {
        switch self {
        case .noSuchKey(let m), .noSuchBucket(let m), .noSuchUpload(let m), .preconditionFailed(let m),
             .accessDenied(let m), .invalidAccessKeyId(let m), .signatureDoesNotMatch(let m), .slowDown(let m),
             .invalidRange(let m), .invalidArgument(let m), .entityTooSmall(let m), .invalidPart(let m),
             .transport(let m), .timeout(let m), .badResponse(let m):
            return m
        case .serviceError(_, _, let m):
            return m
        }
    }
}

final class LocalObjectStoreConformanceTests: ObjectStoreConformance {
    var root = ""
    override func makeStore() throws -> ObjectStore {
        root = NSTemporaryDirectory() + "silt-local-\(UUID().uuidString)"
        return try LocalObjectStore(rootDirectory: root)
    }

    override func tearDown() {
        super.tearDown()
        _ = try? FileManager.default.removeItem(atPath: root)
    }

    func testDescriptionAndStagingHidden() async throws {
        XCTAssertEqual(store.description, "file://\(root)")
        let id = try await store.createMultipartUpload(prefix + "x")
        _ = try await store.uploadPart(prefix + "x", uploadId: id, partNumber: 1, body: [1])
        let page = try await store.list(prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 1000)
        XCTAssertEqual(page.objects, [])
    }
}

/// The same suite against moto with SigV4 enforced (tools/moto-server).
final class S3ObjectStoreConformanceTests: ObjectStoreConformance {
    static let logger = Logger(label: "silt.objectstore.test")

    override func makeStore() throws -> ObjectStore {
        let moto = try MotoServer.get()
        return try S3ObjectStore(config: moto.config(), logger: Self.logger)
    }

    func testDescriptionHasNoSecret() throws {
        let moto = try MotoServer.get()
        XCTAssertFalse(store.description.contains(moto.secretKey))
        XCTAssertFalse(store.description.contains(moto.accessKey))
        XCTAssertTrue(store.description.contains("s3://\(MotoServer.bucket)"), store.description)
    }

    func testWrongSecretIsSignatureDoesNotMatch() async throws {
        let moto = try MotoServer.get()
        let bad = try S3ObjectStore(config: moto.config(secretKey: moto.secretKey + "x"), logger: Self.logger)
        do {
            _ = try await bad.get(prefix + "x", range: nil)
            XCTFail("a wrong secret must be refused")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .signatureDoesNotMatch(e.detail), "\(e)")
        }
        do {
            _ = try await bad.put(prefix + "x", [1], ifNoneMatch: false)
            XCTFail("a wrong secret must be refused")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .signatureDoesNotMatch(e.detail), "\(e)")
        }
    }

    func testUnknownAccessKeyIsInvalidAccessKeyId() async throws {
        let moto = try MotoServer.get()
        let bad = try S3ObjectStore(config: moto.config(accessKey: "AKIAUNKNOWNUNKNOWN00"), logger: Self.logger)
        do {
            _ = try await bad.list(prefix: "", delimiter: nil, continuationToken: nil, maxKeys: 10)
            XCTFail("an unknown access key must be refused")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .invalidAccessKeyId(e.detail), "\(e)")
        }
    }

    func testAbsentBucketIsNoSuchBucket() async throws {
        let moto = try MotoServer.get()
        let bad = try S3ObjectStore(config: moto.config(bucket: "silt-no-such-bucket"), logger: Self.logger)
        do {
            _ = try await bad.get("x", range: nil)
            XCTFail("an absent bucket must be refused")
        } catch let e as ObjectStoreError {
            XCTAssertEqual(e, .noSuchBucket(e.detail), "\(e)")
        }
    }

    func testEndpointWithoutScheme() async throws {
        let moto = try MotoServer.get()
        var cfg = moto.config(endpoint: String(moto.endpoint.dropFirst("http://".count)))
        cfg.scheme = "http"
        let s = try S3ObjectStore(config: cfg, logger: Self.logger)
        _ = try await s.put(prefix + "noscheme", [42], ifNoneMatch: false)
        let got = try await s.get(prefix + "noscheme", range: nil)
        XCTAssertEqual(got, [42])
    }
}
