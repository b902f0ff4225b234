/// The replicated log as the core holds it: an optional snapshot standing for every record
/// below `startOffset`, then contiguous batches.
///
///     snapshot (opaque bytes)     batches, epochs non-decreasing
///     [0 ............... start)[b0    )[b1 )[b2      )end
///                              └ epochStarts: (epoch, first offset) of each epoch run
///
/// Invariants: `batches[0].baseOffset == startOffset`; `batches[i].endOffset ==
/// batches[i+1].baseOffset`; epochs never decrease and never go below the snapshot's;
/// `epochStarts` is ascending in both fields and matches the batches.
struct RaftLog {
    private(set) var snapshot: RaftSnapshot?
    private(set) var batches: [RaftBatch] = []
    private var epochStarts: [(epoch: Int32, offset: Int64)] = []

    init(snapshot: RaftSnapshot?, batches: [RaftBatch]) {
        self.snapshot = snapshot
        for batch in batches { append(batch) }
    }

    var startOffset: Int64 { snapshot?.id.endOffset ?? 0 }
    var endOffset: Int64 { batches.last?.endOffset ?? startOffset }
    /// The epoch of the last record: the last batch's, else the snapshot's, else 0.
    var lastEpoch: Int32 { batches.last?.epoch ?? startEpoch }
    /// The epoch of the record just below `startOffset` (0 for an empty log).
    var startEpoch: Int32 { snapshot?.id.epoch ?? 0 }

    mutating func append(_ batch: RaftBatch) {
        precondition(batch.baseOffset == endOffset, "RaftLog: batch at \(batch.baseOffset), log ends at \(endOffset)")
        precondition(batch.epoch >= lastEpoch, "RaftLog: epoch \(batch.epoch) after \(lastEpoch)")
        if batch.epoch != epochStarts.last?.epoch { epochStarts.append((batch.epoch, batch.baseOffset)) }
        batches.append(batch)
    }

    /// Drops every batch at or above `offset`, which must be a batch boundary.
    mutating func truncate(to offset: Int64) {
        precondition(offset >= startOffset && offset <= endOffset, "RaftLog: truncate to \(offset) outside [\(startOffset), \(endOffset)]")
        let keep = index(ofBatchAt: offset) ?? batches.count
        precondition(keep == batches.count || batches[keep].baseOffset == offset, "RaftLog: \(offset) is not a batch boundary")
        batches.removeSubrange(keep...)
        while let last = epochStarts.last, last.offset >= offset { epochStarts.removeLast() }
    }

    /// Replaces the whole log by a snapshot fetched from the leader.
    mutating func install(_ newSnapshot: RaftSnapshot) {
        precondition(newSnapshot.id.endOffset > startOffset, "RaftLog: snapshot \(newSnapshot.id) not past \(startOffset)")
        snapshot = newSnapshot
        batches = []
        epochStarts = []
    }

    /// Keeps a local snapshot taken at a batch boundary inside the log and drops the batches
    /// it covers.
    mutating func compact(to newSnapshot: RaftSnapshot) {
        let end = newSnapshot.id.endOffset
        precondition(end > startOffset && end <= endOffset, "RaftLog: snapshot \(newSnapshot.id) outside (\(startOffset), \(endOffset)]")
        let drop = index(ofBatchAt: end) ?? batches.count
        precondition(drop > 0 && batches[drop - 1].endOffset == end, "RaftLog: snapshot end \(end) is not a batch boundary")
        precondition(batches[drop - 1].epoch == newSnapshot.id.epoch,
                     "RaftLog: snapshot epoch \(newSnapshot.id.epoch) but the record at \(end - 1) has epoch \(batches[drop - 1].epoch)")
        batches.removeFirst(drop)
        snapshot = newSnapshot
        epochStarts.removeAll { $0.offset < end }
        if let first = batches.first, first.epoch != epochStarts.first?.epoch {
            epochStarts.insert((first.epoch, first.baseOffset), at: 0)
        }
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch in the log not above `epoch`, and the
    /// offset where it ends (where the next epoch starts, or the log end). Nil when the log
    /// holds nothing of an epoch that low.
    func endOffsetForEpoch(_ epoch: Int32) -> DivergingEpoch? {
        if let i = epochStarts.lastIndex(where: { $0.epoch <= epoch }) {
            let end = i + 1 < epochStarts.count ? epochStarts[i + 1].offset : endOffset
            return DivergingEpoch(epoch: epochStarts[i].epoch, endOffset: end)
        }
        if let snapshot, snapshot.id.epoch <= epoch {
            return DivergingEpoch(epoch: snapshot.id.epoch, endOffset: startOffset)
        }
        return nil
    }

    /// Index of the batch holding `offset`, nil at or past the end. Binary search.
    func index(ofBatchAt offset: Int64) -> Int? {
        guard offset >= startOffset, offset < endOffset else { return nil }
        var lo = 0, hi = batches.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if batches[mid].baseOffset <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// The largest batch boundary at or below `offset`, clamped to `[startOffset, endOffset]`.
    func boundary(atOrBelow offset: Int64) -> Int64 {
        guard let i = index(ofBatchAt: offset) else { return offset < startOffset ? startOffset : endOffset }
        return batches[i].baseOffset
    }

    func isBoundary(_ offset: Int64) -> Bool {
        offset == endOffset || index(ofBatchAt: offset).map { batches[$0].baseOffset == offset } == true
    }

    /// Whole batches from `offset` (a boundary) up to `limit`, at most `countMax` of them and,
    /// after the first, at most `bytesMax` payload bytes.
    func read(from offset: Int64, upTo limit: Int64, countMax: Int, bytesMax: Int) -> [RaftBatch] {
        guard offset < limit, var i = index(ofBatchAt: offset) else { return [] }
        precondition(batches[i].baseOffset == offset, "RaftLog: read from \(offset), not a batch boundary")
        var out: [RaftBatch] = []
        var bytes = 0
        while i < batches.count, batches[i].endOffset <= limit, out.count < countMax {
            bytes += batches[i].byteCount
            if !out.isEmpty && bytes > bytesMax { break }
            out.append(batches[i])
            i += 1
        }
        return out
    }
}
