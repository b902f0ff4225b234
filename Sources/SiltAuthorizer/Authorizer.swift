import Foundation
import SiltProtocol

/// Who is asking: the principal of the connection (`User:ANONYMOUS` on a PLAINTEXT
/// listener, as Kafka's default principal builder names it) and the client's IP address.
public struct AclRequester: Hashable, Sendable {
    public static let anonymous = "User:ANONYMOUS"
    public var principal: String
    public var host: String
    public init(principal: String = AclRequester.anonymous, host: String) {
        self.principal = principal
        self.host = host
    }
}

/// The authorizer's settings, Kafka's keys: `authorizer.class.name` (empty: no authorizer,
/// every request allowed and the ACL APIs answer SECURITY_DISABLED), `super.users`
/// (`User:a;User:b`: allowed everything, whatever the ACLs say) and
/// `allow.everyone.if.no.acl.found` (what a resource without any ACL allows).
public struct AuthorizerSettings: Equatable, Sendable {
    /// Kafka's KRaft authorizer, the class name Silt's authorizer answers to.
    public static let standardAuthorizerClass = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    public var enabled: Bool
    public var superUsers: Set<String>
    public var allowEveryoneIfNoAclFound: Bool

    public init(enabled: Bool, superUsers: Set<String> = [], allowEveryoneIfNoAclFound: Bool = false) {
        self.enabled = enabled; self.superUsers = superUsers; self.allowEveryoneIfNoAclFound = allowEveryoneIfNoAclFound
    }

    /// From the three config values (as `ServerConfig.value` returns them).
    public init(className: String?, superUsers: String?, allowEveryoneIfNoAclFound: String?) {
        let cls = (className ?? "").trimmingCharacters(in: .whitespaces)
        enabled = !cls.isEmpty
        self.superUsers = Set((superUsers ?? "").split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty })
        self.allowEveryoneIfNoAclFound = (allowEveryoneIfNoAclFound ?? "false").lowercased() == "true"
    }
}

/// Kafka's StandardAuthorizer over one set of ACLs (an immutable snapshot: the broker builds
/// a new one when its metadata image's ACLs change, and every request reads the snapshot
/// it finds, so a decision never sees half a change).
///
/// A decision for (principal, host, operation, resource type, name):
/// 1. a super user is allowed;
/// 2. the ACLs that apply to the resource are those of its type whose pattern matches the
///    name: LITERAL with the same name, LITERAL `*`, or PREFIXED with a prefix of the name;
/// 3. of those, the ones whose principal is the requester's or `User:*` and whose host is
///    the requester's or `*`: a DENY for the operation (or ALL) denies; otherwise an ALLOW
///    for the operation, for ALL, or for an operation that implies it allows (READ, WRITE,
///    DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS);
/// 4. with no ACL at all on the resource (step 2 found none), `allow.everyone.if.no.acl.found`
///    decides; otherwise the answer is deny.
///
/// Cost: an index by resource type, then a dictionary lookup for the literal name and `*`,
/// and one lookup per distinct prefix length for PREFIXED ACLs; the ACLs found are scanned.
/// The number of ACLs is bounded by the controller (`aclCountMax`).
public struct Authorizer: Sendable {
    public let settings: AuthorizerSettings
    /// Every ACL, in the image's order (for DescribeAcls and authorizeByResourceType).
    public let acls: [AclBinding]
    private let index: [AclResourceType: ResourceIndex]

    /// The ACLs of one resource type.
    struct ResourceIndex: Sendable {
        /// LITERAL ACLs by name (`*` included).
        var literal: [String: [AclBinding]] = [:]
        /// PREFIXED ACLs by prefix.
        var prefixed: [String: [AclBinding]] = [:]
        /// The distinct lengths (in Characters) of the prefixes, ascending.
        var prefixLengths: [Int] = []
    }

    /// An authorizer that allows everything (no `authorizer.class.name`).
    public static let disabled = Authorizer(settings: AuthorizerSettings(enabled: false), acls: [])

    public init(settings: AuthorizerSettings, acls: [AclBinding]) {
        self.settings = settings
        self.acls = acls
        var index: [AclResourceType: ResourceIndex] = [:]
        for a in acls {
            switch a.patternType {
            case .literal: index[a.resourceType, default: ResourceIndex()].literal[a.resourceName, default: []].append(a)
            case .prefixed: index[a.resourceType, default: ResourceIndex()].prefixed[a.resourceName, default: []].append(a)
            default: preconditionFailure("stored ACL with pattern \(a.patternType.name): \(a)")
            }
        }
        for (t, var i) in index {
            i.prefixLengths = Set(i.prefixed.keys.map(\.count)).sorted()
            index[t] = i
        }
        self.index = index
    }

    public var enabled: Bool { settings.enabled }

    /// The ACLs whose pattern applies to the resource (step 2).
    func applicable(_ type: AclResourceType, _ name: String) -> [AclBinding] {
        guard let i = index[type] else { return [] }
        var out = i.literal[name] ?? []
        if name != AclBinding.wildcard { out += i.literal[AclBinding.wildcard] ?? [] }
        for n in i.prefixLengths {
            guard n <= name.count else { break }
            out += i.prefixed[String(name.prefix(n))] ?? []
        }
        return out
    }

    /// Whether `who` may do `operation` on the resource. Always true when disabled.
    public func authorize(_ who: AclRequester, _ operation: KafkaAclOperation, _ type: AclResourceType,
                          _ name: String) -> Bool {
        precondition(operation != .any && operation != .unknown, "authorize: \(operation) is a filter, not an operation")
        guard settings.enabled else { return true }
        if settings.superUsers.contains(who.principal) { return true }
        let found = applicable(type, name)
        if found.isEmpty { return settings.allowEveryoneIfNoAclFound }
        var allowed = false
        for a in found where Authorizer.entryApplies(a, who) {
            switch a.permission {
            case .deny:
                if a.operation == .all || a.operation == operation { return false }
            case .allow:
                if Authorizer.allowCovers(a.operation, operation) { allowed = true }
            default:
                preconditionFailure("stored ACL with permission \(a.permission.name): \(a)")
            }
        }
        return allowed
    }

    /// The principal and host of the ACL cover the requester.
    static func entryApplies(_ a: AclBinding, _ who: AclRequester) -> Bool {
        (a.principal == who.principal || a.principal == AclBinding.wildcardPrincipal)
            && (a.host == who.host || a.host == AclBinding.wildcard)
    }

    /// An ALLOW of `granted` allows `wanted` (`StandardAuthorizerData`'s implied operations).
    public static func allowCovers(_ granted: KafkaAclOperation, _ wanted: KafkaAclOperation) -> Bool {
        if granted == .all || granted == wanted { return true }
        switch wanted {
        case .describe: return [.read, .write, .delete, .alter].contains(granted)
        case .describeConfigs: return granted == .alterConfigs
        default: return false
        }
    }

    /// The operations of `KafkaAclOperation.supported(resource)` that `who` may do on it, as
    /// the authorized-operations bitfield of Metadata, DescribeCluster and DescribeGroups.
    public func authorizedOperations(_ who: AclRequester, _ resource: KafkaAclOperation.Resource, name: String) -> Int32 {
        let type: AclResourceType
        switch resource {
        case .topic: type = .topic
        case .group: type = .group
        case .cluster: type = .cluster
        }
        return KafkaAclOperation.bitfield(KafkaAclOperation.supported(resource).filter { authorize(who, $0, type, name) })
    }

    /// Whether `who` may do `operation` on at least one resource of `type` (Kafka's
    /// `Authorizer.authorizeByResourceType`, used for InitProducerId: IDEMPOTENT_WRITE on the
    /// cluster or WRITE on some topic). Allowed when a resource nobody named is allowed (a
    /// super user, a wildcard ALLOW, or no ACL and allow.everyone.if.no.acl.found), or when an
    /// ALLOW applies to `who` that no DENY of `who` covers (a DENY on `*`, on the same literal
    /// name, or on a prefix of the allowed pattern's name).
    public func authorizeByResourceType(_ who: AclRequester, _ operation: KafkaAclOperation, _ type: AclResourceType) -> Bool {
        guard settings.enabled else { return true }
        if authorize(who, operation, type, "__silt_unnamed_resource_\(UUID().uuidString)") { return true }
        let mine = acls.filter {
            $0.resourceType == type && Authorizer.entryApplies($0, who)
                && ($0.operation == operation || $0.operation == .all)
        }
        let denies = mine.filter { $0.permission == .deny }
        if denies.contains(where: { $0.patternType == .literal && $0.resourceName == AclBinding.wildcard }) { return false }
        for allow in mine where allow.permission == .allow {
            let covered = denies.contains { d in
                switch d.patternType {
                case .literal: return allow.patternType == .literal && d.resourceName == allow.resourceName
                case .prefixed: return allow.resourceName.hasPrefix(d.resourceName)
                default: return false
                }
            }
            if !covered { return true }
        }
        return false
    }
}
