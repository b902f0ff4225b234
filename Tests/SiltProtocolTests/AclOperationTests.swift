import SiltProtocol
import XCTest

/// The authorized-operations bitfields Kafka answers without an authorizer: known answers
/// computed from Kafka's AclOperation codes and AclEntry.supportedOperations.
final class AclOperationTests: XCTestCase {
    func testBitfieldsAreKafkas() {
        // READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
        XCTAssertEqual(KafkaAclOperation.allowed(.topic), 3576)
        // CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
        XCTAssertEqual(KafkaAclOperation.allowed(.cluster), 8096)
        // READ 3, DELETE 6, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
        XCTAssertEqual(KafkaAclOperation.allowed(.group), 3400)
        XCTAssertEqual(KafkaAclOperation.bitfield([]), 0)
        XCTAssertEqual(KafkaAclOperation.bitfield([.twoPhaseCommit]), 1 << 15)
        XCTAssertEqual(KafkaAclOperation.allCases.map(\.rawValue), Array(0...15))
    }
}
