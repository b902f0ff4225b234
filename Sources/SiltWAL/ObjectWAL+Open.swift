import Foundation
import Logging
import SiltObjectStore

extension ObjectWAL {
    /// What a scan of a node's WAL found: its header (nil: the node never opened an S3 WAL), the
    /// valid records from the trim point on, and the keys that are not part of the log.
    public struct Scan: Sendable {
        var header: WALHeader?
        public var records: [RecoveredRecord]
        /// The key of each of `records`.
        var recordKeys: [String]
        /// Records below the trim point, beyond the end of the log, or superseded by a newer
        /// generation at the same LSN: deleted by the next open that writes.
        public var strayKeys: [String]
        var maxGeneration: UInt64
        public var exists: Bool { header != nil }
    }

    /// GETs of a scan in flight at once.
    static let scanConcurrency = 8

    /// Opens node `nodeId`'s WAL for writing: recovers it, bumps the generation in `head`, then
    /// deletes stray records. Returns the WAL positioned after the last valid record, and those
    /// records (durable; live until trimmed).
    public static func open(store: ObjectStore, clusterId: String, nodeId: Int, settings: Settings,
                            logger: Logger = Logger(label: "silt.wal.s3")) throws -> (wal: ObjectWAL, recovered: [RecoveredRecord]) {
        let prefix = Self.prefix(clusterId: clusterId, nodeId: Int64(nodeId))
        let location = "\(store.description)/\(prefix)"
        let found = try blocking { try await scan(store: store, prefix: prefix, nodeId: Int64(nodeId), location: location) }
        var header = found.header ?? WALHeader(sequence: 0, capacityBytes: settings.maxUnflushedBytes, nodeId: Int64(nodeId),
                                              formatId: UInt64.random(in: 1...UInt64.max), generation: 0,
                                              trimLSN: 0, trimOffset: 0, trimSequence: 0)
        let generation = max(header.generation, found.maxGeneration) + 1
        header.sequence += 1
        header.generation = generation
        header.capacityBytes = settings.maxUnflushedBytes
        try blocking { () async throws -> Void in try await Self.putHeader(header, store: store, prefix: prefix) }
        let wal = ObjectWAL(store: store, prefix: prefix, location: location, nodeId: Int64(nodeId), settings: settings,
                            header: header, generation: generation, logger: logger)
        for (r, key) in zip(found.records, found.recordKeys) {
            wal.live.append(LiveObject(key: key, startLSN: r.startLSN, endLSN: r.endLSN, sequence: r.sequence))
        }
        if let last = found.records.last {
            wal.nextLSN = last.endLSN
            wal.nextSequence = last.sequence + 1
            wal.durableLSN = last.endLSN
            wal.durableSequence = last.sequence + 1
        }
        if !found.strayKeys.isEmpty {
            do {
                _ = try blocking { try await store.deleteObjects(found.strayKeys) }
            } catch {
                logger.warning("S3 WAL: stray records not deleted (they are never read: older generation or below the trim point)",
                               metadata: ["count": "\(found.strayKeys.count)", "error": "\(error)"])
            }
        }
        logger.info("S3 WAL opened", metadata: [
            "location": "\(location)", "generation": "\(generation)", "records": "\(found.records.count)",
            "trimLSN": "\(header.trimLSN)", "headLSN": "\(wal.headLSN)", "strayRecords": "\(found.strayKeys.count)"])
        return (wal, found.records)
    }

    /// Reads node `nodeId`'s WAL without writing anything (a takeover of a dead node).
    public static func read(store: ObjectStore, clusterId: String, nodeId: Int64) async throws -> Scan {
        let prefix = Self.prefix(clusterId: clusterId, nodeId: nodeId)
        return try await scan(store: store, prefix: prefix, nodeId: nodeId, location: "\(store.description)/\(prefix)")
    }

    /// Lists the node's keys, follows the log from the trim point by the keys' LSN ranges (the
    /// newest generation at each LSN, generations never decreasing), then GETs and checks each
    /// record in order; the first that fails its checks ends the log.
    static func scan(store: ObjectStore, prefix: String, nodeId: Int64, location: String) async throws -> Scan {
        var keys: [String] = []
        var token: String?
        repeat {
            let page = try await store.list(prefix: prefix, delimiter: nil, continuationToken: token, maxKeys: 1000)
            keys += page.objects.map(\.key)
            token = page.nextContinuationToken
        } while token != nil
        var records: [(key: String, startLSN: UInt64, endLSN: UInt64, generation: UInt64)] = []
        var hasHead = false
        for key in keys {
            let name = key.dropFirst(prefix.count)
            if name == "head" { hasHead = true; continue }
            if let r = parseRecordKey(name) { records.append((key, r.startLSN, r.endLSN, r.generation)) }
        }
        let maxGeneration = records.map(\.generation).max() ?? 0
        guard hasHead else {
            if !records.isEmpty { throw WALError.headersCorrupt(path: location) }
            return Scan(header: nil, records: [], recordKeys: [], strayKeys: [], maxGeneration: 0)
        }
        let headBytes = try await store.get(prefix + "head", range: nil)
        let header: WALHeader
        do {
            guard headBytes.count == Int(WALLayout.headerSlotBytes) else { throw WALHeader.DecodeError.badMagic }
            header = try headBytes.withUnsafeBytes { try WALHeader.decode($0) }
        } catch WALHeader.DecodeError.badVersion(let v) {
            throw WALError.unsupportedFormatVersion(path: location, version: v)
        } catch {
            throw WALError.headersCorrupt(path: location)
        }
        guard header.nodeId == nodeId else {
            throw WALError.nodeIdMismatch(path: location, onDisk: header.nodeId, configured: nodeId)
        }

        // The chain, from the keys alone.
        let byStart = Dictionary(grouping: records, by: \.startLSN)
        var chain: [(key: String, startLSN: UInt64, endLSN: UInt64, generation: UInt64)] = []
        var lsn = header.trimLSN
        var lastGeneration: UInt64 = 0
        while let candidates = byStart[lsn],
              let next = candidates.filter({ $0.generation >= lastGeneration }).max(by: { $0.generation < $1.generation }) {
            chain.append(next)
            lsn = next.endLSN
            lastGeneration = next.generation
        }

        // GET them, a few at a time, and check each in order.
        var valid: [RecoveredRecord] = []
        var sequence = header.trimSequence
        var index = 0
        checking: while index < chain.count {
            let batch = Array(chain[index..<min(index + scanConcurrency, chain.count)])
            let bodies = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                for (i, r) in batch.enumerated() { group.addTask { (i, try await store.get(r.key, range: nil)) } }
                var out = [[UInt8]](repeating: [], count: batch.count)
                for try await (i, body) in group { out[i] = body }
                return out
            }
            for (r, body) in zip(batch, bodies) {
                guard let record = checkRecord(body, startLSN: r.startLSN, endLSN: r.endLSN, generation: r.generation,
                                               sequence: sequence, formatId: header.formatId) else { break checking }
                valid.append(record)
                sequence += 1
            }
            index += batch.count
        }
        let chainKeys = chain.prefix(valid.count).map(\.key)
        let kept = Set(chainKeys)
        let stray = records.map(\.key).filter { !kept.contains($0) }
        return Scan(header: header, records: valid, recordKeys: chainKeys, strayKeys: stray, maxGeneration: maxGeneration)
    }

    /// The record in an object body, if every check passes: magic, version, sizes, CRC32C, and the
    /// LSN range, generation, sequence and format id the log expects.
    static func checkRecord(_ body: [UInt8], startLSN: UInt64, endLSN: UInt64, generation: UInt64, sequence: UInt64,
                            formatId: UInt64) -> RecoveredRecord? {
        guard body.count >= WALLayout.recordHeaderBytes else { return nil }
        return body.withUnsafeBytes { raw -> RecoveredRecord? in
            let p = raw.baseAddress!
            guard let h = WALRecordHeader.decodeFields(p),
                  body.count == WALLayout.recordHeaderBytes + Int(h.payloadBytes),
                  WALRecordHeader.computeCRC(p, payloadBytes: Int(h.payloadBytes)) == WALRecordHeader.storedCRC(p),
                  h.startLSN == startLSN, h.endLSN == endLSN, h.generation == generation, h.sequence == sequence,
                  h.formatId == formatId else { return nil }
            return RecoveredRecord(startLSN: startLSN, endLSN: endLSN, sequence: sequence,
                                   payload: Array(raw[WALLayout.recordHeaderBytes...]))
        }
    }

    static func putHeader(_ h: WALHeader, store: ObjectStore, prefix: String) async throws {
        var slot = [UInt8](repeating: 0, count: Int(WALLayout.headerSlotBytes))
        slot.withUnsafeMutableBytes { h.encode(into: $0) }
        _ = try await store.put(prefix + "head", slot, ifNoneMatch: false)
    }
}
