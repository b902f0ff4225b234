// Builds stream set objects (and stream objects split off from them) from frames of record
// batches, in the format of `ObjectIndex`. Used by the WAL uploader and by compaction.

/// Accumulates frames of many streams, then lays them out as objects.
///
/// Frames of one stream must arrive in offset order with no gap or overlap (a violation
/// is a bug upstream, so it is a precondition failure); frames of different streams
/// interleave freely. Memory: one copy of every payload until `finish`, plus the output.
public final class StreamSetObjectBuilder {
    private struct Frame {
        var baseOffset: Int64
        var endOffset: Int64
        var bytes: Range<Int>
        var batchCount: Int
    }

    private struct StreamData {
        var bytes: [UInt8] = []
        var frames: [Frame] = []
        /// Newest batch timestamp added (retention's age of the range).
        var maxTimestampMs = RangeStats.unknownTimestampMs
        var stats: RangeStats { RangeStats(bytes: Int64(bytes.count), maxTimestampMs: maxTimestampMs) }
    }

    public let blockBytesTarget: Int
    private var streams: [UInt64: StreamData] = [:]
    public private(set) var bytesAdded = 0
    public var isEmpty: Bool { bytesAdded == 0 }

    public init(blockBytesTarget: Int) {
        precondition(blockBytesTarget > 0)
        self.blockBytesTarget = blockBytesTarget
    }

    /// Adds whole record batches of `streamId` holding offsets `[baseOffset, endOffset)`. The
    /// first batch may start after `baseOffset` (the log cleaner's output has gaps: the frame
    /// still claims the offsets of the batches it removed, so a stream's ranges stay contiguous).
    public func add(streamId: UInt64, baseOffset: Int64, endOffset: Int64, payload: UnsafeRawBufferPointer) {
        precondition(baseOffset >= 0 && baseOffset < endOffset, "empty or negative frame [\(baseOffset),\(endOffset))")
        precondition(payload.count <= Int(UInt32.max), "payload too big for a block")
        let batches: [(baseOffset: Int64, range: Range<Int>)]
        do { batches = try RecordBatches.walk(payload) } catch { preconditionFailure("payload is not whole record batches: \(error)") }
        precondition(batches.first.map { $0.baseOffset >= baseOffset } == true && batches.last!.baseOffset < endOffset,
                     "payload batches do not match the frame [\(baseOffset),\(endOffset))")
        // Moved out of the dictionary, not copied: `s.bytes` is then uniquely referenced and
        // the append below grows it in place (amortised O(payload)). A copy (`streams[id]`)
        // would share the buffer with the dictionary's value and copy-on-write the stream's
        // whole accumulated bytes on every add: O(n^2) per object, which was ~90 % of the
        // uploader's CPU and bounded the maximum produce rate (docs/benchmarks.md, issue 15).
        var s = streams.removeValue(forKey: streamId) ?? StreamData()
        if let last = s.frames.last {
            precondition(last.endOffset == baseOffset,
                         "stream \(streamId): frame at \(baseOffset) after one ending at \(last.endOffset) (gap or overlap)")
        }
        for b in batches { s.maxTimestampMs = max(s.maxTimestampMs, RecordBatches.maxTimestamp(payload, batch: b.range)) }
        let start = s.bytes.count
        s.bytes.append(contentsOf: payload)
        s.frames.append(Frame(baseOffset: baseOffset, endOffset: endOffset, bytes: start..<s.bytes.count, batchCount: batches.count))
        streams[streamId] = s
        bytesAdded += payload.count
    }

    /// Where `streamId`'s accumulated bytes live and how much room they have (tests: an add
    /// that fits the capacity must not move them).
    func storage(of streamId: UInt64) -> (base: UnsafeRawPointer?, capacity: Int)? {
        guard let s = streams[streamId] else { return nil }
        return s.bytes.withUnsafeBytes { (UnsafeRawPointer($0.baseAddress), s.bytes.capacity) }
    }

    /// Lays out what was added: every stream holding >= `splitBytes` in its own stream
    /// object, the others in one stream set object (nil if none). Empties the builder.
    public func finish(splitBytes: Int) -> (streamSet: BuiltObject?, streamObjects: [BuiltObject]) {
        var set = ObjectWriter()
        var setStats: [RangeStats] = []
        var streamObjects: [BuiltObject] = []
        for id in streams.keys.sorted() {
            let s = streams[id]!
            if s.bytes.count >= splitBytes {
                var w = ObjectWriter()
                appendBlocks(of: s, streamId: id, to: &w)
                var o = w.finish(kind: .stream)
                o.stats = [s.stats]
                streamObjects.append(o)
            } else {
                appendBlocks(of: s, streamId: id, to: &set)
                setStats.append(s.stats)   // streams in id order: the order of the object's ranges
            }
        }
        streams.removeAll()
        bytesAdded = 0
        guard !set.isEmpty else { return (nil, streamObjects) }
        var streamSet = set.finish(kind: .streamSet)
        streamSet.stats = setStats
        precondition(streamSet.stats.count == streamSet.ranges.count, "one stats entry per range")
        return (streamSet, streamObjects)
    }

    /// Cuts a stream's frames into blocks: a block closes when the next frame would push it
    /// past `blockBytesTarget`; a frame bigger than that gets a block of its own.
    private func appendBlocks(of s: StreamData, streamId: UInt64, to w: inout ObjectWriter) {
        var i = 0
        while i < s.frames.count {
            var j = i + 1
            var size = s.frames[i].bytes.count
            while j < s.frames.count && size + s.frames[j].bytes.count <= blockBytesTarget {
                size += s.frames[j].bytes.count
                j += 1
            }
            let batches = s.frames[i..<j].reduce(0) { $0 + $1.batchCount }
            w.appendBlock(streamId: streamId, startOffset: s.frames[i].baseOffset, endOffset: s.frames[j - 1].endOffset,
                          batchCount: batches, body: s.bytes[s.frames[i].bytes.lowerBound..<s.frames[j - 1].bytes.upperBound])
            i = j
        }
    }
}

/// Appends blocks, then index and footer. Blocks must come in (streamId, offset) order.
struct ObjectWriter {
    private(set) var bytes: [UInt8] = []
    private(set) var entries: [ObjectIndex.Entry] = []
    var isEmpty: Bool { entries.isEmpty }

    mutating func appendBlock(streamId: UInt64, startOffset: Int64, endOffset: Int64, batchCount: Int, body: ArraySlice<UInt8>) {
        if let last = entries.last {
            precondition(last.streamId < streamId || (last.streamId == streamId && last.endOffset == startOffset),
                         "blocks out of order: \(streamId)@\(startOffset) after \(last.streamId)@\(last.endOffset)")
        }
        entries.append(ObjectIndex.Entry(streamId: streamId, startOffset: startOffset, endOffset: endOffset,
                                         position: Int64(bytes.count), size: body.count, batchCount: batchCount))
        bytes.append(contentsOf: body)
    }

    consuming func finish(kind: ObjectKind) -> BuiltObject {
        let dataBytes = Int64(bytes.count)
        bytes += ObjectIndex.encodeIndexAndFooter(entries, dataBytes: dataBytes)
        // Assert on the write side: the object must parse back to what we wrote.
        let index: ObjectIndex
        do { index = try ObjectIndex(validating: entries, dataBytes: dataBytes) } catch {
            preconditionFailure("built an invalid object: \(error)")
        }
        precondition(kind == .streamSet || index.ranges.count == 1, "a stream object holds exactly one stream")
        return BuiltObject(bytes: bytes, ranges: index.ranges, kind: kind)
    }
}
