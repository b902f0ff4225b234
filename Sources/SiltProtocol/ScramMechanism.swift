/// Kafka's SCRAM mechanisms (KIP-554: `org.apache.kafka.clients.admin.ScramMechanism`), by
/// the int8 code DescribeUserScramCredentials, AlterUserScramCredentials and the metadata
/// records carry. Kafka's code 0 is UNKNOWN: a code that is no case here.
public enum ScramMechanism: Int8, CaseIterable, Codable, Comparable, Sendable, CustomStringConvertible {
    case sha256 = 1
    case sha512 = 2

    /// The least iterations a credential may have (Kafka's `ScramMechanism.minIterations`,
    /// RFC 7677's 4096), for both mechanisms.
    public static let iterationsMin: Int32 = 4096
    /// The most iterations a credential may have (Kafka's `ScramControlManager.MAX_ITERATIONS`).
    public static let iterationsMax: Int32 = 16384
    /// The iterations Kafka's kafka-configs.sh uses when a credential names none.
    public static let iterationsDefault: Int32 = 4096

    /// The SASL mechanism name, which is also the config key kafka-configs.sh takes.
    public var mechanismName: String {
        switch self {
        case .sha256: return "SCRAM-SHA-256"
        case .sha512: return "SCRAM-SHA-512"
        }
    }

    public init?(mechanismName: String) {
        guard let m = ScramMechanism.allCases.first(where: { $0.mechanismName == mechanismName }) else { return nil }
        self = m
    }

    public var description: String { mechanismName }

    public static func < (a: ScramMechanism, b: ScramMechanism) -> Bool { a.rawValue < b.rawValue }
}
