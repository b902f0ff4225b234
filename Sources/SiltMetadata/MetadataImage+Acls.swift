import Foundation
import SiltProtocol

/// ACLs in the image: `accessControlEntry` adds one under its id, `removeAccessControlEntry`
/// removes it. Every broker folds the same records, so every broker's authorizer sees the
/// same ACLs once it has caught up.
extension MetadataImage {
    mutating func applyAclRecord(_ record: MetadataRecord) {
        switch record {
        case .accessControlEntry(let id, let binding):
            precondition(acls[id] == nil, "metadata log: ACL \(id) added twice")
            precondition(binding.refusal == nil, "metadata log: invalid ACL \(binding)")
            acls[id] = binding
        case .removeAccessControlEntry(let id):
            precondition(acls.removeValue(forKey: id) != nil, "metadata log: removing unknown ACL \(id)")
        default:
            preconditionFailure("not an ACL record: \(record)")
        }
    }

    /// The ACLs in id order (snapshots, and the authorizer's list).
    public var sortedAcls: [(id: UUID, binding: AclBinding)] {
        acls.map { (id: $0.key, binding: $0.value) }.sorted { $0.id.uuidString < $1.id.uuidString }
    }

    /// One record per ACL.
    var aclSnapshotRecords: [MetadataRecord] {
        sortedAcls.map { .accessControlEntry(id: $0.id, $0.binding) }
    }
}
