import NIOCore

/// The request header version used for `apiKey` at `apiVersion`:
/// 2 for flexible versions, otherwise 1; ControlledShutdown (key 7) v0 uses header v0.
/// Unknown api keys get 1 (enough to read the correlation id and client id).
public func requestHeaderVersion(apiKey: Int16, apiVersion: Int16) -> Int16 {
    if apiKey == 7 && apiVersion == 0 { return 0 }
    guard let key = ApiKey(rawValue: apiKey) else { return 1 }
    return key.isFlexible(version: apiVersion) ? 2 : 1
}

/// The response header version used for `apiKey` at `apiVersion`:
/// 1 for flexible versions, otherwise 0; ApiVersions (key 18) always uses 0 so that
/// clients can parse the response before version negotiation completes.
public func responseHeaderVersion(apiKey: Int16, apiVersion: Int16) -> Int16 {
    if apiKey == 18 { return 0 }
    guard let key = ApiKey(rawValue: apiKey) else { return 0 }
    return key.isFlexible(version: apiVersion) ? 1 : 0
}

extension RequestHeader {
    /// Reads a request header from the start of a request frame (after the int32 size
    /// prefix): peeks the api key and version, picks the header version with
    /// `requestHeaderVersion`, and decodes. Unknown api keys are decoded as header v1.
    public static func read(from buffer: inout ByteBuffer) throws -> (header: RequestHeader, headerVersion: Int16) {
        guard let key = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int16.self),
              let version = buffer.getInteger(at: buffer.readerIndex + 2, endianness: .big, as: Int16.self) else {
            throw KafkaProtocolError.truncated("RequestHeader")
        }
        let hv = requestHeaderVersion(apiKey: key, apiVersion: version)
        return (try RequestHeader(from: &buffer, version: hv), hv)
    }
}
