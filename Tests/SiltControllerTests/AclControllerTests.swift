import Foundation
import Logging
import SiltConfig
@testable import SiltController
import SiltMetadata
import SiltProtocol
import XCTest

/// ACLs in the metadata log: CreateAcls / DeleteAcls validate per binding and filter as
/// Kafka does, write one record per ACL, and the ACLs survive snapshots and a reopen.
final class AclControllerTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-acls-\(UUID())").path
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func open(snapshotIntervalBytes: Int = 20 << 20) throws -> MetadataController {
        try MetadataController(directory: dir, logger: Logger(label: "test"), snapshotIntervalBytes: snapshotIntervalBytes,
                               validateConfigs: TopicConfig.validate)
    }

    func acl(_ name: String, _ op: KafkaAclOperation, _ permission: AclPermissionType = .allow,
             pattern: AclPatternType = .literal, principal: String = "User:test1") -> AclBinding {
        AclBinding(resourceType: .topic, resourceName: name, patternType: pattern, principal: principal, host: "*",
                   operation: op, permission: permission)
    }

    func testCreateDescribeDeleteAndSnapshots() throws {
        let a = acl("rdk_1", .read, pattern: .prefixed)
        let b = acl("rdk_1", .write, principal: "User:test2")
        let c = acl("rdk_2", .write, principal: "User:test2")
        do {
            let ctl = try open(snapshotIntervalBytes: 1)   // a snapshot after every commit
            let results = try ctl.createAcls([a, b, c, acl("x", .read, pattern: .match), a])
            XCTAssertNil(results[0]); XCTAssertNil(results[1]); XCTAssertNil(results[2])
            XCTAssertEqual(results[3]?.kafkaErrorCode, KafkaErrorCode.invalidRequest)
            XCTAssertEqual(results[3]?.description, "Invalid patternType MATCH")
            XCTAssertNil(results[4], "a duplicate is success, and not stored twice")
            XCTAssertEqual(Set(ctl.image.acls.values), [a, b, c])
            XCTAssertEqual(ctl.image.acls.count, 3)
            // Creating what exists writes nothing.
            let before = ctl.image
            XCTAssertEqual(try ctl.createAcls([b]).count, 1)
            XCTAssertEqual(ctl.image, before)

            let snapshot = MetadataImage(snapshot: ctl.image.snapshotRecords, endOffset: ctl.image.nextOffset)
            XCTAssertEqual(snapshot, ctl.image)
        }
        let ctl = try open()
        XCTAssertEqual(Set(ctl.image.acls.values), [a, b, c], "ACLs survive a reopen")
        // MATCH on rdk_1 deletes the prefixed and the literal ACL, not rdk_2's.
        let deleted = try ctl.deleteAcls([AclBindingFilter(resourceType: .topic, resourceName: "rdk_1", patternType: .match),
                                          AclBindingFilter(resourceType: .unknown)])
        XCTAssertEqual(Set(try deleted[0].get()), [a, b])
        guard case .failure(let e) = deleted[1] else { return XCTFail("an unknown filter is refused") }
        XCTAssertEqual(e.kafkaErrorCode, KafkaErrorCode.invalidRequest)
        XCTAssertEqual(Array(ctl.image.acls.values), [c])
        // A filter matching nothing is success with no ACLs.
        XCTAssertEqual(try ctl.deleteAcls([AclBindingFilter(principal: "User:nobody")])[0].get(), [])
        XCTAssertEqual(try ctl.deleteAcls([AclBindingFilter(), AclBindingFilter()]).map { try $0.get().count }, [1, 0],
                       "an ACL two filters match is deleted once")
        XCTAssertTrue(ctl.image.acls.isEmpty)
    }

    func testCreateAclsWireAnswersPerBinding() throws {
        let ctl = try open()
        let service = ControllerService(controller: ctl, config: try ServerConfig(properties: ["log.dirs": dir]),
                                        logger: Logger(label: "test"))
        var req = CreateAclsRequest()
        func creation(_ type: Int8, _ name: String, _ pattern: Int8, _ principal: String, _ op: Int8, _ perm: Int8)
            -> CreateAclsRequest.AclCreation {
            var c = CreateAclsRequest.AclCreation()
            c.resourceType = type; c.resourceName = name; c.resourcePatternType = pattern; c.principal = principal
            c.host = "*"; c.operation = op; c.permissionType = perm
            return c
        }
        req.creations = [
            creation(2, "t", 3, "User:*", 2, 2),     // DENY ALL on topic t: fine
            creation(2, "t", 1, "User:*", 2, 2),     // ANY pattern
            creation(2, "t", 3, "nobody", 3, 3),     // no principal type
            creation(4, "c", 3, "User:a", 7, 3),     // the cluster is kafka-cluster
            creation(9, "t", 3, "User:a", 3, 3),     // an unknown resource type
            creation(2, "t", 3, "User:a", 99, 3),    // an unknown operation
        ]
        let resp = service.createAcls(req, version: 3)
        XCTAssertEqual(resp.results.map(\.errorCode), [0, 42, 42, 42, 42, 42])
        XCTAssertEqual(resp.results[1].errorMessage, "Invalid patternType ANY")
        XCTAssertEqual(resp.results[3].errorMessage, "The only valid name for the CLUSTER resource is kafka-cluster")
        XCTAssertEqual(ctl.image.acls.count, 1)

        var del = DeleteAclsRequest()
        var f = DeleteAclsRequest.DeleteAclsFilter()
        f.resourceTypeFilter = 1; f.resourceNameFilter = nil; f.patternTypeFilter = 1; f.principalFilter = nil
        f.hostFilter = nil; f.operation = 1; f.permissionType = 1
        del.filters = [f]
        let deleted = service.deleteAcls(del, version: 3)
        XCTAssertEqual(deleted.filterResults.count, 1)
        XCTAssertEqual(deleted.filterResults[0].errorCode, 0)
        XCTAssertEqual(deleted.filterResults[0].matchingAcls.map(\.resourceName), ["t"])
        XCTAssertEqual(deleted.filterResults[0].matchingAcls.map(\.operation), [KafkaAclOperation.all.rawValue])
        XCTAssertTrue(ctl.image.acls.isEmpty)
    }

    /// The bound: at `aclCountMax` a new ACL is refused (and nothing written), a duplicate of one
    /// held is still success, and room made by a delete is taken again.
    func testTheAclCountIsBounded() throws {
        let ctl = try open()
        let max = MetadataController.aclCountMax
        let step = 20_000
        for base in stride(from: 0, to: max, by: step) {
            let results = try ctl.createAcls((base..<min(base + step, max)).map { acl("t\($0)", .read) })
            XCTAssertTrue(results.allSatisfy { $0 == nil }, "batch from \(base)")
        }
        XCTAssertEqual(ctl.image.acls.count, max)
        let before = ctl.image
        let over = try ctl.createAcls([acl("one-too-many", .read), acl("t7", .read)])
        XCTAssertEqual(over[0]?.kafkaErrorCode, KafkaErrorCode.invalidRequest)
        XCTAssertEqual(over[0]?.description, "The cluster holds \(max) ACLs, the most it may; delete some first.")
        XCTAssertNil(over[1], "a duplicate of an ACL held is success")
        XCTAssertEqual(ctl.image, before, "a refusal writes nothing")
        let deleted = try ctl.deleteAcls([AclBindingFilter(resourceType: .topic, resourceName: "t7", patternType: .literal)])
        XCTAssertEqual(try deleted[0].get(), [acl("t7", .read)])
        XCTAssertNil(try ctl.createAcls([acl("one-too-many", .read)])[0], "the room a delete made is taken again")
        XCTAssertEqual(ctl.image.acls.count, max)
    }
}
