import CSupport
import SiltProtocol

/// SCRAM's key derivation (RFC 5802 §3) for Kafka's SCRAM-SHA-256 and SCRAM-SHA-512, as
/// Kafka's `ScramFormatter` computes it, through OpenSSL in the C layer (`silt_scram.h`):
///
/// ```
///   SaltedPassword = Hi(password, salt, i)          PBKDF2-HMAC-H, one digest long
///   ClientKey      = HMAC(SaltedPassword, "Client Key")
///   StoredKey      = H(ClientKey)                   ┐ what a server stores
///   ServerKey      = HMAC(SaltedPassword, "Server Key")  ┘ (with the salt and i)
/// ```
///
/// A client (kafka-configs.sh, librdkafka) sends the salt and SaltedPassword in
/// AlterUserScramCredentials; the controller keeps StoredKey and ServerKey (Kafka's
/// `UserScramCredentialRecord`), so no secret that logs in is ever stored. Shared by the
/// admin tool, the controller and, later, a SASL/SCRAM listener.
public enum Scram {
    /// The salt length `randomSalt` makes, in bytes (Kafka's client makes ~26 base-36 chars).
    public static let saltBytes = 32

    static func hashId(_ m: ScramMechanism) -> Int32 {
        switch m {
        case .sha256: return Int32(SILT_SCRAM_SHA256)
        case .sha512: return Int32(SILT_SCRAM_SHA512)
        }
    }

    /// The digest length of the mechanism's hash: 32 or 64 bytes.
    public static func digestBytes(_ m: ScramMechanism) -> Int { Int(silt_scram_digest_length(hashId(m))) }

    /// Hi(password, salt, iterations): the salted password. `iterations` ≥ 1.
    public static func saltedPassword(_ m: ScramMechanism, password: [UInt8], salt: [UInt8], iterations: Int32) -> [UInt8] {
        precondition(iterations >= 1, "SCRAM iterations must be positive, got \(iterations)")
        var out = [UInt8](repeating: 0, count: digestBytes(m))
        let rc = password.withUnsafeBufferPointer { p in
            salt.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    silt_scram_pbkdf2(hashId(m), p.baseAddress, p.count, s.baseAddress, s.count, UInt32(iterations),
                                      o.baseAddress!, o.count)
                }
            }
        }
        precondition(rc == 0, "PBKDF2-HMAC failed in libcrypto")   // only bad arguments fail, checked above
        return out
    }

    public static func hmac(_ m: ScramMechanism, key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestBytes(m))
        let rc = key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                out.withUnsafeMutableBufferPointer { o in
                    silt_scram_hmac(hashId(m), k.baseAddress, k.count, d.baseAddress, d.count, o.baseAddress!)
                }
            }
        }
        precondition(rc == 0, "HMAC failed in libcrypto")
        return out
    }

    public static func hash(_ m: ScramMechanism, _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestBytes(m))
        let rc = data.withUnsafeBufferPointer { d in
            out.withUnsafeMutableBufferPointer { o in silt_scram_digest(hashId(m), d.baseAddress, d.count, o.baseAddress!) }
        }
        precondition(rc == 0, "digest failed in libcrypto")
        return out
    }

    public static func clientKey(_ m: ScramMechanism, saltedPassword: [UInt8]) -> [UInt8] {
        hmac(m, key: saltedPassword, Array("Client Key".utf8))
    }

    public static func storedKey(_ m: ScramMechanism, saltedPassword: [UInt8]) -> [UInt8] {
        hash(m, clientKey(m, saltedPassword: saltedPassword))
    }

    public static func serverKey(_ m: ScramMechanism, saltedPassword: [UInt8]) -> [UInt8] {
        hmac(m, key: saltedPassword, Array("Server Key".utf8))
    }

    /// A fresh random salt (`SystemRandomNumberGenerator`: the kernel's getrandom, a CSPRNG).
    public static func randomSalt() -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<saltBytes).map { _ in UInt8.random(in: .min ... .max, using: &g) }
    }
}
