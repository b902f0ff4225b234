import NIOCore
import SiltMetadata
import SiltProtocol
import SiltStorage

/// DescribeLogDirs (api key 35): where this broker's partitions live and how big they are.
///
/// A Silt broker has one "log dir" to report: the first of `log.dirs` (its metadata and
/// producer-state snapshots; the records themselves are in the WAL and object storage). It
/// lists the partitions this broker leads, as a Kafka broker lists the replicas it hosts:
///
///     partitionSize  bytes of the partition in committed objects (what retention.bytes
///                    counts; the tail still in the WAL is not included)
///     offsetLag      0 (one replica: nothing to catch up with)
///     isFutureKey    false (no log dir moves)
///     totalBytes, usableBytes  -1 (unknown: the data's capacity is the object store's)
///
/// A null topic list asks for every partition; a named partition this broker does not lead
/// is left out, as Kafka leaves out replicas it does not host.
extension Broker {
    func describeLogDirs(_ req: DescribeLogDirsRequest, _ r: Request) -> EventLoopFuture<DescribeLogDirsResponse?> {
        r.eventLoop.makeSucceededFuture(describeLogDirs(req, image: metadata.image))
    }

    func describeLogDirs(_ req: DescribeLogDirsRequest, image: MetadataImage) -> DescribeLogDirsResponse {
        let wanted: [String: Set<Int32>]? = req.topics.map { topics in
            topics.reduce(into: [:]) { $0[$1.topic, default: []].formUnion($1.partitions) }
        }
        var byTopic: [String: [DescribeLogDirsResponse.DescribeLogDirsPartition]] = [:]
        for log in logs.allStreams() where wanted == nil || wanted?[log.topic]?.contains(log.partition) == true {
            var p = DescribeLogDirsResponse.DescribeLogDirsPartition()
            p.partitionIndex = log.partition
            p.partitionSize = committedBytes(streamId: log.streamId, image: image)
            p.offsetLag = 0
            p.isFutureKey = false
            byTopic[log.topic, default: []].append(p)
        }
        var dir = DescribeLogDirsResponse.DescribeLogDirsResult()
        dir.logDir = config.logDirs[0]
        dir.topics = byTopic.keys.sorted().map { name in
            var t = DescribeLogDirsResponse.DescribeLogDirsTopic()
            t.name = name
            t.partitions = byTopic[name]!.sorted { $0.partitionIndex < $1.partitionIndex }
            return t
        }
        var resp = DescribeLogDirsResponse()
        resp.results = [dir]
        return resp
    }

    /// Bytes of a stream in its committed objects, by their recorded per-range stats.
    private func committedBytes(streamId: UInt64, image: MetadataImage) -> Int64 {
        (image.streamObjects[streamId] ?? []).reduce(Int64(0)) { sum, ref in
            sum + (image.object(id: ref.objectId)?.stats(streamId: streamId)?.bytes ?? 0)
        }
    }
}
