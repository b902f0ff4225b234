import Foundation
import NIOCore
import SiltConfig
import SiltController
import SiltMetadata
import SiltNet
import SiltProtocol

/// Metadata and admin APIs. Topic changes are forwarded to the controller (as KRaft
/// forwards them); the broker answers once its metadata copy has caught up, so a client
/// that created a topic can produce to it at once.
extension Broker {
    /// Versions used on the CONTROLLER listener.
    static let controllerCreateTopicsVersion: Int16 = 7
    static let controllerDeleteTopicsVersion: Int16 = 6
    static let controllerCreatePartitionsVersion: Int16 = 3
    static let controllerTimeout: TimeAmount = .seconds(30)

    // MARK: Metadata

    func metadata(_ req: MetadataRequest, _ r: Request) -> EventLoopFuture<MetadataResponse?> {
        let image = metadata.image
        // v0 has no null topic list: an empty list means "all topics" there.
        let wantsAll = req.topics == nil || (r.version == 0 && req.topics!.isEmpty)
        let allowAutoCreate = config.autoCreateTopics && (r.version < 4 || req.allowAutoTopicCreation)
        var toCreate: [String] = []
        if !wantsAll && allowAutoCreate {
            for t in req.topics! {
                guard let name = t.name, image.topic(named: name) == nil,
                      (try? MetadataController.validateTopicName(name)) != nil else { continue }
                toCreate.append(name)
            }
        }
        let created: EventLoopFuture<Set<String>> = toCreate.isEmpty
            ? r.eventLoop.makeSucceededFuture([])
            : autoCreate(Array(Set(toCreate)).sorted(), r)
        return created.map { failed in self.metadataResponse(req, r, wantsAll: wantsAll, autoCreateFailed: failed) }
    }

    /// Creates topics with the broker defaults; returns the names that could not be created.
    private func autoCreate(_ names: [String], _ r: Request) -> EventLoopFuture<Set<String>> {
        var req = CreateTopicsRequest()
        req.topics = names.map { name in
            var t = CreateTopicsRequest.CreatableTopic()
            t.name = name
            t.numPartitions = -1
            t.replicationFactor = -1
            return t
        }
        return forward(req, version: Broker.controllerCreateTopicsVersion, r).map { resp in
            var failed = Set<String>()
            for t in resp.topics where t.errorCode != 0 && t.errorCode != 36 {   // 36: created meanwhile
                failed.insert(t.name)
                r.logger.warning("auto-creating topic failed", metadata: ["topic": "\(t.name)", "error": "\(t.errorMessage ?? "")"])
            }
            for t in resp.topics where t.errorCode == 0 {
                r.logger.info("auto-created topic", metadata: ["topic": "\(t.name)"])
            }
            return failed
        }.recover { error in
            r.logger.warning("auto-creating topics failed: \(error)")
            return Set(names)
        }
    }

    /// The response. The authorized operations the request asks for are the gate's
    /// (Broker+Authorization.swift); left at Int32.min, "not requested", otherwise.
    private func metadataResponse(_ req: MetadataRequest, _ r: Request, wantsAll: Bool,
                                  autoCreateFailed: Set<String>) -> MetadataResponse {
        metadataTopicsResponse(req, r, wantsAll: wantsAll, autoCreateFailed: autoCreateFailed)
    }

    /// A Metadata answer without topics: the live brokers, the cluster id and the controller.
    func metadataSkeleton(_ r: Request, _ image: MetadataImage) -> MetadataResponse {
        var resp = MetadataResponse()
        resp.brokers = liveBrokerEndpoints(image, listenerName: r.context.listenerName).map { b in
            var broker = MetadataResponse.MetadataResponseBroker()
            (broker.nodeId, broker.host, broker.port, broker.rack) = (b.id, b.host, b.port, b.rack)
            return broker
        }
        resp.clusterId = clusterId
        // KRaft answers with a live broker: clients cannot reach the controllers.
        resp.controllerId = resp.brokers.contains { $0.nodeId == nodeId } ? nodeId : (resp.brokers.first?.nodeId ?? -1)
        return resp
    }

    private func metadataTopicsResponse(_ req: MetadataRequest, _ r: Request, wantsAll: Bool,
                                        autoCreateFailed: Set<String>) -> MetadataResponse {
        let image = metadata.image
        var resp = metadataSkeleton(r, image)
        let topicMetadata = { (topic: TopicInfo) in Broker.topicMetadata(topic, image) }
        if wantsAll {
            resp.topics = image.topicsByName.keys.sorted().map { topicMetadata(image.topicsByName[$0]!) }
            return resp
        }
        let allowAutoCreate = config.autoCreateTopics && (r.version < 4 || req.allowAutoTopicCreation)
        for t in req.topics! {
            var out = MetadataResponse.MetadataResponseTopic()
            if r.version >= 10, t.topicId != .zero, t.name == nil {
                if let topic = image.topic(id: t.topicId.foundation) {
                    resp.topics.append(topicMetadata(topic))
                } else {
                    out.errorCode = ErrorCode.unknownTopicId
                    out.topicId = t.topicId
                    resp.topics.append(out)
                }
                continue
            }
            let name = t.name ?? ""
            out.name = name
            if let topic = image.topic(named: name) {
                resp.topics.append(topicMetadata(topic))
            } else if (try? MetadataController.validateTopicName(name)) == nil {
                out.errorCode = ErrorCode.invalidTopic
                resp.topics.append(out)
            } else if allowAutoCreate && autoCreateFailed.contains(name) {
                out.errorCode = ErrorCode.leaderNotAvailable   // retriable: the client asks again
                resp.topics.append(out)
            } else {
                out.errorCode = ErrorCode.unknownTopicOrPartition
                resp.topics.append(out)
            }
        }
        return resp
    }

    /// A topic's partitions with their leaders as the metadata log records them. A partition
    /// without a live leader has LEADER_NOT_AVAILABLE, its broker listed offline.
    static func topicMetadata(_ topic: TopicInfo, _ image: MetadataImage) -> MetadataResponse.MetadataResponseTopic {
        var out = MetadataResponse.MetadataResponseTopic()
        out.name = topic.name
        out.topicId = topic.id.kafka
        out.isInternal = topic.name == Broker.offsetsTopic
        out.partitions = (0..<topic.partitionCount).map { p in
            var part = MetadataResponse.MetadataResponsePartition()
            part.partitionIndex = p
            let leadership = image.leadership(topic: topic, partition: p)
            part.leaderId = leadership?.leader ?? -1
            part.leaderEpoch = leadership?.leaderEpoch ?? -1
            part.replicaNodes = leadership?.replicas ?? []
            if part.leaderId >= 0 {
                part.isrNodes = [part.leaderId]
                part.offlineReplicas = []
            } else {
                part.errorCode = ErrorCode.leaderNotAvailable
                part.isrNodes = []
                part.offlineReplicas = part.replicaNodes
            }
            return part
        }
        return out
    }

    /// Sends a topic change to the controller, then catches the metadata copy up (and opens
    /// the partitions this broker now leads) so the change is visible here before the client
    /// hears about it.
    func forward<R: KafkaRequest>(_ req: R, version: Int16, _ r: Request) -> EventLoopFuture<R.Response> {
        controllerChannel.send(req, version: version, timeout: Broker.controllerTimeout)
            .hop(to: r.eventLoop)
            .flatMap { resp in self.metadata.catchUp(on: r.eventLoop).map { resp } }
            .flatMap { resp in self.whenPartitionsOpen(on: r.eventLoop, within: .seconds(5)).map { resp } }
    }

    // MARK: CreateTopics, DeleteTopics, CreatePartitions

    func createTopics(_ req: CreateTopicsRequest, _ r: Request) -> EventLoopFuture<CreateTopicsResponse?> {
        forward(req, version: Broker.controllerCreateTopicsVersion, r).map { Optional($0) }.recover { error in
            r.logger.warning("CreateTopics: controller unavailable: \(error)")
            var resp = CreateTopicsResponse()
            resp.topics = req.topics.map { t in
                var out = CreateTopicsResponse.CreatableTopicResult()
                out.name = t.name
                out.errorCode = ErrorCode.requestTimedOut
                out.errorMessage = "The controller did not answer: \(error)"
                out.configs = nil
                return out
            }
            return resp
        }
    }

    func deleteTopics(_ req: DeleteTopicsRequest, _ r: Request) -> EventLoopFuture<DeleteTopicsResponse?> {
        var forwarded = DeleteTopicsRequest()
        forwarded.timeoutMs = req.timeoutMs
        forwarded.topics = r.version >= 6 ? req.topics : req.topicNames.map { name in
            var t = DeleteTopicsRequest.DeleteTopicState()
            t.name = name
            return t
        }
        return forward(forwarded, version: Broker.controllerDeleteTopicsVersion, r).map { Optional($0) }.recover { error in
            var resp = DeleteTopicsResponse()
            resp.responses = forwarded.topics.map { t in
                var out = DeleteTopicsResponse.DeletableTopicResult()
                out.name = t.name
                out.topicId = t.topicId
                out.errorCode = ErrorCode.requestTimedOut
                out.errorMessage = "The controller did not answer: \(error)"
                return out
            }
            return resp
        }
    }

    func createPartitions(_ req: CreatePartitionsRequest, _ r: Request) -> EventLoopFuture<CreatePartitionsResponse?> {
        forward(req, version: Broker.controllerCreatePartitionsVersion, r).map { Optional($0) }.recover { error in
            var resp = CreatePartitionsResponse()
            resp.results = req.topics.map { t in
                var out = CreatePartitionsResponse.CreatePartitionsTopicResult()
                out.name = t.name
                out.errorCode = ErrorCode.requestTimedOut
                out.errorMessage = "The controller did not answer: \(error)"
                return out
            }
            return resp
        }
    }

    // MARK: DescribeConfigs

    /// Kafka's DescribeConfigs config type codes.
    static func kafkaConfigType(_ t: ConfigType) -> Int8 {
        switch t {
        case .bool: return 1
        case .string: return 2
        case .int: return 3
        case .long: return 5
        case .double: return 6
        case .list: return 7
        case .password: return 9
        }
    }

    func describeConfigs(_ req: DescribeConfigsRequest, _ r: Request) -> EventLoopFuture<DescribeConfigsResponse?> {
        var resp = DescribeConfigsResponse()
        let image = metadata.image
        let resolver = TopicConfigResolver(config: config, image: image, nodeId: nodeId)
        for res in req.resources {
            var out = DescribeConfigsResponse.DescribeConfigsResult()
            out.resourceType = res.resourceType
            out.resourceName = res.resourceName
            var entries: [ConfigEntry]
            switch res.resourceType {
            case 2:   // TOPIC
                guard let topic = image.topic(named: res.resourceName) else {
                    out.errorCode = ErrorCode.unknownTopicOrPartition
                    out.errorMessage = "Topic '\(res.resourceName)' does not exist."
                    resp.results.append(out)
                    continue
                }
                entries = resolver.topicEntries(overrides: topic.configs)
            case 4:   // BROKER
                if let refusal = localConfigRefusal(type: res.resourceType, name: res.resourceName) {
                    out.errorCode = ErrorCode.invalidRequest
                    out.errorMessage = refusal
                    resp.results.append(out)
                    continue
                }
                entries = resolver.brokerEntries(node: res.resourceName.isEmpty ? nil : nodeId)
            case ConfigResource.groupType:
                // As Kafka: a group that does not exist (yet) is described with its defaults.
                entries = GroupConfigKeys.entries(overrides: image.groupConfigs[res.resourceName] ?? [:], config: config)
            default:
                out.errorCode = ErrorCode.invalidRequest
                out.errorMessage = "Resource type \(res.resourceType) is not supported."
                resp.results.append(out)
                continue
            }
            if let keys = res.configurationKeys, !keys.isEmpty {
                let wanted = Set(keys)
                entries = entries.filter { wanted.contains($0.name) }
            }
            out.configs = entries.map { e in
                var c = DescribeConfigsResponse.DescribeConfigsResourceResult()
                c.name = e.name
                c.value = e.value
                c.readOnly = e.readOnly
                c.isDefault = e.source == ConfigSource.defaultConfig
                c.configSource = e.source
                c.isSensitive = e.sensitive
                if req.includeSynonyms {
                    c.synonyms = e.synonyms.map { s in
                        var syn = DescribeConfigsResponse.DescribeConfigsSynonym()
                        syn.name = s.name
                        syn.value = s.value
                        syn.source = s.source
                        return syn
                    }
                }
                c.configType = Broker.kafkaConfigType(e.type)
                c.documentation = req.includeDocumentation ? e.doc : nil
                return c
            }
            resp.results.append(out)
        }
        return r.succeed(resp)
    }

    // MARK: DescribeCluster

    /// DescribeQuorum goes to the controller, as a KRaft broker forwards it; an unreachable
    /// controller is an error in the response, not a dropped connection.
    func describeQuorum(_ req: DescribeQuorumRequest, _ r: Request) -> EventLoopFuture<DescribeQuorumResponse?> {
        controllerChannel.send(req, version: r.header.requestApiVersion, timeout: Broker.controllerTimeout)
            .hop(to: r.eventLoop).map { Optional($0) }.recover { error in
                r.logger.warning("DescribeQuorum: controller unavailable: \(error)")
                var resp = DescribeQuorumResponse()
                resp.errorCode = ErrorCode.requestTimedOut
                resp.errorMessage = "The controller did not answer: \(error)"
                return resp
            }
    }

    func describeCluster(_ req: DescribeClusterRequest, _ r: Request) -> EventLoopFuture<DescribeClusterResponse?> {
        var resp = DescribeClusterResponse()
        resp.clusterId = clusterId
        resp.endpointType = req.endpointType
        switch req.endpointType {
        case 1:   // brokers
            resp.brokers = liveBrokerEndpoints(metadata.image, listenerName: r.context.listenerName).map { b in
                var out = DescribeClusterResponse.DescribeClusterBroker()
                (out.brokerId, out.host, out.port, out.rack) = (b.id, b.host, b.port, b.rack)
                return out
            }
            resp.controllerId = nodeId
        case 2:   // controllers
            resp.brokers = config.quorumVoters.map { v in
                var b = DescribeClusterResponse.DescribeClusterBroker()
                b.brokerId = v.id
                b.host = v.host
                b.port = Int32(v.port)
                return b
            }
            resp.controllerId = nodeId
        default:
            resp.errorCode = ErrorCode.unsupportedEndpointType
            resp.errorMessage = "Endpoint type \(req.endpointType) is not supported."
        }
        return r.succeed(resp)
    }
}
