import Foundation
import NIOCore
import SiltProtocol

/// Per-partition traffic of this broker since its last load report: produced and fetched
/// bytes and the requests that named each partition. Each heartbeat takes a report (rates
/// over the time since the previous one) and starts a new period; the active controller keeps
/// a window of them for the auto balancer (SiltController/LoadWindow.swift).
///
/// Cost on the request path: one lock and a dictionary update per partition of a request
/// (the same order as the partition lookup itself). Bounds: entries exist only for partitions
/// this broker served since the last report, and a report names at most
/// `reportPartitionsMax` partitions (the busiest).
final class PartitionLoadMeter: @unchecked Sendable {
    static let reportPartitionsMax = 10_000

    struct Counts {
        var bytesIn: UInt64 = 0
        var bytesOut: UInt64 = 0
        var produceRequests: UInt64 = 0
        var fetchRequests: UInt64 = 0
    }

    private let lock = NSLock()
    private var counts: [UInt64: Counts] = [:]
    private var since: NIODeadline

    init(now: NIODeadline = .now()) { since = now }

    func produced(_ streamId: UInt64, bytes: Int) {
        lock.withLock {
            counts[streamId, default: Counts()].bytesIn += UInt64(max(0, bytes))
            counts[streamId]!.produceRequests += 1
        }
    }

    func fetched(_ streamId: UInt64, bytes: Int) {
        lock.withLock {
            counts[streamId, default: Counts()].bytesOut += UInt64(max(0, bytes))
            counts[streamId]!.fetchRequests += 1
        }
    }

    /// The rates since the previous report for every partition in `led` (idle ones at zero, so
    /// the controller's window sees them idle rather than unknown), and the period in ms;
    /// starts a new period. Partitions served but no longer led are left out.
    func report(led: [UInt64], now: NIODeadline = .now()) -> (intervalMs: Int64, loads: [BrokerHeartbeatRequest.PartitionLoad]) {
        let (taken, start) = lock.withLock { () -> ([UInt64: Counts], NIODeadline) in
            defer { counts = [:]; since = now }
            return (counts, since)
        }
        let intervalMs = max(1, (now - start).nanoseconds / 1_000_000)
        let seconds = Double(intervalMs) / 1000
        var loads = led.map { id -> BrokerHeartbeatRequest.PartitionLoad in
            let c = taken[id] ?? Counts()
            var l = BrokerHeartbeatRequest.PartitionLoad()
            l.streamId = Int64(bitPattern: id)
            l.bytesInPerSec = Double(c.bytesIn) / seconds
            l.bytesOutPerSec = Double(c.bytesOut) / seconds
            l.produceRequestsPerSec = Double(c.produceRequests) / seconds
            l.fetchRequestsPerSec = Double(c.fetchRequests) / seconds
            return l
        }
        if loads.count > Self.reportPartitionsMax {
            loads.sort { $0.bytesInPerSec + $0.bytesOutPerSec > $1.bytesInPerSec + $1.bytesOutPerSec }
            loads.removeLast(loads.count - Self.reportPartitionsMax)
        }
        return (intervalMs, loads)
    }
}
