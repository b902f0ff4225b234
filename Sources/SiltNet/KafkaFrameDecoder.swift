import NIOCore

/// Splits a TCP byte stream into Kafka request frames.
///
/// ```
/// +-------------------+------------------------------------+
/// | size: int32 (BE)  | size bytes: request header + body  |
/// +-------------------+------------------------------------+
/// ```
/// A size below the smallest possible header or above `socket.request.max.bytes` is a
/// protocol violation: the decoder throws, and the connection is closed without reading
/// (or allocating) the claimed bytes.
public struct KafkaFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    /// apiKey (2) + apiVersion (2) + correlationId (4).
    public static let frameBytesMin = 8

    let frameBytesMax: Int
    let frameBytesMin: Int
    /// `frameBytesMin` is 8 for requests (api key, version, correlation id); responses
    /// carry at least a correlation id (4).
    public init(frameBytesMax: Int, frameBytesMin: Int = KafkaFrameDecoder.frameBytesMin) {
        self.frameBytesMax = frameBytesMax
        self.frameBytesMin = frameBytesMin
    }

    enum FrameError: Error, CustomStringConvertible {
        case invalidSize(Int32, min: Int, max: Int)
        case truncated(have: Int, want: Int)
        var description: String {
            switch self {
            case .invalidSize(let s, let min, let max): return "frame size \(s) is outside \(min)...\(max) (socket.request.max.bytes)"
            case .truncated(let have, let want): return "connection closed mid-frame: \(have) of \(want) bytes"
            }
        }
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let size = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else {
            return .needMoreData
        }
        guard size >= frameBytesMin && Int(size) <= frameBytesMax else {
            throw FrameError.invalidSize(size, min: frameBytesMin, max: frameBytesMax)
        }
        guard buffer.readableBytes >= 4 + Int(size) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let frame = buffer.readSlice(length: Int(size))!
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            let want = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self).map { Int($0) + 4 } ?? 4
            throw FrameError.truncated(have: buffer.readableBytes, want: want)
        }
        return .needMoreData
    }
}
