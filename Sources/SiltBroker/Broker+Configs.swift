import Foundation
import NIOCore
import SiltController
import SiltNet
import SiltNode
import SiltProtocol

/// AlterConfigs and IncrementalAlterConfigs: the broker checks what only it knows (a BROKER
/// resource must name this node or ""), forwards the rest to the controller, which
/// validates and commits, and answers once its metadata copy shows the change.
extension Broker {
    static let controllerAlterConfigsVersion: Int16 = 2
    static let controllerIncrementalAlterConfigsVersion: Int16 = 1

    /// The effective value of a topic config (see `TopicConfigResolver` for the order).
    func topicConfig(_ topic: TopicInfo, _ key: String, image: MetadataImage) -> String {
        TopicConfigResolver(config: config, image: image, nodeId: nodeId).value(key, topic: topic)
    }

    /// Why this broker refuses a resource before forwarding it, or nil.
    func localConfigRefusal(type: Int8, name: String) -> String? {
        guard type == ConfigResource.brokerType, !name.isEmpty, name != String(nodeId) else { return nil }
        return "Unexpected broker id, expected \(nodeId) or empty string, but received \(name)."
    }

    func alterConfigs(_ req: AlterConfigsRequest, _ r: Request) -> EventLoopFuture<AlterConfigsResponse?> {
        var fwd = req
        fwd.resources = req.resources.filter { localConfigRefusal(type: $0.resourceType, name: $0.resourceName) == nil }
        let forwarded = fwd
        let answered: EventLoopFuture<[AlterConfigsResponse.AlterConfigsResourceResponse]> = forwarded.resources.isEmpty
            ? r.eventLoop.makeSucceededFuture([])
            : forward(forwarded, version: Broker.controllerAlterConfigsVersion, r).map(\.responses).recover { error in
                forwarded.resources.map { res in
                    var out = AlterConfigsResponse.AlterConfigsResourceResponse()
                    out.resourceType = res.resourceType
                    out.resourceName = res.resourceName
                    out.errorCode = ErrorCode.requestTimedOut
                    out.errorMessage = "The controller did not answer: \(error)"
                    return out
                }
            }
        return answered.map { results in
            var remote = results[...]
            var resp = AlterConfigsResponse()
            resp.responses = req.resources.map { res in
                if let refusal = self.localConfigRefusal(type: res.resourceType, name: res.resourceName) {
                    var out = AlterConfigsResponse.AlterConfigsResourceResponse()
                    out.resourceType = res.resourceType
                    out.resourceName = res.resourceName
                    out.errorCode = ErrorCode.invalidRequest
                    out.errorMessage = refusal
                    return out
                }
                return remote.popFirst()!
            }
            return resp
        }
    }

    func incrementalAlterConfigs(_ req: IncrementalAlterConfigsRequest, _ r: Request)
        -> EventLoopFuture<IncrementalAlterConfigsResponse?>
    {
        var fwd = req
        fwd.resources = req.resources.filter { localConfigRefusal(type: $0.resourceType, name: $0.resourceName) == nil }
        let forwarded = fwd
        let answered: EventLoopFuture<[IncrementalAlterConfigsResponse.AlterConfigsResourceResponse]> = forwarded.resources.isEmpty
            ? r.eventLoop.makeSucceededFuture([])
            : forward(forwarded, version: Broker.controllerIncrementalAlterConfigsVersion, r).map(\.responses).recover { error in
                forwarded.resources.map { res in
                    var out = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse()
                    out.resourceType = res.resourceType
                    out.resourceName = res.resourceName
                    out.errorCode = ErrorCode.requestTimedOut
                    out.errorMessage = "The controller did not answer: \(error)"
                    return out
                }
            }
        return answered.map { results in
            var remote = results[...]
            var resp = IncrementalAlterConfigsResponse()
            resp.responses = req.resources.map { res in
                if let refusal = self.localConfigRefusal(type: res.resourceType, name: res.resourceName) {
                    var out = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse()
                    out.resourceType = res.resourceType
                    out.resourceName = res.resourceName
                    out.errorCode = ErrorCode.invalidRequest
                    out.errorMessage = refusal
                    return out
                }
                return remote.popFirst()!
            }
            return resp
        }
    }
}
