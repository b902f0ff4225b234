import Foundation
@testable import SiltBroker
import SiltController
import SiltMetadata
import SiltProtocol
import XCTest

/// The ACL APIs and the authorization gate through the broker's request path (frames in,
/// frames out): CreateAcls goes to the controller and is in the broker's image when the
/// answer comes; Produce, Fetch, Metadata, ListOffsets and group requests meet the ACLs in
/// the gate; DescribeAcls filters as Kafka does.
extension BrokerTests {
    static let standardAuthorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

    func startWithAuthorizer(everyone: Bool = true, superUsers: String = "") throws {
        stopBroker()
        try start(overrides: ["authorizer.class.name": BrokerTests.standardAuthorizer,
                              "allow.everyone.if.no.acl.found": everyone ? "true" : "false", "super.users": superUsers])
    }

    func createAcl(_ type: AclResourceType, _ name: String, _ op: KafkaAclOperation, _ permission: AclPermissionType,
                   pattern: AclPatternType = .literal, principal: String = "User:*") throws -> Int16 {
        var req = CreateAclsRequest()
        var c = CreateAclsRequest.AclCreation()
        c.resourceType = type.rawValue; c.resourceName = name; c.resourcePatternType = pattern.rawValue
        c.principal = principal; c.host = "*"; c.operation = op.rawValue; c.permissionType = permission.rawValue
        req.creations = [c]
        return try call(req, version: 3).results[0].errorCode
    }

    func describeAcls(_ type: AclResourceType = .any, name: String? = nil, pattern: AclPatternType = .any,
                      op: KafkaAclOperation = .any) throws -> DescribeAclsResponse {
        var req = DescribeAclsRequest()
        req.resourceTypeFilter = type.rawValue; req.resourceNameFilter = name; req.patternTypeFilter = pattern.rawValue
        req.principalFilter = nil; req.hostFilter = nil; req.operation = op.rawValue
        req.permissionType = AclPermissionType.any.rawValue
        return try call(req, version: 3)
    }

    func testAclApisAnswerSecurityDisabledWithoutAnAuthorizer() throws {
        XCTAssertEqual(try createAcl(.topic, "t", .read, .allow), KafkaErrorCode.securityDisabled)
        let d = try describeAcls()
        XCTAssertEqual(d.errorCode, KafkaErrorCode.securityDisabled)
        XCTAssertEqual(d.errorMessage, "No Authorizer is configured.")
    }

    func testAclsDenyProduceFetchAndMetadata() throws {
        try startWithAuthorizer()
        try createTopic("open")
        try createTopic("closed")
        XCTAssertEqual(try produce("closed", batch(["a"])).errorCode, 0)

        // As librdkafka's 0119: DESCRIBE allowed, READ (and WRITE) denied. Once a topic has
        // ACLs, allow.everyone.if.no.acl.found no longer applies to it.
        XCTAssertEqual(try createAcl(.topic, "closed", .describe, .allow), 0)
        XCTAssertEqual(try createAcl(.topic, "closed", .write, .deny), 0)
        XCTAssertEqual(try createAcl(.topic, "closed", .read, .deny), 0)
        XCTAssertEqual(try createAcl(.topic, "secret", .describe, .deny, pattern: .prefixed), 0)
        XCTAssertEqual(try createAcl(.topic, "closed", .read, .allow, pattern: .match), KafkaErrorCode.invalidRequest)

        // Produce: the denied topic fails, the other in the same request is written.
        var req = ProduceRequest()
        req.acks = -1
        req.timeoutMs = 5000
        req.topicData = ["closed", "open"].map { name in
            var t = ProduceRequest.TopicProduceData()
            t.name = name
            var p = ProduceRequest.PartitionProduceData()
            p.index = 0
            p.records = batch(["x"])
            t.partitionData = [p]
            return t
        }
        let produced = try call(req, version: 9)
        let codes = Dictionary(uniqueKeysWithValues: produced.responses.map { ($0.name, $0.partitionResponses[0].errorCode) })
        XCTAssertEqual(codes, ["closed": KafkaErrorCode.topicAuthorizationFailed, "open": 0])

        // Fetch and ListOffsets.
        let fetched = try call(fetchRequest("closed", offset: 0), version: 12)
        XCTAssertEqual(fetched.responses.map(\.topic), ["closed"])
        XCTAssertEqual(fetched.responses[0].partitions[0].errorCode, KafkaErrorCode.topicAuthorizationFailed)
        XCTAssertEqual(try call(fetchRequest("open", offset: 0), version: 12).responses[0].partitions[0].errorCode, 0)
        var lo = ListOffsetsRequest()
        var lt = ListOffsetsRequest.ListOffsetsTopic()
        lt.name = "closed"
        var lp = ListOffsetsRequest.ListOffsetsPartition()
        lp.timestamp = -1
        lt.partitions = [lp]
        lo.topics = [lt]
        XCTAssertEqual(try call(lo, version: 5).topics[0].partitions[0].errorCode, 0, "READ denied, DESCRIBE still allowed")

        // Metadata: a named topic without DESCRIBE is TOPIC_AUTHORIZATION_FAILED and not
        // auto-created; the all-topics listing leaves it out.
        try createTopic("secret-1")
        var md = MetadataRequest()
        md.topics = ["secret-1", "secret-new", "open"].map { n in
            var t = MetadataRequest.MetadataRequestTopic(); t.name = n; return t
        }
        md.allowAutoTopicCreation = true
        md.includeTopicAuthorizedOperations = true
        let m = try call(md, version: 9)
        let errors = Dictionary(uniqueKeysWithValues: m.topics.map { ($0.name!, $0.errorCode) })
        XCTAssertEqual(errors, ["secret-1": KafkaErrorCode.topicAuthorizationFailed,
                                "secret-new": KafkaErrorCode.topicAuthorizationFailed, "open": 0])
        XCTAssertNil(controller.image.topic(named: "secret-new"), "a denied topic is not auto-created")
        let ops = m.topics.first { $0.name == "open" }!.topicAuthorizedOperations
        XCTAssertEqual(ops, KafkaAclOperation.allowed(.topic), "no ACL on open: every operation")
        var all = MetadataRequest()
        all.topics = nil
        let names = Set(try call(all, version: 9).topics.compactMap(\.name))
        XCTAssertTrue(names.isSuperset(of: ["open", "closed"]))
        XCTAssertFalse(names.contains("secret-1"))

        // DescribeAcls: MATCH on a name finds the prefixed ACL; LITERAL does not.
        XCTAssertEqual(try describeAcls().resources.flatMap(\.acls).count, 4)
        let match = try describeAcls(.topic, name: "secret-1", pattern: .match)
        XCTAssertEqual(match.resources.map(\.resourceName), ["secret"])
        XCTAssertEqual(match.resources.map(\.patternType), [AclPatternType.prefixed.rawValue])
        XCTAssertTrue(try describeAcls(.topic, name: "secret-1", pattern: .literal).resources.isEmpty)
        XCTAssertEqual(try describeAcls(.topic, name: "closed", op: .write).resources.flatMap(\.acls).count, 1)

        // DeleteAcls restores access.
        var del = DeleteAclsRequest()
        var f = DeleteAclsRequest.DeleteAclsFilter()
        f.resourceTypeFilter = AclResourceType.topic.rawValue; f.resourceNameFilter = "closed"
        f.patternTypeFilter = AclPatternType.literal.rawValue; f.principalFilter = nil; f.hostFilter = nil
        f.operation = KafkaAclOperation.any.rawValue; f.permissionType = AclPermissionType.any.rawValue
        del.filters = [f]
        XCTAssertEqual(try call(del, version: 3).filterResults[0].matchingAcls.count, 3)
        XCTAssertEqual(try produce("closed", batch(["b"])).errorCode, 0)
    }

    func testGroupsAndClusterWithoutAllowEveryone() throws {
        try startWithAuthorizer(everyone: false)
        // Nothing is allowed: no ACL and allow.everyone.if.no.acl.found=false.
        var hb = HeartbeatRequest()
        hb.groupId = "g"
        XCTAssertEqual(try call(hb, version: 4).errorCode, KafkaErrorCode.groupAuthorizationFailed)
        XCTAssertEqual(try createAcl(.topic, "t", .read, .allow), KafkaErrorCode.clusterAuthorizationFailed,
                       "CreateAcls needs ALTER on the cluster")
        XCTAssertEqual(try describeAcls().errorCode, KafkaErrorCode.clusterAuthorizationFailed)
        var ipid = InitProducerIdRequest()
        ipid.transactionalId = nil
        ipid.transactionTimeoutMs = 60000
        XCTAssertEqual(try call(ipid, version: 4).errorCode, KafkaErrorCode.clusterAuthorizationFailed)

        // Grant through the controller directly (as a super user would through the broker).
        _ = try controller.createAcls([
            AclBinding(resourceType: .cluster, resourceName: AclBinding.clusterName, patternType: .literal,
                       principal: "User:ANONYMOUS", host: "*", operation: .all, permission: .allow),
            AclBinding(resourceType: .group, resourceName: "g", patternType: .literal, principal: "User:*", host: "*",
                       operation: .read, permission: .allow),
        ])
        let deadline = Date().addingTimeInterval(10)
        while broker.currentAuthorizer.acls.count < 2 && Date() < deadline {   // committed, then followed
            try broker.metadata.catchUp(on: group.next()).wait()
            Thread.sleep(forTimeInterval: 0.02)
        }
        XCTAssertNotEqual(try call(hb, version: 4).errorCode, KafkaErrorCode.groupAuthorizationFailed)
        XCTAssertEqual(try describeAcls().resources.count, 2)
        XCTAssertEqual(try call(ipid, version: 4).errorCode, 0, "IDEMPOTENT_WRITE via ALL on the cluster")
        var dg = DescribeGroupsRequest()
        dg.groups = ["g", "h"]
        dg.includeAuthorizedOperations = true
        let described = try call(dg, version: 5).groups
        XCTAssertEqual(described.map(\.groupId), ["g", "h"])
        XCTAssertEqual(described[1].errorCode, KafkaErrorCode.groupAuthorizationFailed)
        XCTAssertNotEqual(described[0].errorCode, KafkaErrorCode.groupAuthorizationFailed)
        if described[0].errorCode == 0 {   // the coordinator may still be starting
            XCTAssertEqual(described[0].authorizedOperations, KafkaAclOperation.bitfield([.read, .describe]))
        }
    }

    /// Every API the broker serves has a rule in the gate (a missing one stops the broker):
    /// each request type, at its newest served version, passes the gate of a broker with an
    /// authorizer.
    /// KAFKA-18813: a regex subscription is resolved with the heartbeating member's DESCRIBE
    /// ACLs (a topic it may not describe is never assigned to it), and ConsumerGroupDescribe
    /// hides a group whose assignments name a topic the caller may not describe.
    func testRegexSubscriptionsAndGroupDescribeMeetTopicDescribeAcls() throws {
        try startGroups(overrides: ["authorizer.class.name": BrokerTests.standardAuthorizer,
                                    "allow.everyone.if.no.acl.found": "true"])
        try createTopic("rx-open")
        try createTopic("rx-hidden")
        XCTAssertEqual(try createAcl(.topic, "rx-hidden", .describe, .deny), 0)

        var hb = ConsumerGroupHeartbeatRequest()
        hb.groupId = "rx"
        hb.memberId = UUID().uuidString
        hb.memberEpoch = 0
        hb.rebalanceTimeoutMs = 30_000
        hb.subscribedTopicRegex = "rx-.*"
        hb.topicPartitions = []
        var assigned: Set<String> = []
        let deadline = Date().addingTimeInterval(10)
        while assigned.isEmpty && Date() < deadline {
            let resp = try call(hb, version: 1)
            XCTAssertEqual(resp.errorCode, 0, resp.errorMessage ?? "")
            hb.memberEpoch = resp.memberEpoch
            let image = broker.metadata.image
            assigned = Set((resp.assignment?.topicPartitions ?? []).compactMap { image.topic(id: $0.topicId.foundation)?.name })
            if assigned.isEmpty { usleep(50_000) }
        }
        XCTAssertEqual(assigned, ["rx-open"], "rx-hidden matches the regex but may not be described")

        var describe = ConsumerGroupDescribeRequest()
        describe.groupIds = ["rx"]
        let seen = try call(describe, version: 0).groups[0]
        XCTAssertEqual(seen.errorCode, 0)
        XCTAssertEqual(seen.members.count, 1)

        XCTAssertEqual(try createAcl(.topic, "rx-open", .describe, .deny), 0)
        let hidden = try call(describe, version: 0).groups[0]
        XCTAssertEqual(hidden.errorCode, KafkaErrorCode.topicAuthorizationFailed)
        XCTAssertEqual(hidden.errorMessage, "The group has described topic(s) that the client is not authorized to describe.")
        XCTAssertEqual(hidden.members.count, 0)
    }

    func testEveryServedApiHasAnAuthorizationRule() throws {
        try startWithAuthorizer()
        func probe<R: KafkaRequest>(_: R.Type, version: Int16) {
            var header = RequestHeader()
            header.requestApiKey = R.apiKey
            header.requestApiVersion = version
            switch broker.gate(R(), Request(header: header, context: context)) {
            case .proceed, .answer: break
            }
        }
        for (key, versions) in Broker.supportedApis {
            let api = try XCTUnwrap(ApiKey(rawValue: key), "api key \(key)")
            probe(api.requestType, version: versions.upperBound)
        }
    }
}
