import Foundation
import Logging
import NIOCore
import SiltController
import SiltNode
import SiltProtocol
import SiltStorage

/// The Kafka-facing broker of one node: decodes requests, applies them to the metadata
/// controller and the partition logs, and encodes the answers.
///
/// Threading: `handle` runs on the connection's event loop. Metadata reads take a copy of
/// the controller's image; partition logs are thread-safe; completions hop back to the
/// connection's loop (see `KafkaConnectionHandler`).
public final class Broker: @unchecked Sendable {
    let config: ServerConfig
    let clusterId: String
    let controller: MetadataController
    let logs: LogManager
    let logger: Logger
    let fetchWaiters = FetchWaiters()

    /// The APIs and versions this broker serves, and nothing else: an API that is not in
    /// this table is not advertised, and a request for it closes the connection.
    static let supportedApis: [Int16: ClosedRange<Int16>] = [
        ProduceRequest.apiKey: 3...11,          // v3+: record batch v2 (the only format stored)
        FetchRequest.apiKey: 4...17,            // v4+: record batch v2
        ListOffsetsRequest.apiKey: 0...6,       // v7+ adds max-timestamp lookups, not served yet
        MetadataRequest.apiKey: 0...12,
        OffsetForLeaderEpochRequest.apiKey: 0...4,
        ApiVersionsRequest.apiKey: 0...4,
        CreateTopicsRequest.apiKey: 0...7,
        DeleteTopicsRequest.apiKey: 0...6,
        DescribeConfigsRequest.apiKey: 0...4,
        CreatePartitionsRequest.apiKey: 0...3,
        DescribeClusterRequest.apiKey: 0...1,
    ]

    public init(config: ServerConfig, clusterId: String, controller: MetadataController, logs: LogManager, logger: Logger) throws {
        self.config = config
        self.clusterId = clusterId
        self.controller = controller
        self.logs = logs
        self.logger = logger
        let waiters = fetchWaiters
        logs.addHighWatermarkListener { log, _ in
            waiters.notify(PartitionKey(topic: log.topic, partition: log.partition))
        }
        try openPartitions()
    }

    /// Opens the log of every partition the metadata knows, and removes partition data
    /// whose topic no longer exists (a crash between a topic's deletion and its data's).
    private func openPartitions() throws {
        let image = controller.image
        var known = Set<String>()
        for topic in image.topicsByName.values {
            known.insert(topic.name)
            for p in 0..<topic.partitionCount { try openPartition(topic: topic.name, partition: p) }
        }
        for stale in Set(logs.allPartitions().map(\.topic)) where !known.contains(stale) {
            logger.warning("removing data of deleted topic", metadata: ["topic": "\(stale)"])
            try logs.deletePartitions(topic: stale)
        }
    }

    func openPartition(topic: String, partition: Int32) throws {
        _ = try logs.openOrCreate(topic: topic, partition: partition)
    }

    // MARK: - Dispatch

    /// Handles one request frame. Throws when the connection must be closed: an unknown
    /// api key, an unsupported version (other than ApiVersions), or a malformed request.
    func handle(frame: ByteBuffer, context: RequestContext) throws -> EventLoopFuture<ByteBuffer?> {
        var body = frame
        guard let apiKey = frame.getInteger(at: frame.readerIndex, endianness: .big, as: Int16.self),
              let apiVersion = frame.getInteger(at: frame.readerIndex + 2, endianness: .big, as: Int16.self),
              let correlationId = frame.getInteger(at: frame.readerIndex + 4, endianness: .big, as: Int32.self) else {
            throw KafkaProtocolError.truncated("request header")
        }
        guard let range = Broker.supportedApis[apiKey] else {
            throw RequestViolation("unknown or unsupported api key \(apiKey) (version \(apiVersion), correlation id \(correlationId))")
        }
        guard range.contains(apiVersion) else {
            if apiKey == ApiVersionsRequest.apiKey {
                return context.eventLoop.makeSucceededFuture(unsupportedApiVersionsResponse(correlationId: correlationId, range: range))
            }
            throw RequestViolation("api key \(apiKey) version \(apiVersion) is not supported (\(range))")
        }
        let header = try RequestHeader(from: &body, version: requestHeaderVersion(apiKey: apiKey, apiVersion: apiVersion))
        let request = Request(header: header, context: context)
        switch apiKey {
        case ApiVersionsRequest.apiKey: return try serve(ApiVersionsRequest.self, &body, request, apiVersions)
        case MetadataRequest.apiKey: return try serve(MetadataRequest.self, &body, request, metadata)
        case ProduceRequest.apiKey: return try serve(ProduceRequest.self, &body, request, produce)
        case FetchRequest.apiKey: return try serve(FetchRequest.self, &body, request, fetch)
        case ListOffsetsRequest.apiKey: return try serve(ListOffsetsRequest.self, &body, request, listOffsets)
        case OffsetForLeaderEpochRequest.apiKey: return try serve(OffsetForLeaderEpochRequest.self, &body, request, offsetForLeaderEpoch)
        case CreateTopicsRequest.apiKey: return try serve(CreateTopicsRequest.self, &body, request, createTopics)
        case DeleteTopicsRequest.apiKey: return try serve(DeleteTopicsRequest.self, &body, request, deleteTopics)
        case CreatePartitionsRequest.apiKey: return try serve(CreatePartitionsRequest.self, &body, request, createPartitions)
        case DescribeConfigsRequest.apiKey: return try serve(DescribeConfigsRequest.self, &body, request, describeConfigs)
        case DescribeClusterRequest.apiKey: return try serve(DescribeClusterRequest.self, &body, request, describeCluster)
        default:
            preconditionFailure("api key \(apiKey) is in supportedApis but has no handler")
        }
    }

    /// Decodes a typed request, runs its handler and frames the typed response.
    private func serve<R: KafkaRequest>(
        _ type: R.Type, _ body: inout ByteBuffer, _ request: Request,
        _ handler: (R, Request) throws -> EventLoopFuture<R.Response?>
    ) throws -> EventLoopFuture<ByteBuffer?> {
        let version = request.version
        let decoded = try R(from: &body, version: version)
        let correlationId = request.header.correlationId
        return try handler(decoded, request).map { response in
            response.map { Broker.frame($0, apiKey: R.apiKey, version: version, correlationId: correlationId) }
        }
    }

    /// Encodes `size | response header | body`.
    static func frame<M: KafkaMessage>(_ body: M, apiKey: Int16, version: Int16, correlationId: Int32) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: 256)
        out.writeInteger(Int32(0))    // size, patched below
        var header = ResponseHeader()
        header.correlationId = correlationId
        header.encode(into: &out, version: responseHeaderVersion(apiKey: apiKey, apiVersion: version))
        body.encode(into: &out, version: version)
        out.setInteger(Int32(out.readableBytes - 4), at: 0)
        return out
    }

    // MARK: - ApiVersions

    private static let softwareNamePattern = try! NSRegularExpression(pattern: "^[a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?$")

    static func isValidSoftwareField(_ s: String) -> Bool {
        softwareNamePattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    func apiVersions(_ req: ApiVersionsRequest, _ r: Request) -> EventLoopFuture<ApiVersionsResponse?> {
        var resp = ApiVersionsResponse()
        if r.version >= 3 && !(Broker.isValidSoftwareField(req.clientSoftwareName) && Broker.isValidSoftwareField(req.clientSoftwareVersion)) {
            resp.errorCode = ErrorCode.invalidRequest
            r.logger.warning("ApiVersions with invalid client software name/version", metadata: [
                "name": "\(req.clientSoftwareName)", "version": "\(req.clientSoftwareVersion)"])
            return r.succeed(resp)
        }
        resp.apiKeys = Broker.advertisedApiVersions()
        return r.succeed(resp)
    }

    static func advertisedApiVersions() -> [ApiVersionsResponse.ApiVersion] {
        supportedApis.keys.sorted().map { key in
            var v = ApiVersionsResponse.ApiVersion()
            v.apiKey = key
            v.minVersion = supportedApis[key]!.lowerBound
            v.maxVersion = supportedApis[key]!.upperBound
            return v
        }
    }

    /// KIP-511: a client that asks with a newer ApiVersions than we know gets a v0 answer
    /// (v0 header) with UNSUPPORTED_VERSION and the range of ApiVersions we do serve.
    private func unsupportedApiVersionsResponse(correlationId: Int32, range: ClosedRange<Int16>) -> ByteBuffer {
        var resp = ApiVersionsResponse()
        resp.errorCode = ErrorCode.unsupportedVersion
        var v = ApiVersionsResponse.ApiVersion()
        v.apiKey = ApiVersionsRequest.apiKey
        v.minVersion = range.lowerBound
        v.maxVersion = range.upperBound
        resp.apiKeys = [v]
        return Broker.frame(resp, apiKey: ApiVersionsRequest.apiKey, version: 0, correlationId: correlationId)
    }

    // MARK: - Helpers shared by handlers

    var nodeId: Int32 { config.nodeId }

    /// The advertised endpoint of `listenerName` (clients get back the listener they used).
    func advertisedEndpoint(for listenerName: String) -> Listener {
        config.advertisedListeners.first(where: { $0.name == listenerName }) ?? config.advertisedListeners[0]
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// One decoded request with its header and origin.
struct Request {
    let header: RequestHeader
    let context: RequestContext
    var version: Int16 { header.requestApiVersion }
    var logger: Logger { context.logger }
    var eventLoop: EventLoop { context.eventLoop }
    func succeed<T>(_ value: T) -> EventLoopFuture<T?> { eventLoop.makeSucceededFuture(value) }
}

/// A request that cannot be answered: the connection is closed.
struct RequestViolation: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension UUID {
    var kafka: KafkaUUID {
        let u = uuid
        let high = [u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let low = [u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return KafkaUUID(high: high, low: low)
    }
}

extension KafkaUUID {
    var foundation: UUID {
        func b(_ v: UInt64, _ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: v >> UInt64(56 - 8 * i)) }
        return UUID(uuid: (b(high, 0), b(high, 1), b(high, 2), b(high, 3), b(high, 4), b(high, 5), b(high, 6), b(high, 7),
                           b(low, 0), b(low, 1), b(low, 2), b(low, 3), b(low, 4), b(low, 5), b(low, 6), b(low, 7)))
    }
}
