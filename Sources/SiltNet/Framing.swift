import NIOCore
import SiltProtocol

/// Encodes `size | response header | body` for a response to `apiKey` at `version`.
public func frameResponse<M: KafkaMessage>(_ body: M, apiKey: Int16, version: Int16, correlationId: Int32) -> ByteBuffer {
    var out = ByteBufferAllocator().buffer(capacity: 256)
    out.writeInteger(Int32(0))    // size, patched below
    var header = ResponseHeader()
    header.correlationId = correlationId
    header.encode(into: &out, version: responseHeaderVersion(apiKey: apiKey, apiVersion: version))
    body.encode(into: &out, version: version)
    out.setInteger(Int32(out.readableBytes - 4), at: 0)
    return out
}

/// Encodes `size | request header | body`.
public func frameRequest<R: KafkaRequest>(_ body: R, version: Int16, correlationId: Int32, clientId: String?) -> ByteBuffer {
    var out = ByteBufferAllocator().buffer(capacity: 256)
    out.writeInteger(Int32(0))
    var header = RequestHeader()
    header.requestApiKey = R.apiKey
    header.requestApiVersion = version
    header.correlationId = correlationId
    header.clientId = clientId
    header.encode(into: &out, version: requestHeaderVersion(apiKey: R.apiKey, apiVersion: version))
    body.encode(into: &out, version: version)
    out.setInteger(Int32(out.readableBytes - 4), at: 0)
    return out
}

/// A request that cannot be answered: the connection is closed.
public struct RequestViolation: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Reads the fixed start of a request frame: api key, version and correlation id.
public func peekRequestKey(_ frame: ByteBuffer) throws -> (apiKey: Int16, apiVersion: Int16, correlationId: Int32) {
    guard let apiKey = frame.getInteger(at: frame.readerIndex, endianness: .big, as: Int16.self),
          let apiVersion = frame.getInteger(at: frame.readerIndex + 2, endianness: .big, as: Int16.self),
          let correlationId = frame.getInteger(at: frame.readerIndex + 4, endianness: .big, as: Int32.self) else {
        throw KafkaProtocolError.truncated("request header")
    }
    return (apiKey, apiVersion, correlationId)
}

/// Decodes a typed request from a frame whose header is at the reader index, runs
/// `handler` and frames its response. The shared shape of every API handler.
///
/// `observer` (when given) sees each response as it is framed, with the request's start
/// (`DispatchTime` nanoseconds): metrics, inside the closure that frames it, so observing
/// allocates nothing of its own.
public func serveRequest<R: KafkaRequest>(
    _ type: R.Type, frame: ByteBuffer, eventLoop: EventLoop, observer: ResponseObserver? = nil, startedNs: UInt64 = 0,
    _ handler: (R, RequestHeader) throws -> EventLoopFuture<R.Response?>
) throws -> EventLoopFuture<ByteBuffer?> {
    var body = frame
    let (apiKey, apiVersion, _) = try peekRequestKey(frame)
    precondition(apiKey == R.apiKey, "dispatched api key \(apiKey) to \(R.self)")
    let header = try RequestHeader(from: &body, version: requestHeaderVersion(apiKey: apiKey, apiVersion: apiVersion))
    let request = try R(from: &body, version: apiVersion)
    let correlationId = header.correlationId
    return try handler(request, header).map { response in
        observer?.responded(R.self, response, startedNs: startedNs)
        return response.map { frameResponse($0, apiKey: R.apiKey, version: apiVersion, correlationId: correlationId) }
    }
}

/// Sees every response a server frames (the broker's request metrics).
public protocol ResponseObserver: AnyObject, Sendable {
    func responded<R: KafkaRequest>(_ type: R.Type, _ response: R.Response?, startedNs: UInt64)
}
