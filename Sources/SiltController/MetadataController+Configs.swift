import Foundation
import SiltConfig
import SiltMetadata

/// A config resource as AlterConfigs / DescribeConfigs name it.
public struct ConfigResource: Hashable, Sendable, CustomStringConvertible {
    public static let topicType: Int8 = 2
    public static let brokerType: Int8 = 4
    /// KIP-848's group configs (Kafka 4.0), see `GroupConfigKeys`.
    public static let groupType: Int8 = 32

    public var type: Int8
    public var name: String
    public init(type: Int8, name: String) { self.type = type; self.name = name }
    public var description: String {
        switch type {
        case ConfigResource.topicType: return "topic '\(name)'"
        case ConfigResource.groupType: return "group '\(name)'"
        default: return "broker '\(name)'"
        }
    }
}

/// One change of an (Incremental)AlterConfigs resource.
public struct ConfigChange: Equatable, Sendable {
    /// Kafka's `AlterConfigOp.OpType` codes.
    public enum Op: Int8, Sendable { case set = 0, delete = 1, append = 2, subtract = 3 }
    public var name: String
    public var op: Op
    public var value: String?
    public init(name: String, op: Op, value: String?) { self.name = name; self.op = op; self.value = value }
}

/// Config changes: the controller validates the whole resource, then writes one record per
/// changed key (`topicConfig` / `brokerConfig`), all in one append, so a resource changes
/// atomically. Every refusal writes nothing.
extension MetadataController {
    /// Changes the dynamic configs of `resource`. `replaceAll` is the legacy AlterConfigs:
    /// `changes` (all `.set`) become the resource's whole override set and every other key
    /// returns to its inherited value. Otherwise (IncrementalAlterConfigs) each change
    /// applies on top of the current overrides. `staticConfig` supplies the values APPEND
    /// and SUBTRACT start from when a key has no override. Returns the new overrides.
    @discardableResult
    public func alterConfigs(_ resource: ConfigResource, changes: [ConfigChange], replaceAll: Bool, validateOnly: Bool,
                             staticConfig: ServerConfig) throws -> [String: String] {
        var names = Set<String>()
        for c in changes where !names.insert(c.name).inserted {
            throw ControllerError.invalidRequest("Error due to duplicate config keys: '\(c.name)' appears twice for \(resource).")
        }
        return try mutate {
            let image = _image
            let target = try MetadataController.resolveTarget(resource, image)
            let current: [String: String]
            switch target {
            case .topic(let t): current = t.configs
            case .broker(let node): current = image.brokerConfigs[node] ?? [:]
            case .group(let group): current = image.groupConfigs[group] ?? [:]
            }
            let resolver = TopicConfigResolver(config: staticConfig, image: image)
            var next = replaceAll ? [:] : current
            for c in changes {
                let def = try MetadataController.keyDef(c.name, target)
                switch c.op {
                case .set:
                    guard let v = c.value else {
                        throw ControllerError.invalidRequest("Null value not supported for: \(c.name).")
                    }
                    next[c.name] = v
                case .delete:
                    next[c.name] = nil
                case .append, .subtract:
                    guard def.type == .list else {
                        throw ControllerError.invalidConfig(
                            "Config value \(c.op == .append ? "append" : "subtract") is not allowed for config key: \(c.name) (not a list).")
                    }
                    guard let v = c.value else {
                        throw ControllerError.invalidRequest("Null value not supported for: \(c.name).")
                    }
                    let base = current[c.name] ?? inheritedValue(c.name, target, resolver, staticConfig) ?? ""
                    var items = ConfigKeyDef.parseList(base)
                    let given = ConfigKeyDef.parseList(v)
                    if c.op == .append {
                        for item in given where !items.contains(item) { items.append(item) }
                    } else {
                        items.removeAll { given.contains($0) }
                    }
                    next[c.name] = items.joined(separator: ",")
                }
            }
            for (k, v) in next.sorted(by: { $0.key < $1.key }) where current[k] != v {
                do { try MetadataController.keyDef(k, target).check(v) } catch {
                    throw ControllerError.invalidConfig("\(error)")
                }
            }
            if case .group = target, next != current, let why = GroupConfigKeys.refusal(next, config: staticConfig) {
                throw ControllerError.invalidConfig(why)
            }
            var records: [MetadataRecord] = []
            for k in Set(current.keys).union(next.keys).sorted() where current[k] != next[k] {
                switch target {
                case .topic(let t): records.append(.topicConfig(topicId: t.id, key: k, value: next[k]))
                case .broker(let node): records.append(.brokerConfig(nodeId: node, key: k, value: next[k]))
                case .group(let group): records.append(.groupConfig(groupId: group, key: k, value: next[k]))
                }
            }
            if !validateOnly && !records.isEmpty {
                try commit(records)
                logger.info("configs altered", metadata: ["resource": "\(resource)", "changed": "\(records.count)"])
                let set = next.keys.filter { current[$0] != next[$0] }
                switch target {
                case .topic: warnIgnored(set, topicKeys: true, resource: "\(resource)")
                case .broker: warnIgnored(set, topicKeys: false, resource: "\(resource)")
                case .group: break   // every group key acts (GroupCoordinator+Consumer.swift)
                }
            }
            return next
        }
    }

    enum ConfigTarget {
        case topic(TopicInfo)
        case broker(Int32)
        case group(String)
    }

    static func resolveTarget(_ resource: ConfigResource, _ image: MetadataImage) throws -> ConfigTarget {
        switch resource.type {
        case ConfigResource.topicType:
            guard let t = image.topic(named: resource.name) else { throw ControllerError.unknownTopic(resource.name) }
            return .topic(t)
        case ConfigResource.brokerType:
            if resource.name.isEmpty { return .broker(MetadataRecord.clusterDefaultNode) }
            guard let node = Int32(resource.name), node >= 0 else {
                throw ControllerError.invalidRequest("Unable to parse broker name '\(resource.name)' as a node id.")
            }
            return .broker(node)
        case ConfigResource.groupType:
            guard !resource.name.isEmpty else { throw ControllerError.invalidRequest("Group name must not be empty.") }
            return .group(resource.name)
        default:
            throw ControllerError.invalidRequest("Resource type \(resource.type) is not supported (only TOPIC, BROKER and GROUP).")
        }
    }

    /// The definition of a key the target may change; unknown or static keys are refused.
    static func keyDef(_ name: String, _ target: ConfigTarget) throws -> ConfigKeyDef {
        switch target {
        case .topic:
            guard let def = TopicConfig.defsByName[name] else {
                throw ControllerError.invalidConfig("Unknown topic config name: \(name).")
            }
            return def.key
        case .broker:
            guard let def = ServerConfig.keyDef(name) else {
                throw ControllerError.invalidConfig("Unknown broker config name: \(name).")
            }
            guard TopicConfigResolver.dynamicBrokerKeys.contains(name) else {
                throw ControllerError.invalidConfig("Cannot update these configs dynamically: [\(name)].")
            }
            return def
        case .group:
            guard let def = GroupConfigKeys.keyDef(name) else {
                throw ControllerError.invalidConfig("Unknown group config name: \(name)")
            }
            return def
        }
    }

    /// What a key is worth without the target's own override (where APPEND starts from).
    private func inheritedValue(_ name: String, _ target: ConfigTarget, _ resolver: TopicConfigResolver,
                                _ staticConfig: ServerConfig) -> String? {
        switch target {
        case .topic(let t):
            var others = t.configs
            others[name] = nil
            return resolver.value(name, overrides: others)
        case .broker(let node):
            if node != MetadataRecord.clusterDefaultNode,
               let v = resolver.brokerConfigs[MetadataRecord.clusterDefaultNode]?[name] { return v }
            return staticConfig.value(name).value
        case .group:
            return GroupConfigKeys.values(overrides: [:], config: staticConfig)[name]
        }
    }
}

extension MetadataController {
    /// Logs a warning for keys Silt stores and describes without acting on them (Kafka
    /// accepts them, so Silt does too): topic keys, broker keys that are the synonyms of
    /// such topic keys, and `ServerConfig.ignoredDynamicKeys`.
    func warnIgnored(_ keys: some Sequence<String>, topicKeys: Bool, resource: String) {
        let bySynonym = Dictionary(TopicConfig.defs.compactMap { d in d.brokerSynonym.map { ($0, d.key.name) } },
                                   uniquingKeysWith: { a, _ in a })
        let keys = Array(keys)
        let names = topicKeys ? keys : keys.compactMap { bySynonym[$0] }
        var ignored = TopicConfig.ignoredKeys(names)
        if !topicKeys {
            ignored += keys.sorted().compactMap { k in ServerConfig.ignoredDynamicKeys[k].map { (key: k, reason: $0) } }
        }
        for (key, reason) in ignored {
            logger.warning("config accepted without effect", metadata: [
                "resource": "\(resource)", "key": "\(key)", "reason": "\(reason)"])
        }
    }
}
