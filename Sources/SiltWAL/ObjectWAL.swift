import Foundation
import Logging
import SiltObjectStore

/// The WAL in an S3 bucket (S3 WAL mode, `s3.wal.path=0@s3://bucket?...`): each record is one
/// object, durable once its PUT succeeded. No local disk holds data, and any node can read a
/// dead node's WAL, so its partitions reopen elsewhere with everything acknowledged.
///
/// Keys, under `silt-wal/<cluster id>/<node id>/`:
/// ```
///  head                                        the header: a WAL header slot (`WALHeader`,
///                                              4 KiB): formatId, generation, trimLSN, trimSequence
///  r/<startLSN:020>-<endLSN:020>-<gen:010>     a record: the device's record image (`WALRecordHeader`
///                                              + payload, CRC32C over both) without the padding
///
///  LSN ──▶   trimLSN                                               head
///             │ r/…0-…4096-1 │ r/…4096-…9000-1 │ r/…9000-…9100-2 │ (in flight …)
///             ◀──────────── live: listed at open, recovered in order ──────────▶
/// ```
///
/// Invariants:
/// - A record's key names its LSN range and the generation of the open that wrote it; its
///   body repeats them, with its sequence (+1 per record from the trim point) and the format id.
/// - Every open that writes bumps the generation in `head` before its first record, so its keys
///   never collide with an earlier open's, and a record an earlier open left beyond the end of
///   the log (a PUT that succeeded while an earlier one failed, then a crash) never continues a
///   later open's records: recovery accepts, at each LSN, the newest-generation record, and only
///   if its generation does not decrease along the log.
/// - Durability is contiguous: `durableLSN` advances over a record only when every record before
///   it is stored, whatever order the PUTs complete in.
/// - A trim writes `head` (the new trim LSN) before it deletes the records below it, so a
///   recovery never starts inside a hole. Deletions run behind the writer; records a crash left
///   below the trim point are deleted by the next open.
/// - A PUT that fails is retried (with backoff, the store's own retries first) until it succeeds
///   or the WAL closes: an S3 outage delays acknowledgements, it never drops a record. What
///   waits is bounded by `maxUnflushedBytes` (then `submit` throws `.full`: back-pressure).
///
/// `read` recovers another node's WAL without writing anything (a takeover).
public final class ObjectWAL: WriteAheadLog, @unchecked Sendable {
    public struct Settings: Sendable, Equatable {
        public var batchIntervalMs: Int
        public var maxBytesInBatch: Int
        public var maxUnflushedBytes: UInt64
        public var maxInflightUploadCount: Int
        /// Largest record payload (at least a whole produce batch plus the frame headers).
        public var maxRecordPayloadBytes: Int
        public init(batchIntervalMs: Int, maxBytesInBatch: Int, maxUnflushedBytes: UInt64, maxInflightUploadCount: Int,
                    maxRecordPayloadBytes: Int) {
            precondition(batchIntervalMs >= 0 && maxBytesInBatch > 0 && maxInflightUploadCount > 0)
            precondition(maxRecordPayloadBytes >= maxBytesInBatch
                         && UInt64(maxRecordPayloadBytes) + UInt64(WALLayout.recordHeaderBytes) <= WALLayout.recordBytesMax)
            precondition(maxUnflushedBytes >= 2 * UInt64(maxRecordPayloadBytes))
            self.batchIntervalMs = batchIntervalMs
            self.maxBytesInBatch = maxBytesInBatch
            self.maxUnflushedBytes = maxUnflushedBytes
            self.maxInflightUploadCount = maxInflightUploadCount
            self.maxRecordPayloadBytes = maxRecordPayloadBytes
        }
    }

    public let nodeId: Int64
    public let settings: Settings
    public let location: String
    let store: ObjectStore
    let prefix: String
    let logger: Logger
    /// Generation stamped on the records this open writes.
    public let generation: UInt64
    let formatId: UInt64

    // The writer thread's state.
    var header: WALHeader
    var nextLSN: UInt64
    var nextSequence: UInt64
    public internal(set) var durableLSN: UInt64
    var durableSequence: UInt64
    /// Stored and in-flight records from the trim point, oldest first.
    var live = BoundedFifo<LiveObject>()
    var inFlight: [UInt64: WriteTicket] = [:]
    /// Sequences stored before an earlier record was.
    var storedAhead = Set<UInt64>()
    var closed = false

    /// Filled by the PUT tasks, taken by `reap`.
    private let completions = NSCondition()
    private var stored: [UInt64] = []
    private var stopping = false
    /// Called after each stored record (the writer wakes on it).
    public var onStored: (@Sendable () -> Void)?

    /// Trims waiting for the trimmer task (merged: the newest trim point, every key to delete).
    private let trimLock = NSLock()
    private var pendingTrim: (header: WALHeader, keys: [String])?
    private var trimmerRunning = false
    private var trimmerDone = DispatchGroup()

    /// PUTs retried after the store's own retries gave up (guarded by `completions`).
    private var putRetryCount: UInt64 = 0
    public var putRetries: UInt64 { completions.lock(); defer { completions.unlock() }; return putRetryCount }

    static let retryBackoffMaxMs = 5_000

    init(store: ObjectStore, prefix: String, location: String, nodeId: Int64, settings: Settings, header: WALHeader,
         generation: UInt64, logger: Logger) {
        self.store = store
        self.prefix = prefix
        self.location = location
        self.nodeId = nodeId
        self.settings = settings
        self.header = header
        self.generation = generation
        self.formatId = header.formatId
        self.logger = logger
        nextLSN = header.trimLSN
        nextSequence = header.trimSequence
        durableLSN = header.trimLSN
        durableSequence = header.trimSequence
    }

    /// The key prefix of node `nodeId`'s WAL in cluster `clusterId`.
    public static func prefix(clusterId: String, nodeId: Int64) -> String { "silt-wal/\(clusterId)/\(nodeId)/" }

    // MARK: WriteAheadLog

    public var maxRecordPayloadBytes: Int { settings.maxRecordPayloadBytes }
    public var headLSN: UInt64 { nextLSN }
    public var trimLSN: UInt64 { header.trimLSN }
    public var usedBytes: UInt64 { nextLSN - header.trimLSN }
    public var capacityBytes: UInt64 { settings.maxUnflushedBytes }
    public var canSubmit: Bool { !closed && inFlight.count < settings.maxInflightUploadCount }
    public var inFlightWrites: Int { inFlight.count }
    public var batching: WALBatching? { WALBatching(intervalMs: settings.batchIntervalMs, bytes: settings.maxBytesInBatch) }

    /// Whether a stored record waits for `reap` (the writer's wake-up condition).
    public var hasStoredRecords: Bool {
        completions.lock(); defer { completions.unlock() }
        return !stored.isEmpty
    }

    @discardableResult
    public func submit(payloads: [UnsafeRawBufferPointer], startLSN: UInt64, endLSN: UInt64) throws -> WriteTicket {
        guard !closed else { throw WALError.unusable(cause: "closed") }
        var payloadBytes = 0
        for p in payloads { payloadBytes += p.count }
        try SubmitChecks.check(payloadBytes: payloadBytes, maxPayloadBytes: settings.maxRecordPayloadBytes,
                               startLSN: startLSN, endLSN: endLSN, nextLSN: nextLSN,
                               inFlight: inFlight.count, inFlightLimit: settings.maxInflightUploadCount)
        // The bound counts LSN span (what the log buffer must keep until a trim), like a device.
        guard usedBytes + (endLSN - startLSN) <= settings.maxUnflushedBytes else {
            throw WALError.full(neededBytes: endLSN - startLSN, freeBytes: settings.maxUnflushedBytes - usedBytes)
        }
        let sequence = nextSequence
        let body = Self.encodeRecord(payloads: payloads, payloadBytes: payloadBytes, startLSN: startLSN, endLSN: endLSN,
                                     sequence: sequence, formatId: formatId, generation: generation)
        let key = prefix + Self.recordKey(startLSN: startLSN, endLSN: endLSN, generation: generation)
        let ticket = WriteTicket(sequence: sequence, startLSN: startLSN, endLSN: endLSN, deviceOffset: 0,
                                 recordBytes: UInt64(body.count))
        inFlight[sequence] = ticket
        live.append(LiveObject(key: key, startLSN: startLSN, endLSN: endLSN, sequence: sequence))
        nextLSN = endLSN
        nextSequence = sequence + 1
        Task.detached { [self] in await self.put(key: key, body: body, sequence: sequence) }
        return ticket
    }

    /// Stores one record, retrying until it is stored or the WAL closes.
    private func put(key: String, body: [UInt8], sequence: UInt64) async {
        var backoffMs = 50
        while true {
            do {
                _ = try await store.put(key, body, ifNoneMatch: false)
                markStored(sequence)
                return
            } catch {
                if !countRetry() { return }
                logger.warning("S3 WAL: a record PUT failed; retrying (acknowledgements wait)",
                               metadata: ["key": "\(key)", "error": "\(error)", "retryInMs": "\(backoffMs)"])
                try? await Task.sleep(nanoseconds: UInt64(backoffMs) * 1_000_000)
                backoffMs = min(backoffMs * 2, Self.retryBackoffMaxMs)
            }
        }
    }

    private func markStored(_ sequence: UInt64) {
        completions.lock()
        stored.append(sequence)
        completions.signal()
        completions.unlock()
        onStored?()
    }

    /// Counts a retry; false once the WAL is closing (the PUT is abandoned).
    private func countRetry() -> Bool {
        completions.lock(); defer { completions.unlock() }
        putRetryCount += 1
        return !stopping
    }

    public func reap(wait: Bool) throws -> UInt64? {
        guard !closed else { throw WALError.unusable(cause: "closed") }
        completions.lock()
        while wait && stored.isEmpty && !inFlight.isEmpty { completions.wait() }
        let done = stored
        stored.removeAll(keepingCapacity: true)
        completions.unlock()
        let before = durableLSN
        storedAhead.formUnion(done)
        // Durable only over a contiguous prefix: a record stored ahead of an earlier one waits.
        while storedAhead.remove(durableSequence) != nil {
            let t = inFlight.removeValue(forKey: durableSequence)!
            precondition(t.startLSN == durableLSN, "durable LSN must advance contiguously")
            durableLSN = t.endLSN
            durableSequence += 1
        }
        return durableLSN > before ? durableLSN : nil
    }

    @discardableResult
    public func trim(to lsn: UInt64) throws -> UInt64 {
        guard !closed else { throw WALError.unusable(cause: "closed") }
        guard lsn <= durableLSN else { throw WALError.trimBeyondDurable(lsn: lsn, durableLSN: durableLSN) }
        var drop = 0
        while drop < live.count, live[drop].endLSN <= lsn { drop += 1 }
        guard drop > 0 else { return header.trimLSN }
        let keys = (0..<drop).map { live[$0].key }
        var h = header
        h.sequence += 1
        if drop < live.count {
            (h.trimLSN, h.trimSequence) = (live[drop].startLSN, live[drop].sequence)
        } else {
            (h.trimLSN, h.trimSequence) = (nextLSN, nextSequence)
        }
        header = h
        live.removeFirst(drop)
        scheduleTrim(header: h, keys: keys)
        return h.trimLSN
    }

    public func rebase(nextLSN lsn: UInt64) throws {
        guard live.isEmpty, inFlight.isEmpty else {
            throw WALError.invalidConfiguration("rebase needs an empty log (\(live.count) live records)")
        }
        var h = header
        h.sequence += 1
        (h.trimLSN, h.trimSequence) = (lsn, nextSequence)
        try Self.blocking { () async throws -> Void in try await Self.putHeader(h, store: self.store, prefix: self.prefix) }
        header = h
        nextLSN = lsn
        durableLSN = lsn
    }

    /// Waits (up to `drainTimeoutMs`) for the trims under way, then stops retrying PUTs.
    public func close() throws {
        guard !closed else { return }
        closed = true
        _ = trimmerDone.wait(timeout: .now() + .milliseconds(Self.closeDrainTimeoutMs))
        completions.lock()
        stopping = true
        completions.broadcast()
        completions.unlock()
    }
    static let closeDrainTimeoutMs = 5_000

    // MARK: Trims

    private func scheduleTrim(header: WALHeader, keys: [String]) {
        trimLock.lock()
        if let p = pendingTrim {
            pendingTrim = (header, p.keys + keys)
        } else {
            pendingTrim = (header, keys)
        }
        let start = !trimmerRunning
        trimmerRunning = true
        if start { trimmerDone.enter() }
        trimLock.unlock()
        if start { Task.detached { [self] in await self.runTrimmer() } }
    }

    /// Writes the newest trim point, then deletes the records below it; merges trims that arrive
    /// meanwhile. A failure is retried with backoff; keys left behind go at the next open.
    private func runTrimmer() async {
        var backoffMs = 100
        while let job = takeTrim() {
            do {
                try await Self.putHeader(job.header, store: store, prefix: prefix)
                for chunk in stride(from: 0, to: job.keys.count, by: 1000) {
                    let failed = try await store.deleteObjects(Array(job.keys[chunk..<min(chunk + 1000, job.keys.count)]))
                    if !failed.isEmpty {
                        logger.warning("S3 WAL: some trimmed records were not deleted (the next open deletes them)",
                                       metadata: ["count": "\(failed.count)"])
                    }
                }
                backoffMs = 100
            } catch {
                logger.warning("S3 WAL: trim failed; retrying", metadata: ["error": "\(error)", "retryInMs": "\(backoffMs)"])
                // Closing and still failing: what is left is deleted by the next open.
                guard returnTrim(job, giveUp: closed && backoffMs >= Self.retryBackoffMaxMs) else { return }
                try? await Task.sleep(nanoseconds: UInt64(backoffMs) * 1_000_000)
                backoffMs = min(backoffMs * 2, Self.retryBackoffMaxMs)
            }
        }
    }

    /// The next trim to run, or nil (and the trimmer stops) when none waits.
    private func takeTrim() -> (header: WALHeader, keys: [String])? {
        trimLock.lock(); defer { trimLock.unlock() }
        guard let job = pendingTrim else {
            trimmerRunning = false
            trimmerDone.leave()
            return nil
        }
        pendingTrim = nil
        return job
    }

    /// Puts a failed trim back (a newer one that arrived meanwhile keeps its newer header), or
    /// drops every trim and stops the trimmer (`giveUp`). Returns whether the trimmer goes on.
    private func returnTrim(_ job: (header: WALHeader, keys: [String]), giveUp: Bool) -> Bool {
        trimLock.lock(); defer { trimLock.unlock() }
        if giveUp {
            pendingTrim = nil
            trimmerRunning = false
            trimmerDone.leave()
            return false
        }
        if let p = pendingTrim { pendingTrim = (p.header, job.keys + p.keys) } else { pendingTrim = job }
        return true
    }

    // MARK: Encoding

    /// A record's key under the prefix. Zero padding makes the listing's order the LSN order.
    static func recordKey(startLSN: UInt64, endLSN: UInt64, generation: UInt64) -> String {
        "r/" + pad(startLSN, 20) + "-" + pad(endLSN, 20) + "-" + pad(generation, 10)
    }

    static func pad(_ v: UInt64, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    /// (startLSN, endLSN, generation) of a record key (the part after the prefix); nil for others.
    static func parseRecordKey(_ name: Substring) -> (startLSN: UInt64, endLSN: UInt64, generation: UInt64)? {
        guard name.hasPrefix("r/") else { return nil }
        let parts = name.dropFirst(2).split(separator: "-")
        guard parts.count == 3, let s = UInt64(parts[0]), let e = UInt64(parts[1]), let g = UInt64(parts[2]), e > s else {
            return nil
        }
        return (s, e, g)
    }

    /// The device's record image without its padding: header (with CRC) then payload.
    static func encodeRecord(payloads: [UnsafeRawBufferPointer], payloadBytes: Int, startLSN: UInt64, endLSN: UInt64,
                             sequence: UInt64, formatId: UInt64, generation: UInt64) -> [UInt8] {
        let header = WALRecordHeader(startLSN: startLSN, endLSN: endLSN, sequence: sequence, formatId: formatId,
                                     generation: generation, payloadBytes: UInt32(payloadBytes),
                                     recordBytes: UInt32(WALLayout.recordBytes(payloadBytes: payloadBytes)))
        return [UInt8](unsafeUninitializedCapacity: WALLayout.recordHeaderBytes + payloadBytes) { buf, count in
            let base = UnsafeMutableRawPointer(buf.baseAddress!)
            header.encodeFields(at: base)
            var cursor = WALLayout.recordHeaderBytes
            for p in payloads where p.count > 0 {
                (base + cursor).copyMemory(from: p.baseAddress!, byteCount: p.count)
                cursor += p.count
            }
            base.storeLE(WALRecordHeader.computeCRC(base, payloadBytes: payloadBytes), at: 4)
            count = cursor
        }
    }

    /// Runs `body` on the concurrency pool and waits for it (open and rebase run on a plain thread).
    static func blocking<T>(_ body: @escaping () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        var result: Result<T, Error>!
        Task.detached {
            do { result = .success(try await body()) } catch { result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try result.get()
    }
}

/// A record between the trim point and the head.
struct LiveObject {
    var key: String
    var startLSN: UInt64
    var endLSN: UInt64
    var sequence: UInt64
}
