import SiltConfig
import SiltMetadata

/// The one place that decides a config's effective value, for the broker (produce,
/// DescribeConfigs) and the controller (retention, CreateTopics answers) alike.
///
/// A topic key resolves as Kafka resolves it, first hit wins:
///
/// ```
///  topic override          retention.ms                     DYNAMIC_TOPIC_CONFIG (1)
///  dynamic, this node      log.retention.ms  (node id)      DYNAMIC_BROKER_CONFIG (2)
///  dynamic, every node     log.retention.ms  (resource "")  DYNAMIC_DEFAULT_BROKER_CONFIG (3)
///  server.properties       log.retention.ms / .hours        STATIC_BROKER_CONFIG (4)
///  built-in default                                         DEFAULT_CONFIG (5)
/// ```
///
/// The dynamic layers live in the metadata log (`MetadataRecord.brokerConfig`), so every
/// process that follows the log resolves the same value.
public struct TopicConfigResolver: Sendable {
    public let config: ServerConfig
    public let nodeId: Int32
    /// Dynamic broker configs by node (`MetadataRecord.clusterDefaultNode` for "").
    public let brokerConfigs: [Int32: [String: String]]

    public init(config: ServerConfig, image: MetadataImage, nodeId: Int32? = nil) {
        self.config = config
        self.nodeId = nodeId ?? config.nodeId
        self.brokerConfigs = image.brokerConfigs
    }

    /// Broker keys that AlterConfigs may change at run time: the broker synonyms of the
    /// topic keys (Kafka's per-broker log configs), and the keys Kafka reconfigures that Silt
    /// stores without effect (`ServerConfig.ignoredDynamicKeys`). The others need a restart.
    public static let dynamicBrokerKeys: Set<String> =
        Set(TopicConfig.defs.compactMap(\.brokerSynonym)).union(ServerConfig.ignoredDynamicKeys.keys)

    /// The effective value of topic key `key` for a topic with `overrides`.
    public func value(_ key: String, overrides: [String: String]) -> String {
        // On the produce and fetch paths: the first layer that has a value, without building
        // the synonym list `layers` makes for DescribeConfigs (same order).
        guard let def = TopicConfig.defsByName[key] else { preconditionFailure("\(key) is not a topic config") }
        if let v = overrides[key] { return v }
        if let syn = def.brokerSynonym {
            if let v = brokerConfigs[nodeId]?[syn] ?? brokerConfigs[MetadataRecord.clusterDefaultNode]?[syn] { return v }
        }
        let (staticValue, fromBroker) = config.topicDefault(key)
        if fromBroker, let staticValue { return staticValue }
        return (ServerConfig.keyDef(def.brokerSynonym ?? key)?.defaultValue ?? def.key.defaultValue)!
    }

    public func value(_ key: String, topic: TopicInfo) -> String { value(key, overrides: topic.configs) }

    /// Every topic config with its effective value, source and synonyms (most specific first).
    public func topicEntries(overrides: [String: String]) -> [ConfigEntry] {
        TopicConfig.defs.map { def in
            let synonyms = layers(topicKey: def.key.name, overrides: overrides)
            return ConfigEntry(name: def.key.name, value: synonyms[0].value, source: synonyms[0].source, readOnly: false,
                               sensitive: false, type: def.key.type, doc: def.key.doc, synonyms: synonyms)
        }
    }

    /// The BROKER resource of node `node` (every broker key, effective values), or of ""
    /// (`node == nil`: only the cluster-wide dynamic defaults, as Kafka lists them).
    public func brokerEntries(node: Int32?) -> [ConfigEntry] {
        guard let node else {
            let defaults = brokerConfigs[MetadataRecord.clusterDefaultNode] ?? [:]
            return ServerConfig.keyDefs.compactMap { def in
                guard let v = defaults[def.name] else { return nil }
                return ConfigEntry(name: def.name, value: v, source: ConfigSource.dynamicDefaultBroker, readOnly: false,
                                   sensitive: def.isSensitive, type: def.type, doc: def.doc,
                                   synonyms: [(def.name, v, ConfigSource.dynamicDefaultBroker)])
            }
        }
        return ServerConfig.keyDefs.map { def in
            var synonyms: [(name: String, value: String?, source: Int8)] = []
            if let v = brokerConfigs[node]?[def.name] { synonyms.append((def.name, v, ConfigSource.dynamicBroker)) }
            if let v = brokerConfigs[MetadataRecord.clusterDefaultNode]?[def.name] {
                synonyms.append((def.name, v, ConfigSource.dynamicDefaultBroker))
            }
            let (staticValue, isDefault) = config.value(def.name)
            synonyms.append((def.name, staticValue, isDefault ? ConfigSource.defaultConfig : ConfigSource.staticBroker))
            if def.isSensitive { synonyms = synonyms.map { ($0.name, nil, $0.source) } }
            return ConfigEntry(name: def.name, value: synonyms[0].value, source: synonyms[0].source,
                               readOnly: !TopicConfigResolver.dynamicBrokerKeys.contains(def.name),
                               sensitive: def.isSensitive, type: def.type, doc: def.doc, synonyms: synonyms)
        }
    }

    /// The layers of a topic key that hold a value, most specific first; the last is the
    /// built-in default, so the list is never empty.
    private func layers(topicKey key: String, overrides: [String: String]) -> [(name: String, value: String?, source: Int8)] {
        let def = TopicConfig.defsByName[key]!
        var out: [(name: String, value: String?, source: Int8)] = []
        if let v = overrides[key] { out.append((key, v, ConfigSource.dynamicTopic)) }
        if let syn = def.brokerSynonym {
            if let v = brokerConfigs[nodeId]?[syn] { out.append((syn, v, ConfigSource.dynamicBroker)) }
            if let v = brokerConfigs[MetadataRecord.clusterDefaultNode]?[syn] {
                out.append((syn, v, ConfigSource.dynamicDefaultBroker))
            }
        }
        let (staticValue, fromBroker) = config.topicDefault(key)
        if fromBroker { out.append((def.brokerSynonym ?? key, staticValue, ConfigSource.staticBroker)) }
        out.append((def.brokerSynonym ?? key, ServerConfig.keyDef(def.brokerSynonym ?? key)?.defaultValue ?? def.key.defaultValue,
                    ConfigSource.defaultConfig))
        return out
    }
}
