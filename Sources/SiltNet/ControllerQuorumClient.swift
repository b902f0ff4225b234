import Foundation
import Logging
import NIOCore
import SiltProtocol

/// A controller's answer that says "not me": NOT_CONTROLLER on a change, or
/// NOT_LEADER_OR_FOLLOWER on the metadata log, with the leader's id when it knows one.
public protocol ControllerRedirect {
    /// nil: the answer stands. Otherwise the request goes to another controller: the given
    /// leader when it is >= 0, else the next voter.
    var redirect: Int32? { get }
}

/// How brokers, uploaders and tools reach the active controller: they know the voters
/// (`controller.quorum.voters`, or `controller.quorum.bootstrap.servers`), send to the one
/// they believe leads, and move on when it answers "not me" or cannot be reached.
///
/// Retries stay inside the request's timeout. A request that may have reached a controller
/// (the connection broke after it was sent) is retried only if it changes nothing (Fetch,
/// FetchSnapshot, DescribeQuorum, ApiVersions); a change is never sent twice by this client,
/// its caller decides (the new leader's validation then answers).
public final class ControllerQuorumClient: @unchecked Sendable {
    public struct Endpoint: Equatable, Sendable {
        public var id: Int32?   // nil for a bootstrap server
        public var host: String
        public var port: Int
        public init(id: Int32?, host: String, port: Int) { self.id = id; self.host = host; self.port = port }
    }

    private let endpoints: [Endpoint]
    private let clients: [KafkaClient]
    private let group: EventLoopGroup
    private let logger: Logger
    private let lock = NSLock()
    /// Index into `endpoints` of the controller believed to lead.
    private var current = 0
    static let readOnlyApis: Set<Int16> = [FetchRequest.apiKey, FetchSnapshotRequest.apiKey,
                                           DescribeQuorumRequest.apiKey, ApiVersionsRequest.apiKey]
    /// Pause between two controllers that both said "not me" (an election is under way).
    static let redirectBackoffMs: Int64 = 50

    /// `localHost`: the address connections leave from (the node's own listener address), so
    /// that a node's traffic to the controllers comes from the address it is known by; nil:
    /// the kernel's choice.
    public init(group: EventLoopGroup, endpoints: [Endpoint], clientId: String, logger: Logger, localHost: String? = nil) {
        precondition(!endpoints.isEmpty, "a controller quorum client needs at least one controller")
        self.endpoints = endpoints
        self.group = group
        self.logger = logger
        // A loopback source cannot reach another host, nor the other way round: bind only
        // within the same kind of address.
        func isLoopback(_ host: String) -> Bool { host.hasPrefix("127.") || host == "::1" || host == "localhost" }
        self.clients = endpoints.map { e in
            KafkaClient(group: group, host: e.host, port: e.port, clientId: clientId, logger: logger,
                        localHost: localHost.flatMap { isLoopback($0) == isLoopback(e.host) ? $0 : nil })
        }
    }

    /// The controller currently believed to lead (for logs and tools).
    public var currentController: Endpoint { lock.withLock { endpoints[current] } }

    public func close() { for c in clients { c.close() } }

    /// Sends `request` to the active controller, following redirects within `timeout`.
    public func send<R: KafkaRequest>(_ request: R, version: Int16, timeout: TimeAmount = .seconds(30))
        -> EventLoopFuture<R.Response> {
        let deadline = NIODeadline.now() + timeout
        let promise = group.next().makePromise(of: R.Response.self)
        attempt(request, version: version, deadline: deadline, tried: 0, promise: promise)
        return promise.futureResult
    }

    private func attempt<R: KafkaRequest>(_ request: R, version: Int16, deadline: NIODeadline, tried: Int,
                                          promise: EventLoopPromise<R.Response>) {
        let index = lock.withLock { current }
        let remaining = deadline - NIODeadline.now()
        guard remaining > .zero else {
            promise.fail(KafkaClient.ClientError(description: "no active controller answered \(R.self) in time "
                + "(tried \(tried) times; voters \(endpoints.map { "\($0.host):\($0.port)" }.joined(separator: ",")))"))
            return
        }
        clients[index].send(request, version: version, timeout: remaining).whenComplete { result in
            switch result {
            case .success(let response):
                if let redirect = (response as? ControllerRedirect)?.redirect {
                    self.moveOn(from: index, to: redirect)
                    // Everyone says "not me": an election is under way; pause a little.
                    let pause = tried + 1 >= self.endpoints.count ? ControllerQuorumClient.redirectBackoffMs : 0
                    self.group.next().scheduleTask(in: .milliseconds(pause)) {
                        self.attempt(request, version: version, deadline: deadline, tried: tried + 1, promise: promise)
                    }
                } else {
                    promise.succeed(response)
                }
            case .failure(let error):
                let mayHaveArrived = error is KafkaClient.ClientError
                guard !mayHaveArrived || ControllerQuorumClient.readOnlyApis.contains(R.apiKey) else {
                    self.moveOn(from: index, to: -1)
                    promise.fail(error)
                    return
                }
                self.logger.debug("controller \(self.endpoints[index].host):\(self.endpoints[index].port) failed: \(error)")
                self.moveOn(from: index, to: -1)
                let pause = tried + 1 >= self.endpoints.count ? ControllerQuorumClient.redirectBackoffMs * 2 : 0
                self.group.next().scheduleTask(in: .milliseconds(pause)) {
                    self.attempt(request, version: version, deadline: deadline, tried: tried + 1, promise: promise)
                }
            }
        }
    }

    /// After `index` said "not me": go to `leader` if it is a known voter, else to the next one.
    private func moveOn(from index: Int, to leader: Int32) {
        lock.withLock {
            guard current == index else { return }   // someone else moved already
            if leader >= 0, let i = endpoints.firstIndex(where: { $0.id == leader }), i != index {
                current = i
            } else {
                current = (index + 1) % endpoints.count
            }
        }
    }
}

// MARK: Which answers say "not me"

private func notController(_ codes: [Int16]) -> Int32? {
    codes.contains(KafkaErrorCode.notController) ? -1 : nil
}

extension CreateTopicsResponse: ControllerRedirect { public var redirect: Int32? { notController(topics.map(\.errorCode)) } }
extension DeleteTopicsResponse: ControllerRedirect { public var redirect: Int32? { notController(responses.map(\.errorCode)) } }
extension CreatePartitionsResponse: ControllerRedirect { public var redirect: Int32? { notController(results.map(\.errorCode)) } }
extension AlterConfigsResponse: ControllerRedirect { public var redirect: Int32? { notController(responses.map(\.errorCode)) } }
extension IncrementalAlterConfigsResponse: ControllerRedirect {
    public var redirect: Int32? { notController(responses.map(\.errorCode)) }
}
extension OpenUploaderResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension PrepareS3ObjectResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension CommitS3ObjectsResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension TrimStreamsResponse: ControllerRedirect { public var redirect: Int32? { notController(streams.map(\.errorCode)) } }
extension AllocateProducerIdsResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension BrokerRegistrationResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension BrokerHeartbeatResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension OpenStreamsResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension ReleaseStreamsResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension TakeOverNodeResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension AlterPartitionReassignmentsResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }
extension ListPartitionReassignmentsResponse: ControllerRedirect { public var redirect: Int32? { notController([errorCode]) } }

extension FetchResponse: ControllerRedirect {
    public var redirect: Int32? {
        guard let p = responses.first?.partitions.first else {
            return errorCode == KafkaErrorCode.notLeaderOrFollower ? -1 : nil
        }
        return p.errorCode == KafkaErrorCode.notLeaderOrFollower ? p.currentLeader.leaderId : nil
    }
}

extension DescribeQuorumResponse: ControllerRedirect {
    public var redirect: Int32? {
        guard let p = topics.first?.partitions.first, p.errorCode == KafkaErrorCode.notLeaderOrFollower else { return nil }
        return p.leaderId
    }
}
