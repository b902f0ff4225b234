@testable import SiltBroker
import SiltMetadata
import SiltProtocol
import XCTest

/// DescribeUserScramCredentials as Kafka's `ScramImage.describe` answers it, from the image.
final class BrokerScramTests: XCTestCase {
    func request(_ users: [String]?) -> DescribeUserScramCredentialsRequest {
        var req = DescribeUserScramCredentialsRequest()
        req.users = users?.map { n in
            var u = DescribeUserScramCredentialsRequest.UserName()
            u.name = n
            return u
        }
        return req
    }

    func testDescribeAnswersMechanismsAndIterationsOnly() {
        let cred = { (i: Int32) in ScramCredential(salt: [1], storedKey: [2], serverKey: [3], iterations: i) }
        let image: [String: [ScramMechanism: ScramCredential]] = [
            "bob": [.sha512: cred(4096), .sha256: cred(8192)], "alice": [.sha256: cred(10000)]]
        for all in [nil, [String]()] {
            let resp = Broker.describeScram(request(all), image)
            XCTAssertEqual(resp.errorCode, 0)
            XCTAssertNil(resp.errorMessage)
            XCTAssertEqual(resp.results.map(\.user), ["alice", "bob"], "every user, sorted")
            XCTAssertEqual(resp.results[1].credentialInfos.map(\.mechanism), [1, 2])
            XCTAssertEqual(resp.results[1].credentialInfos.map(\.iterations), [8192, 4096])
            XCTAssertEqual(resp.results.map(\.errorCode), [0, 0])
            XCTAssertEqual(resp.results.map(\.errorMessage), [nil, nil])
        }
        let resp = Broker.describeScram(request(["carol", "alice", "bob", "bob"]), image)
        XCTAssertEqual(resp.results.map(\.user), ["carol", "alice", "bob"])
        XCTAssertEqual(resp.results.map(\.errorCode), [KafkaErrorCode.resourceNotFound, 0, KafkaErrorCode.duplicateResource])
        XCTAssertEqual(resp.results[0].errorMessage, "Attempt to describe a user credential that does not exist: carol")
        XCTAssertEqual(resp.results[2].errorMessage,
                       "Cannot describe SCRAM credentials for the same user twice in a single request: bob")
        XCTAssertEqual(resp.results[2].credentialInfos.count, 0)
    }
}
