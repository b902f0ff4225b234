import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltProtocol

/// A Kafka-framed client connection: what a broker uses to reach the controller over the
/// CONTROLLER listener. Requests are pipelined on one connection and matched to responses
/// by correlation id. A dropped connection fails every outstanding request; the next
/// request reconnects.
public final class KafkaClient: @unchecked Sendable {
    public struct ClientError: Error, CustomStringConvertible {
        public var description: String
    }

    private let group: EventLoopGroup
    private let host: String
    private let port: Int
    private let clientId: String
    private let logger: Logger
    private let frameBytesMax: Int
    private let lock = NSLock()
    private var channel: EventLoopFuture<Channel>?
    private var nextCorrelationId: Int32 = 1
    private var closed = false
    /// The local address connections start from (nil: the kernel's choice), so that a node's
    /// traffic carries its own address (firewall rules and logs can tell nodes apart).
    private let localHost: String?

    public init(group: EventLoopGroup, host: String, port: Int, clientId: String, logger: Logger,
                frameBytesMax: Int = 100 << 20, localHost: String? = nil) {
        self.group = group
        self.localHost = localHost
        self.host = host
        self.port = port
        self.clientId = clientId
        self.logger = logger
        self.frameBytesMax = frameBytesMax
    }

    /// Sends `request` at `version` and decodes the typed response; fails after `timeout`.
    public func send<R: KafkaRequest>(_ request: R, version: Int16, timeout: TimeAmount = .seconds(30))
        -> EventLoopFuture<R.Response> {
        let (channelFuture, correlationId): (EventLoopFuture<Channel>, Int32) = lock.withLock {
            let id = nextCorrelationId
            nextCorrelationId = nextCorrelationId == Int32.max ? 1 : nextCorrelationId + 1
            return (connectLocked(), id)
        }
        let bytes = frameRequest(request, version: version, correlationId: correlationId, clientId: clientId)
        return channelFuture.flatMap { channel in
            let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
            let pending = PendingResponse(correlationId: correlationId, headerVersion:
                responseHeaderVersion(apiKey: R.apiKey, apiVersion: version), promise: promise)
            channel.writeAndFlush(NIOAny(OutboundRequest(bytes: bytes, pending: pending)), promise: nil)
            let timer = channel.eventLoop.scheduleTask(in: timeout) {
                promise.fail(ClientError(description: "request \(R.self) to \(self.host):\(self.port) timed out"))
                channel.close(promise: nil)
            }
            return promise.futureResult.flatMapThrowing { body in
                timer.cancel()
                var body = body
                return try R.Response(from: &body, version: version)
            }
        }
    }

    /// Closes the connection; outstanding requests fail.
    public func close() {
        let c: EventLoopFuture<Channel>? = lock.withLock {
            closed = true
            defer { channel = nil }
            return channel
        }
        c?.whenSuccess { $0.close(promise: nil) }
    }

    private func connectLocked() -> EventLoopFuture<Channel> {
        if closed {
            return group.next().makeFailedFuture(ClientError(description: "client closed"))
        }
        if let c = channel { return c }
        let frameBytesMax = self.frameBytesMax
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: frameBytesMax, frameBytesMin: 4)))
                    try channel.pipeline.syncOperations.addHandler(ResponseMatcher())
                }
            }
        if let localHost, !localHost.isEmpty, let local = try? SocketAddress(ipAddress: localHost, port: 0) {
            bootstrap = bootstrap.bind(to: local)
        }
        let future = bootstrap.connect(host: host, port: port)
        channel = future
        future.whenComplete { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let ch):
                ch.closeFuture.whenComplete { _ in self.forget(future) }
            case .failure(let error):
                self.logger.debug("connect to \(self.host):\(self.port) failed: \(error)")
                self.forget(future)
            }
        }
        return future
    }

    private func forget(_ future: EventLoopFuture<Channel>) {
        lock.withLock { if channel === future { channel = nil } }
    }
}

private struct PendingResponse {
    let correlationId: Int32
    let headerVersion: Int16
    let promise: EventLoopPromise<ByteBuffer>
}

private struct OutboundRequest {
    let bytes: ByteBuffer
    let pending: PendingResponse
}

/// Registers each outgoing request and completes it when its response arrives.
private final class ResponseMatcher: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutboundRequest
    typealias OutboundOut = ByteBuffer

    private var pending: [Int32: PendingResponse] = [:]

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        pending[request.pending.correlationId] = request.pending
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        guard let correlationId = frame.getInteger(at: frame.readerIndex, as: Int32.self),
              let entry = pending.removeValue(forKey: correlationId) else {
            context.fireErrorCaught(KafkaClient.ClientError(description: "response with an unknown correlation id"))
            context.close(promise: nil)
            return
        }
        do {
            _ = try ResponseHeader(from: &frame, version: entry.headerVersion)
            entry.promise.succeed(frame)
        } catch {
            entry.promise.fail(error)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let error = KafkaClient.ClientError(description: "connection closed")
        for (_, p) in pending { p.promise.fail(error) }
        pending.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
