/// Kafka's 128-bit `Uuid` (topic ids, directory ids, ...). Wire format: 16 bytes, `high` then `low`, big-endian.
public struct KafkaUUID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Kafka's `Uuid.ZERO_UUID` (all zeros); the "no id" sentinel.
    public static let zero = KafkaUUID(high: 0, low: 0)
    /// Kafka's `Uuid.ONE_UUID` (== `METADATA_TOPIC_ID`), reserved.
    public static let one = KafkaUUID(high: 0, low: 1)

    /// Kafka's `Uuid.randomUuid()`: a version-4 random UUID that is never
    /// `zero`, never `one` (reserved), and whose string form never starts with '-'.
    public static func random() -> KafkaUUID {
        var rng = SystemRandomNumberGenerator()
        while true {
            var high = rng.next() as UInt64
            var low = rng.next() as UInt64
            high = (high & ~UInt64(0xF000)) | 0x4000                 // version 4
            low = (low & ~(UInt64(0xC) << 60)) | (UInt64(0x8) << 60)  // IETF variant
            let u = KafkaUUID(high: high, low: low)
            if u == .zero || u == .one || u.base64URL.hasPrefix("-") { continue }
            return u
        }
    }

    /// The 16 big-endian bytes.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
        return out
    }

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Kafka's `Uuid.toString()`: URL-safe base64 of the 16 bytes, no padding (22 characters).
    public var base64URL: String {
        let b = bytes
        var out = [UInt8]()
        out.reserveCapacity(22)
        var i = 0
        while i + 3 <= 15 {
            let n = (UInt32(b[i]) << 16) | (UInt32(b[i + 1]) << 8) | UInt32(b[i + 2])
            out.append(Self.alphabet[Int((n >> 18) & 63)])
            out.append(Self.alphabet[Int((n >> 12) & 63)])
            out.append(Self.alphabet[Int((n >> 6) & 63)])
            out.append(Self.alphabet[Int(n & 63)])
            i += 3
        }
        // one remaining byte (16 = 5*3 + 1)
        let n = UInt32(b[15]) << 16
        out.append(Self.alphabet[Int((n >> 18) & 63)])
        out.append(Self.alphabet[Int((n >> 12) & 63)])
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses Kafka's string form (22 URL-safe base64 characters, optionally followed by "==").
    public init?(base64URL: String) {
        var chars = Array(base64URL.utf8)
        if chars.count == 24 && chars[22] == UInt8(ascii: "=") && chars[23] == UInt8(ascii: "=") {
            chars.removeLast(2)
        }
        guard chars.count == 22 else { return nil }
        var values = [UInt32]()
        values.reserveCapacity(22)
        for c in chars {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(UInt32(c - UInt8(ascii: "A")))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(UInt32(c - UInt8(ascii: "a")) + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(UInt32(c - UInt8(ascii: "0")) + 52)
            case UInt8(ascii: "-"), UInt8(ascii: "+"): values.append(62)
            case UInt8(ascii: "_"), UInt8(ascii: "/"): values.append(63)
            default: return nil
            }
        }
        // The last char carries 2 data bits followed by 4 zero bits.
        guard values[21] & 0xF == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(16)
        var i = 0
        while i + 4 <= 20 {
            let n = (values[i] << 18) | (values[i + 1] << 12) | (values[i + 2] << 6) | values[i + 3]
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            out.append(UInt8(truncatingIfNeeded: n >> 8))
            out.append(UInt8(truncatingIfNeeded: n))
            i += 4
        }
        out.append(UInt8(truncatingIfNeeded: (values[20] << 2) | (values[21] >> 4)))
        var h: UInt64 = 0, l: UInt64 = 0
        for k in 0..<8 { h = (h << 8) | UInt64(out[k]) }
        for k in 8..<16 { l = (l << 8) | UInt64(out[k]) }
        self.init(high: h, low: l)
    }

    public var description: String { base64URL }
}
