import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SiltAuthorizer
import SiltMetadata
import SiltProtocol

/// The ACL APIs. CreateAcls and DeleteAcls go to the controller (as KRaft forwards them),
/// which validates and writes the records; the broker answers once its own image holds the
/// change. DescribeAcls is served from this broker's image. Without an authorizer
/// (`authorizer.class.name` unset) all three answer SECURITY_DISABLED, as Kafka does.
/// Whether the caller may use them at all is the gate's business (Broker+Authorization.swift).
extension Broker {
    static let controllerCreateAclsVersion: Int16 = 3
    static let controllerDeleteAclsVersion: Int16 = 3
    static let securityDisabledMessage = "No Authorizer is configured."

    /// The authorizer of the moment: the settings from the config and the ACLs of the
    /// metadata image (rebuilt by `aclsChanged` when they change).
    var currentAuthorizer: Authorizer { authorizerBox.withLockedValue { $0 } }

    /// Rebuilds the authorizer when the image's ACLs changed (called in log order).
    func aclsChanged(from old: MetadataImage, to new: MetadataImage) {
        guard old.acls != new.acls else { return }
        let settings = authorizerSettings
        let next = Authorizer(settings: settings, acls: new.sortedAcls.map { $0.binding })
        authorizerBox.withLockedValue { $0 = next }
    }

    func createAcls(_ req: CreateAclsRequest, _ r: Request) -> EventLoopFuture<CreateAclsResponse?> {
        guard currentAuthorizer.enabled else {
            var resp = CreateAclsResponse()
            resp.results = req.creations.map { _ in
                var out = CreateAclsResponse.AclCreationResult()
                out.errorCode = KafkaErrorCode.securityDisabled
                out.errorMessage = Broker.securityDisabledMessage
                return out
            }
            return r.succeed(resp)
        }
        var fwd = req
        if r.version == 0 {   // v0 has no pattern type: every binding is LITERAL
            for i in fwd.creations.indices { fwd.creations[i].resourcePatternType = AclPatternType.literal.rawValue }
        }
        return forward(fwd, version: Broker.controllerCreateAclsVersion, r).map { Optional($0) }.recover { error in
            var resp = CreateAclsResponse()
            resp.results = req.creations.map { _ in
                var out = CreateAclsResponse.AclCreationResult()
                out.errorCode = ErrorCode.requestTimedOut
                out.errorMessage = "The controller did not answer: \(error)"
                return out
            }
            return resp
        }
    }

    func deleteAcls(_ req: DeleteAclsRequest, _ r: Request) -> EventLoopFuture<DeleteAclsResponse?> {
        guard currentAuthorizer.enabled else {
            var resp = DeleteAclsResponse()
            resp.filterResults = req.filters.map { _ in
                var out = DeleteAclsResponse.DeleteAclsFilterResult()
                out.errorCode = KafkaErrorCode.securityDisabled
                out.errorMessage = Broker.securityDisabledMessage
                return out
            }
            return r.succeed(resp)
        }
        var fwd = req
        if r.version == 0 {
            for i in fwd.filters.indices { fwd.filters[i].patternTypeFilter = AclPatternType.literal.rawValue }
        }
        return forward(fwd, version: Broker.controllerDeleteAclsVersion, r).map { Optional($0) }.recover { error in
            var resp = DeleteAclsResponse()
            resp.filterResults = req.filters.map { _ in
                var out = DeleteAclsResponse.DeleteAclsFilterResult()
                out.errorCode = ErrorCode.requestTimedOut
                out.errorMessage = "The controller did not answer: \(error)"
                return out
            }
            return resp
        }
    }

    func describeAcls(_ req: DescribeAclsRequest, _ r: Request) -> EventLoopFuture<DescribeAclsResponse?> {
        var resp = DescribeAclsResponse()
        let az = currentAuthorizer
        guard az.enabled else {
            resp.errorCode = KafkaErrorCode.securityDisabled
            resp.errorMessage = Broker.securityDisabledMessage
            return r.succeed(resp)
        }
        let filter = AclBindingFilter(
            resourceType: AclResourceType(code: req.resourceTypeFilter), resourceName: req.resourceNameFilter,
            patternType: r.version >= 1 ? AclPatternType(code: req.patternTypeFilter) : .literal,
            principal: req.principalFilter, host: req.hostFilter, operation: KafkaAclOperation(code: req.operation),
            permission: AclPermissionType(code: req.permissionType))
        if let why = filter.refusal {
            resp.errorCode = ErrorCode.invalidRequest
            resp.errorMessage = why
            return r.succeed(resp)
        }
        resp.errorMessage = nil
        resp.resources = Broker.describeAclsResources(az.acls.filter(filter.matches))
        return r.succeed(resp)
    }

    /// ACLs grouped by resource pattern, as DescribeAcls answers them (sorted for a stable answer).
    static func describeAclsResources(_ acls: [AclBinding]) -> [DescribeAclsResponse.DescribeAclsResource] {
        struct Pattern: Hashable { var type: AclResourceType; var name: String; var pattern: AclPatternType }
        var groups: [Pattern: [AclBinding]] = [:]
        for a in acls { groups[Pattern(type: a.resourceType, name: a.resourceName, pattern: a.patternType), default: []].append(a) }
        return groups.keys.sorted { ($0.type.rawValue, $0.name, $0.pattern.rawValue) < ($1.type.rawValue, $1.name, $1.pattern.rawValue) }
            .map { p in
                var res = DescribeAclsResponse.DescribeAclsResource()
                res.resourceType = p.type.rawValue
                res.resourceName = p.name
                res.patternType = p.pattern.rawValue
                res.acls = groups[p]!.map { a in
                    var d = DescribeAclsResponse.AclDescription()
                    d.principal = a.principal
                    d.host = a.host
                    d.operation = a.operation.rawValue
                    d.permissionType = a.permission.rawValue
                    return d
                }
                return res
            }
    }
}
