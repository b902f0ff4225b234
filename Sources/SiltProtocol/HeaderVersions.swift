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
