import SiltConfig

/// The dynamic config of one group: Kafka 4.0's GROUP config resource (KIP-848, type 32 in
/// DescribeConfigs / AlterConfigs / IncrementalAlterConfigs). Silt serves the keys of
/// KIP-848 consumer groups; each defaults to the broker key it overrides and must stay
/// within the broker's bounds:
///
///     group key                        default (broker key)                   bounds (broker keys)
///     consumer.session.timeout.ms      group.consumer.session.timeout.ms      group.consumer.{min,max}.session.timeout.ms
///     consumer.heartbeat.interval.ms   group.consumer.heartbeat.interval.ms   group.consumer.{min,max}.heartbeat.interval.ms
///
/// and the session timeout must exceed the heartbeat interval. The overrides live in the
/// metadata log (`MetadataRecord.groupConfig`), so every broker's coordinator reads the same.
public enum GroupConfigKeys {
    public static let sessionTimeoutMs = "consumer.session.timeout.ms"
    public static let heartbeatIntervalMs = "consumer.heartbeat.interval.ms"

    struct Key {
        var def: ConfigKeyDef
        var brokerDefault: String
        var brokerMin: String
        var brokerMax: String
    }

    static let keys: [Key] = [
        Key(def: ConfigKeyDef(sessionTimeoutMs, .int, "45000", .atLeast(1),
                              doc: "A KIP-848 member of this group silent this long is removed from it."),
            brokerDefault: "group.consumer.session.timeout.ms",
            brokerMin: "group.consumer.min.session.timeout.ms", brokerMax: "group.consumer.max.session.timeout.ms"),
        Key(def: ConfigKeyDef(heartbeatIntervalMs, .int, "5000", .atLeast(1),
                              doc: "How often KIP-848 members of this group are told to heartbeat."),
            brokerDefault: "group.consumer.heartbeat.interval.ms",
            brokerMin: "group.consumer.min.heartbeat.interval.ms", brokerMax: "group.consumer.max.heartbeat.interval.ms"),
    ]

    /// The definition of a group key, or nil for a key Kafka's GroupConfig would not know.
    static func keyDef(_ name: String) -> ConfigKeyDef? { keys.first { $0.def.name == name }?.def }

    /// A key's value without an override: the broker's.
    static func defaultValue(_ key: Key, _ config: ServerConfig) -> String {
        config.value(key.brokerDefault).value ?? key.def.defaultValue!
    }

    /// The effective value of every group key given the group's `overrides`.
    public static func values(overrides: [String: String], config: ServerConfig) -> [String: String] {
        Dictionary(uniqueKeysWithValues: keys.map { k in (k.def.name, overrides[k.def.name] ?? defaultValue(k, config)) })
    }

    /// The effective session timeout and heartbeat interval of a group with `overrides`.
    public static func timeouts(overrides: [String: String]?, config: ServerConfig)
        -> (sessionTimeoutMs: Int32, heartbeatIntervalMs: Int32)
    {
        let v = values(overrides: overrides ?? [:], config: config)
        return (Int32(v[sessionTimeoutMs]!)!, Int32(v[heartbeatIntervalMs]!)!)
    }

    /// DescribeConfigs of a GROUP resource: GROUP_CONFIG (8) for an override, otherwise
    /// DEFAULT_CONFIG with the broker's value (as Kafka reports it; a group that does not
    /// exist is described with its defaults).
    public static func entries(overrides: [String: String], config: ServerConfig) -> [ConfigEntry] {
        keys.map { k in
            let name = k.def.name
            let (value, source) = overrides[name].map { ($0, ConfigSource.groupConfig) }
                ?? (defaultValue(k, config), ConfigSource.defaultConfig)
            return ConfigEntry(name: name, value: value, source: source, readOnly: false, sensitive: false,
                               type: k.def.type, doc: k.def.doc, synonyms: [(name, value, source)])
        }
    }

    /// Why the group's next overrides are refused (Kafka's messages), or nil. The bounds
    /// apply to the group's own values (a broker value outside them, which Kafka would not
    /// start with, does not block the group's other key); session > heartbeat applies to the
    /// effective values, whichever key changed, since those are what the coordinator uses.
    static func refusal(_ next: [String: String], config: ServerConfig) -> String? {
        for (name, v) in next.sorted(by: { $0.key < $1.key }) {
            do { try keyDef(name)!.check(v) } catch { return "\(error)" }
        }
        let v = values(overrides: next, config: config)
        for k in keys {
            guard let own = next[k.def.name], let value = Int64(own) else { continue }
            if let min = config.value(k.brokerMin).value.flatMap(Int64.init), value < min {
                return "\(k.def.name) must be greater than or equal to \(k.brokerMin)"
            }
            if let max = config.value(k.brokerMax).value.flatMap(Int64.init), value > max {
                return "\(k.def.name) must be less than or equal to \(k.brokerMax)"
            }
        }
        if Int64(v[sessionTimeoutMs]!)! <= Int64(v[heartbeatIntervalMs]!)! {
            return "\(sessionTimeoutMs) must be greater than \(heartbeatIntervalMs)"
        }
        return nil
    }
}
