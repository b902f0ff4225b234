/// Effective configuration values as DescribeConfigs and CreateTopics report them: each
/// key's value, where it came from, and its synonyms (Kafka's `ConfigSource` numbering).
public struct ConfigEntry: Sendable {
    public var name: String
    public var value: String?
    public var source: Int8
    public var readOnly: Bool
    public var sensitive: Bool
    public var type: ConfigType
    public var doc: String
    public var synonyms: [(name: String, value: String?, source: Int8)]

    public init(name: String, value: String?, source: Int8, readOnly: Bool, sensitive: Bool, type: ConfigType, doc: String,
                synonyms: [(name: String, value: String?, source: Int8)]) {
        self.name = name; self.value = value; self.source = source; self.readOnly = readOnly; self.sensitive = sensitive
        self.type = type; self.doc = doc; self.synonyms = synonyms
    }
}

public enum ConfigSource {
    public static let dynamicTopic: Int8 = 1
    /// Set with AlterConfigs on this node's BROKER resource.
    public static let dynamicBroker: Int8 = 2
    /// Set with AlterConfigs on the BROKER resource "" (every node).
    public static let dynamicDefaultBroker: Int8 = 3
    public static let staticBroker: Int8 = 4
    public static let defaultConfig: Int8 = 5
    /// Set with AlterConfigs on a GROUP resource (Kafka 4.0's `GROUP_CONFIG`, KIP-848).
    public static let groupConfig: Int8 = 8
}

public struct TopicConfigView: Sendable {
    public let config: ServerConfig
    public init(config: ServerConfig) { self.config = config }

    /// Every topic config with its effective value given a topic's `overrides`.
    public func entries(overrides: [String: String]) -> [ConfigEntry] {
        TopicConfig.defs.map { def in
            let name = def.key.name
            let (brokerValue, fromBroker) = config.topicDefault(name)
            var synonyms: [(String, String?, Int8)] = []
            if let v = overrides[name] { synonyms.append((name, v, ConfigSource.dynamicTopic)) }
            if let syn = def.brokerSynonym {
                if fromBroker { synonyms.append((syn, brokerValue, ConfigSource.staticBroker)) }
                synonyms.append((syn, ServerConfig.keyDef(syn)?.defaultValue ?? def.key.defaultValue, ConfigSource.defaultConfig))
            }
            let source = overrides[name] != nil
                ? ConfigSource.dynamicTopic : (fromBroker ? ConfigSource.staticBroker : ConfigSource.defaultConfig)
            return ConfigEntry(name: name, value: overrides[name] ?? brokerValue, source: source, readOnly: false,
                               sensitive: false, type: def.key.type, doc: def.key.doc, synonyms: synonyms)
        }
    }

    /// Every broker key with its effective value; secrets are never shown.
    public func brokerEntries() -> [ConfigEntry] {
        ServerConfig.keyDefs.map { def in
            let (value, isDefault) = config.value(def.name)
            let source = isDefault ? ConfigSource.defaultConfig : ConfigSource.staticBroker
            return ConfigEntry(name: def.name, value: def.isSensitive ? nil : value, source: source, readOnly: def.readOnly,
                               sensitive: def.isSensitive, type: def.type, doc: def.doc,
                               synonyms: [(def.name, def.isSensitive ? nil : value, source)])
        }
    }
}
