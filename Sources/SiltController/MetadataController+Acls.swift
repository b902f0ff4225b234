import Foundation
import SiltMetadata
import SiltProtocol

/// ACL changes (CreateAcls, DeleteAcls forwarded by the brokers, as KRaft forwards them).
/// The controller validates each binding or filter, then writes one
/// `accessControlEntry` / `removeAccessControlEntry` record per ACL, all of one request in
/// one append. Every broker's image then holds the same ACLs (`MetadataImage.acls`).
extension MetadataController {
    /// The most ACLs the cluster holds. Each is a record in every snapshot and an entry in
    /// every broker's authorizer index (a few hundred bytes): 100 000 ACLs are tens of MB
    /// across a snapshot and each broker's copies, well within a node's budget; a create
    /// beyond it is refused.
    public static let aclCountMax = 100_000

    /// Creates the valid bindings of `bindings`; returns, per binding in order, nil (created,
    /// or already present: Kafka answers success for a duplicate) or why it was refused.
    public func createAcls(_ bindings: [AclBinding]) throws -> [ControllerError?] {
        try mutate {
            var results: [ControllerError?] = []
            var records: [MetadataRecord] = []
            var present = Set(_image.acls.values)
            for b in bindings {
                if let why = b.refusal {
                    results.append(.invalidRequest(why))
                    continue
                }
                if present.contains(b) {
                    results.append(nil)
                    continue
                }
                guard present.count < MetadataController.aclCountMax else {
                    results.append(.invalidRequest(
                        "The cluster holds \(MetadataController.aclCountMax) ACLs, the most it may; delete some first."))
                    continue
                }
                var id = UUID()
                while _image.acls[id] != nil { id = UUID() }
                present.insert(b)
                records.append(.accessControlEntry(id: id, b))
                results.append(nil)
            }
            if !records.isEmpty {
                try commit(records)
                logger.info("ACLs created", metadata: ["count": "\(records.count)"])
            }
            return results
        }
    }

    /// Deletes the ACLs each filter matches; returns, per filter in order, the bindings it
    /// deleted or why the filter was refused. An ACL two filters match is deleted once and
    /// listed under the first.
    public func deleteAcls(_ filters: [AclBindingFilter]) throws -> [Result<[AclBinding], ControllerError>] {
        try mutate {
            var results: [Result<[AclBinding], ControllerError>] = []
            var records: [MetadataRecord] = []
            var removed = Set<UUID>()
            // In id order, so a deletion's records (and the answer) do not depend on hashing.
            let all = _image.acls.sorted { $0.key.uuidString < $1.key.uuidString }
            for f in filters {
                if let why = f.refusal {
                    results.append(.failure(.invalidRequest(why)))
                    continue
                }
                var matched: [AclBinding] = []
                for (id, b) in all where !removed.contains(id) && f.matches(b) {
                    removed.insert(id)
                    records.append(.removeAccessControlEntry(id: id))
                    matched.append(b)
                }
                results.append(.success(matched))
            }
            if !records.isEmpty {
                try commit(records)
                logger.info("ACLs deleted", metadata: ["count": "\(records.count)"])
            }
            return results
        }
    }
}

/// CreateAcls and DeleteAcls as the controller serves them (the broker checks that an
/// authorizer is configured and that the caller may ALTER the cluster, then forwards).
extension ControllerService {
    func createAcls(_ req: CreateAclsRequest, version: Int16) -> CreateAclsResponse {
        var resp = CreateAclsResponse()
        let bindings = req.creations.map { c in
            AclBinding(resourceType: AclResourceType(code: c.resourceType), resourceName: c.resourceName,
                       patternType: version >= 1 ? AclPatternType(code: c.resourcePatternType) : .literal,
                       principal: c.principal, host: c.host, operation: KafkaAclOperation(code: c.operation),
                       permission: AclPermissionType(code: c.permissionType))
        }
        let outcomes: [ControllerError?]
        do {
            outcomes = try controller.createAcls(bindings)
        } catch {
            let failed = (error as? ControllerError) ?? .storage("\(error)")
            outcomes = bindings.map { _ in failed }
        }
        resp.results = outcomes.map { e in
            var r = CreateAclsResponse.AclCreationResult()
            r.errorCode = e?.kafkaErrorCode ?? KafkaErrorCode.none
            r.errorMessage = e?.description
            return r
        }
        return resp
    }

    func deleteAcls(_ req: DeleteAclsRequest, version: Int16) -> DeleteAclsResponse {
        var resp = DeleteAclsResponse()
        let filters = req.filters.map { f in
            AclBindingFilter(resourceType: AclResourceType(code: f.resourceTypeFilter), resourceName: f.resourceNameFilter,
                             patternType: version >= 1 ? AclPatternType(code: f.patternTypeFilter) : .literal,
                             principal: f.principalFilter, host: f.hostFilter, operation: KafkaAclOperation(code: f.operation),
                             permission: AclPermissionType(code: f.permissionType))
        }
        let outcomes: [Result<[AclBinding], ControllerError>]
        do {
            outcomes = try controller.deleteAcls(filters)
        } catch {
            let (code, message) = ControllerService.errorFields(error)
            resp.filterResults = filters.map { _ in
                var r = DeleteAclsResponse.DeleteAclsFilterResult()
                r.errorCode = code
                r.errorMessage = message
                return r
            }
            return resp
        }
        resp.filterResults = outcomes.map { outcome in
            var r = DeleteAclsResponse.DeleteAclsFilterResult()
            switch outcome {
            case .failure(let e):
                r.errorCode = e.kafkaErrorCode
                r.errorMessage = e.description
            case .success(let deleted):
                r.errorMessage = nil
                r.matchingAcls = deleted.map { b in
                    var m = DeleteAclsResponse.DeleteAclsMatchingAcl()
                    m.errorMessage = nil
                    m.resourceType = b.resourceType.rawValue
                    m.resourceName = b.resourceName
                    m.patternType = b.patternType.rawValue
                    m.principal = b.principal
                    m.host = b.host
                    m.operation = b.operation.rawValue
                    m.permissionType = b.permission.rawValue
                    return m
                }
            }
            return r
        }
        return resp
    }
}
