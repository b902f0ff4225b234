import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SiltProtocol

struct SiltBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silt-bench",
        abstract: "Load generator for Silt / Kafka brokers (loopback only).",
        subcommands: [Produce.self, WALBenchCommand.self])
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct Produce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Produce fixed-size record batches and report throughput and latency.",
        discussion: """
        Each request carries one record batch of --records-per-batch records of --record-bytes \
        bytes to one partition (round robin). --rate 0 runs closed loop (each connection keeps \
        --pipeline requests in flight; latency is measured from the actual send). --rate R runs \
        open loop: requests are due every records-per-batch/R seconds whatever the responses do, \
        and latency is measured from the due time, so queueing in the client counts \
        (coordinated omission is accounted for).
        """)

    @Option(help: "host:port of the broker (loopback only).") var bootstrap = "127.0.0.1:9092"
    @Option(help: "Topic (created if missing).") var topic = "silt-bench"
    @Option(help: "Partitions to create and to produce to (round robin).") var partitions = 6
    @Option(help: "TCP connections.") var connections = 4
    @Option(help: "Max produce requests in flight per connection.") var pipeline = 8
    @Option(help: "Bytes per record value.") var recordBytes = 1024
    @Option(help: "Records per batch (= per produce request).") var recordsPerBatch = 16
    @Option(parsing: .unconditional, help: "acks (-1 = all, 1; 0 is not supported).") var acks: Int16 = -1
    @Option(help: "Target messages/s (0 = as fast as possible, closed loop).") var rate: Double = 0
    @Option(help: "Measured duration after warmup, seconds.") var durationS: Double = 30
    @Option(help: "Warmup, seconds (not measured).") var warmupS: Double = 5
    @Option(help: "Produce request timeout sent to the broker, ms.") var brokerTimeoutMs: Int32 = 30_000
    @Option(help: "Fail if a request has no response after this many seconds.") var requestTimeoutS: Double = 30
    @Option(help: "Produce API version (default: highest both sides support).") var produceVersion: Int16?
    @Option(help: "Open loop: abort the run if more than this many seconds of requests are queued in the client.")
    var maxBacklogS: Double = 2
    @Option(help: "Print per-interval latency lines on stderr every this many seconds (0 = off).")
    var progressIntervalS: Double = 0
    @Flag(help: "Print one JSON object line instead of the human-readable report.") var json = false

    func validate() throws {
        guard partitions >= 1, connections >= 1, pipeline >= 1, recordBytes >= 0, recordsPerBatch >= 1 else {
            throw ValidationError("partitions, connections, pipeline, records-per-batch must be >= 1")
        }
        guard acks == -1 || acks == 1 else { throw ValidationError("--acks must be -1 or 1") }
        guard rate >= 0, durationS > 0, warmupS >= 0, requestTimeoutS > 0 else {
            throw ValidationError("bad --rate / --duration-s / --warmup-s / --request-timeout-s")
        }
        guard connections <= 1024, pipeline <= 1024, recordsPerBatch * (recordBytes + 16) < 64 << 20 else {
            throw ValidationError("unreasonable sizes")
        }
    }

    func run() throws {
        let (host, port) = try parseBootstrap(bootstrap)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()

        var conns: [KafkaConnection] = []
        for i in 0..<connections {
            do {
                conns.append(try KafkaConnection.connect(host: host, port: port, index: i, on: loop).wait())
            } catch {
                throw BenchError("connection \(i) to \(host):\(port) failed: \(error)")
            }
        }
        defer { for c in conns { c.close() } }

        // Version negotiation, topic creation, wait for leaders.
        let setup = Setup(conn: conns[0], timeoutS: requestTimeoutS)
        let versions = try setup.apiVersions()
        func pick(_ key: Int16, ours: Int16, min ourMin: Int16) throws -> Int16 {
            guard let theirs = versions[key] else { throw BenchError("broker does not support api key \(key)") }
            let v = Swift.min(ours, theirs.max)
            guard v >= Swift.max(ourMin, theirs.min) else { throw BenchError("no common version for api key \(key)") }
            return v
        }
        var pv = try pick(ProduceRequest.apiKey, ours: ProduceRequest.highestSupportedVersion, min: 3)
        if let forced = produceVersion { pv = forced }
        let ctv = try pick(CreateTopicsRequest.apiKey, ours: CreateTopicsRequest.highestSupportedVersion, min: 0)
        let mdv = try pick(MetadataRequest.apiKey, ours: MetadataRequest.highestSupportedVersion, min: 1)
        try setup.createTopic(topic, partitions: Int32(partitions), version: ctv)
        try setup.waitForLeaders(topic, partitions: partitions, version: mdv, timeoutS: 30)

        let config = ProduceConfig(
            topic: topic, partitions: partitions, connections: connections, pipeline: pipeline,
            recordBytes: recordBytes, recordsPerBatch: recordsPerBatch, acks: acks, rate: rate,
            durationS: durationS, warmupS: warmupS, brokerTimeoutMs: brokerTimeoutMs,
            requestTimeoutS: requestTimeoutS, produceVersion: pv, maxBacklogS: maxBacklogS,
            progressIntervalS: progressIntervalS)
        let driver = ProduceDriver(config: config, conns: conns, loop: loop)
        let result: ProduceReport
        do {
            result = try loop.flatSubmit { driver.start() }.wait()
        } catch {
            let partial = try? loop.submit { driver.errorSummary() }.wait()
            if let p = partial, !p.isEmpty { FileHandle.standardError.write(Data((p + "\n").utf8)) }
            throw BenchError("produce run failed: \(error)")
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(result), as: UTF8.self))
        } else {
            print(result.humanReadable())
        }
        if !result.errors.isEmpty {
            var lines = ["produce errors (Kafka error code: count):"]
            for (code, n) in result.errors.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(code) \(kafkaErrorName(Int16(code) ?? 0)): \(n)")
            }
            lines += result.errorSamples.map { "  e.g. \($0)" }
            FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
            throw ExitCode(2)
        }
        if result.saturated {
            FileHandle.standardError.write(Data("warning: offered rate not sustained (client backlog exceeded \(maxBacklogS)s); run cut short\n".utf8))
        }
    }
}

func parseBootstrap(_ s: String) throws -> (String, Int) {
    guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), port > 0, port < 65536 else {
        throw ValidationError("--bootstrap must be host:port")
    }
    var host = String(s[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard host == "localhost" || host == "::1" || host.hasPrefix("127.") else {
        throw ValidationError("silt-bench only talks to loopback addresses (got \(host))")
    }
    return (host == "localhost" ? "127.0.0.1" : host, port)
}

func kafkaErrorName(_ code: Int16) -> String {
    switch code {
    case -1: return "UNKNOWN_SERVER_ERROR"
    case 0: return "NONE"
    case 1: return "OFFSET_OUT_OF_RANGE"
    case 2: return "CORRUPT_MESSAGE"
    case 3: return "UNKNOWN_TOPIC_OR_PARTITION"
    case 4: return "INVALID_FETCH_SIZE"
    case 5: return "LEADER_NOT_AVAILABLE"
    case 6: return "NOT_LEADER_OR_FOLLOWER"
    case 7: return "REQUEST_TIMED_OUT"
    case 10: return "MESSAGE_TOO_LARGE"
    case 19: return "NOT_ENOUGH_REPLICAS"
    case 20: return "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
    case 32: return "INVALID_TIMESTAMP"
    case 35: return "UNSUPPORTED_VERSION"
    case 36: return "TOPIC_ALREADY_EXISTS"
    case 42: return "INVALID_REQUEST"
    case 45: return "OUT_OF_ORDER_SEQUENCE_NUMBER"
    case 56: return "KAFKA_STORAGE_ERROR"
    case 87: return "INVALID_RECORD"
    case 89: return "THROTTLING_QUOTA_EXCEEDED"
    case -1000: return "MISSING_PARTITION_IN_RESPONSE (silt-bench)"
    default: return "code \(code)"
    }
}
