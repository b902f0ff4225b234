import CSupport
import NIOCore

/// CRC-32C (Castagnoli) of the readable bytes of `buffer`, as Kafka record batch v2 uses it.
/// `crc` chains: `crc32c(b, crc: crc32c(a)) == crc32c(a ++ b)`.
@inlinable
public func crc32c(_ buffer: ByteBuffer, crc: UInt32 = 0) -> UInt32 {
    buffer.withUnsafeReadableBytes { crc32c($0, crc: crc) }
}

/// CRC-32C of `length` bytes of `buffer` starting at absolute index `index`.
/// Precondition: the range lies within the buffer's readable bytes.
public func crc32c(_ buffer: ByteBuffer, at index: Int, length: Int, crc: UInt32 = 0) -> UInt32 {
    precondition(length >= 0, "negative length")
    precondition(index >= buffer.readerIndex && index + length <= buffer.writerIndex, "range outside readable bytes")
    return buffer.withUnsafeReadableBytes { bytes in
        let start = index - buffer.readerIndex
        return crc32c(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]), crc: crc)
    }
}

/// CRC-32C of raw bytes.
@inlinable
public func crc32c(_ bytes: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
    return silt_crc32c(crc, base, bytes.count)
}

/// CRC-32C of a byte array.
@inlinable
public func crc32c(_ bytes: [UInt8], crc: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { crc32c($0, crc: crc) }
}

/// Which CRC-32C implementation `crc32c` uses on this machine.
public var crc32cUsesHardware: Bool { silt_crc32c_hardware() != 0 }
