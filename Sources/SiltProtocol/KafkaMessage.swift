import NIOCore

/// Anything with a versioned Kafka wire encoding: every generated message and
/// every generated nested struct.
public protocol KafkaStruct: Equatable, Sendable, KafkaArrayElement {
    /// All fields at their spec defaults.
    init()
    /// Decodes the body (no header) in the given version.
    init(from buffer: inout ByteBuffer, version: Int16) throws
    /// Encodes the body in the given version; fields absent in `version` are skipped.
    func encode(into buffer: inout ByteBuffer, version: Int16)
}

extension KafkaStruct {
    @inlinable
    public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> Self {
        try Self(from: &buffer, version: version)
    }

    @inlinable
    public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) {
        self.encode(into: &buffer, version: version)
    }
}

/// A top-level generated message (request, response, header or data record).
public protocol KafkaMessage: KafkaStruct {
    static var lowestSupportedVersion: Int16 { get }
    static var highestSupportedVersion: Int16 { get }
    static func isFlexible(version: Int16) -> Bool
}

extension KafkaMessage {
    /// True if `version` is within `lowestSupportedVersion...highestSupportedVersion`.
    public static func isSupported(version: Int16) -> Bool {
        version >= lowestSupportedVersion && version <= highestSupportedVersion
    }
}

/// A request or response with an api key.
public protocol KafkaApiMessage: KafkaMessage {
    static var apiKey: Int16 { get }
}

extension KafkaApiMessage {
    /// Decodes a body, first checking that `version` is supported.
    public static func decode(from buffer: inout ByteBuffer, version: Int16) throws -> Self {
        guard isSupported(version: version) else {
            throw KafkaProtocolError.unsupportedVersion(apiKey: apiKey, version: version)
        }
        return try Self(from: &buffer, version: version)
    }
}

/// A response: its error codes can be counted without knowing its type (broker metrics).
public protocol KafkaResponse: KafkaApiMessage {
    /// Non-zero error codes in the response: every int16 field named `ErrorCode` or
    /// `...ErrorCode` in its spec, at the top level and in nested structs (one per failed
    /// partition, topic, group...). Generated from the specs.
    var errorCodeCount: Int { get }
}

/// A request; `Response` is the matching response type (`ProduceRequest.Response == ProduceResponse`).
public protocol KafkaRequest: KafkaApiMessage {
    associatedtype Response: KafkaResponse
}

/// Element types allowed in generated arrays (primitives and generated structs).
public protocol KafkaArrayElement {
    static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> Self
    func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16)
}

extension Int8: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> Int8 { try buffer.readKafkaInt8("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaInt8(self) }
}
extension Int16: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> Int16 { try buffer.readKafkaInt16("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaInt16(self) }
}
extension Int32: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> Int32 { try buffer.readKafkaInt32("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaInt32(self) }
}
extension Int64: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> Int64 { try buffer.readKafkaInt64("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaInt64(self) }
}
extension UInt16: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> UInt16 { try buffer.readKafkaUInt16("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaUInt16(self) }
}
extension UInt32: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> UInt32 { try buffer.readKafkaUInt32("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaUInt32(self) }
}
extension Double: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> Double { try buffer.readKafkaFloat64("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaFloat64(self) }
}
extension Bool: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> Bool { try buffer.readKafkaBool("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaBool(self) }
}
extension String: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> String { try buffer.readKafkaString(compact: compact, "array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaString(self, compact: compact) }
}
extension KafkaUUID: KafkaArrayElement {
    @inlinable public static func readKafkaElement(from buffer: inout ByteBuffer, compact: Bool, version: Int16) throws -> KafkaUUID { try buffer.readKafkaUUID("array element") }
    @inlinable public func writeKafkaElement(to buffer: inout ByteBuffer, compact: Bool, version: Int16) { buffer.writeKafkaUUID(self) }
}

// Notes on generated types (see tools/gen-protocol.py):
//
// * A field that is nullable in ANY version is Optional in Swift. Encoding `nil` in a
//   version where the field is not nullable writes the non-null empty value instead
//   (empty string / empty array / empty bytes / the struct's defaults / empty records).
// * Fields absent from the encoded version are silently skipped, even if they hold
//   non-default values (Kafka would throw for non-ignorable fields; `encode` cannot throw).
// * Tagged fields are written only when != their default, in ascending tag order, merged
//   with `unknownTaggedFields` (a known field wins if both use the same tag).
// * Nullable struct fields carry an int8 presence marker (-1 null, 1 present), as Kafka does.
// * Classic strings longer than Int16.max bytes are not representable; callers must not
//   encode them.

extension KafkaStruct {
    /// Encodes into a fresh buffer.
    public func encoded(version: Int16) -> ByteBuffer {
        var buffer = ByteBuffer()
        encode(into: &buffer, version: version)
        return buffer
    }
}
