import Foundation
@testable import SiltBroker
import SiltProtocol
import XCTest

extension BrokerTests {
    /// Metadata and DescribeCluster answer every operation when asked (without an authorizer, as the gate fills them), and
    /// Int32.min ("not requested") otherwise, as Kafka without an authorizer does.
    func testAuthorizedOperations() throws {
        try createTopic("authops")
        var md = MetadataRequest()
        var mt = MetadataRequest.MetadataRequestTopic()
        mt.name = "authops"
        md.topics = [mt]
        md.allowAutoTopicCreation = false
        var m = try call(md, version: 8)
        XCTAssertEqual(m.topics[0].topicAuthorizedOperations, Int32.min)
        XCTAssertEqual(m.clusterAuthorizedOperations, Int32.min)
        md.includeTopicAuthorizedOperations = true
        md.includeClusterAuthorizedOperations = true
        m = try call(md, version: 8)
        XCTAssertEqual(m.topics[0].topicAuthorizedOperations, KafkaAclOperation.allowed(.topic))
        XCTAssertEqual(m.clusterAuthorizedOperations, KafkaAclOperation.allowed(.cluster))
        m = try call(md, version: 12)
        XCTAssertEqual(m.topics[0].topicAuthorizedOperations, KafkaAclOperation.allowed(.topic))

        var dc = DescribeClusterRequest()
        XCTAssertEqual(try call(dc, version: 1).clusterAuthorizedOperations, Int32.min)
        dc.includeClusterAuthorizedOperations = true
        XCTAssertEqual(try call(dc, version: 1).clusterAuthorizedOperations, KafkaAclOperation.allowed(.cluster))
    }
}
