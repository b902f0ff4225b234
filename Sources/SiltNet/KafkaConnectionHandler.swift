import CSupport
import Logging
import NIOCore

/// Serves one client connection: hands each frame to the broker and writes the answers
/// back in request order, whatever order they complete in (Kafka clients pipeline and
/// match responses by position as well as correlation id).
///
/// ```
///   frames in ──▶ seq 0  seq 1  seq 2 ...        (dispatched as they arrive)
///   completions ─▶ seq 2 done, seq 0 done, ...   (parked in `ready`)
///   bytes out   ◀─ seq 0, then seq 1 once done, then seq 2
/// ```
/// At most `inFlightMax` requests are outstanding per connection; past that the handler
/// stops reading from the socket (TCP back-pressure) until answers drain.
final class KafkaConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let inFlightMax = 128

    private enum Outcome {
        case respond(ByteBuffer)
        case silent          // acks=0 produce: nothing goes back
    }

    /// A completed request waiting for its turn, with its times for `answered(...)`.
    private struct Ready {
        let outcome: Outcome
        let apiKey: Int16
        let receivedNs: UInt64
        let readyNs: UInt64
    }

    private let service: KafkaRequestHandler
    private let listenerName: String
    private var logger: Logger
    private var nextSequence = 0
    private var nextToWrite = 0
    private var ready: [Int: Ready] = [:]
    /// The answers one `drain` wrote, reported after its flush (kept: no allocation per drain).
    private var written: [Ready] = []
    private var readDeferred = false
    private var closing = false

    init(service: KafkaRequestHandler, listenerName: String, logger: Logger) {
        self.service = service
        self.listenerName = listenerName
        self.logger = logger
    }

    private var inFlight: Int { nextSequence - nextToWrite }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "peer"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        logger.debug("connection opened")
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let frame = unwrapInboundIn(data)
        let sequence = nextSequence
        nextSequence += 1
        var request = RequestContext(eventLoop: context.eventLoop, listenerName: listenerName, logger: logger)
        request.receivedNs = silt_monotonic_ns()
        let apiKey = frame.getInteger(at: frame.readerIndex, as: Int16.self) ?? -1
        let receivedNs = request.receivedNs
        request.clientHost = context.remoteAddress?.ipAddress.map { "/\($0)" } ?? ""
        let future: EventLoopFuture<ByteBuffer?>
        do {
            future = try service.handle(frame: frame, context: request)
        } catch {
            closeForViolation(context: context, error)
            return
        }
        future.hop(to: context.eventLoop).whenComplete { result in
            switch result {
            case .success(let bytes):
                self.ready[sequence] = Ready(outcome: bytes.map(Outcome.respond) ?? .silent, apiKey: apiKey,
                                             receivedNs: receivedNs, readyNs: silt_monotonic_ns())
                self.drain(context: context)
            case .failure(let error):
                self.closeForViolation(context: context, error)
            }
        }
    }

    private func drain(context: ChannelHandlerContext) {
        while let next = ready.removeValue(forKey: nextToWrite) {
            nextToWrite += 1
            if case .respond(let bytes) = next.outcome {
                context.write(wrapOutboundOut(bytes), promise: nil)
                written.append(next)
            }
        }
        if !written.isEmpty {
            context.flush()
            let writtenNs = silt_monotonic_ns()
            for w in written {
                service.answered(apiKey: w.apiKey, receivedNs: w.receivedNs, readyNs: w.readyNs, writtenNs: writtenNs)
            }
            written.removeAll(keepingCapacity: true)
        }
        if readDeferred && inFlight < KafkaConnectionHandler.inFlightMax {
            readDeferred = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if inFlight >= KafkaConnectionHandler.inFlightMax {
            readDeferred = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        closeForViolation(context: context, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        logger.debug("connection closed")
        context.fireChannelInactive()
    }

    /// A malformed frame, an unknown api key or a broken request: this connection ends,
    /// every other connection carries on.
    private func closeForViolation(context: ChannelHandlerContext, _ error: Error) {
        guard !closing else { return }
        closing = true
        if let closed = error as? ChannelError, closed == .ioOnClosedChannel || closed == .alreadyClosed { return }
        if error is NIOCore.IOError {
            logger.debug("connection error: \(error)")
        } else {
            logger.warning("closing connection: \(error)")
        }
        context.close(promise: nil)
    }
}

/// What a request handler knows about where the request came from.
public struct RequestContext {
    public let eventLoop: EventLoop
    public let listenerName: String
    public let logger: Logger
    /// The client's IP address as Kafka shows it in group descriptions ("/127.0.0.1"), or "".
    public var clientHost: String = ""
    /// The authenticated principal (Kafka's `Type:name`); PLAINTEXT listeners authenticate no
    /// one, so every connection is `User:ANONYMOUS`, as in Kafka.
    public var principal: String = "User:ANONYMOUS"
    /// When the whole frame had been read (`silt_monotonic_ns`); 0 when not from a socket.
    public var receivedNs: UInt64 = 0
    public init(eventLoop: EventLoop, listenerName: String, logger: Logger) {
        self.eventLoop = eventLoop; self.listenerName = listenerName; self.logger = logger
    }
}

/// Serves Kafka-framed requests: the broker on client listeners, the controller on the
/// CONTROLLER listener.
public protocol KafkaRequestHandler: AnyObject, Sendable {
    /// Handles one request frame (without its size prefix) and returns the framed response,
    /// or nil when none is due (acks=0). Throwing, or failing the future, closes the
    /// connection: an unknown api key, an unsupported version, a malformed request.
    func handle(frame: ByteBuffer, context: RequestContext) throws -> EventLoopFuture<ByteBuffer?>
    /// A response went out: read at `receivedNs`, encoded at `readyNs`, written and flushed
    /// at `writtenNs` (`silt_monotonic_ns`). For the latency breakdown; must not block.
    func answered(apiKey: Int16, receivedNs: UInt64, readyNs: UInt64, writtenNs: UInt64)
}

extension KafkaRequestHandler {
    public func answered(apiKey: Int16, receivedNs: UInt64, readyNs: UInt64, writtenNs: UInt64) {}
}
