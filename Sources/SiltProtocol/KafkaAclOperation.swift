/// Kafka's ACL operations (`AclOperation` codes) and the operations each resource type
/// supports (`AclEntry.supportedOperations`), for the authorized-operations bitfields of
/// Metadata (topics, and the cluster in v8-10), DescribeCluster and DescribeGroups (v3+).
/// Kafka's message specs carry neither, so both are written from Kafka's sources.
///
/// Which of them a caller may do comes from `SiltAuthorizer.Authorizer` (every supported
/// operation without an authorizer, as Kafka answers). A bitfield sets bit `code` for each
/// operation (`Utils.to32BitField`). The other ACL codes are in KafkaAcl.swift.
public enum KafkaAclOperation: Int8, CaseIterable, Codable, Sendable {
    case unknown = 0, any = 1, all = 2, read = 3, write = 4, create = 5, delete = 6, alter = 7, describe = 8,
         clusterAction = 9, describeConfigs = 10, alterConfigs = 11, idempotentWrite = 12, createTokens = 13,
         describeTokens = 14, twoPhaseCommit = 15

    /// The resource types Silt describes.
    public enum Resource: Sendable {
        case topic, group, cluster
    }

    /// `AclEntry.supportedOperations` of a resource type.
    public static func supported(_ resource: Resource) -> [KafkaAclOperation] {
        switch resource {
        case .topic: return [.read, .write, .create, .describe, .delete, .alter, .describeConfigs, .alterConfigs]
        case .group: return [.read, .describe, .delete, .describeConfigs, .alterConfigs]
        case .cluster: return [.create, .clusterAction, .describeConfigs, .alterConfigs, .idempotentWrite, .alter, .describe]
        }
    }

    /// The bitfield of `operations`: bit `code` set for each.
    public static func bitfield(_ operations: [KafkaAclOperation]) -> Int32 {
        operations.reduce(Int32(0)) { $0 | (Int32(1) << Int32($1.rawValue)) }
    }

    /// All the supported operations of a resource (what a disabled authorizer allows).
    public static func allowed(_ resource: Resource) -> Int32 { bitfield(supported(resource)) }
}
