import Foundation
import Logging
import NIOCore
import SiltMetadata
import SiltProtocol

/// A broker's registration and heartbeats with the active controller (KRaft's broker
/// lifecycle):
///
///     start ─BrokerRegistration─▶ registered, fenced ─heartbeat (caught up)─▶ unfenced ─▶ serving
///                                                                                │
///          heartbeats every broker.heartbeat.interval.ms keep the session ◀──────┘
///     stop  ─heartbeat(wantShutDown)─▶ fenced: its partitions go offline at once
///
/// The session is also this broker's lease: a broker that has not had a heartbeat answered
/// within `broker.session.timeout.ms` has been fenced by the controller (or soon will be), so
/// it stops taking requests for its partitions (`hasLiveSession`, checked by the partition
/// seam) rather than acknowledge writes the controller no longer expects from it.
public final class BrokerLifecycle: @unchecked Sendable {
    public struct Settings: Sendable {
        public var nodeId: Int32
        public var clusterId: String
        public var listeners: [BrokerEndpoint]
        public var rack: String?
        public var heartbeatIntervalMs: Int64
        public var sessionTimeoutMs: Int64
        public init(nodeId: Int32, clusterId: String, listeners: [BrokerEndpoint], rack: String?,
                    heartbeatIntervalMs: Int64, sessionTimeoutMs: Int64) {
            precondition(heartbeatIntervalMs > 0 && heartbeatIntervalMs < sessionTimeoutMs,
                         "broker.heartbeat.interval.ms must be below broker.session.timeout.ms")
            self.nodeId = nodeId; self.clusterId = clusterId; self.listeners = listeners; self.rack = rack
            self.heartbeatIntervalMs = heartbeatIntervalMs; self.sessionTimeoutMs = sessionTimeoutMs
        }
    }

    /// A registration the controller refused for good: another live node has this node.id,
    /// or the controllers belong to another cluster.
    public struct RegistrationRefused: Error, CustomStringConvertible {
        public let description: String
    }

    let settings: Settings
    let channel: ControllerChannel
    let metadata: MetadataCache
    let logger: Logger
    public let incarnationId = UUID()
    private let lock = NSLock()
    private var brokerEpoch: Int64 = -1
    private var fenced = true
    private var lastAnsweredAt: NIODeadline?
    private var heartbeatTask: RepeatedTask?
    private var stopped = false
    private var warnedDuplicate = false
    /// Takes the load report each heartbeat carries (set once by the broker; none until then).
    private var loadReporter: (@Sendable () -> (intervalMs: Int64, loads: [BrokerHeartbeatRequest.PartitionLoad]))?

    func setLoadReporter(_ reporter: @escaping @Sendable () -> (intervalMs: Int64, loads: [BrokerHeartbeatRequest.PartitionLoad])) {
        lock.withLock { loadReporter = reporter }
    }

    static let requestTimeout: TimeAmount = .seconds(5)

    init(settings: Settings, channel: ControllerChannel, metadata: MetadataCache, logger: Logger) {
        self.settings = settings
        self.channel = channel
        self.metadata = metadata
        self.logger = logger
    }

    /// True while a heartbeat was answered within the session timeout and this broker is unfenced.
    public var hasLiveSession: Bool {
        lock.withLock {
            guard !fenced, let at = lastAnsweredAt else { return false }
            return NIODeadline.now() - at < .milliseconds(settings.sessionTimeoutMs)
        }
    }

    public var currentBrokerEpoch: Int64 { lock.withLock { brokerEpoch } }

    /// Registers, then heartbeats until the controller unfences this broker (blocking: called
    /// before the listeners open). A refusal that will not change is thrown at once; a node.id
    /// still held by a previous incarnation is retried until its session expires.
    func register(on loop: EventLoop, timeout: TimeAmount) throws {
        let deadline = NIODeadline.now() + timeout
        var lastError: Error?
        while NIODeadline.now() < deadline {
            do {
                try registerOnce()
                break
            } catch let refused as RegistrationRefused {
                throw refused
            } catch {
                lastError = error
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        guard currentBrokerEpoch >= 0 else {
            throw RegistrationRefused(description: "Broker \(settings.nodeId) could not register with the controller within "
                                      + "\(timeout.nanoseconds / 1_000_000) ms: \(lastError.map { "\($0)" } ?? "no answer")")
        }
        while NIODeadline.now() < deadline {
            // A controller election in between is retried, like the registration itself.
            guard (try? metadata.catchUp(on: loop).wait()) != nil else {
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            if let answer = try? heartbeat(wantShutDown: false).wait(), !answer.isFenced,
               (try? metadata.catchUp(on: loop).wait()) != nil {
                logger.info("broker unfenced", metadata: ["brokerEpoch": "\(currentBrokerEpoch)"])
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw RegistrationRefused(description: "Broker \(settings.nodeId) was not unfenced by the controller within "
                                  + "\(timeout.nanoseconds / 1_000_000) ms.")
    }

    private func registerOnce() throws {
        var req = BrokerRegistrationRequest()
        req.brokerId = settings.nodeId
        req.clusterId = settings.clusterId
        req.incarnationId = incarnationId.kafka
        req.rack = settings.rack
        req.listeners = settings.listeners.map { l in
            var out = BrokerRegistrationRequest.Listener()
            out.name = l.name
            out.host = l.host
            out.port = UInt16(clamping: l.port)
            out.securityProtocol = l.securityProtocol
            return out
        }
        let resp = try channel.send(req, version: 0, timeout: Self.requestTimeout).wait()
        switch resp.errorCode {
        case KafkaErrorCode.none:
            lock.withLock {
                brokerEpoch = resp.brokerEpoch
                fenced = true
            }
            logger.info("broker registered", metadata: ["brokerEpoch": "\(resp.brokerEpoch)", "incarnation": "\(incarnationId)"])
        case KafkaErrorCode.inconsistentClusterId:
            throw RegistrationRefused(description: "The controllers belong to another cluster than this node's "
                                      + "(cluster id \(settings.clusterId) in meta.properties): check controller.quorum.voters.")
        case KafkaErrorCode.duplicateBrokerRegistration:
            if !lock.withLock({ defer { warnedDuplicate = true }; return warnedDuplicate }) {
                logger.warning("node.id \(settings.nodeId) is still registered by a live broker; retrying until its session expires")
            }
            throw RegistrationRefused.retriable("Another broker with node.id \(settings.nodeId) is registered and alive. "
                                                + "Give every node its own node.id.")
        default:
            throw RegistrationRefused.retriable("Broker registration failed: \(KafkaErrorCode.name(resp.errorCode)).")
        }
    }

    /// One heartbeat; updates the session and the fenced state from the answer.
    @discardableResult
    func heartbeat(wantShutDown: Bool) -> EventLoopFuture<BrokerHeartbeatResponse> {
        var req = BrokerHeartbeatRequest()
        req.brokerId = settings.nodeId
        req.brokerEpoch = currentBrokerEpoch
        req.currentMetadataOffset = metadata.image.nextOffset - 1
        req.wantShutDown = wantShutDown
        if let report = lock.withLock({ loadReporter })?() {
            (req.reportIntervalMs, req.partitionLoads) = report
        }
        let sentAt = NIODeadline.now()
        return channel.send(req, version: 0, timeout: Self.requestTimeout).flatMapThrowing { resp in
            guard resp.errorCode == KafkaErrorCode.none else { throw HeartbeatRefused(code: resp.errorCode) }
            self.lock.withLock {
                self.fenced = resp.isFenced
                self.lastAnsweredAt = sentAt
            }
            return resp
        }
    }

    /// Heartbeats every `broker.heartbeat.interval.ms` on `loop` (never blocking it). A stale
    /// broker epoch (the controller fenced and replaced this registration) registers again.
    func startHeartbeats(on loop: EventLoop) {
        let interval = TimeAmount.milliseconds(settings.heartbeatIntervalMs)
        let task = loop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { [weak self] _ in
            guard let self, !self.lock.withLock({ self.stopped }) else { return loop.makeSucceededVoidFuture() }
            return self.heartbeat(wantShutDown: false).map { resp in
                if resp.isFenced { self.logger.warning("this broker is fenced; waiting for the controller to unfence it") }
            }.recover { error in
                self.logger.warning("heartbeat failed: \(error)")
                if (error as? HeartbeatRefused)?.code == HeartbeatRefused.staleBrokerEpoch {
                    self.reregister(on: loop)
                }
            }
        }
        lock.withLock { heartbeatTask = task }
    }

    private func reregister(on loop: EventLoop) {
        DispatchQueue.global().async {
            do {
                try self.registerOnce()
                self.logger.notice("registered again after the controller dropped this broker's registration")
            } catch {
                self.logger.warning("registering again failed: \(error)")
            }
        }
    }

    /// Longest a controlled shutdown waits for this broker's partitions to move away; inside
    /// the broker role's stop timeout (15 s), so the node stops cleanly even when they cannot.
    public static let controlledShutdownTimeoutMs: Int64 = 10_000
    /// Heartbeat period while shutting down: the controller answers "shut down" only once
    /// every partition has moved, so it is asked often.
    static let shutdownHeartbeatIntervalMs: Int64 = 50

    /// Controlled shutdown, as KRaft does it: heartbeats with `wantShutDown` until the
    /// controller says the broker may stop. Meanwhile it moves every partition of this broker
    /// to the others (the releases run on the broker's loop, Broker+Moves.swift); once none is
    /// left it fences the broker. With no other broker, the partitions go offline at once.
    /// Blocks the calling thread (not an event loop) for at most `timeoutMs`.
    func shutDown(timeoutMs: Int64 = BrokerLifecycle.controlledShutdownTimeoutMs) {
        let (task, wasStopped) = lock.withLock { () -> (RepeatedTask?, Bool) in
            defer { stopped = true; heartbeatTask = nil }
            return (heartbeatTask, stopped)
        }
        task?.cancel()
        guard !wasStopped, currentBrokerEpoch >= 0 else { return }
        let started = NIODeadline.now()
        let deadline = started + .milliseconds(timeoutMs)
        var done = false
        while !done && NIODeadline.now() < deadline {
            do {
                let resp = try heartbeat(wantShutDown: true).wait()
                done = resp.shouldShutDown
            } catch {
                logger.warning("controlled shutdown: heartbeat failed (\(error)); retrying")
            }
            if !done { Thread.sleep(forTimeInterval: Double(Self.shutdownHeartbeatIntervalMs) / 1000) }
        }
        let ms = (NIODeadline.now() - started).nanoseconds / 1_000_000
        if done {
            logger.info("controlled shutdown done", metadata: ["ms": "\(ms)"])
        } else {
            logger.warning("controlled shutdown timed out; partitions still here go offline when the session expires",
                           metadata: ["ms": "\(ms)"])
        }
        lock.withLock { fenced = true }
    }
}

extension BrokerLifecycle.RegistrationRefused {
    /// Not thrown out of `register`: retried until the deadline.
    static func retriable(_ message: String) -> RetriableRegistrationError { RetriableRegistrationError(description: message) }
}

struct RetriableRegistrationError: Error, CustomStringConvertible {
    let description: String
}

/// The controller answered a heartbeat with an error.
struct HeartbeatRefused: Error, CustomStringConvertible {
    /// The registration this heartbeat belongs to was replaced or dropped: register again.
    static let staleBrokerEpoch = KafkaErrorCode.staleBrokerEpoch
    let code: Int16
    var description: String { "heartbeat refused: \(KafkaErrorCode.name(code))" }
}
