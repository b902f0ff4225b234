import Foundation
import NIOCore
import SiltConfig
import SiltController
import SiltMetadata
import SiltNet
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
        typealias Out = AlterConfigsResponse.AlterConfigsResourceResponse
        return forwardPerResource(req.resources, type: \.resourceType, name: \.resourceName, r,
            answer: { res, code, message -> Out in
                var out = Out()
                out.resourceType = res.resourceType
                out.resourceName = res.resourceName
                out.errorCode = code
                out.errorMessage = message
                return out
            },
            forward: { resources in
                var fwd = req
                fwd.resources = resources
                return self.forward(fwd, version: Broker.controllerAlterConfigsVersion, r).map(\.responses)
            }
        ).map { responses in
            var resp = AlterConfigsResponse()
            resp.responses = responses
            return resp
        }
    }

    func incrementalAlterConfigs(_ req: IncrementalAlterConfigsRequest, _ r: Request)
        -> EventLoopFuture<IncrementalAlterConfigsResponse?>
    {
        typealias Out = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse
        return forwardPerResource(req.resources, type: \.resourceType, name: \.resourceName, r,
            answer: { res, code, message -> Out in
                var out = Out()
                out.resourceType = res.resourceType
                out.resourceName = res.resourceName
                out.errorCode = code
                out.errorMessage = message
                return out
            },
            forward: { resources in
                var fwd = req
                fwd.resources = resources
                return self.forward(fwd, version: Broker.controllerIncrementalAlterConfigsVersion, r).map(\.responses)
            }
        ).map { responses in
            var resp = IncrementalAlterConfigsResponse()
            resp.responses = responses
            return resp
        }
    }

    /// Answers the resources this broker refuses itself, forwards the others in one request
    /// (`forward` gets them in request order and answers them in the same order), and puts
    /// the answers back in request order. A controller that does not answer times out
    /// every forwarded resource.
    private func forwardPerResource<Resource, Out>(
        _ resources: [Resource], type: KeyPath<Resource, Int8>, name: KeyPath<Resource, String>, _ r: Request,
        answer: @escaping (Resource, Int16, String?) -> Out,
        forward: ([Resource]) -> EventLoopFuture<[Out]>
    ) -> EventLoopFuture<[Out]> {
        let refusals = resources.map { localConfigRefusal(type: $0[keyPath: type], name: $0[keyPath: name]) }
        let forwarded = zip(resources, refusals).filter { $0.1 == nil }.map(\.0)
        let answered: EventLoopFuture<[Out]> = forwarded.isEmpty
            ? r.eventLoop.makeSucceededFuture([])
            : forward(forwarded).recover { error in
                forwarded.map { answer($0, ErrorCode.requestTimedOut, "The controller did not answer: \(error)") }
            }
        return answered.map { results in
            var remote = results[...]
            return zip(resources, refusals).map { res, refusal in
                if let refusal { return answer(res, ErrorCode.invalidRequest, refusal) }
                return remote.popFirst()!
            }
        }
    }
}
