import Foundation
import SiltProtocol
import XCTest
@testable import SiltAdmin

/// kafka-acls: command lines and the text it prints, without a network (test_acls.py runs it
/// against a node).
final class KafkaAclsTests: XCTestCase {
    let bs = ["--bootstrap-server", "127.0.0.1:9092"]

    func options(_ args: [String]) throws -> KafkaAcls.Options {
        guard case .run(let o) = try KafkaAcls.parse(args) else { throw AdminSession.Failure("help") }
        return o
    }

    func assertFails(_ args: [String], _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try KafkaAcls.parse(args), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(text), "\(e)", file: file, line: line)
        }
    }

    /// librdkafka's forms (0109, 0115, 0119).
    func testParsesLibrdkafkasForms() throws {
        let add = try options(bs + ["--add", "--deny-principal", "User:*", "--operation", "All", "--deny-host", "*",
                                    "--topic", "t"])
        XCTAssertEqual(add.action, .add)
        XCTAssertEqual(add.resources, [KafkaAcls.Resource(type: .topic, name: "t")])
        XCTAssertEqual(add.patternType, .literal)
        XCTAssertEqual(add.bindings.map(\.entry), [KafkaAcls.Entry(principal: "User:*", host: "*", operation: .all, permission: .deny)])

        let remove = try options(bs + ["--remove", "--force", "--allow-principal", "User:*", "--operation", "Describe",
                                       "--allow-host", "*", "--topic", "t"])
        XCTAssertEqual(remove.action, .remove)
        XCTAssertTrue(remove.force)
        XCTAssertEqual(remove.bindings.map(\.entry), [KafkaAcls.Entry(principal: "User:*", host: "*", operation: .describe, permission: .allow)])

        let list = try options(bs + ["--list"])
        XCTAssertEqual(list.action, .list)
        XCTAssertEqual(list.patternType, .any)
        XCTAssertTrue(list.resources.isEmpty)
    }

    func testOperationsHostsAndShorthands() throws {
        XCTAssertEqual(try KafkaAcls.operation("DescribeConfigs"), .describeConfigs)
        XCTAssertEqual(try KafkaAcls.operation("IDEMPOTENT_WRITE"), .idempotentWrite)
        XCTAssertEqual(try KafkaAcls.operation("read"), .read)
        XCTAssertThrowsError(try KafkaAcls.operation("Any"))
        // Host defaults to *; several principals, operations and resources multiply.
        let o = try options(bs + ["--add", "--allow-principal", "User:a", "--allow-principal", "User:b", "--operation", "Read",
                                  "--operation", "Write", "--topic", "t", "--resource-pattern-type", "prefixed"])
        XCTAssertEqual(o.bindings.count, 4)
        XCTAssertTrue(o.bindings.map(\.entry).allSatisfy { $0.host == "*" && $0.permission == .allow })
        XCTAssertEqual(o.patternType, .prefixed)
        let consumer = try options(bs + ["--add", "--allow-principal", "User:a", "--consumer", "--topic", "t", "--group", "g"])
        XCTAssertEqual(KafkaAcls.entries(for: consumer.resources[0], consumer).map(\.operation), [.read, .describe])
        XCTAssertEqual(consumer.resources.map(\.type), [.topic, .group])
        XCTAssertEqual(KafkaAcls.entries(for: consumer.resources[1], consumer).map(\.operation), [.read],
                       "a group takes only the group's operations")
        let cluster = try options(bs + ["--add", "--allow-principal", "User:a", "--operation", "IdempotentWrite", "--cluster"])
        XCTAssertEqual(cluster.resources, [KafkaAcls.Resource(type: .cluster, name: "kafka-cluster")])
    }

    func testRefusesBadCommandLines() {
        assertFails(bs + ["--topic", "t"], "exactly one action")
        assertFails(bs + ["--add", "--list", "--topic", "t"], "exactly one action")
        assertFails(["--add", "--allow-principal", "User:a", "--topic", "t"], "bootstrap-server")
        assertFails(bs + ["--add", "--topic", "t"], "--allow-principal, --deny-principal")
        assertFails(bs + ["--add", "--allow-principal", "User:a"], "at least one resource")
        assertFails(bs + ["--add", "--allow-principal", "alice", "--topic", "t"], "Invalid principal 'alice'")
        assertFails(bs + ["--add", "--allow-principal", "User:a", "--topic", "t", "--resource-pattern-type", "match"],
                    "not valid when adding")
        assertFails(bs + ["--add", "--allow-principal", "User:a", "--operation", "IdempotentWrite", "--topic", "t"],
                    "ResourceType TOPIC only supports operations")
        assertFails(bs + ["--add", "--allow-host", "1.2.3.4", "--deny-principal", "User:a", "--topic", "t"],
                    "--allow-host can only be used with --allow-principal")
        assertFails(bs + ["--add", "--authorizer-properties", "zookeeper.connect=x"], "--authorizer-properties is not supported")
        assertFails(bs + ["--list", "--bogus"], "--bogus is not a recognized option")
    }

    func testTextIsKafkas() {
        XCTAssertEqual(KafkaAcls.patternText(.topic, "t", .literal), "ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)")
        XCTAssertEqual(KafkaAcls.entryText(principal: "User:*", host: "*", operation: .describeConfigs, permission: .deny),
                       "(principal=User:*, host=*, operation=DESCRIBE_CONFIGS, permissionType=DENY)")
        XCTAssertEqual(KafkaAcls.block("Current ACLs for resource `x`", ["a", "b"]),
                       "Current ACLs for resource `x`: \n \ta \n \tb \n\n")
    }
}
