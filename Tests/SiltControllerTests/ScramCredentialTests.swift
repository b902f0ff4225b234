import Foundation
import Logging
import SiltConfig
@testable import SiltController
import SiltMetadata
import SiltNet
import SiltProtocol
import XCTest

/// SCRAM credentials (KIP-554) in the controller: Kafka's validation (ScramControlManager),
/// StoredKey and ServerKey computed from the client's salted password (never stored), the
/// records' apply, and snapshots and restarts that keep them.
final class ScramCredentialTests: ControllerDirectoryTestCase {
    /// Topic configs do not matter here.
    func open(snapshotIntervalBytes: Int = 20 << 20) throws -> MetadataController {
        try open(snapshotIntervalBytes: snapshotIntervalBytes, validateConfigs: { _ in })
    }

    let sha256 = ScramMechanism.sha256.rawValue, sha512 = ScramMechanism.sha512.rawValue

    func upsert(_ user: String, _ m: Int8, iterations: Int32 = 8192, salt: [UInt8] = Array("salt".utf8),
                password: String = "secret") -> ScramAlteration {
        let mech = ScramMechanism(rawValue: m) ?? .sha256
        return .upsertion(user: user, mechanism: m, iterations: iterations, salt: salt,
                          saltedPassword: Scram.saltedPassword(mech, password: Array(password.utf8), salt: salt, iterations: 4096))
    }

    func results(_ r: [ScramAlterationResult]) -> [String] {
        r.map { "\($0.user):\(KafkaErrorCode.name($0.errorCode))" + ($0.errorMessage.map { ":\($0)" } ?? "") }
    }

    func testKafkasValidation() throws {
        let c = try open()
        let before = c.image
        XCTAssertEqual(results(try c.alterUserScramCredentials([
            upsert("", sha256),
            upsert("u1", 0),
            upsert("u2", sha256, iterations: 4095),
            upsert("u3", sha512, iterations: 16385),
            .deletion(user: "u4", mechanism: sha256),
            .deletion(user: "u5", mechanism: 3),
        ])), [   // Kafka walks the deletions first
            "u4:RESOURCE_NOT_FOUND:Attempt to delete a user credential that does not exist",
            "u5:UNSUPPORTED_SASL_MECHANISM:Unknown SCRAM mechanism",
            ":UNACCEPTABLE_CREDENTIAL:Username must not be empty",
            "u1:UNSUPPORTED_SASL_MECHANISM:Unknown SCRAM mechanism",
            "u2:UNACCEPTABLE_CREDENTIAL:Too few iterations",
            "u3:UNACCEPTABLE_CREDENTIAL:Too many iterations",
        ])
        XCTAssertEqual(c.image, before, "refusals write nothing")

        // The bounds of Kafka's iterations are inclusive.
        XCTAssertEqual(results(try c.alterUserScramCredentials([upsert("lo", sha256, iterations: 4096),
                                                                upsert("hi", sha512, iterations: 16384)])),
                       ["lo:NONE", "hi:NONE"])
        // One alteration per user and request: the user is refused whole, other users go on.
        XCTAssertEqual(results(try c.alterUserScramCredentials([
            upsert("dup", sha256), upsert("dup", sha512), .deletion(user: "lo", mechanism: sha256), upsert("ok", sha256),
        ])), ["lo:NONE", "ok:NONE", "dup:DUPLICATE_RESOURCE:A user credential cannot be altered twice in the same request"])
        XCTAssertEqual(results(try c.alterUserScramCredentials([.deletion(user: "hi", mechanism: sha512),
                                                                .deletion(user: "hi", mechanism: sha256)])),
                       ["hi:DUPLICATE_RESOURCE:A user credential cannot be altered twice in the same request"])
        XCTAssertEqual(Set(c.image.scramCredentials.keys), ["hi", "ok"])
        // Silt's bounds (a record fits one proposal).
        let long = String(repeating: "u", count: MetadataController.scramUserNameBytesMax + 1)
        XCTAssertEqual(try c.alterUserScramCredentials([upsert(long, sha256)]).map(\.errorCode), [KafkaErrorCode.unacceptableCredential])
        XCTAssertEqual(try c.alterUserScramCredentials([upsert("big", sha256, salt: [UInt8](repeating: 1, count: 1025))])
            .map(\.errorCode), [KafkaErrorCode.unacceptableCredential])
    }

    func testStoredKeysAreDerivedAndSurviveSnapshotsAndRestarts() throws {
        let salt: [UInt8] = [0x73, 0, 0x6c, 0]   // librdkafka's 0081 sends NUL bytes
        let salted = Scram.saltedPassword(.sha256, password: [0, 0x61, 0x73, 0], salt: salt, iterations: 10000)
        do {
            let c = try open(snapshotIntervalBytes: 1)   // a snapshot after every commit
            XCTAssertEqual(try c.alterUserScramCredentials([.upsertion(user: "alice", mechanism: sha256, iterations: 10000,
                                                                       salt: salt, saltedPassword: salted)]).map(\.errorCode),
                           [0])
            XCTAssertEqual(try c.alterUserScramCredentials([upsert("alice", sha512, iterations: 4096)]).map(\.errorCode), [0])
            let cred = try XCTUnwrap(c.image.scramCredentials["alice"]?[.sha256])
            XCTAssertEqual(cred.salt, salt)
            XCTAssertEqual(cred.iterations, 10000)
            XCTAssertEqual(cred.storedKey, Scram.hash(.sha256, Scram.hmac(.sha256, key: salted, Array("Client Key".utf8))))
            XCTAssertEqual(cred.serverKey, Scram.hmac(.sha256, key: salted, Array("Server Key".utf8)))
            XCTAssertEqual(c.image.scramCredentials["alice"]?[.sha512]?.storedKey.count, 64)
            XCTAssertFalse("\(cred)".contains("\(cred.storedKey)"), "printing a credential hides its keys")
            let record = "\(MetadataRecord.userScramCredential(name: "alice", mechanism: .sha256, cred))"
            XCTAssertTrue(record.contains("alice") && record.contains("[hidden]") && !record.contains("\(cred.serverKey)"), record)
            XCTAssertEqual(MetadataImage(snapshot: c.image.snapshotRecords, endOffset: c.image.nextOffset), c.image)
        }
        let reopened = try open()
        XCTAssertEqual(reopened.image.scramCredentials["alice"]?[.sha256]?.iterations, 10000)
        XCTAssertEqual(try reopened.alterUserScramCredentials([.deletion(user: "alice", mechanism: sha256)]).map(\.errorCode), [0])
        XCTAssertEqual(try reopened.alterUserScramCredentials([.deletion(user: "alice", mechanism: sha512)]).map(\.errorCode), [0])
        XCTAssertEqual(reopened.image.scramCredentials, [:], "no user is left with an empty map")
    }

    /// The wire form through the controller's service: one result per user, Kafka's order.
    func testServiceAnswersEveryUser() throws {
        let c = try open()
        let service = ControllerService(controller: c, config: try ServerConfig(properties: ["log.dirs": dir]),
                                        logger: Logger(label: "test"))
        var u = AlterUserScramCredentialsRequest.ScramCredentialUpsertion()
        u.name = "alice"
        u.mechanism = sha256
        u.iterations = 4096
        u.salt = [1]
        u.saltedPassword = [UInt8](repeating: 7, count: 32)
        var d = AlterUserScramCredentialsRequest.ScramCredentialDeletion()
        d.name = "bob"
        d.mechanism = sha512
        var req = AlterUserScramCredentialsRequest()
        req.upsertions = [u]
        req.deletions = [d]
        let resp = service.alterUserScramCredentials(req)
        XCTAssertEqual(resp.results.map(\.user), ["alice", "bob"])
        XCTAssertEqual(resp.results.map(\.errorCode), [0, KafkaErrorCode.resourceNotFound])
        XCTAssertNil(resp.results[0].errorMessage)
        XCTAssertEqual(c.image.scramCredentials["alice"]?[.sha256]?.serverKey,
                       Scram.serverKey(.sha256, saltedPassword: u.saltedPassword))
    }
}
