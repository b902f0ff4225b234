import NIOCore

/// Kafka's zig-zag varints (protobuf style), used inside v2 records.
public enum Varint {
    /// Longest varint encoding of an Int64 (10 bytes).
    public static let maxLongBytes = 10
    /// Longest varint encoding of an Int32 (5 bytes).
    public static let maxIntBytes = 5

    @inlinable
    public static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
    @inlinable
    public static func unzigzag(_ value: UInt64) -> Int64 { Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }

    /// Bytes needed to encode `value` as a zig-zag varlong.
    public static func size(of value: Int64) -> Int {
        var v = zigzag(value)
        var n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// Appends `value` as a zig-zag varlong.
    @discardableResult
    public static func write(_ value: Int64, to buffer: inout ByteBuffer) -> Int {
        var v = zigzag(value)
        var n = 0
        while v >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
            n += 1
        }
        buffer.writeInteger(UInt8(truncatingIfNeeded: v))
        return n + 1
    }

    /// Reads a zig-zag varlong at the reader index, or nil if truncated or longer than `maxBytes`.
    public static func readLong(from buffer: inout ByteBuffer, maxBytes: Int = maxLongBytes) -> Int64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var index = buffer.readerIndex
        for _ in 0..<maxBytes {
            guard let byte: UInt8 = buffer.getInteger(at: index) else { return nil }
            index += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                buffer.moveReaderIndex(to: index)
                return unzigzag(result)
            }
            shift += 7
        }
        return nil
    }

    /// Reads a zig-zag varint that must fit an Int32.
    public static func readInt(from buffer: inout ByteBuffer) -> Int32? {
        guard let v = readLong(from: &buffer, maxBytes: maxIntBytes) else { return nil }
        return Int32(exactly: v)
    }
}
