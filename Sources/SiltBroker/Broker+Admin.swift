import Foundation
import NIOCore
import SiltController
import SiltNode
import SiltProtocol

/// Metadata and admin APIs: Metadata, CreateTopics, DeleteTopics, CreatePartitions,
/// DescribeConfigs, DescribeCluster.
extension Broker {
    // MARK: Metadata

    func metadata(_ req: MetadataRequest, _ r: Request) -> EventLoopFuture<MetadataResponse?> {
        var resp = MetadataResponse()
        let endpoint = advertisedEndpoint(for: r.context.listenerName)
        var broker = MetadataResponse.MetadataResponseBroker()
        broker.nodeId = nodeId
        broker.host = endpoint.host
        broker.port = Int32(endpoint.port)
        resp.brokers = [broker]
        resp.clusterId = clusterId
        resp.controllerId = nodeId

        var image = controller.image
        // v0 has no null topic list: an empty list means "all topics" there.
        let wantsAll = req.topics == nil || (r.version == 0 && req.topics!.isEmpty)
        if wantsAll {
            resp.topics = image.topicsByName.keys.sorted().map { topicMetadata(image.topicsByName[$0]!, version: r.version) }
            return r.succeed(resp)
        }
        let allowAutoCreate = config.autoCreateTopics && (r.version < 4 || req.allowAutoTopicCreation)
        for t in req.topics! {
            var out = MetadataResponse.MetadataResponseTopic()
            if r.version >= 10, t.topicId != .zero, t.name == nil {
                // Lookup by id.
                guard let topic = image.topic(id: t.topicId.foundation) else {
                    out.errorCode = ErrorCode.unknownTopicId
                    out.topicId = t.topicId
                    resp.topics.append(out)
                    continue
                }
                resp.topics.append(topicMetadata(topic, version: r.version))
                continue
            }
            let name = t.name ?? ""
            out.name = name
            if let topic = image.topic(named: name) {
                resp.topics.append(topicMetadata(topic, version: r.version))
                continue
            }
            do {
                try MetadataController.validateTopicName(name)
            } catch {
                out.errorCode = ErrorCode.invalidTopic
                resp.topics.append(out)
                continue
            }
            guard allowAutoCreate else {
                out.errorCode = ErrorCode.unknownTopicOrPartition
                resp.topics.append(out)
                continue
            }
            do {
                let created = try createTopicAndPartitions(name: name, partitions: config.numPartitions, configs: [:])
                r.logger.info("auto-created topic", metadata: ["topic": "\(name)"])
                image = controller.image
                resp.topics.append(topicMetadata(created, version: r.version))
            } catch ControllerError.topicAlreadyExists {
                // Another connection created it first.
                image = controller.image
                resp.topics.append(image.topic(named: name).map { topicMetadata($0, version: r.version) } ?? out)
            } catch let e as ControllerError {
                out.errorCode = e.kafkaErrorCode
                resp.topics.append(out)
            } catch {
                out.errorCode = ErrorCode.unknownServerError
                resp.topics.append(out)
            }
        }
        return r.succeed(resp)
    }

    private func topicMetadata(_ topic: TopicInfo, version: Int16) -> MetadataResponse.MetadataResponseTopic {
        var out = MetadataResponse.MetadataResponseTopic()
        out.name = topic.name
        out.topicId = topic.id.kafka
        out.isInternal = false
        out.partitions = (0..<topic.partitionCount).map { p in
            var part = MetadataResponse.MetadataResponsePartition()
            part.partitionIndex = p
            part.leaderId = nodeId
            part.leaderEpoch = 0
            part.replicaNodes = [nodeId]
            part.isrNodes = [nodeId]
            part.offlineReplicas = []
            return part
        }
        return out
    }

    /// Creates a topic in the metadata and opens its partition logs.
    func createTopicAndPartitions(name: String, partitions: Int32, configs: [String: String]) throws -> TopicInfo {
        let topic = try controller.createTopic(name: name, partitions: partitions, configs: configs, validateOnly: false)
        for p in 0..<topic.partitionCount { try openPartition(topic: name, partition: p) }
        return topic
    }

    // MARK: CreateTopics

    func createTopics(_ req: CreateTopicsRequest, _ r: Request) -> EventLoopFuture<CreateTopicsResponse?> {
        var resp = CreateTopicsResponse()
        var seen: [String: Int] = [:]
        for t in req.topics { seen[t.name, default: 0] += 1 }
        for t in req.topics {
            var out = CreateTopicsResponse.CreatableTopicResult()
            out.name = t.name
            func fail(_ code: Int16, _ message: String) {
                out.errorCode = code
                out.errorMessage = message
                out.configs = nil
            }
            if seen[t.name]! > 1 {
                fail(ErrorCode.invalidRequest, "Duplicate topic name.")
                resp.topics.append(out)
                continue
            }
            var partitions = t.numPartitions
            if !t.assignments.isEmpty {
                guard t.numPartitions == -1 && t.replicationFactor == -1 else {
                    fail(ErrorCode.invalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set.")
                    resp.topics.append(out); continue
                }
                let indices = Set(t.assignments.map(\.partitionIndex))
                guard indices == Set(0..<Int32(t.assignments.count)) else {
                    fail(37, "Partition assignments must cover partitions 0..\(t.assignments.count - 1) exactly.")
                    resp.topics.append(out); continue
                }
                guard t.assignments.allSatisfy({ $0.brokerIds == [nodeId] }) else {
                    fail(39, "Every partition must be assigned to broker \(nodeId) alone.")   // INVALID_REPLICA_ASSIGNMENT
                    resp.topics.append(out); continue
                }
                partitions = Int32(t.assignments.count)
            }
            if partitions == -1 { partitions = config.numPartitions }
            if t.replicationFactor != -1 && t.replicationFactor < 1 {
                fail(38, "Replication factor must be at least 1.")
                resp.topics.append(out); continue
            }
            var configs: [String: String] = [:]
            var badConfig: String?
            for c in t.configs {
                guard let v = c.value else { badConfig = "Null value not supported for topic config '\(c.name)'."; break }
                configs[c.name] = v
            }
            if let badConfig {
                fail(40, badConfig)
                resp.topics.append(out); continue
            }
            do {
                let topic: TopicInfo
                if req.validateOnly {
                    topic = try controller.createTopic(name: t.name, partitions: partitions, configs: configs, validateOnly: true)
                } else {
                    topic = try createTopicAndPartitions(name: t.name, partitions: partitions, configs: configs)
                }
                out.topicId = req.validateOnly ? .zero : topic.id.kafka
                out.numPartitions = topic.partitionCount
                out.replicationFactor = 1
                out.configs = topicConfigEntries(overrides: configs).map { e in
                    var c = CreateTopicsResponse.CreatableTopicConfigs()
                    c.name = e.name
                    c.value = e.value
                    c.readOnly = false
                    c.configSource = e.source
                    c.isSensitive = false
                    return c
                }
            } catch let e as ControllerError {
                fail(e.kafkaErrorCode, e.description)
            } catch {
                fail(ErrorCode.unknownServerError, "\(error)")
            }
            resp.topics.append(out)
        }
        return r.succeed(resp)
    }

    // MARK: DeleteTopics

    func deleteTopics(_ req: DeleteTopicsRequest, _ r: Request) -> EventLoopFuture<DeleteTopicsResponse?> {
        var resp = DeleteTopicsResponse()
        let targets: [(name: String?, id: KafkaUUID)] = r.version >= 6
            ? req.topics.map { ($0.name, $0.topicId) }
            : req.topicNames.map { ($0, KafkaUUID.zero) }
        for t in targets {
            var out = DeleteTopicsResponse.DeletableTopicResult()
            out.name = t.name
            out.topicId = t.id
            do {
                guard config.deleteTopicEnable else { throw ControllerError.deletionDisabled }
                let useId = t.name == nil && t.id != .zero
                let deleted = try controller.deleteTopic(name: useId ? nil : t.name, id: useId ? t.id.foundation : nil)
                out.name = deleted.name
                out.topicId = deleted.id.kafka
                do {
                    try logs.deletePartitions(topic: deleted.name)
                } catch {
                    // The metadata says the topic is gone; leftover files are removed at next start.
                    r.logger.error("deleting topic data failed", metadata: ["topic": "\(deleted.name)", "error": "\(error)"])
                }
                fetchWaiters.notifyTopic(deleted.name)
            } catch let e as ControllerError {
                out.errorCode = e.kafkaErrorCode
                out.errorMessage = e.description
            } catch {
                out.errorCode = ErrorCode.unknownServerError
                out.errorMessage = "\(error)"
            }
            resp.responses.append(out)
        }
        return r.succeed(resp)
    }

    // MARK: CreatePartitions

    func createPartitions(_ req: CreatePartitionsRequest, _ r: Request) -> EventLoopFuture<CreatePartitionsResponse?> {
        var resp = CreatePartitionsResponse()
        for t in req.topics {
            var out = CreatePartitionsResponse.CreatePartitionsTopicResult()
            out.name = t.name
            do {
                if let assignments = t.assignments, !assignments.allSatisfy({ $0.brokerIds == [nodeId] }) {
                    throw ControllerError.invalidPartitions("Every new partition must be assigned to broker \(nodeId) alone.")
                }
                let before = controller.image.topic(named: t.name)?.partitionCount ?? 0
                let topic = try controller.createPartitions(name: t.name, count: t.count, validateOnly: req.validateOnly)
                if !req.validateOnly {
                    for p in before..<topic.partitionCount { try openPartition(topic: t.name, partition: p) }
                }
            } catch let e as ControllerError {
                out.errorCode = e.kafkaErrorCode
                out.errorMessage = e.description
            } catch {
                out.errorCode = ErrorCode.kafkaStorageError
                out.errorMessage = "\(error)"
            }
            resp.results.append(out)
        }
        return r.succeed(resp)
    }

    // MARK: DescribeConfigs

    /// Kafka's DescribeConfigs source codes.
    enum ConfigSource {
        static let dynamicTopic: Int8 = 1
        static let staticBroker: Int8 = 4
        static let defaultConfig: Int8 = 5
    }

    struct ConfigEntry {
        var name: String
        var value: String?
        var source: Int8
        var readOnly: Bool
        var sensitive: Bool
        var type: ConfigType
        var doc: String
        var synonyms: [(name: String, value: String?, source: Int8)]
    }

    /// Every topic config with its effective value and where it came from.
    func topicConfigEntries(overrides: [String: String]) -> [ConfigEntry] {
        TopicConfig.defs.map { def in
            let name = def.key.name
            let (brokerValue, fromBroker) = config.topicDefault(name)
            var synonyms: [(String, String?, Int8)] = []
            if let v = overrides[name] { synonyms.append((name, v, ConfigSource.dynamicTopic)) }
            if let syn = def.brokerSynonym {
                if fromBroker { synonyms.append((syn, brokerValue, ConfigSource.staticBroker)) }
                synonyms.append((syn, ServerConfig.keyDef(syn)?.defaultValue ?? def.key.defaultValue, ConfigSource.defaultConfig))
            }
            let source = overrides[name] != nil ? ConfigSource.dynamicTopic : (fromBroker ? ConfigSource.staticBroker : ConfigSource.defaultConfig)
            return ConfigEntry(name: name, value: overrides[name] ?? brokerValue, source: source, readOnly: false,
                               sensitive: false, type: def.key.type, doc: def.key.doc, synonyms: synonyms)
        }
    }

    func brokerConfigEntries() -> [ConfigEntry] {
        ServerConfig.keyDefs.map { def in
            let (value, isDefault) = config.value(def.name)
            let source = isDefault ? ConfigSource.defaultConfig : ConfigSource.staticBroker
            return ConfigEntry(name: def.name, value: def.isSensitive ? nil : value, source: source, readOnly: def.readOnly,
                               sensitive: def.isSensitive, type: def.type, doc: def.doc,
                               synonyms: [(def.name, def.isSensitive ? nil : value, source)])
        }
    }

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
        let image = controller.image
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
                entries = topicConfigEntries(overrides: topic.configs)
            case 4:   // BROKER
                guard res.resourceName.isEmpty || res.resourceName == String(nodeId) else {
                    out.errorCode = ErrorCode.invalidRequest
                    out.errorMessage = "Broker \(res.resourceName) is not this node (\(nodeId))."
                    resp.results.append(out)
                    continue
                }
                entries = brokerConfigEntries()
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

    func describeCluster(_ req: DescribeClusterRequest, _ r: Request) -> EventLoopFuture<DescribeClusterResponse?> {
        var resp = DescribeClusterResponse()
        resp.clusterId = clusterId
        resp.endpointType = req.endpointType
        switch req.endpointType {
        case 1:   // brokers
            let endpoint = advertisedEndpoint(for: r.context.listenerName)
            var b = DescribeClusterResponse.DescribeClusterBroker()
            b.brokerId = nodeId
            b.host = endpoint.host
            b.port = Int32(endpoint.port)
            resp.brokers = [b]
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
            resp.errorCode = 114   // UNSUPPORTED_ENDPOINT_TYPE
            resp.errorMessage = "Endpoint type \(req.endpointType) is not supported."
        }
        return r.succeed(resp)
    }
}
