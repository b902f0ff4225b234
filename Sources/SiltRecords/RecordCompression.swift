import CSupport
import NIOCore

/// The records section of a v2 batch through Kafka's codecs (gzip, snappy, lz4, zstd), by way of
/// the C layer's `silt_codec_*` (zlib, libsnappy, liblz4, libzstd). The stream formats are the
/// ones Kafka's clients exchange: see `silt_codec.h` (snappy is snappy-java's xerial framing on
/// output and either that or one raw block, librdkafka's form, on input).
///
/// Decoding is bounded: the output never grows past `maxBytes`. It starts at a guess (four
/// times the input, at least 64 KiB, at most `maxBytes`) and doubles up to `maxBytes`,
/// decoding again each time, so a batch costs at most about twice its decoded size in
/// decoding work and never more than `maxBytes` of output memory. A stream that would inflate
/// past `maxBytes` (a zip bomb) is refused with `.decompressedTooLarge`; the C decoder stops
/// at the buffer's end, so nothing past the bound is ever written or allocated.
public enum RecordCompression {
    /// The decoder's first output guess, in bytes.
    static let firstGuessBytesMin = 64 << 10
    /// The ceiling for readers of stored data that have no topic limit at hand (a timestamp
    /// lookup, the metadata log): decoded records sections above this are refused.
    public static let decompressedBytesMaxDefault = 64 << 20

    /// The decoded bytes of `compressed` (a records section encoded with `codec`).
    /// Throws `.decompressedTooLarge` past `maxBytes`, `.corruptMessage` for a bad stream.
    public static func decompress(_ compressed: ByteBuffer, codec: CompressionType, maxBytes: Int) throws(RecordBatchError) -> ByteBuffer {
        precondition(maxBytes >= 0, "negative maxBytes")
        guard codec != .none else { return compressed }
        let guess = compressed.readableBytes.multipliedReportingOverflow(by: 4)
        var capacity = min(maxBytes, max(firstGuessBytesMin, guess.overflow ? maxBytes : guess.partialValue))
        while true {
            var out = ByteBufferAllocator().buffer(capacity: max(1, capacity))
            var status: Int32 = 0
            unsafeWithInput(compressed) { src, count in
                // The input pointer lives for this closure; the output pointer does not escape
                // the inner one, and `written` never exceeds `capacity`.
                out.writeWithUnsafeMutableBytes(minimumWritableBytes: max(1, capacity)) { dst in
                    var written = 0
                    status = silt_codec_decompress(Int32(codec.rawValue), src, count,
                                                   dst.baseAddress!.assumingMemoryBound(to: UInt8.self), capacity, &written)
                    precondition(written <= capacity, "codec wrote past its output buffer")
                    return written
                }
            }
            switch status {
            case Int32(SILT_CODEC_OK):
                return out
            case Int32(SILT_CODEC_FULL):
                guard capacity < maxBytes else {
                    throw .decompressedTooLarge(codec: codec, compressedBytes: compressed.readableBytes, maxBytes: maxBytes)
                }
                capacity = capacity > maxBytes / 2 ? maxBytes : capacity * 2
            case Int32(SILT_CODEC_NOMEM):
                throw .corruptMessage("\(codec) decoder could not allocate its context")
            default:
                throw .corruptMessage("records are not a valid \(codec) stream (\(compressed.readableBytes) bytes)")
            }
        }
    }

    /// `raw` encoded with `codec` at `level` (the codec's own scale; nil: its default).
    public static func compress(_ raw: ByteBuffer, codec: CompressionType, level: Int32? = nil) -> ByteBuffer {
        guard codec != .none else { return raw }
        let bound = silt_codec_compress_bound(Int32(codec.rawValue), raw.readableBytes)
        precondition(bound > 0, "no bound for codec \(codec)")
        var out = ByteBufferAllocator().buffer(capacity: bound)
        var status: Int32 = 0
        unsafeWithInput(raw) { src, count in
            // As above: both pointers stay inside their closures.
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { dst in
                var written = 0
                status = silt_codec_compress(Int32(codec.rawValue), level ?? SILT_CODEC_DEFAULT_LEVEL, src, count,
                                             dst.baseAddress!.assumingMemoryBound(to: UInt8.self), bound, &written)
                precondition(written <= bound, "codec wrote past its output buffer")
                return written
            }
        }
        // The output has the codec's own bound: anything but OK is a broken invariant or no memory.
        precondition(status == Int32(SILT_CODEC_OK), "\(codec) encoding failed with status \(status)")
        return out
    }

    /// `buffer`'s readable bytes as the C layer takes them: a non-NULL pointer (a local byte
    /// for an empty buffer) valid for the duration of `body`.
    private static func unsafeWithInput<R>(_ buffer: ByteBuffer, _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
        buffer.withUnsafeReadableBytes { src in
            if let base = src.baseAddress, src.count > 0 { return body(base.assumingMemoryBound(to: UInt8.self), src.count) }
            var byte: UInt8 = 0
            return withUnsafePointer(to: &byte) { body($0, 0) }
        }
    }
}

extension CompressionType: CustomStringConvertible {
    /// Kafka's name of the codec, as `compression.type` spells it (`none` for 0).
    public var description: String {
        switch self {
        case .none: return "none"
        case .gzip: return "gzip"
        case .snappy: return "snappy"
        case .lz4: return "lz4"
        case .zstd: return "zstd"
        }
    }

    /// The codec a topic's `compression.type` asks for; nil for `producer` (keep the producer's).
    public init?(topicCompressionType name: String) {
        switch name {
        case "uncompressed": self = .none
        case "gzip": self = .gzip
        case "snappy": self = .snappy
        case "lz4": self = .lz4
        case "zstd": self = .zstd
        default: return nil
        }
    }
}
