import NIOCore
import NIOPosix
import SiltProtocol

/// Splits the byte stream into Kafka frames (int32 size prefix, bounded).
struct KafkaFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let maxFrameBytes = 256 << 20

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let len = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else {
            return .needMoreData
        }
        guard len >= 4, Int(len) <= Self.maxFrameBytes else { throw BenchError("bad response frame length \(len)") }
        guard buffer.readableBytes >= 4 + Int(len) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let frame = buffer.readSlice(length: Int(len))!
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// What a response on a connection is for (responses arrive in request order).
enum PendingKind {
    /// A produce request: `intendedNs` is the time it was due (open loop) or sent (closed loop).
    case produce(intendedNs: UInt64, partition: Int32, measured: Bool)
    case rpc(EventLoopPromise<ByteBuffer>)
}

struct Pending {
    var correlationId: Int32
    var apiKey: Int16
    var version: Int16
    var sentNs: UInt64
    var kind: PendingKind
}

@inline(__always) func nowNs() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

/// One broker connection. All state is confined to its event loop.
final class KafkaConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let index: Int
    var channel: Channel!
    var inflight = CircularBuffer<Pending>(initialCapacity: 64)
    var nextCorrelationId: Int32 = 1
    var pendingFlush = false
    var closing = false
    /// Called for produce responses (frame positioned after the response header).
    var onProduceResponse: ((KafkaConnection, Pending, ByteBuffer) -> Void)?
    /// Called once if the connection fails or closes while not `closing`.
    var onFailure: ((KafkaConnection, String) -> Void)?
    var failed: String?

    init(index: Int) { self.index = index }

    static func connect(host: String, port: Int, index: Int, on loop: EventLoop) -> EventLoopFuture<KafkaConnection> {
        let conn = KafkaConnection(index: index)
        return ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(conn)
                }
            }
            .connect(host: host, port: port)
            .map { ch in conn.channel = ch; return conn }
    }

    /// Encodes and writes (without flushing) one request; returns its correlation id.
    @discardableResult
    func write<R: KafkaRequest>(_ request: R, version: Int16, kind: PendingKind, sentNs: UInt64,
                                sizeHint: Int = 256) -> Int32 {
        let cid = nextCorrelationId
        nextCorrelationId = nextCorrelationId == Int32.max ? 1 : nextCorrelationId + 1
        var buf = channel.allocator.buffer(capacity: sizeHint + 64)
        buf.writeInteger(Int32(0))
        var header = RequestHeader()
        header.requestApiKey = R.apiKey
        header.requestApiVersion = version
        header.correlationId = cid
        header.clientId = "silt-bench"
        header.encode(into: &buf, version: requestHeaderVersion(apiKey: R.apiKey, apiVersion: version))
        request.encode(into: &buf, version: version)
        buf.setInteger(Int32(buf.readableBytes - 4), at: buf.readerIndex)
        inflight.append(Pending(correlationId: cid, apiKey: R.apiKey, version: version, sentNs: sentNs, kind: kind))
        channel.write(buf, promise: nil)
        pendingFlush = true
        return cid
    }

    func flushIfNeeded() {
        if pendingFlush { pendingFlush = false; channel.flush() }
    }

    /// A request/response round trip (setup only).
    func rpc<R: KafkaRequest>(_ request: R, version: Int16) -> EventLoopFuture<ByteBuffer> {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        if let f = failed { promise.fail(BenchError(f)); return promise.futureResult }
        write(request, version: version, kind: .rpc(promise), sentNs: nowNs())
        flushIfNeeded()
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        guard let p = inflight.popFirst() else { fail("unexpected response frame (nothing in flight)"); return }
        do {
            let hv = responseHeaderVersion(apiKey: p.apiKey, apiVersion: p.version)
            let header = try ResponseHeader(from: &frame, version: hv)
            guard header.correlationId == p.correlationId else {
                fail("correlation id mismatch: got \(header.correlationId), expected \(p.correlationId)")
                return
            }
        } catch {
            fail("undecodable response header: \(error)")
            return
        }
        switch p.kind {
        case .rpc(let promise): promise.succeed(frame)
        case .produce: onProduceResponse?(self, p, frame)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail("connection error: \(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !closing { fail("connection closed by the broker") }
        else { failAllPending("connection closed") }
    }

    func fail(_ why: String) {
        guard failed == nil else { return }
        failed = "connection \(index): \(why)"
        failAllPending(failed!)
        if !closing { onFailure?(self, failed!) }
        closing = true
        channel?.close(promise: nil)
    }

    private func failAllPending(_ why: String) {
        while let p = inflight.popFirst() {
            if case .rpc(let promise) = p.kind { promise.fail(BenchError(why)) }
        }
    }

    /// Closes the connection (safe from any thread).
    func close() {
        guard let ch = channel else { return }
        ch.eventLoop.execute {
            self.closing = true
            ch.close(promise: nil)
        }
    }
}
