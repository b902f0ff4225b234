import ArgumentParser
import CSupport
import Foundation
import Histogram
import SiltWAL
#if canImport(Glibc)
import Glibc
#endif

/// `silt-bench wal`: the device driven the way a node's WAL writer drives it, with nothing else
/// of Silt around it (no broker, no log buffer, no other process): the floor a node's produce
/// latency stands on.
///
/// Batches of `--batch-bytes` arrive on a fixed schedule (open loop: batch i is due at
/// start + i / rate, whatever the device does). Whenever one of the `--max-in-flight` write
/// slots is free, everything due and not yet written goes out as ONE record (group commit, as
/// `WALWriter` does: up to the WAL's record payload limit), through `WAL.submit` and
/// `WAL.reap`: the same io_uring O_DIRECT writes with `RWF_DSYNC` a node makes. A batch's
/// latency runs from its due time to the moment the durable position covers it, so time spent
/// waiting for a free slot behind a slow write counts (coordinated omission is accounted for,
/// as in `silt-bench produce --rate`).
///
/// fio's latency figures do not count that wait: a rate-limited fio job issues late after a
/// stall and measures from the late issue. Compared with `silt-bench produce` at the same batch
/// rate, the difference is what the node adds above its device.
struct WALBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal",
        abstract: "Open-loop group-commit writes to a device through Silt's WAL alone (no node).",
        discussion: """
        OVERWRITES the device's WAL area: the device must be blank (first 8 KiB zero) or hold a \
        WAL; --format erases the headers first (as `silt admin format-wal` does). Batches are due \
        at --rate per second; each free write slot takes everything due (one record, one \
        RWF_DSYNC write). Latency: due time to durable.
        """)

    @Option(help: "Block device or file (a file is created and extended to --capacity-bytes).") var path: String
    @Option(help: "Bytes of one batch (one produce request's record batch).") var batchBytes = 15_556
    @Option(help: "Batches due per second.") var rate: Double
    @Option(help: "WAL capacity in bytes (a block device must be at least this large).") var capacityBytes: UInt64 = 2 << 30
    @Option(help: "Write slots (the node's s3.wal.max.inflight default).") var maxInFlight = 8
    @Option(help: "Largest record payload, bytes (group-commit limit).") var maxRecordBytes = 1 << 20
    @Option(help: "Measured duration after warmup, seconds.") var durationS: Double = 20
    @Option(help: "Warmup, seconds (not measured).") var warmupS: Double = 5
    @Option(help: "A file WAL's holes are zeroed this far ahead of the head on its first lap (0: never; the node's default is 16 MiB).")
    var prepareAheadBytes: UInt64 = WALPrepareBounds().lookaheadBytes
    @Option(help: "One zero write of that preparation (bytes, a multiple of 4096).")
    var prepareChunkBytes: Int = WALPrepareBounds().chunkBytes
    @Flag(help: "Erase the device's WAL headers first (formats it).") var format = false
    @Flag(help: "Print one JSON object line instead of the human-readable report.") var json = false

    /// The client's queue of due batches is bounded: past this many seconds of backlog the
    /// device does not sustain the rate and the run stops (reported as saturated).
    static let maxBacklogS = 2.0
    /// While writes are in flight, completions are polled at this interval (a blocking reap
    /// would delay the next due batch past a free slot; the node's writer waits on both).
    static let pollIntervalUs: UInt32 = 50

    func validate() throws {
        guard rate > 0, durationS > 0, warmupS >= 0 else { throw ValidationError("bad --rate / --duration-s / --warmup-s") }
        guard batchBytes >= 1, batchBytes <= maxRecordBytes, (1...64).contains(maxInFlight) else {
            throw ValidationError("need 1 <= --batch-bytes <= --max-record-bytes and 1 <= --max-in-flight <= 64")
        }
    }

    func run() throws {
        if format { try WAL.eraseHeaders(path: path) }
        var config = WALConfig(maxRecordPayloadBytes: maxRecordBytes, maxInFlightWrites: maxInFlight)
        if prepareAheadBytes == 0 {
            config.prepare = nil
        } else {
            config.prepare?.lookaheadBytes = prepareAheadBytes
            config.prepare?.chunkBytes = prepareChunkBytes
        }
        let (wal, _) = try WAL.open(path: path, capacityBytes: capacityBytes, nodeId: 0, fitToDevice: true, config: config)
        defer { try? wal.close() }
        let report = try WALBenchRun(wal: wal, batchBytes: batchBytes, rate: rate,
                                     durationS: durationS, warmupS: warmupS).run()
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
        } else {
            print(report.humanReadable())
        }
        if report.saturated {
            FileHandle.standardError.write(Data("warning: the device did not sustain the rate (backlog over \(Self.maxBacklogS)s); run cut short\n".utf8))
        }
    }
}

struct WALBenchReport: Codable {
    var targetBatchesPerS: Double
    var achievedBatchesPerS: Double
    var mbPerS: Double
    var writesPerS: Double
    var batchesPerWrite: Double
    var measuredS: Double
    var measuredBatches: UInt64
    var p50Ms: Double
    var p90Ms: Double
    var p99Ms: Double
    var p999Ms: Double
    var maxMs: Double
    var meanMs: Double
    var saturated: Bool
    var batchBytes: Int
    var maxInFlight: Int

    func humanReadable() -> String {
        func f(_ x: Double, _ d: Int = 3) -> String { String(format: "%.\(d)f", x) }
        return """
        silt-bench wal: open loop, \(f(targetBatchesPerS, 0)) batches/s of \(batchBytes) B, \(maxInFlight) write slots
          measured \(f(measuredS, 1)) s: \(measuredBatches) batches, \(f(achievedBatchesPerS, 0)) batches/s, \(f(mbPerS, 2)) MB/s, \
        \(f(writesPerS, 0)) writes/s (\(f(batchesPerWrite, 2)) batches per write)
          latency ms (due -> durable): p50 \(f(p50Ms)) p90 \(f(p90Ms)) p99 \(f(p99Ms)) p99.9 \(f(p999Ms)) max \(f(maxMs)) mean \(f(meanMs))\(saturated ? "\n  SATURATED: rate not sustained, run cut short" : "")
        """
    }
}

/// One run: single-threaded, like the node's WAL writer. Bounded: at most `maxBacklogS` of due
/// batches queued, `maxInFlight` writes (each of at most `maxRecordPayloadBytes`).
struct WALBenchRun {
    let wal: WAL
    let batchBytes: Int
    let rate: Double
    let durationS: Double
    let warmupS: Double

    func run() throws -> WALBenchReport {
        let payload = [UInt8](repeating: 0x5a, count: batchBytes)
        let perWrite = max(1, wal.config.maxRecordPayloadBytes / batchBytes)
        let intervalNs = 1e9 / rate
        let backlogLimit = max(1, Int(rate * WALBenchCommand.maxBacklogS))
        var hist = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000,
                                     numberOfSignificantValueDigits: .three)
        let startNs = silt_monotonic_ns()
        let warmupEndNs = startNs + UInt64(warmupS * 1e9)
        let endNs = warmupEndNs + UInt64(durationS * 1e9)
        var issued: UInt64 = 0            // batches that have come due
        var due: [UInt64] = []            // due times of batches not written yet, oldest first
        due.reserveCapacity(backlogLimit)
        var dueHead = 0
        // In flight: one entry per write, its end LSN and the due times of the batches it carries.
        var inFlight: [(endLSN: UInt64, dues: ArraySlice<UInt64>)] = []
        var lsn = wal.headLSN
        var measured: UInt64 = 0, measuredWrites: UInt64 = 0
        var saturated = false
        while true {
            let now = silt_monotonic_ns()
            if now >= endNs && inFlight.isEmpty && dueHead == due.count { break }   // every due batch durable
            // Batches come due on their schedule, never past the end.
            while now < endNs {
                let d = startNs + UInt64(Double(issued) * intervalNs)
                guard d <= now else { break }
                due.append(d); issued += 1
            }
            if due.count - dueHead > backlogLimit { saturated = true; break }
            // Every free slot takes everything due (one record per write).
            while wal.canSubmit && dueHead < due.count {
                let n = min(perWrite, due.count - dueHead)
                let bytes = n * batchBytes
                try payload.withUnsafeBytes { p in
                    let parts = [UnsafeRawBufferPointer](repeating: p, count: n)
                    _ = try wal.submit(payloads: parts, startLSN: lsn, endLSN: lsn + UInt64(bytes))
                }
                lsn += UInt64(bytes)
                inFlight.append((lsn, due[dueHead..<(dueHead + n)]))
                dueHead += n
            }
            if dueHead > 4096 && dueHead * 2 > due.count { due.removeFirst(dueHead); dueHead = 0 }
            if let durable = try wal.reap(wait: false) {
                let done = silt_monotonic_ns()
                while let first = inFlight.first, first.endLSN <= durable {
                    inFlight.removeFirst()
                    for d in first.dues where d >= warmupEndNs {
                        hist.record(max(1, (done - d) / 1000))
                        measured += 1
                    }
                    if first.dues.first.map({ $0 >= warmupEndNs }) ?? false { measuredWrites += 1 }
                }
                // Keep the log from filling: trim to what is durable once half is used.
                if wal.usedBytes * 2 > wal.capacityBytes { _ = try wal.trim(to: wal.durableLSN) }
                continue
            }
            // Nothing completed: sleep until the next due batch, or poll again soon.
            let nextDue = startNs + UInt64(Double(issued) * intervalNs)
            let untilDueUs = nextDue > now ? (nextDue - now) / 1000 : 0
            let sleepUs = inFlight.isEmpty ? untilDueUs : min(untilDueUs, UInt64(WALBenchCommand.pollIntervalUs))
            if sleepUs > 0 { usleep(UInt32(min(sleepUs, 100_000))) }
        }
        let ms = { (v: UInt64) in Double(v) / 1000 }
        let measuredS = durationS
        return WALBenchReport(
            targetBatchesPerS: rate,
            achievedBatchesPerS: Double(measured) / measuredS,
            mbPerS: Double(measured) * Double(batchBytes) / measuredS / 1e6,
            writesPerS: Double(measuredWrites) / measuredS,
            batchesPerWrite: measuredWrites > 0 ? Double(measured) / Double(measuredWrites) : 0,
            measuredS: measuredS, measuredBatches: measured,
            p50Ms: ms(hist.valueAtPercentile(50)), p90Ms: ms(hist.valueAtPercentile(90)),
            p99Ms: ms(hist.valueAtPercentile(99)), p999Ms: ms(hist.valueAtPercentile(99.9)),
            maxMs: ms(hist.max), meanMs: hist.mean / 1000,
            saturated: saturated, batchBytes: batchBytes, maxInFlight: wal.config.maxInFlightWrites)
    }
}
