import NIOCore

// Kafka wire primitives as ByteBuffer extensions.
//
// Every reader is bounds-checked and throws `KafkaProtocolError`; none traps on hostile
// input. Lengths are validated against `readableBytes` before anything is allocated.
// The `what` parameter names the field being read and only appears in error messages.
//
// "Classic" encodings: strings have an int16 length (-1 = null), bytes/records and arrays
// an int32 length (-1 = null). "Compact" encodings (flexible versions): unsigned varint
// of length + 1 (0 = null).

extension ByteBuffer {
    // MARK: - Fixed-width integers (big-endian)

    @inlinable
    mutating func _readKafkaInteger<T: FixedWidthInteger>(_ what: String, as: T.Type = T.self) throws -> T {
        guard let v = self.readInteger(endianness: .big, as: T.self) else {
            throw KafkaProtocolError.truncated(what)
        }
        return v
    }

    @inlinable public mutating func readKafkaInt8(_ what: String = "int8") throws -> Int8 { try _readKafkaInteger(what) }
    @inlinable public mutating func readKafkaInt16(_ what: String = "int16") throws -> Int16 { try _readKafkaInteger(what) }
    @inlinable public mutating func readKafkaInt32(_ what: String = "int32") throws -> Int32 { try _readKafkaInteger(what) }
    @inlinable public mutating func readKafkaInt64(_ what: String = "int64") throws -> Int64 { try _readKafkaInteger(what) }
    @inlinable public mutating func readKafkaUInt16(_ what: String = "uint16") throws -> UInt16 { try _readKafkaInteger(what) }
    @inlinable public mutating func readKafkaUInt32(_ what: String = "uint32") throws -> UInt32 { try _readKafkaInteger(what) }

    @inlinable public mutating func readKafkaFloat64(_ what: String = "float64") throws -> Double {
        Double(bitPattern: try _readKafkaInteger(what, as: UInt64.self))
    }

    /// Kafka booleans: one byte, any non-zero value is true.
    @inlinable public mutating func readKafkaBool(_ what: String = "bool") throws -> Bool {
        try _readKafkaInteger(what, as: UInt8.self) != 0
    }

    @inlinable public mutating func writeKafkaInt8(_ v: Int8) { self.writeInteger(v, endianness: .big) }
    @inlinable public mutating func writeKafkaInt16(_ v: Int16) { self.writeInteger(v, endianness: .big) }
    @inlinable public mutating func writeKafkaInt32(_ v: Int32) { self.writeInteger(v, endianness: .big) }
    @inlinable public mutating func writeKafkaInt64(_ v: Int64) { self.writeInteger(v, endianness: .big) }
    @inlinable public mutating func writeKafkaUInt16(_ v: UInt16) { self.writeInteger(v, endianness: .big) }
    @inlinable public mutating func writeKafkaUInt32(_ v: UInt32) { self.writeInteger(v, endianness: .big) }
    @inlinable public mutating func writeKafkaFloat64(_ v: Double) { self.writeInteger(v.bitPattern, endianness: .big) }
    @inlinable public mutating func writeKafkaBool(_ v: Bool) { self.writeInteger(UInt8(v ? 1 : 0)) }

    // MARK: - UUID

    public mutating func readKafkaUUID(_ what: String = "uuid") throws -> KafkaUUID {
        guard self.readableBytes >= 16 else { throw KafkaProtocolError.truncated(what) }
        let high: UInt64 = try _readKafkaInteger(what)
        let low: UInt64 = try _readKafkaInteger(what)
        return KafkaUUID(high: high, low: low)
    }

    public mutating func writeKafkaUUID(_ v: KafkaUUID) {
        self.writeInteger(v.high, endianness: .big)
        self.writeInteger(v.low, endianness: .big)
    }

    // MARK: - Varints

    /// Unsigned varint (LEB128), at most 5 bytes, value must fit in 32 bits.
    public mutating func readUnsignedVarint(_ what: String = "unsigned varint") throws -> UInt32 {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            guard let b: UInt8 = self.readInteger() else { throw KafkaProtocolError.truncated(what) }
            if shift == 28 {
                // fifth byte: only 4 payload bits left and no continuation allowed
                guard b & 0xF0 == 0 else { throw KafkaProtocolError.invalidValue("varint too long: \(what)") }
                return result | (UInt32(b) << 28)
            }
            result |= UInt32(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Unsigned varlong, at most 10 bytes, value must fit in 64 bits.
    public mutating func readUnsignedVarlong(_ what: String = "unsigned varlong") throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard let b: UInt8 = self.readInteger() else { throw KafkaProtocolError.truncated(what) }
            if shift == 63 {
                guard b & 0xFE == 0 else { throw KafkaProtocolError.invalidValue("varlong too long: \(what)") }
                return result | (UInt64(b) << 63)
            }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Signed (zigzag) varint.
    public mutating func readVarint(_ what: String = "varint") throws -> Int32 {
        let u = try readUnsignedVarint(what)
        return Int32(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// Signed (zigzag) varlong.
    public mutating func readVarlong(_ what: String = "varlong") throws -> Int64 {
        let u = try readUnsignedVarlong(what)
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    public mutating func writeUnsignedVarint(_ value: UInt32) {
        var v = value
        while v >= 0x80 {
            self.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.writeInteger(UInt8(truncatingIfNeeded: v))
    }

    public mutating func writeUnsignedVarlong(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            self.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        self.writeInteger(UInt8(truncatingIfNeeded: v))
    }

    public mutating func writeVarint(_ value: Int32) {
        writeUnsignedVarint(UInt32(bitPattern: (value << 1) ^ (value >> 31)))
    }

    public mutating func writeVarlong(_ value: Int64) {
        writeUnsignedVarlong(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// Number of bytes `writeUnsignedVarint(value)` produces.
    public static func unsignedVarintSize(_ value: UInt32) -> Int {
        var v = value, n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    // MARK: - Lengths

    /// Reads a string length: int16 (classic) or uvarint N+1 (compact). nil means null.
    @usableFromInline
    mutating func _readKafkaStringLength(compact: Bool, _ what: String) throws -> Int? {
        if compact {
            let n = try readUnsignedVarint(what)
            return n == 0 ? nil : Int(n) - 1
        }
        let n = try readKafkaInt16(what)
        if n == -1 { return nil }
        if n < 0 { throw KafkaProtocolError.invalidLength(what, Int(n)) }
        return Int(n)
    }

    /// Reads a bytes/array length: int32 (classic) or uvarint N+1 (compact). nil means null.
    @usableFromInline
    mutating func _readKafkaLength32(compact: Bool, _ what: String) throws -> Int? {
        if compact {
            let n = try readUnsignedVarint(what)
            return n == 0 ? nil : Int(n) - 1
        }
        let n = try readKafkaInt32(what)
        if n == -1 { return nil }
        if n < 0 { throw KafkaProtocolError.invalidLength(what, Int(n)) }
        return Int(n)
    }

    /// Reads an array element count (nil = null array), validated against `readableBytes`.
    public mutating func readKafkaArrayLength(compact: Bool, _ what: String = "array") throws -> Int? {
        guard let n = try _readKafkaLength32(compact: compact, what) else { return nil }
        // Every element occupies at least one byte in practice (Kafka applies the same check).
        if n > self.readableBytes { throw KafkaProtocolError.invalidLength(what, n) }
        return n
    }

    /// Writes an array length; nil writes the null marker.
    public mutating func writeKafkaArrayLength(_ count: Int?, compact: Bool) {
        if compact {
            writeUnsignedVarint(count.map { UInt32(truncatingIfNeeded: $0 + 1) } ?? 0)
        } else {
            writeKafkaInt32(count.map { Int32(truncatingIfNeeded: $0) } ?? -1)
        }
    }

    /// Reads exactly `length` bytes as a slice (no copy).
    public mutating func readKafkaSlice(length: Int, _ what: String = "bytes") throws -> ByteBuffer {
        guard length >= 0 else { throw KafkaProtocolError.invalidLength(what, length) }
        guard length <= self.readableBytes, let s = self.readSlice(length: length) else {
            throw KafkaProtocolError.truncated(what)
        }
        return s
    }

    // MARK: - Strings

    @usableFromInline
    mutating func _readUTF8(length: Int, _ what: String) throws -> String {
        guard length <= self.readableBytes else { throw KafkaProtocolError.truncated(what) }
        let valid: Bool = self.withUnsafeReadableBytes { raw in
            let p = raw.prefix(length)
            if p.allSatisfy({ $0 < 0x80 }) { return true }
            var it = p.makeIterator()
            var dec = UTF8()
            while true {
                switch dec.decode(&it) {
                case .scalarValue: continue
                case .emptyInput: return true
                case .error: return false
                }
            }
        }
        guard valid else { throw KafkaProtocolError.invalidValue("invalid UTF-8 in \(what)") }
        guard let s = self.readString(length: length) else { throw KafkaProtocolError.truncated(what) }
        return s
    }

    /// Non-nullable string; a null on the wire throws `invalidLength(what, -1)`.
    public mutating func readKafkaString(compact: Bool, _ what: String = "string") throws -> String {
        guard let n = try _readKafkaStringLength(compact: compact, what) else {
            throw KafkaProtocolError.invalidLength("\(what) (non-nullable string is null)", -1)
        }
        return try _readUTF8(length: n, what)
    }

    public mutating func readKafkaNullableString(compact: Bool, _ what: String = "string") throws -> String? {
        guard let n = try _readKafkaStringLength(compact: compact, what) else { return nil }
        return try _readUTF8(length: n, what)
    }

    public mutating func writeKafkaString(_ s: String, compact: Bool) {
        let n = s.utf8.count
        if compact {
            writeUnsignedVarint(UInt32(truncatingIfNeeded: n + 1))
        } else {
            writeKafkaInt16(Int16(truncatingIfNeeded: n))
        }
        self.writeString(s)
    }

    /// Writes a nullable string; nil writes the null marker.
    public mutating func writeKafkaNullableString(_ s: String?, compact: Bool) {
        guard let s = s else {
            if compact { writeUnsignedVarint(0) } else { writeKafkaInt16(-1) }
            return
        }
        writeKafkaString(s, compact: compact)
    }

    // Convenience spellings.
    public mutating func readCompactString(_ what: String = "string") throws -> String { try readKafkaString(compact: true, what) }
    public mutating func readCompactNullableString(_ what: String = "string") throws -> String? { try readKafkaNullableString(compact: true, what) }
    public mutating func readClassicString(_ what: String = "string") throws -> String { try readKafkaString(compact: false, what) }
    public mutating func readClassicNullableString(_ what: String = "string") throws -> String? { try readKafkaNullableString(compact: false, what) }
    public mutating func writeCompactString(_ s: String) { writeKafkaString(s, compact: true) }
    public mutating func writeCompactNullableString(_ s: String?) { writeKafkaNullableString(s, compact: true) }
    public mutating func writeClassicString(_ s: String) { writeKafkaString(s, compact: false) }
    public mutating func writeClassicNullableString(_ s: String?) { writeKafkaNullableString(s, compact: false) }

    // MARK: - Bytes and records

    public mutating func readKafkaBytes(compact: Bool, _ what: String = "bytes") throws -> [UInt8] {
        guard let n = try _readKafkaLength32(compact: compact, what) else {
            throw KafkaProtocolError.invalidLength("\(what) (non-nullable bytes is null)", -1)
        }
        guard n <= self.readableBytes, let b = self.readBytes(length: n) else { throw KafkaProtocolError.truncated(what) }
        return b
    }

    public mutating func readKafkaNullableBytes(compact: Bool, _ what: String = "bytes") throws -> [UInt8]? {
        guard let n = try _readKafkaLength32(compact: compact, what) else { return nil }
        guard n <= self.readableBytes, let b = self.readBytes(length: n) else { throw KafkaProtocolError.truncated(what) }
        return b
    }

    public mutating func writeKafkaBytes(_ b: [UInt8], compact: Bool) {
        writeKafkaArrayLength(b.count, compact: compact)
        self.writeBytes(b)
    }

    public mutating func writeKafkaNullableBytes(_ b: [UInt8]?, compact: Bool) {
        guard let b = b else { writeKafkaArrayLength(nil, compact: compact); return }
        writeKafkaBytes(b, compact: compact)
    }

    /// Records (a record-batch set): a length-prefixed blob returned as a slice of this
    /// buffer (zero-copy). When `nullable` is false a null on the wire throws.
    public mutating func readKafkaRecords(compact: Bool, nullable: Bool = true, _ what: String = "records") throws -> ByteBuffer? {
        guard let n = try _readKafkaLength32(compact: compact, what) else {
            if nullable { return nil }
            throw KafkaProtocolError.invalidLength("\(what) (non-nullable records is null)", -1)
        }
        return try readKafkaSlice(length: n, what)
    }

    /// Writes records; nil writes null when `nullable`, otherwise an empty record set.
    public mutating func writeKafkaRecords(_ r: ByteBuffer?, compact: Bool, nullable: Bool = true) {
        guard var r = r else {
            writeKafkaArrayLength(nullable ? nil : 0, compact: compact)
            return
        }
        writeKafkaArrayLength(r.readableBytes, compact: compact)
        self.writeBuffer(&r)
    }

    // MARK: - Arrays

    /// Non-nullable array; a null on the wire throws.
    public mutating func readKafkaArray<T: KafkaArrayElement>(of: T.Type = T.self, compact: Bool, version: Int16, _ what: String = "array") throws -> [T] {
        guard let a = try readKafkaNullableArray(of: T.self, compact: compact, version: version, what) else {
            throw KafkaProtocolError.invalidLength("\(what) (non-nullable array is null)", -1)
        }
        return a
    }

    public mutating func readKafkaNullableArray<T: KafkaArrayElement>(of: T.Type = T.self, compact: Bool, version: Int16, _ what: String = "array") throws -> [T]? {
        guard let n = try readKafkaArrayLength(compact: compact, what) else { return nil }
        var out = [T]()
        out.reserveCapacity(n)
        for _ in 0..<n {
            out.append(try T.readKafkaElement(from: &self, compact: compact, version: version))
        }
        return out
    }

    public mutating func writeKafkaArray<T: KafkaArrayElement>(_ a: [T], compact: Bool, version: Int16) {
        writeKafkaArrayLength(a.count, compact: compact)
        for e in a { e.writeKafkaElement(to: &self, compact: compact, version: version) }
    }

    public mutating func writeKafkaNullableArray<T: KafkaArrayElement>(_ a: [T]?, compact: Bool, version: Int16) {
        guard let a = a else { writeKafkaArrayLength(nil, compact: compact); return }
        writeKafkaArray(a, compact: compact, version: version)
    }

    // MARK: - Nullable structs

    /// Reads the int8 presence marker Kafka writes before a nullable struct: -1 null, 1 present.
    public mutating func readKafkaStructPresence(_ what: String = "struct") throws -> Bool {
        try readKafkaInt8(what) >= 0
    }

    // MARK: - Tagged fields

    /// Reads a tagged-field section: uvarint count, then (uvarint tag, uvarint size, data)*.
    /// Each entry's data is returned as a slice.
    public mutating func readKafkaTaggedFields(_ what: String = "tagged fields") throws -> [(tag: Int, data: ByteBuffer)] {
        let count = try readUnsignedVarint(what)
        if count == 0 { return [] }
        // each entry takes at least 2 bytes; don't trust `count` for allocation
        if Int(count) > self.readableBytes / 2 { throw KafkaProtocolError.invalidLength(what, Int(count)) }
        var out: [(tag: Int, data: ByteBuffer)] = []
        out.reserveCapacity(Int(count))
        for _ in 0..<count {
            let tag = try readUnsignedVarint(what)
            let size = try readUnsignedVarint(what)
            let data = try readKafkaSlice(length: Int(size), what)
            out.append((tag: Int(tag), data: data))
        }
        return out
    }

    /// Writes a tagged-field section from known fields (already encoded) plus unknown
    /// (round-tripped) fields, in ascending tag order. Known fields win on a tag clash.
    public mutating func writeKafkaTaggedFields(_ known: [(tag: Int, data: ByteBuffer)], unknown: [Int: [UInt8]]) {
        if known.isEmpty && unknown.isEmpty {
            self.writeInteger(UInt8(0))
            return
        }
        var entries: [(tag: Int, known: ByteBuffer?, raw: [UInt8]?)] = known.map { ($0.tag, $0.data, nil) }
        for (tag, raw) in unknown where !known.contains(where: { $0.tag == tag }) {
            entries.append((tag, nil, raw))
        }
        entries.sort { $0.tag < $1.tag }
        writeUnsignedVarint(UInt32(truncatingIfNeeded: entries.count))
        for e in entries {
            writeUnsignedVarint(UInt32(truncatingIfNeeded: e.tag))
            if var k = e.known {
                writeUnsignedVarint(UInt32(truncatingIfNeeded: k.readableBytes))
                self.writeBuffer(&k)
            } else if let raw = e.raw {
                writeUnsignedVarint(UInt32(truncatingIfNeeded: raw.count))
                self.writeBytes(raw)
            }
        }
    }
}
