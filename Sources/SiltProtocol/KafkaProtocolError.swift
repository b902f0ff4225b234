/// Errors raised while decoding Kafka wire-protocol data.
///
/// Decoding never traps on hostile input: every read is bounds-checked and
/// lengths are validated against the remaining bytes before allocating.
public enum KafkaProtocolError: Error, Equatable, CustomStringConvertible {
    /// Ran out of bytes while reading the named field / item.
    case truncated(String)
    /// A negative (non-null) or absurd length was read for the named item.
    case invalidLength(String, Int)
    /// The (api key, version) pair is not supported.
    case unsupportedVersion(apiKey: Int16, version: Int16)
    /// A malformed value, e.g. invalid UTF-8 or an over-long varint.
    case invalidValue(String)

    public var description: String {
        switch self {
        case .truncated(let what): return "truncated input while reading \(what)"
        case .invalidLength(let what, let n): return "invalid length \(n) for \(what)"
        case .unsupportedVersion(let key, let version): return "unsupported version \(version) for api key \(key)"
        case .invalidValue(let what): return "invalid value: \(what)"
        }
    }
}
