import SiltAuthorizer
import SiltProtocol
import XCTest

final class AuthorizerTests: XCTestCase {
    let alice = AclRequester(principal: "User:alice", host: "10.0.0.1")
    let bob = AclRequester(principal: "User:bob", host: "10.0.0.2")
    let anonymous = AclRequester(host: "127.0.0.1")

    /// An ACL for alice (by default) on a topic (by default), LITERAL, any host, ALLOW.
    func acl(_ name: String, _ op: KafkaAclOperation, _ permission: AclPermissionType = .allow,
             type: AclResourceType = .topic, pattern: AclPatternType = .literal, principal: String = "User:alice",
             host: String = "*") -> AclBinding {
        AclBinding(resourceType: type, resourceName: name, patternType: pattern, principal: principal, host: host,
                   operation: op, permission: permission)
    }

    func authorizer(_ acls: [AclBinding], everyone: Bool = false, superUsers: Set<String> = []) -> Authorizer {
        Authorizer(settings: AuthorizerSettings(enabled: true, superUsers: superUsers, allowEveryoneIfNoAclFound: everyone),
                   acls: acls)
    }

    func testDisabledAllowsEverything() {
        let az = Authorizer.disabled
        XCTAssertFalse(az.enabled)
        XCTAssertTrue(az.authorize(alice, .write, .topic, "t"))
        XCTAssertEqual(az.authorizedOperations(alice, .topic, name: "t"), KafkaAclOperation.allowed(.topic))
    }

    func testNoAclFoundFollowsTheSetting() {
        XCTAssertFalse(authorizer([]).authorize(alice, .read, .topic, "t"))
        XCTAssertTrue(authorizer([], everyone: true).authorize(alice, .read, .topic, "t"))
        // An ACL on the resource, for someone else: the resource has ACLs, so bob is denied.
        let az = authorizer([acl("t", .read)], everyone: true)
        XCTAssertTrue(az.authorize(alice, .read, .topic, "t"))
        XCTAssertFalse(az.authorize(bob, .read, .topic, "t"))
        XCTAssertTrue(az.authorize(bob, .read, .topic, "other"), "no ACL on other")
    }

    func testLiteralPrefixedAndWildcardPatterns() {
        let az = authorizer([
            acl("orders", .read),
            acl("logs-", .write, pattern: .prefixed),
            acl("*", .describe),
        ])
        XCTAssertTrue(az.authorize(alice, .read, .topic, "orders"))
        XCTAssertFalse(az.authorize(alice, .read, .topic, "orders2"), "literal is exact")
        XCTAssertTrue(az.authorize(alice, .write, .topic, "logs-app"))
        XCTAssertTrue(az.authorize(alice, .write, .topic, "logs-"))
        XCTAssertFalse(az.authorize(alice, .write, .topic, "logs"), "shorter than the prefix")
        XCTAssertTrue(az.authorize(alice, .describe, .topic, "anything"), "literal * matches every name")
        XCTAssertFalse(az.authorize(alice, .read, .group, "orders"), "other resource type")
    }

    func testWildcardPrincipalAndHost() {
        let az = authorizer([
            acl("t", .read, principal: "User:*"),
            acl("u", .read, host: "10.0.0.9"),
        ])
        XCTAssertTrue(az.authorize(bob, .read, .topic, "t"))
        XCTAssertTrue(az.authorize(anonymous, .read, .topic, "t"))
        XCTAssertFalse(az.authorize(alice, .read, .topic, "u"), "host differs")
        XCTAssertTrue(az.authorize(AclRequester(principal: "User:alice", host: "10.0.0.9"), .read, .topic, "u"))
    }

    func testDenyWinsOverAllow() {
        let az = authorizer([
            acl("t", .all, principal: "User:*"),
            acl("t", .write, .deny),
            acl("sec", .all, .deny, pattern: .prefixed, principal: "User:*"),
            acl("secret", .read),
        ], everyone: true)
        XCTAssertTrue(az.authorize(alice, .read, .topic, "t"))
        XCTAssertFalse(az.authorize(alice, .write, .topic, "t"))
        XCTAssertTrue(az.authorize(bob, .write, .topic, "t"))
        XCTAssertFalse(az.authorize(alice, .read, .topic, "secret"), "a prefixed DENY ALL beats a literal ALLOW")
        XCTAssertFalse(az.authorize(alice, .describe, .topic, "secret"))
    }

    func testImpliedOperations() {
        let az = authorizer([
            acl("r", .read), acl("w", .write), acl("d", .delete), acl("a", .alter), acl("c", .alterConfigs),
            acl("x", .create),
        ])
        for name in ["r", "w", "d", "a"] { XCTAssertTrue(az.authorize(alice, .describe, .topic, name), name) }
        XCTAssertFalse(az.authorize(alice, .describe, .topic, "x"), "CREATE does not imply DESCRIBE")
        XCTAssertTrue(az.authorize(alice, .describeConfigs, .topic, "c"))
        XCTAssertFalse(az.authorize(alice, .describeConfigs, .topic, "r"))
        XCTAssertFalse(az.authorize(alice, .write, .topic, "r"), "READ does not imply WRITE")
        // A DENY implies nothing: denying READ leaves DESCRIBE to the other ACLs.
        let deny = authorizer([acl("t", .describe, principal: "User:*"), acl("t", .read, .deny, principal: "User:*")])
        XCTAssertTrue(deny.authorize(alice, .describe, .topic, "t"))
        XCTAssertFalse(deny.authorize(alice, .read, .topic, "t"))
    }

    func testSuperUsersIgnoreAcls() {
        let az = authorizer([acl("t", .all, .deny, principal: "User:*")], superUsers: ["User:admin"])
        XCTAssertTrue(az.authorize(AclRequester(principal: "User:admin", host: "1.2.3.4"), .write, .topic, "t"))
        XCTAssertFalse(az.authorize(alice, .write, .topic, "t"))
        XCTAssertEqual(AuthorizerSettings(className: AuthorizerSettings.standardAuthorizerClass,
                                          superUsers: "User:admin; User:ops", allowEveryoneIfNoAclFound: "TRUE"),
                       AuthorizerSettings(enabled: true, superUsers: ["User:admin", "User:ops"], allowEveryoneIfNoAclFound: true))
        XCTAssertFalse(AuthorizerSettings(className: nil, superUsers: nil, allowEveryoneIfNoAclFound: nil).enabled)
    }

    func testAuthorizedOperationsBitfield() {
        let az = authorizer([acl("t", .read), acl(AclBinding.clusterName, .describe, type: .cluster)])
        XCTAssertEqual(az.authorizedOperations(alice, .topic, name: "t"), KafkaAclOperation.bitfield([.read, .describe]))
        XCTAssertEqual(az.authorizedOperations(bob, .topic, name: "t"), 0)
        XCTAssertEqual(az.authorizedOperations(alice, .cluster, name: AclBinding.clusterName), KafkaAclOperation.bitfield([.describe]))
    }

    func testAuthorizeByResourceType() {
        // No ACL and allow.everyone: some topic is writable.
        XCTAssertTrue(authorizer([], everyone: true).authorizeByResourceType(alice, .write, .topic))
        XCTAssertFalse(authorizer([]).authorizeByResourceType(alice, .write, .topic))
        // One literal ALLOW is enough; a DENY on the same name takes it back; a DENY on * denies all.
        XCTAssertTrue(authorizer([acl("t", .write)]).authorizeByResourceType(alice, .write, .topic))
        XCTAssertFalse(authorizer([acl("t", .write), acl("t", .write, .deny)])
            .authorizeByResourceType(alice, .write, .topic))
        XCTAssertFalse(authorizer([acl("t", .write), acl("*", .all, .deny, principal: "User:*")])
            .authorizeByResourceType(alice, .write, .topic))
        XCTAssertTrue(authorizer([acl("a-", .all, pattern: .prefixed), acl("b", .write, .deny, pattern: .prefixed)])
            .authorizeByResourceType(alice, .write, .topic))
        XCTAssertFalse(authorizer([acl("a-", .all, pattern: .prefixed), acl("a", .write, .deny, pattern: .prefixed)])
            .authorizeByResourceType(alice, .write, .topic), "the DENY prefix covers the ALLOW prefix")
        XCTAssertFalse(authorizer([acl("t", .write)]).authorizeByResourceType(bob, .write, .topic))
    }

    func testFiltersMatchAsKafka() {
        let prefixed = acl("rdk_", .read, pattern: .prefixed)
        let literal = acl("rdk_1", .write)
        let wildcard = acl("*", .describe)
        let match = AclBindingFilter(resourceType: .topic, resourceName: "rdk_1", patternType: .match)
        XCTAssertTrue(match.matches(prefixed) && match.matches(literal) && match.matches(wildcard))
        XCTAssertFalse(match.matches(acl("rdk_2", .write)))
        let literalOnly = AclBindingFilter(resourceType: .topic, resourceName: "rdk_1", patternType: .literal)
        XCTAssertTrue(literalOnly.matches(literal))
        XCTAssertFalse(literalOnly.matches(wildcard), "LITERAL filters do not expand *")
        let any = AclBindingFilter(resourceType: .topic, resourceName: "rdk_", patternType: .any)
        XCTAssertTrue(any.matches(prefixed))
        XCTAssertFalse(any.matches(literal), "ANY compares names exactly")
        XCTAssertTrue(AclBindingFilter().matches(literal), "the empty filter matches everything")
        XCTAssertFalse(AclBindingFilter(operation: .read).matches(literal))
        XCTAssertTrue(AclBindingFilter(principal: "User:alice", permission: .allow).matches(literal))
        XCTAssertEqual(AclBindingFilter(resourceType: .unknown).refusal, "Unknown patternFilter.")
        XCTAssertEqual(AclBindingFilter(operation: .unknown).refusal, "Unknown entryFilter.")
    }

    func testBindingValidation() {
        XCTAssertNil(acl("t", .read).refusal)
        XCTAssertEqual(acl("t", .read, pattern: .match).refusal, "Invalid patternType MATCH")
        XCTAssertEqual(acl("t", .read, pattern: .any).refusal, "Invalid patternType ANY")
        XCTAssertEqual(acl("t", .read, type: .any).refusal, "Invalid resourceType ANY")
        XCTAssertEqual(acl("t", .any).refusal, "Invalid operation ANY")
        XCTAssertEqual(acl("t", .read, .any).refusal, "Invalid permissionType ANY")
        XCTAssertEqual(acl("", .read).refusal, "Resource name should not be empty")
        XCTAssertNotNil(acl("t", .read, principal: "alice").refusal, "no principal type")
        XCTAssertNotNil(acl("c", .alter, type: .cluster).refusal, "the cluster is kafka-cluster")
        XCTAssertNil(acl(AclBinding.clusterName, .alter, type: .cluster).refusal)
    }

    func testManyPrefixesStayCorrect() {
        var acls: [AclBinding] = []
        for n in 1...50 { acls.append(acl(String(repeating: "p", count: n), .read, pattern: .prefixed)) }
        let az = authorizer(acls)
        XCTAssertTrue(az.authorize(alice, .read, .topic, String(repeating: "p", count: 80)))
        XCTAssertTrue(az.authorize(alice, .read, .topic, "pq"))
        XCTAssertFalse(az.authorize(alice, .read, .topic, "q"))
    }
}
