import Logging
import NIOCore
import NIOPosix

/// Kafka-framed listeners: one NIO server socket per (name, host, port), each connection
/// served by a `KafkaConnectionHandler` in front of `service`.
public final class KafkaServer {
    public struct Endpoint: Sendable {
        public var name: String
        public var host: String   // empty: all interfaces
        public var port: Int
        public init(name: String, host: String, port: Int) { self.name = name; self.host = host; self.port = port }
    }

    private let group: EventLoopGroup
    private let service: KafkaRequestHandler
    private let frameBytesMax: Int
    private let logger: Logger
    private var channels: [Channel] = []

    public init(group: EventLoopGroup, service: KafkaRequestHandler, frameBytesMax: Int, logger: Logger) {
        self.group = group
        self.service = service
        self.frameBytesMax = frameBytesMax
        self.logger = logger
    }

    /// The ports actually bound (useful when a listener asked for port 0).
    public var boundPorts: [Int] { channels.compactMap { $0.localAddress?.port } }

    /// Binds every endpoint. Throws (naming the listener) when a port is taken.
    public func start(endpoints: [Endpoint]) throws {
        let frameBytesMax = self.frameBytesMax
        for endpoint in endpoints {
            let service = self.service
            var logger = self.logger
            logger[metadataKey: "listener"] = "\(endpoint.name)"
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.backlog, value: 1024)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
                .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: false)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: frameBytesMax)))
                        try channel.pipeline.syncOperations.addHandler(
                            KafkaConnectionHandler(service: service, listenerName: endpoint.name, logger: logger))
                    }
                }
            let host = endpoint.host.isEmpty ? "0.0.0.0" : endpoint.host
            do {
                let channel = try bootstrap.bind(host: host, port: endpoint.port).wait()
                channels.append(channel)
                logger.info("listening", metadata: ["address": "\(host):\(endpoint.port)"])
            } catch {
                throw ServerStartError(description: "cannot bind listener \(endpoint.name)://\(host):\(endpoint.port): \(error)")
            }
        }
    }

    /// Stops accepting connections and closes the listening sockets.
    public func stop() {
        for c in channels { try? c.close().wait() }
        channels.removeAll()
    }
}

public struct ServerStartError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}
