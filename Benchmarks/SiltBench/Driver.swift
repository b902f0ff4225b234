import Foundation
import Histogram
import NIOCore
import SiltProtocol
import SiltRecords

struct ProduceConfig {
    var topic: String
    var partitions: Int
    var connections: Int
    var pipeline: Int
    var recordBytes: Int
    var recordsPerBatch: Int
    var acks: Int16
    var rate: Double
    var durationS: Double
    var warmupS: Double
    var brokerTimeoutMs: Int32
    var requestTimeoutS: Double
    var produceVersion: Int16
    var maxBacklogS: Double
    var progressIntervalS: Double
}

struct ProduceReport: Codable {
    var mode: String
    var targetMsgsPerS: Double
    var achievedMsgsPerS: Double
    var mbPerS: Double
    var requestsPerS: Double
    var measuredS: Double
    var measuredRequests: UInt64
    var p50Ms: Double
    var p90Ms: Double
    var p99Ms: Double
    var p999Ms: Double
    var maxMs: Double
    var meanMs: Double
    var errors: [String: UInt64]
    var errorSamples: [String]
    var saturated: Bool
    var maxBacklog: Int
    var recordBytes: Int
    var recordsPerBatch: Int
    var partitions: Int
    var connections: Int
    var pipeline: Int
    var acks: Int16
    var produceVersion: Int16

    func humanReadable() -> String {
        func f(_ x: Double, _ d: Int = 3) -> String { String(format: "%.\(d)f", x) }
        var s = """
        silt-bench produce: \(mode), target \(targetMsgsPerS == 0 ? "max" : f(targetMsgsPerS, 0) + " msgs/s"), \
        \(connections) conn x \(pipeline) pipeline, \(partitions) partitions, \(recordsPerBatch) x \(recordBytes) B per request, acks=\(acks), produce v\(produceVersion)
          measured \(f(measuredS, 1)) s: \(measuredRequests) requests, \(f(achievedMsgsPerS, 0)) msgs/s, \(f(mbPerS, 2)) MB/s, \(f(requestsPerS, 0)) req/s
          latency ms: p50 \(f(p50Ms)) p90 \(f(p90Ms)) p99 \(f(p99Ms)) p99.9 \(f(p999Ms)) max \(f(maxMs)) mean \(f(meanMs))
        """
        if mode == "fixed-rate" { s += "\n  max client backlog: \(maxBacklog) requests" }
        if saturated { s += "\n  SATURATED: offered rate not sustained, run cut short" }
        if !errors.isEmpty { s += "\n  errors: " + errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        return s
    }
}

/// Runs one produce benchmark. Everything runs on `loop` (the connections' event loop).
final class ProduceDriver {
    let cfg: ProduceConfig
    let conns: [KafkaConnection]
    let loop: EventLoop
    var promise: EventLoopPromise<ProduceReport>!

    var startNs: UInt64 = 0
    var warmupEndNs: UInt64 = 0
    var endNs: UInt64 = 0
    var intervalNs: UInt64 = 0          // open loop: time between requests
    var nextDueNs: UInt64 = 0
    var backlog = CircularBuffer<UInt64>(initialCapacity: 1024)
    var maxBacklog = 0
    var backlogLimit = 0
    var saturated = false
    var stopping = false
    var finished = false
    var nextPartition = 0
    var nextConn = 0

    var hist = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000,
                                 numberOfSignificantValueDigits: .three)
    var interval = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000,
                                     numberOfSignificantValueDigits: .two)
    var measuredRequests: UInt64 = 0
    var ackedRecordsInWindow: UInt64 = 0
    var errors: [Int16: UInt64] = [:]
    var errorSamples: [String] = []

    let template: ByteBuffer
    var batch: ByteBuffer
    var batchTimestampMs: Int64 = -1
    var timers: [Scheduled<Void>] = []
    var tickTask: Scheduled<Void>?

    init(config: ProduceConfig, conns: [KafkaConnection], loop: EventLoop) {
        cfg = config
        self.conns = conns
        self.loop = loop
        var value = [UInt8](repeating: 0, count: config.recordBytes)
        for i in value.indices { value[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        var b = RecordBatchBuilder()
        let ts = Int64(Date().timeIntervalSince1970 * 1000)
        for _ in 0..<config.recordsPerBatch { b.append(key: nil, value: value, headers: [], timestamp: ts) }
        template = b.build()
        batch = template
    }

    /// The batch for this millisecond: the template with fresh base/max timestamps and CRC.
    func currentBatch() -> ByteBuffer {
        let ms = Int64(Date().timeIntervalSince1970 * 1000)
        if ms != batchTimestampMs {
            var b = template
            let r = b.readerIndex
            b.setInteger(ms, at: r + RecordBatchHeader.baseTimestampOffset)
            b.setInteger(ms, at: r + RecordBatchHeader.maxTimestampOffset)
            let crcStart = r + RecordBatchHeader.attributesOffset
            let crc = crc32c(b, at: crcStart, length: b.writerIndex - crcStart)
            b.setInteger(crc, at: r + RecordBatchHeader.crcOffset)
            batch = b
            batchTimestampMs = ms
        }
        return batch
    }

    func start() -> EventLoopFuture<ProduceReport> {
        promise = loop.makePromise(of: ProduceReport.self)
        for c in conns {
            c.onProduceResponse = { [unowned self] conn, p, frame in self.produceResponse(conn, p, frame) }
            c.onFailure = { [unowned self] _, why in self.abort(why) }
            if let f = c.failed { abort(f); return promise.futureResult }
        }
        startNs = nowNs()
        warmupEndNs = startNs + UInt64(cfg.warmupS * 1e9)
        endNs = warmupEndNs + UInt64(cfg.durationS * 1e9)
        if cfg.rate > 0 {
            intervalNs = max(1, UInt64(Double(cfg.recordsPerBatch) / cfg.rate * 1e9))
            backlogLimit = max(1000, Int(cfg.maxBacklogS * 1e9 / Double(intervalNs)))
            nextDueNs = startNs
            tick()
        } else {
            dispatch()
        }
        timers.append(loop.scheduleTask(deadline: .uptimeNanoseconds(endNs)) { [unowned self] in self.stop() })
        scheduleWatchdog()
        if cfg.progressIntervalS > 0 { scheduleProgress() }
        return promise.futureResult
    }

    func scheduleWatchdog() {
        let limit = UInt64(cfg.requestTimeoutS * 1e9)
        timers.append(loop.scheduleTask(in: .milliseconds(200)) { [unowned self] in
            guard !self.finished else { return }
            let now = nowNs()
            for c in self.conns {
                if let first = c.inflight.first, now > first.sentNs + limit {
                    self.abort("connection \(c.index): no response to a produce request within \(self.cfg.requestTimeoutS)s")
                    return
                }
            }
            if self.stopping && now > self.endNs + limit + UInt64(self.cfg.maxBacklogS * 1e9) {
                self.abort("drain did not finish in time")
                return
            }
            self.scheduleWatchdog()
        })
    }

    /// Per-interval latency line on stderr (all requests completed in the interval, warmup
    /// included), to see when the tail happens.
    func scheduleProgress() {
        timers.append(loop.scheduleTask(in: .nanoseconds(Int64(cfg.progressIntervalS * 1e9))) { [unowned self] in
            guard !self.finished else { return }
            let t = Double(nowNs() - self.startNs) / 1e9
            let h = self.interval
            let line = h.totalCount == 0
                ? String(format: "progress t=%.1fs no responses, backlog %d\n", t, self.backlog.count)
                : String(format: "progress t=%.1fs n=%llu p50=%.3f p99=%.3f max=%.3f ms backlog=%d\n", t, h.totalCount,
                         Double(h.valueAtPercentile(50)) / 1000, Double(h.valueAtPercentile(99)) / 1000,
                         Double(h.max) / 1000, self.backlog.count)
            FileHandle.standardError.write(Data(line.utf8))
            self.interval.reset()
            self.scheduleProgress()
        })
    }

    /// Open loop: make every due request pending, send what the pipelines allow, re-arm.
    func tick() {
        guard !finished else { return }
        let now = nowNs()
        while nextDueNs <= now && nextDueNs < endNs {
            backlog.append(nextDueNs)
            nextDueNs += intervalNs
        }
        dispatch()
        if backlog.count > maxBacklog { maxBacklog = backlog.count }
        if backlog.count > backlogLimit && !saturated {
            saturated = true
            stopNow()
            return
        }
        if nextDueNs < endNs && !stopping {
            tickTask = loop.scheduleTask(deadline: .uptimeNanoseconds(nextDueNs)) { [unowned self] in self.tick() }
        }
    }

    func dispatch() {
        guard !finished else { return }
        let now = nowNs()
        if cfg.rate > 0 {
            while !backlog.isEmpty, let conn = pickConnection() {
                send(on: conn, intendedNs: backlog.removeFirst(), now: now)
            }
        } else if !stopping {
            for c in conns where c.failed == nil {
                while c.inflight.count < cfg.pipeline { send(on: c, intendedNs: now, now: now) }
            }
        }
        for c in conns { c.flushIfNeeded() }
    }

    func pickConnection() -> KafkaConnection? {
        for _ in 0..<conns.count {
            let c = conns[nextConn]
            nextConn = (nextConn + 1) % conns.count
            if c.failed == nil && c.inflight.count < cfg.pipeline { return c }
        }
        return nil
    }

    func send(on conn: KafkaConnection, intendedNs: UInt64, now: UInt64) {
        let partition = Int32(nextPartition)
        nextPartition = (nextPartition + 1) % cfg.partitions
        var pd = ProduceRequest.PartitionProduceData()
        pd.index = partition
        let records = currentBatch()
        pd.records = records
        var td = ProduceRequest.TopicProduceData()
        td.name = cfg.topic
        td.partitionData = [pd]
        var req = ProduceRequest()
        req.acks = cfg.acks
        req.timeoutMs = cfg.brokerTimeoutMs
        req.topicData = [td]
        let measured = intendedNs >= warmupEndNs && intendedNs < endNs
        conn.write(req, version: cfg.produceVersion,
                   kind: .produce(intendedNs: intendedNs, partition: partition, measured: measured),
                   sentNs: now, sizeHint: records.readableBytes + cfg.topic.utf8.count + 64)
    }

    func produceResponse(_ conn: KafkaConnection, _ p: Pending, _ frame: ByteBuffer) {
        guard !finished, case .produce(let intendedNs, let partition, let measured) = p.kind else { return }
        let now = nowNs()
        var frame = frame
        var ok = false
        do {
            let resp = try ProduceResponse(from: &frame, version: p.version)
            let pr = resp.responses.first(where: { $0.name == cfg.topic })?
                .partitionResponses.first(where: { $0.index == partition })
            if let pr = pr {
                if pr.errorCode == 0 { ok = true } else {
                    noteError(pr.errorCode, "\(kafkaErrorName(pr.errorCode)): \(pr.errorMessage ?? "")")
                }
            } else {
                noteError(-1000, "a produce response had no result for the partition sent")
            }
        } catch {
            abort("undecodable produce response: \(error)")
            return
        }
        let us = min(max(1, (now &- intendedNs) / 1000), hist.highestTrackableValue)
        if measured {
            measuredRequests += 1
            _ = hist.record(us)
        }
        if cfg.progressIntervalS > 0 { _ = interval.record(us) }
        if ok && now >= warmupEndNs && now <= endNs { ackedRecordsInWindow += UInt64(cfg.recordsPerBatch) }
        dispatch()
        maybeFinish()
    }

    func noteError(_ code: Int16, _ sample: String) {
        errors[code, default: 0] += 1
        if errorSamples.count < 10 && !errorSamples.contains(sample) { errorSamples.append(sample) }
    }

    /// End of the measured window: no new requests; queued (already due) ones still go out.
    func stop() {
        guard !finished else { return }
        stopping = true
        tickTask?.cancel()
        if cfg.rate > 0 {
            // Everything due before the end is part of the measurement.
            let now = nowNs()
            while nextDueNs <= now && nextDueNs < endNs { backlog.append(nextDueNs); nextDueNs += intervalNs }
            dispatch()
        }
        maybeFinish()
    }

    /// Saturation: stop generating and drop the queued backlog.
    func stopNow() {
        stopping = true
        tickTask?.cancel()
        backlog.removeAll()
        maybeFinish()
    }

    func maybeFinish() {
        guard stopping, !finished, backlog.isEmpty, conns.allSatisfy({ $0.inflight.isEmpty }) else { return }
        finished = true
        for t in timers { t.cancel() }
        promise.succeed(report())
    }

    func abort(_ why: String) {
        guard !finished else { return }
        finished = true
        for t in timers { t.cancel() }
        tickTask?.cancel()
        for c in conns { c.closing = true; c.channel.close(promise: nil) }
        promise.fail(BenchError(why))
    }

    func errorSummary() -> String {
        guard !errors.isEmpty else { return "" }
        return "produce errors before the failure: " + errors.map { "\($0.key) \(kafkaErrorName($0.key)): \($0.value)" }.joined(separator: ", ")
            + (errorSamples.isEmpty ? "" : "\n  e.g. " + errorSamples.joined(separator: "\n  e.g. "))
    }

    func report() -> ProduceReport {
        let measuredS = saturated ? Double(max(nowNs(), warmupEndNs + 1) - warmupEndNs) / 1e9 : cfg.durationS
        let msgs = Double(ackedRecordsInWindow) / measuredS
        func ms(_ us: UInt64) -> Double { Double(us) / 1000 }
        let empty = hist.totalCount == 0
        return ProduceReport(
            mode: cfg.rate > 0 ? "fixed-rate" : "max",
            targetMsgsPerS: cfg.rate,
            achievedMsgsPerS: msgs,
            mbPerS: msgs * Double(cfg.recordBytes) / 1e6,
            requestsPerS: msgs / Double(cfg.recordsPerBatch),
            measuredS: measuredS,
            measuredRequests: measuredRequests,
            p50Ms: empty ? 0 : ms(hist.valueAtPercentile(50)),
            p90Ms: empty ? 0 : ms(hist.valueAtPercentile(90)),
            p99Ms: empty ? 0 : ms(hist.valueAtPercentile(99)),
            p999Ms: empty ? 0 : ms(hist.valueAtPercentile(99.9)),
            maxMs: empty ? 0 : ms(hist.max),
            meanMs: empty ? 0 : hist.mean / 1000,
            errors: Dictionary(uniqueKeysWithValues: errors.map { (String($0.key), $0.value) }),
            errorSamples: errorSamples,
            saturated: saturated,
            maxBacklog: maxBacklog,
            recordBytes: cfg.recordBytes, recordsPerBatch: cfg.recordsPerBatch,
            partitions: cfg.partitions, connections: cfg.connections, pipeline: cfg.pipeline,
            acks: cfg.acks, produceVersion: cfg.produceVersion)
    }
}
