import Logging
import NIOCore
import NIOPosix
import SiltNode

/// The Kafka listeners of a broker: one NIO server socket per client listener.
public final class KafkaServer {
    private let group: EventLoopGroup
    private let broker: Broker
    private let config: ServerConfig
    private let logger: Logger
    private var channels: [Channel] = []

    public init(group: EventLoopGroup, broker: Broker, config: ServerConfig, logger: Logger) {
        self.group = group
        self.broker = broker
        self.config = config
        self.logger = logger
    }

    /// Binds every client listener. Throws (naming the listener) when a port is taken.
    public func start() throws {
        let frameBytesMax = config.socketRequestMaxBytes
        for listener in config.clientListeners {
            let broker = self.broker
            var logger = self.logger
            logger[metadataKey: "listener"] = "\(listener.name)"
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
                            KafkaConnectionHandler(broker: broker, listenerName: listener.name, logger: logger))
                    }
                }
            let host = listener.host.isEmpty ? "0.0.0.0" : listener.host
            do {
                let channel = try bootstrap.bind(host: host, port: listener.port).wait()
                channels.append(channel)
                logger.info("listening", metadata: ["address": "\(host):\(listener.port)"])
            } catch {
                throw ServerStartError(description: "cannot bind listener \(listener): \(error)")
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
}
