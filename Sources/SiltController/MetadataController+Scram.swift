import Foundation
import SiltMetadata
import SiltNet
import SiltProtocol

/// One alteration of AlterUserScramCredentials (KIP-554), as the controller takes it. The
/// mechanism is Kafka's raw code, so an unknown one can be refused as Kafka refuses it.
public enum ScramAlteration: Equatable, Sendable {
    case deletion(user: String, mechanism: Int8)
    /// The client salted the password (Hi, RFC 5802): the password never travels.
    case upsertion(user: String, mechanism: Int8, iterations: Int32, salt: [UInt8], saltedPassword: [UInt8])

    public var user: String {
        switch self {
        case .deletion(let u, _), .upsertion(let u, _, _, _, _): return u
        }
    }
}

/// The answer for one user of AlterUserScramCredentials.
public struct ScramAlterationResult: Equatable, Sendable {
    public var user: String
    public var errorCode: Int16
    public var errorMessage: String?
    public init(user: String, errorCode: Int16, errorMessage: String?) {
        self.user = user; self.errorCode = errorCode; self.errorMessage = errorMessage
    }
}

/// SCRAM credentials, validated as Kafka's `ScramControlManager` validates them, stored as
/// `userScramCredential` / `removeUserScramCredential` records. Kafka's rules, per user:
///
/// - at most one alteration per user in a request: a second (deletion or upsertion, any
///   mechanism) makes the user DUPLICATE_RESOURCE and drops its other alterations;
/// - an empty user name is UNACCEPTABLE_CREDENTIAL, an unknown mechanism
///   UNSUPPORTED_SASL_MECHANISM;
/// - an upsertion needs `ScramMechanism.iterationsMin...iterationsMax` iterations
///   (UNACCEPTABLE_CREDENTIAL "Too few iterations" / "Too many iterations");
/// - a deletion of a credential that does not exist is RESOURCE_NOT_FOUND.
///
/// Silt adds bounds Kafka does not have, so a record always fits in one proposal: a user name
/// of at most `scramUserNameBytesMax` bytes, a salt and a salted password of at most
/// `scramSecretBytesMax` each (UNACCEPTABLE_CREDENTIAL).
///
/// The accepted alterations are written in one append (atomic); the refused ones write
/// nothing. Results come as Kafka orders them: accepted deletions, accepted upsertions,
/// then the refusals (each group in request order).
extension MetadataController {
    public static let scramUserNameBytesMax = 1024
    public static let scramSecretBytesMax = 1024

    public func alterUserScramCredentials(_ alterations: [ScramAlteration]) throws -> [ScramAlterationResult] {
        try mutate {
            var refused: [String: (Int16, String)] = [:]
            var refusalOrder: [String] = []
            var accepted: [String: ScramAlteration] = [:]
            func refuse(_ user: String, _ code: Int16, _ message: String) {
                if refused[user] == nil { refusalOrder.append(user) }
                refused[user] = (code, message)
            }
            // Deletions first, then upsertions, as Kafka walks them.
            let ordered = alterations.filter { if case .deletion = $0 { return true }; return false }
                + alterations.filter { if case .upsertion = $0 { return true }; return false }
            for a in ordered where refused[a.user] == nil {
                if accepted.removeValue(forKey: a.user) != nil {
                    refuse(a.user, KafkaErrorCode.duplicateResource, "A user credential cannot be altered twice in the same request")
                } else if let (code, message) = refusal(a) {
                    refuse(a.user, code, message)
                } else {
                    accepted[a.user] = a
                }
            }
            var records: [MetadataRecord] = []
            var results: [ScramAlterationResult] = []
            for a in ordered where accepted[a.user] == a {
                switch a {
                case .deletion(let user, let code):
                    records.append(.removeUserScramCredential(name: user, mechanism: ScramMechanism(rawValue: code)!))
                case .upsertion(let user, let code, let iterations, let salt, let saltedPassword):
                    let m = ScramMechanism(rawValue: code)!
                    records.append(.userScramCredential(name: user, mechanism: m, ScramCredential(
                        salt: salt, storedKey: Scram.storedKey(m, saltedPassword: saltedPassword),
                        serverKey: Scram.serverKey(m, saltedPassword: saltedPassword), iterations: iterations)))
                }
                results.append(ScramAlterationResult(user: a.user, errorCode: KafkaErrorCode.none, errorMessage: nil))
            }
            for user in refusalOrder {
                results.append(ScramAlterationResult(user: user, errorCode: refused[user]!.0, errorMessage: refused[user]!.1))
            }
            if !records.isEmpty {
                try commit(records)
                logger.info("SCRAM credentials altered", metadata: [
                    "changes": "\(records.map { MetadataController.scramChange($0) })"])
            }
            return results
        }
    }

    /// Why Kafka would refuse `a` (code and message), or nil. Caller holds the lock.
    private func refusal(_ a: ScramAlteration) -> (Int16, String)? {
        let code: Int8
        switch a {
        case .deletion(_, let c): code = c
        case .upsertion(_, let c, _, _, _): code = c
        }
        if a.user.isEmpty { return (KafkaErrorCode.unacceptableCredential, "Username must not be empty") }
        guard let mechanism = ScramMechanism(rawValue: code) else {
            return (KafkaErrorCode.unsupportedSaslMechanism, "Unknown SCRAM mechanism")
        }
        if a.user.utf8.count > MetadataController.scramUserNameBytesMax {
            return (KafkaErrorCode.unacceptableCredential,
                    "Username longer than \(MetadataController.scramUserNameBytesMax) bytes")
        }
        switch a {
        case .deletion(let user, _):
            if _image.scramCredentials[user]?[mechanism] == nil {
                return (KafkaErrorCode.resourceNotFound, "Attempt to delete a user credential that does not exist")
            }
        case .upsertion(_, _, let iterations, let salt, let saltedPassword):
            if iterations < ScramMechanism.iterationsMin { return (KafkaErrorCode.unacceptableCredential, "Too few iterations") }
            if iterations > ScramMechanism.iterationsMax { return (KafkaErrorCode.unacceptableCredential, "Too many iterations") }
            if salt.count > MetadataController.scramSecretBytesMax || saltedPassword.count > MetadataController.scramSecretBytesMax {
                return (KafkaErrorCode.unacceptableCredential,
                        "Salt and salted password must be at most \(MetadataController.scramSecretBytesMax) bytes each")
            }
        }
        return nil
    }

    /// What a log line may say about a SCRAM record: the user and mechanism, no secret.
    static func scramChange(_ r: MetadataRecord) -> String {
        switch r {
        case .userScramCredential(let user, let m, let c): return "\(user) \(m) set (\(c.iterations) iterations)"
        case .removeUserScramCredential(let user, let m): return "\(user) \(m) removed"
        default: return "?"
        }
    }
}
