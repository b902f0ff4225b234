import SiltProtocol

/// A user's SCRAM credential for one mechanism, as Kafka's controller stores it
/// (`UserScramCredentialRecord`): what a SCRAM server checks a login against (RFC 5802),
/// never the password or the salted password. StoredKey and ServerKey are one digest long
/// (32 bytes for SCRAM-SHA-256, 64 for SCRAM-SHA-512).
///
/// Stored for a later SASL/SCRAM listener: Silt's listeners do not authenticate yet.
/// Printing one never shows the secrets.
public struct ScramCredential: Codable, Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]
    public var iterations: Int32

    public init(salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8], iterations: Int32) {
        self.salt = salt; self.storedKey = storedKey; self.serverKey = serverKey; self.iterations = iterations
    }

    public var description: String { "ScramCredential(salt=[hidden], storedKey=[hidden], serverKey=[hidden], iterations=\(iterations))" }
    public var debugDescription: String { description }
}

/// SCRAM credentials (KIP-554) in the image:
///
///     scramCredentials[user][mechanism] = ScramCredential
///
/// Invariants: no user maps to an empty dictionary (a user without credentials has no
/// entry, so images compare equal however they got there); a removal names a credential
/// that exists (the controller checks before it writes one).
extension MetadataImage {
    mutating func applyScramRecord(_ record: MetadataRecord) {
        switch record {
        case .userScramCredential(let name, let mechanism, let credential):
            scramCredentials[name, default: [:]][mechanism] = credential
        case .removeUserScramCredential(let name, let mechanism):
            precondition(scramCredentials[name]?[mechanism] != nil,
                         "metadata log: removing SCRAM credential \(mechanism) of user \(name), which does not exist")
            scramCredentials[name]![mechanism] = nil
            if scramCredentials[name]!.isEmpty { scramCredentials[name] = nil }
        default:
            preconditionFailure("not a SCRAM record: \(record)")
        }
    }

    /// The snapshot form: one `userScramCredential` per user and mechanism, sorted.
    var scramSnapshotRecords: [MetadataRecord] {
        scramCredentials.keys.sorted().flatMap { user in
            scramCredentials[user]!.sorted { $0.key < $1.key }.map { m, c in .userScramCredential(name: user, mechanism: m, c) }
        }
    }
}
