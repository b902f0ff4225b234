import Foundation
import NIOCore
import SiltProtocol

/// Synchronous setup round trips (called from the main thread, never the event loop).
struct Setup {
    let conn: KafkaConnection
    let timeoutS: Double

    private func call<R: KafkaRequest>(_ req: R, version: Int16) throws -> R.Response {
        let loop = conn.channel.eventLoop
        let fut: EventLoopFuture<ByteBuffer> = loop.flatSubmit {
            let p = loop.makePromise(of: ByteBuffer.self)
            let timer = loop.scheduleTask(in: .nanoseconds(Int64(timeoutS * 1e9))) {
                p.fail(BenchError("api key \(R.apiKey) v\(version): no response within \(timeoutS)s"))
            }
            conn.rpc(req, version: version).whenComplete { r in
                timer.cancel()
                p.completeWith(r)
            }
            return p.futureResult
        }
        var frame = try fut.wait()
        return try R.Response(from: &frame, version: version)
    }

    /// ApiVersions v2 (non-flexible, no client software fields): api key -> (min, max).
    func apiVersions() throws -> [Int16: (min: Int16, max: Int16)] {
        let resp = try call(ApiVersionsRequest(), version: 2)
        guard resp.errorCode == 0 else { throw BenchError("ApiVersions error \(resp.errorCode)") }
        var out: [Int16: (min: Int16, max: Int16)] = [:]
        for k in resp.apiKeys { out[k.apiKey] = (k.minVersion, k.maxVersion) }
        return out
    }

    func createTopic(_ name: String, partitions: Int32, version: Int16) throws {
        var t = CreateTopicsRequest.CreatableTopic()
        t.name = name
        t.numPartitions = partitions
        t.replicationFactor = 1
        var req = CreateTopicsRequest()
        req.topics = [t]
        req.timeoutMs = 30_000
        let resp = try call(req, version: version)
        for r in resp.topics where r.errorCode != 0 && r.errorCode != 36 {
            throw BenchError("CreateTopics \(name): error \(r.errorCode) \(kafkaErrorName(r.errorCode)) \(r.errorMessage ?? "")")
        }
    }

    func waitForLeaders(_ name: String, partitions: Int, version: Int16, timeoutS: Double) throws {
        let deadline = Date().addingTimeInterval(timeoutS)
        var last = "no response"
        while Date() < deadline {
            var t = MetadataRequest.MetadataRequestTopic()
            t.name = name
            var req = MetadataRequest()
            req.topics = [t]
            req.allowAutoTopicCreation = false
            let resp = try call(req, version: version)
            if let topic = resp.topics.first(where: { $0.name == name }) {
                let ready = topic.partitions.filter { $0.errorCode == 0 && $0.leaderId >= 0 }
                if topic.errorCode == 0 && ready.count >= partitions
                    && Set(ready.map(\.partitionIndex)).isSuperset(of: (0..<Int32(partitions))) {
                    return
                }
                last = "topic error \(topic.errorCode), \(ready.count)/\(partitions) partitions with a leader (topic has \(topic.partitions.count))"
            } else {
                last = "topic missing from metadata"
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw BenchError("topic \(name) not ready after \(timeoutS)s: \(last)")
    }
}
