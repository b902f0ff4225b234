import Foundation
import SiltConfig
import SiltProtocol

/// AlterConfigs and IncrementalAlterConfigs, forwarded by brokers (as KRaft forwards them).
/// Each resource is validated and committed on its own: one bad resource fails alone.
extension ControllerService {
    func alterConfigs(_ req: AlterConfigsRequest) -> AlterConfigsResponse {
        var resp = AlterConfigsResponse()
        let resources = req.resources.map { ConfigResource(type: $0.resourceType, name: $0.resourceName) }
        let duplicated = ControllerService.duplicates(resources)
        resp.responses = zip(req.resources, resources).map { res, resource in
            var out = AlterConfigsResponse.AlterConfigsResourceResponse()
            out.resourceType = res.resourceType
            out.resourceName = res.resourceName
            out.errorMessage = nil
            (out.errorCode, out.errorMessage) = apply(resource, duplicated: duplicated, replaceAll: true,
                                                      validateOnly: req.validateOnly,
                                                      changes: res.configs.map { ConfigChange(name: $0.name, op: .set, value: $0.value) })
            return out
        }
        return resp
    }

    func incrementalAlterConfigs(_ req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
        var resp = IncrementalAlterConfigsResponse()
        let resources = req.resources.map { ConfigResource(type: $0.resourceType, name: $0.resourceName) }
        let duplicated = ControllerService.duplicates(resources)
        resp.responses = zip(req.resources, resources).map { res, resource in
            var out = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse()
            out.resourceType = res.resourceType
            out.resourceName = res.resourceName
            var changes: [ConfigChange] = []
            for c in res.configs {
                guard let op = ConfigChange.Op(rawValue: c.configOperation) else {
                    out.errorCode = KafkaErrorCode.invalidRequest
                    out.errorMessage = "Unknown config operation \(c.configOperation) for '\(c.name)'."
                    return out
                }
                changes.append(ConfigChange(name: c.name, op: op, value: c.value))
            }
            (out.errorCode, out.errorMessage) = apply(resource, duplicated: duplicated, replaceAll: false,
                                                      validateOnly: req.validateOnly, changes: changes)
            return out
        }
        return resp
    }

    private func apply(_ resource: ConfigResource, duplicated: Set<ConfigResource>, replaceAll: Bool, validateOnly: Bool,
                       changes: [ConfigChange]) -> (Int16, String?) {
        guard !duplicated.contains(resource) else {
            return (42, "Each resource must appear at most once in a request; \(resource) appears more than once.")
        }
        do {
            try controller.alterConfigs(resource, changes: changes, replaceAll: replaceAll, validateOnly: validateOnly,
                                        staticConfig: config)
            return (0, nil)
        } catch {
            return ControllerService.errorFields(error)
        }
    }

    static func duplicates(_ resources: [ConfigResource]) -> Set<ConfigResource> {
        var seen = Set<ConfigResource>(), dup = Set<ConfigResource>()
        for r in resources where !seen.insert(r).inserted { dup.insert(r) }
        return dup
    }
}
