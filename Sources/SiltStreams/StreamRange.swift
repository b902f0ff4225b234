/// Offsets `[startOffset, endOffset)` of one stream (a partition's log), as an object holds them.
public struct StreamRange: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public var streamId: UInt64
    public var startOffset: Int64
    /// Exclusive.
    public var endOffset: Int64

    public init(streamId: UInt64, startOffset: Int64, endOffset: Int64) {
        precondition(startOffset <= endOffset, "stream range ends before it starts")
        self.streamId = streamId
        self.startOffset = startOffset
        self.endOffset = endOffset
    }

    public var description: String { "\(streamId)[\(startOffset),\(endOffset))" }
}

/// What retention needs to know about one stream range of an object, without reading it:
/// how many bytes of the stream the object holds, and the newest record timestamp among
/// them (the batches' maxTimestamp). Kept beside the ranges (same order), so a range's
/// identity (`StreamRange`) stays what the object index says.
public struct RangeStats: Sendable, Equatable, Hashable, Codable {
    public var bytes: Int64
    /// The largest batch maxTimestamp in the range; `unknownTimestampMs` if no batch had one.
    public var maxTimestampMs: Int64
    public static let unknownTimestampMs: Int64 = -1

    public init(bytes: Int64, maxTimestampMs: Int64) {
        precondition(bytes >= 0, "negative range size")
        self.bytes = bytes
        self.maxTimestampMs = maxTimestampMs
    }
}
