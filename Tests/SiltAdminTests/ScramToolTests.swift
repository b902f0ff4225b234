import Foundation
import SiltAdmin
import SiltNet
import SiltProtocol
import XCTest

/// SCRAM's key derivation against oracles (RFC 7677's SCRAM-SHA-256 exchange; Python's
/// hashlib.pbkdf2_hmac and hmac for SHA-512 and NUL bytes), and kafka-configs.sh's users and
/// groups on the command line.
final class ScramToolTests: XCTestCase {
    func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    /// RFC 7677 §3: user "user", password "pencil", the exchange's salt and 4096 iterations.
    /// The ClientProof and ServerSignature computed from our keys are the RFC's.
    func testRFC7677Sha256Exchange() {
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let salted = Scram.saltedPassword(.sha256, password: Array("pencil".utf8), salt: salt, iterations: 4096)
        XCTAssertEqual(hex(salted), "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d")
        let clientKey = Scram.clientKey(.sha256, saltedPassword: salted)
        let storedKey = Scram.storedKey(.sha256, saltedPassword: salted)
        let serverKey = Scram.serverKey(.sha256, saltedPassword: salted)
        let authMessage = Array(("n=user,r=rOprNGfwEbeRWgbNEkqO,"
            + "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
            + "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0").utf8)
        let signature = Scram.hmac(.sha256, key: storedKey, authMessage)
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        XCTAssertEqual(Data(proof).base64EncodedString(), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        XCTAssertEqual(Data(Scram.hmac(.sha256, key: serverKey, authMessage)).base64EncodedString(),
                       "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    }

    /// Values from Python: hashlib.pbkdf2_hmac('sha512', b'pencil', salt, 4096) and the keys
    /// from it; hashlib.pbkdf2_hmac('sha256', b'pass\x00word', b'sa\x00lt', 4096).
    func testSha512AndNulBytesAgainstPython() {
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let salted = Scram.saltedPassword(.sha512, password: Array("pencil".utf8), salt: salt, iterations: 4096)
        XCTAssertEqual(hex(salted), "f16efe1be67f1d09502ebd5ed9262fddffba5a377ab4f0b687e5ed5ba0f50686"
            + "b8a4ae166476da8ab3b951d2fa9238b63998f45461bc33a464814949cec9631d")
        XCTAssertEqual(hex(Scram.storedKey(.sha512, saltedPassword: salted)),
                       "e8002e6f7d3ae446119b216933644dc2a2be7869eb918b8459b5e7d7d2ec12606aceef106825cd735170a675fd3611f684affad1dce3f43a0ee43bd590e1dbbe")
        XCTAssertEqual(hex(Scram.serverKey(.sha512, saltedPassword: salted)),
                       "8d91db6230b5687874fe129bc7206e1858c3ae08e02934f57ac03b6b05a229c459d28ff46f5c9611e6c179256490215ec1ff759cb0df285db89af0f99e613aac")
        XCTAssertEqual(hex(Scram.saltedPassword(.sha256, password: Array("pass\0word".utf8), salt: Array("sa\0lt".utf8),
                                                iterations: 4096)),
                       "89b69d0516f829893c696226650a86878c029ac13ee276509d5ae58b6466a724")
        XCTAssertEqual(Scram.randomSalt().count, Scram.saltBytes)
        XCTAssertNotEqual(Scram.randomSalt(), Scram.randomSalt())
    }

    func testUsersAndGroupsCommandLines() throws {
        let bs = ["--bootstrap-server", "h:9092"]
        guard case .run(let o) = try KafkaConfigs.parse(bs + ["--alter", "--entity-type", "users", "--entity-name", "alice",
                                                              "--add-config", "SCRAM-SHA-256=[iterations=8192,password=a,b]"]) else {
            return XCTFail()
        }
        XCTAssertEqual(o.entityType, .users)
        XCTAssertEqual(o.action, .alter(add: [("SCRAM-SHA-256", "iterations=8192,password=a,b")], delete: []))
        let req = try KafkaConfigs.scramRequest(user: "alice", add: [("SCRAM-SHA-256", "iterations=8192,password=a,b")],
                                                delete: ["SCRAM-SHA-512"], salt: { [1, 2, 3] })
        XCTAssertEqual(req.deletions.map(\.mechanism), [2])
        XCTAssertEqual(req.upsertions.map(\.iterations), [8192])
        XCTAssertEqual(req.upsertions[0].saltedPassword,
                       Scram.saltedPassword(.sha256, password: Array("a,b".utf8), salt: [1, 2, 3], iterations: 8192),
                       "the password is salted and hashed here; only that travels")
        XCTAssertEqual(try KafkaConfigs.parseScramCredential(.sha512, "password=x").iterations, 4096)
        XCTAssertEqual(try KafkaConfigs.parseScramCredential(.sha512, "iterations=-1,password=x").iterations, 4096)
        func refused(_ args: [String], _ text: String, line: UInt = #line) {
            XCTAssertThrowsError(try KafkaConfigs.parse(bs + args), line: line) { e in
                XCTAssertTrue("\(e)".contains(text), "\(e)", line: line)
            }
        }
        refused(["--alter", "--user", "u", "--add-config", "SCRAM-SHA-256=[iterations=100,password=x]"],
                "Iterations 100 is less than the minimum 4096 required for SCRAM-SHA-256")
        refused(["--alter", "--user", "u", "--add-config", "SCRAM-SHA-512=[iterations=2000000000,password=x]"],
                "Iterations 2000000000 is more than the maximum 16384 allowed for SCRAM-SHA-512")
        refused(["--alter", "--user", "u", "--add-config", "SCRAM-SHA-256=[iterations=x,password=x]"],
                "Invalid credential property SCRAM-SHA-256=iterations=x,password=x")
        refused(["--alter", "--user", "u", "--add-config", "SCRAM-SHA-256=secret"], "Invalid credential property")
        refused(["--alter", "--user", "u", "--add-config", "consumer_byte_rate=10"], "Silt has no user quotas")
        refused(["--alter", "--user", "u", "--add-config", "retention.ms=10"],
                "Only quota and SCRAM credential configs can be added for 'users' using --bootstrap-server. Unexpected config names: retention.ms")
        refused(["--alter", "--user", "u", "--delete-config", "retention.ms"], "can be deleted for 'users'")
        refused(["--alter", "--entity-type", "users", "--entity-default", "--delete-config", "SCRAM-SHA-256"],
                "--entity-default")
        refused(["--describe", "--entity-type", "clients"], "not supported by Silt")
        guard case .run(let g) = try KafkaConfigs.parse(bs + ["--describe", "--group", "g1"]) else { return XCTFail() }
        XCTAssertEqual(g.entityType, .groups)
        XCTAssertEqual(g.entity, .named("g1"))
        XCTAssertEqual(KafkaConfigs.sourceName(8), "DYNAMIC_GROUP_CONFIG")
        // The error codes SCRAM answers with are Kafka's.
        XCTAssertEqual([KafkaErrorCode.unsupportedSaslMechanism, KafkaErrorCode.resourceNotFound, KafkaErrorCode.duplicateResource,
                        KafkaErrorCode.unacceptableCredential].map(KafkaErrorCode.name),
                       ["UNSUPPORTED_SASL_MECHANISM", "RESOURCE_NOT_FOUND", "DUPLICATE_RESOURCE", "UNACCEPTABLE_CREDENTIAL"])
    }

    func testScramDescribeLines() {
        var resp = DescribeUserScramCredentialsResponse()
        var alice = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult()
        alice.user = "alice"
        alice.credentialInfos = [(Int8(1), Int32(8192)), (2, 4096)].map { m, i in
            var c = DescribeUserScramCredentialsResponse.CredentialInfo()
            c.mechanism = m
            c.iterations = i
            return c
        }
        var nobody = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult()
        nobody.user = "nobody"
        nobody.errorCode = KafkaErrorCode.resourceNotFound
        resp.results = [alice, nobody]
        XCTAssertEqual(KafkaConfigs.scramLines(resp),
                       "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096\n")
    }
}
