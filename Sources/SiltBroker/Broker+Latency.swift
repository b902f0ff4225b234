import CSupport
import NIOCore
import SiltMetrics
import SiltNet
import SiltProtocol

/// The latency breakdown's stages the broker observes around a request (issue 15): the
/// connection handler reports each response it wrote; the produce and fetch handlers observe
/// their own stages (`Broker+Produce`, `fetchTimed`), and the write path those between the log
/// buffer and the durable notice (`LogBufferWritePath`). Each observation is three atomic adds
/// into the node's metrics region: no lock, no allocation. Read them with
/// Benchmarks/latency-breakdown.py.
extension Broker {
    public func answered(apiKey: Int16, receivedNs: UInt64, readyNs: UInt64, writtenNs: UInt64) {
        switch apiKey {
        case ProduceRequest.apiKey:
            metrics.observe(.produceResponseWrite, fromNs: readyNs, toNs: writtenNs)
            metrics.observe(.produceTotal, fromNs: receivedNs, toNs: writtenNs)
        case FetchRequest.apiKey:
            metrics.observe(.fetchResponseWrite, fromNs: readyNs, toNs: writtenNs)
            metrics.observe(.fetchTotal, fromNs: receivedNs, toNs: writtenNs)
        default:
            break
        }
    }

    /// `fetch`, with its decode and serve stages observed.
    func fetchTimed(_ req: FetchRequest, _ r: Request) -> EventLoopFuture<FetchResponse?> {
        let decodedNs = silt_monotonic_ns()
        if r.context.receivedNs != 0 { metrics.observe(.fetchDecode, fromNs: r.context.receivedNs, toNs: decodedNs) }
        return fetch(req, r).map { response in
            self.metrics.observe(.fetchServe, fromNs: decodedNs, toNs: silt_monotonic_ns())
            return response
        }
    }
}
