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
