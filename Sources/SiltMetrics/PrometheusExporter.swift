import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP server for Prometheus: `GET /metrics` answers the region in the text
/// exposition format; any other path is 404, any other method on /metrics 405.
///
/// It runs one event-loop thread of its own, so it works in the supervisor (whose main
/// thread blocks in `Supervisor.run`). It binds exactly the host given. A scrape renders
/// ~5 KB from ~40 atomic loads: no caching, no bound needed beyond the listen backlog.
public final class PrometheusExporter: @unchecked Sendable {
    // @unchecked Sendable: `group` and `channel` are only touched under `lock`.
    public let host: String
    public let requestedPort: Int
    private let region: MetricsRegion
    private let logger: Logger
    private let lock = NSLock()
    private var group: MultiThreadedEventLoopGroup?
    private var channel: Channel?

    /// The listen backlog: Prometheus scrapes one connection at a time.
    static let backlog: Int32 = 16

    public init(region: MetricsRegion, host: String, port: Int, logger: Logger) {
        precondition((0...65535).contains(port), "port \(port) out of range")
        precondition(!host.isEmpty, "empty host")
        self.region = region
        self.host = host
        self.requestedPort = port
        self.logger = logger
    }

    deinit {
        precondition(channel == nil, "PrometheusExporter released while running: call stop()")
    }

    /// The port actually bound (the chosen one when `port` was 0); nil before `start`.
    public var port: Int? {
        lock.lock(); defer { lock.unlock() }
        return channel?.localAddress?.port
    }

    /// Binds and starts serving. Throws `MetricsError.bindFailed` (port taken, bad host).
    /// Call from a synchronous context (it waits for the bind).
    public func start() throws {
        lock.lock(); defer { lock.unlock() }
        precondition(channel == nil, "PrometheusExporter started twice")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let region = self.region
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: Self.backlog)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 4)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(region: region))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: requestedPort).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw MetricsError.bindFailed(host: host, port: requestedPort, reason: "\(error)")
        }
        self.group = group
        logger.info("metrics exporter listening", metadata: [
            "address": "\(host):\(channel?.localAddress?.port ?? requestedPort)", "path": "/metrics"])
    }

    /// Closes the listener and stops the event loop. Idempotent.
    public func stop() {
        lock.lock(); defer { lock.unlock() }
        guard let channel, let group else { return }
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
        self.channel = nil
        self.group = nil
    }
}

/// One HTTP connection of the exporter.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let region: MetricsRegion
    private var request: HTTPRequestHead?

    init(region: MetricsRegion) { self.region = region }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break  // a scrape has no body; anything sent is dropped, not buffered
        case .end:
            guard let head = request else { return }
            request = nil
            respond(context: context, to: head)
        }
    }

    private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let status: HTTPResponseStatus
        var body: String
        var headers = HTTPHeaders()
        if path != "/metrics" {
            status = .notFound
            body = "not found: metrics are at /metrics\n"
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        } else if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            body = "use GET\n"
            headers.add(name: "Allow", value: "GET, HEAD")
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        } else {
            status = .ok
            body = PrometheusText.render(region)
            headers.add(name: "Content-Type", value: PrometheusText.contentType)
        }
        let bytes = body.utf8.count
        if head.method == .HEAD { body = "" }
        let keepAlive = head.isKeepAlive
        headers.add(name: "Content-Length", value: String(bytes))
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")

        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                      promise: nil)
        if !body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: bytes)
            buffer.writeString(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
