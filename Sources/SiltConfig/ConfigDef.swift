/// Typed definitions of the configuration keys Silt understands.
///
/// Every key has a type, a default and an optional validator. Values arrive as strings
/// (properties file, s3url, `--override`) and are checked here once, at start-up, so a
/// bad value fails with a message that names the key instead of surfacing later.

public enum ConfigType: String, Sendable {
    case int, long, bool, string, list, double, password
}

public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public var key: String
    public var value: String
    public var reason: String
    public init(key: String, value: String, reason: String) {
        self.key = key; self.value = value; self.reason = reason
    }
    public var description: String {
        "Invalid value '\(value)' for configuration '\(key)': \(reason)"
    }
}

/// How a configuration value is checked beyond its type.
public enum ConfigValidator: Sendable {
    case none
    case atLeast(Int64)
    case between(Int64, Int64)
    case oneOf([String])
    case custom(@Sendable (String) -> String?)   // returns a reason when invalid
}

public struct ConfigKeyDef: Sendable {
    public var name: String
    public var type: ConfigType
    /// The default as a string, `nil` for "no default" (the key is optional).
    public var defaultValue: String?
    public var validator: ConfigValidator
    public var doc: String
    /// Topic-level keys are also accepted per topic (CreateTopics, DescribeConfigs).
    public var readOnly: Bool

    public init(_ name: String, _ type: ConfigType, _ defaultValue: String?, _ validator: ConfigValidator = .none,
                readOnly: Bool = true, doc: String) {
        self.name = name; self.type = type; self.defaultValue = defaultValue
        self.validator = validator; self.doc = doc; self.readOnly = readOnly
    }

    public var isSensitive: Bool { type == .password }

    /// Parses and validates `raw`, throwing a `ConfigError` naming this key.
    public func check(_ raw: String) throws {
        let fail = { (reason: String) in ConfigError(key: name, value: isSensitive ? "[hidden]" : raw, reason: reason) }
        switch type {
        case .int:
            guard let v = Int32(raw) else { throw fail("expected a 32-bit integer") }
            try checkRange(Int64(v), fail)
        case .long:
            guard let v = Int64(raw) else { throw fail("expected a 64-bit integer") }
            try checkRange(v, fail)
        case .double:
            guard Double(raw) != nil else { throw fail("expected a number") }
        case .bool:
            guard ConfigKeyDef.parseBool(raw) != nil else { throw fail("expected true or false") }
        case .string, .password, .list:
            break
        }
        switch validator {
        case .oneOf(let allowed):
            let items = type == .list ? ConfigKeyDef.parseList(raw) : [raw]
            for item in items where !allowed.contains(item) {
                throw fail("must be one of \(allowed.joined(separator: ", "))")
            }
        case .custom(let check):
            if let reason = check(raw) { throw fail(reason) }
        default:
            break
        }
    }

    private func checkRange(_ v: Int64, _ fail: (String) -> ConfigError) throws {
        switch validator {
        case .atLeast(let min) where v < min: throw fail("must be at least \(min)")
        case .between(let lo, let hi) where v < lo || v > hi: throw fail("must be between \(lo) and \(hi)")
        default: break
        }
    }

    public static func parseBool(_ raw: String) -> Bool? {
        switch raw.lowercased() {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }

    public static func parseList(_ raw: String) -> [String] {
        raw.split(separator: ",").map { $0.trimmingCharacters(in: " \t") }.filter { !$0.isEmpty }
    }
}
