import Foundation

// Kafka's ACL model (org.apache.kafka.common.acl / resource), with Kafka's wire codes: the
// metadata log stores ACLs as `AccessControlEntryRecord`s, the brokers' images hold them,
// and `SiltAuthorizer` decides with them. The operation is `KafkaAclOperation`.

/// Kafka's `ResourceType` codes.
public enum AclResourceType: Int8, Codable, CaseIterable, Sendable {
    case unknown = 0, any = 1, topic = 2, group = 3, cluster = 4, transactionalId = 5, delegationToken = 6, user = 7

    /// Kafka's name (`ResourceType.toString`), as its tools print it.
    public var name: String {
        switch self {
        case .unknown: return "UNKNOWN"
        case .any: return "ANY"
        case .topic: return "TOPIC"
        case .group: return "GROUP"
        case .cluster: return "CLUSTER"
        case .transactionalId: return "TRANSACTIONAL_ID"
        case .delegationToken: return "DELEGATION_TOKEN"
        case .user: return "USER"
        }
    }

    /// From a wire code; codes this build does not know are `unknown` (Kafka's `fromCode`).
    public init(code: Int8) { self = AclResourceType(rawValue: code) ?? .unknown }
}

/// Kafka's `PatternType` codes. ANY and MATCH exist only in filters.
public enum AclPatternType: Int8, Codable, CaseIterable, Sendable {
    case unknown = 0, any = 1, match = 2, literal = 3, prefixed = 4

    public var name: String {
        switch self {
        case .unknown: return "UNKNOWN"
        case .any: return "ANY"
        case .match: return "MATCH"
        case .literal: return "LITERAL"
        case .prefixed: return "PREFIXED"
        }
    }

    public init(code: Int8) { self = AclPatternType(rawValue: code) ?? .unknown }
}

/// Kafka's `AclPermissionType` codes.
public enum AclPermissionType: Int8, Codable, CaseIterable, Sendable {
    case unknown = 0, any = 1, deny = 2, allow = 3

    public var name: String {
        switch self {
        case .unknown: return "UNKNOWN"
        case .any: return "ANY"
        case .deny: return "DENY"
        case .allow: return "ALLOW"
        }
    }

    public init(code: Int8) { self = AclPermissionType(rawValue: code) ?? .unknown }
}

extension KafkaAclOperation {
    /// From a wire code; codes this build does not know are `unknown` (Kafka's `fromCode`).
    public init(code: Int8) { self = KafkaAclOperation(rawValue: code) ?? .unknown }
}

/// One ACL: a resource pattern and an access control entry (Kafka's `AclBinding`).
///
/// Invariants of a stored binding (`AclBinding.refusal` is nil): a concrete resource type,
/// LITERAL or PREFIXED pattern, a concrete operation, ALLOW or DENY, a non-empty name, a
/// principal of the form `Type:name`, and the cluster resource named `kafka-cluster`.
public struct AclBinding: Hashable, Codable, Sendable, CustomStringConvertible {
    /// The only name of the CLUSTER resource (Kafka's `Resource.CLUSTER_NAME`).
    public static let clusterName = "kafka-cluster"
    /// The resource name and host that match any (`ResourcePattern.WILDCARD_RESOURCE`).
    public static let wildcard = "*"
    /// The principal that matches every user (`Acl.WildcardPrincipalString`).
    public static let wildcardPrincipal = "User:*"

    public var resourceType: AclResourceType
    public var resourceName: String
    public var patternType: AclPatternType
    public var principal: String
    public var host: String
    public var operation: KafkaAclOperation
    public var permission: AclPermissionType

    public init(resourceType: AclResourceType, resourceName: String, patternType: AclPatternType, principal: String,
                host: String, operation: KafkaAclOperation, permission: AclPermissionType) {
        self.resourceType = resourceType; self.resourceName = resourceName; self.patternType = patternType
        self.principal = principal; self.host = host; self.operation = operation; self.permission = permission
    }

    /// Why Kafka would refuse to create this binding (INVALID_REQUEST), or nil
    /// (`AclControlManager.validateNewAcl` and `AclApis`' checks, with Kafka's messages).
    public var refusal: String? {
        switch resourceType {
        case .unknown, .any: return "Invalid resourceType \(resourceType.name)"
        default: break
        }
        switch patternType {
        case .literal, .prefixed: break
        default: return "Invalid patternType \(patternType.name)"
        }
        switch operation {
        case .unknown, .any: return "Invalid operation \(operation.kafkaName)"
        default: break
        }
        switch permission {
        case .allow, .deny: break
        default: return "Invalid permissionType \(permission.name)"
        }
        if resourceName.isEmpty { return "Resource name should not be empty" }
        if resourceType == .cluster && resourceName != AclBinding.clusterName {
            return "The only valid name for the CLUSTER resource is \(AclBinding.clusterName)"
        }
        guard let colon = principal.firstIndex(of: ":"), colon != principal.startIndex else {
            return "Could not parse principal from `\(principal)` (no colon is present separating the principal type from the principal name)"
        }
        if host.isEmpty { return "Host should not be empty" }
        return nil
    }

    /// Kafka's `AclBinding.toString`.
    public var description: String {
        "(pattern=ResourcePattern(resourceType=\(resourceType.name), name=\(resourceName), patternType=\(patternType.name)), "
            + "entry=(principal=\(principal), host=\(host), operation=\(operation.kafkaName), permissionType=\(permission.name)))"
    }
}

/// A filter over ACLs (Kafka's `AclBindingFilter`): DescribeAcls and DeleteAcls select with
/// it. A nil string matches any value; ANY matches any code. The pattern type MATCH selects
/// every pattern that would apply to the named resource: the literal name, the wildcard `*`
/// and every prefix of the name (`ResourcePatternFilter.matches`).
public struct AclBindingFilter: Hashable, Sendable {
    public var resourceType: AclResourceType
    public var resourceName: String?
    public var patternType: AclPatternType
    public var principal: String?
    public var host: String?
    public var operation: KafkaAclOperation
    public var permission: AclPermissionType

    public init(resourceType: AclResourceType = .any, resourceName: String? = nil, patternType: AclPatternType = .any,
                principal: String? = nil, host: String? = nil, operation: KafkaAclOperation = .any,
                permission: AclPermissionType = .any) {
        self.resourceType = resourceType; self.resourceName = resourceName; self.patternType = patternType
        self.principal = principal; self.host = host; self.operation = operation; self.permission = permission
    }

    /// Why Kafka refuses this filter (INVALID_REQUEST), or nil: a code it does not know
    /// (`AclControlManager.validateFilter`).
    public var refusal: String? {
        if resourceType == .unknown || patternType == .unknown { return "Unknown patternFilter." }
        if operation == .unknown || permission == .unknown { return "Unknown entryFilter." }
        return nil
    }

    public func matches(_ b: AclBinding) -> Bool {
        matchesPattern(b) && matchesEntry(b)
    }

    /// `ResourcePatternFilter.matches`.
    func matchesPattern(_ b: AclBinding) -> Bool {
        if resourceType != .any && resourceType != b.resourceType { return false }
        if patternType != .any && patternType != .match && patternType != b.patternType { return false }
        guard let name = resourceName else { return true }
        if patternType == .any || patternType == b.patternType { return name == b.resourceName }
        switch b.patternType {   // MATCH
        case .literal: return name == b.resourceName || b.resourceName == AclBinding.wildcard
        case .prefixed: return name.hasPrefix(b.resourceName)
        default: return false
        }
    }

    /// `AccessControlEntryFilter.matches`.
    func matchesEntry(_ b: AclBinding) -> Bool {
        if let principal, principal != b.principal { return false }
        if let host, host != b.host { return false }
        if operation != .any && operation != b.operation { return false }
        return permission == .any || permission == b.permission
    }
}

extension KafkaAclOperation {
    /// Kafka's name (`AclOperation.toString`): READ, DESCRIBE_CONFIGS, ...
    public var kafkaName: String {
        switch self {
        case .unknown: return "UNKNOWN"
        case .any: return "ANY"
        case .all: return "ALL"
        case .read: return "READ"
        case .write: return "WRITE"
        case .create: return "CREATE"
        case .delete: return "DELETE"
        case .alter: return "ALTER"
        case .describe: return "DESCRIBE"
        case .clusterAction: return "CLUSTER_ACTION"
        case .describeConfigs: return "DESCRIBE_CONFIGS"
        case .alterConfigs: return "ALTER_CONFIGS"
        case .idempotentWrite: return "IDEMPOTENT_WRITE"
        case .createTokens: return "CREATE_TOKENS"
        case .describeTokens: return "DESCRIBE_TOKENS"
        case .twoPhaseCommit: return "TWO_PHASE_COMMIT"
        }
    }
}
