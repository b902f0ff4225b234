import CSupport
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// What a recovery scan found.
struct RecoveryScan {
    var records: [RecoveredRecord] = []
    var live: [LiveRecord] = []
    /// Where the next record goes, and what it continues.
    var headOffset: UInt64
    var nextLSN: UInt64
    var nextSequence: UInt64
    var maxGeneration: UInt64 = 0
    var stopReason: String = ""
}

extension WAL {
    /// Scans the record area from the header's trim point; see `WAL` for the rules.
    static func recover(fd: Int32, path: String, header: WALHeader, capacityBytes: UInt64,
                        logger: Logger) throws -> RecoveryScan {
        let areaStart = WALLayout.areaStartOffset
        let block = WALLayout.blockBytes
        let t = header.trimOffset
        var scan = RecoveryScan(headOffset: t, nextLSN: header.trimLSN, nextSequence: header.trimSequence)
        guard t >= areaStart, t <= capacityBytes, t % block == 0 else {
            // A CRC-valid header with an impossible trim offset is a bug in the writer.
            preconditionFailure("WAL header trim offset \(t) out of range for capacity \(capacityBytes)")
        }

        var reader = RecordReader(fd: fd, path: path, formatId: header.formatId)
        var p = t
        var wrapped = false
        var lastGeneration: UInt64 = 0
        // Bound: every accepted record consumes >= 4 KiB of the area.
        let iterationsMax = Int((capacityBytes - areaStart) / block) + 1
        for _ in 0..<iterationsMax {
            let limit = wrapped ? t : capacityBytes
            var found: (offset: UInt64, record: RecordReader.Record)? = nil
            var reason = ""
            if p + block <= limit {
                switch try reader.read(at: p, limit: limit, sequence: scan.nextSequence,
                                       startLSN: scan.nextLSN, minGeneration: lastGeneration) {
                case .valid(let r): found = (p, r)
                case .invalid(let why): reason = "at \(p): \(why)"
                }
            } else {
                reason = "at \(p): no room before \(limit)"
            }
            if found == nil, !wrapped, p != areaStart {
                // The writer wraps a record that does not fit before the end of the area.
                switch try reader.read(at: areaStart, limit: t, sequence: scan.nextSequence,
                                       startLSN: scan.nextLSN, minGeneration: lastGeneration) {
                case .valid(let r) where p + r.recordBytes > capacityBytes:
                    found = (areaStart, r)
                    wrapped = true
                case .valid(let r):
                    reason += "; at area start: record \(r.sequence) would have fit at \(p) (no wrap)"
                case .invalid(let why):
                    reason += "; at area start: \(why)"
                }
            }
            guard let (offset, r) = found else {
                scan.stopReason = reason
                break
            }
            // Assert on the read side: the chain is contiguous and inside the live span.
            precondition(r.startLSN == scan.nextLSN && r.sequence == scan.nextSequence)
            precondition(offset % block == 0 && offset + r.recordBytes <= (wrapped ? t : capacityBytes))
            scan.records.append(RecoveredRecord(startLSN: r.startLSN, endLSN: r.endLSN,
                                                sequence: r.sequence, payload: r.payload))
            scan.live.append(LiveRecord(offset: offset, recordBytes: r.recordBytes, startLSN: r.startLSN,
                                        endLSN: r.endLSN, sequence: r.sequence))
            lastGeneration = r.generation
            scan.maxGeneration = max(scan.maxGeneration, r.generation)
            p = offset + r.recordBytes
            scan.headOffset = p
            scan.nextLSN = r.endLSN
            scan.nextSequence = r.sequence + 1
        }
        logger.debug("WAL recovery scan", metadata: [
            "path": "\(path)", "records": "\(scan.records.count)", "stop": "\(scan.stopReason)"])
        return scan
    }

    /// Installs a recovery scan as the live state: recovered records are live and durable.
    func adoptRecovered(_ scan: RecoveryScan) {
        for r in scan.live { live.append(r) }
        headOffset = scan.headOffset
        nextLSN = scan.nextLSN
        nextSequence = scan.nextSequence
        durableLSN = scan.nextLSN
        durableSequence = scan.nextSequence
    }
}

/// Reads and verifies one record at a time (pread, O_DIRECT, aligned buffers).
struct RecordReader {
    let fd: Int32
    let path: String
    let formatId: UInt64
    var buffer = AlignedBuffer(count: Int(WALLayout.blockBytes))

    struct Record {
        var startLSN: UInt64
        var endLSN: UInt64
        var sequence: UInt64
        var generation: UInt64
        var recordBytes: UInt64
        var payload: [UInt8]
    }

    enum Outcome {
        case valid(Record)
        case invalid(String)
    }

    /// Reads the record at `offset` and checks it is exactly the expected continuation.
    mutating func read(at offset: UInt64, limit: UInt64, sequence: UInt64, startLSN: UInt64,
                       minGeneration: UInt64) throws -> Outcome {
        let block = Int(WALLayout.blockBytes)
        guard offset + UInt64(block) <= limit else { return .invalid("no room before \(limit)") }
        let first = UnsafeMutableRawBufferPointer(start: buffer.pointer, count: block)
        try WAL.preadFully(fd: fd, path: path, into: first, offset: offset)
        guard let h = WALRecordHeader.decodeFields(buffer.pointer) else {
            return .invalid("not a record header (magic/version/sizes)")
        }
        guard h.formatId == formatId else { return .invalid("formatId \(h.formatId), expected \(formatId)") }
        guard h.sequence == sequence else { return .invalid("sequence \(h.sequence), expected \(sequence)") }
        guard h.startLSN == startLSN else { return .invalid("startLSN \(h.startLSN), expected \(startLSN)") }
        guard h.generation >= minGeneration else {
            return .invalid("generation \(h.generation) below \(minGeneration) (left over from an earlier open)")
        }
        let recordBytes = UInt64(h.recordBytes)
        guard offset + recordBytes <= limit else { return .invalid("\(recordBytes) bytes overrun \(limit)") }
        if recordBytes > UInt64(buffer.count) {
            let bigger = AlignedBuffer(count: Int(recordBytes))
            bigger.pointer.copyMemory(from: buffer.pointer, byteCount: block)
            buffer = bigger
        }
        if recordBytes > UInt64(block) {
            let rest = UnsafeMutableRawBufferPointer(start: buffer.pointer + block, count: Int(recordBytes) - block)
            try WAL.preadFully(fd: fd, path: path, into: rest, offset: offset + UInt64(block))
        }
        let payloadBytes = Int(h.payloadBytes)
        let crc = WALRecordHeader.computeCRC(buffer.pointer, payloadBytes: payloadBytes)
        guard crc == WALRecordHeader.storedCRC(buffer.pointer) else { return .invalid("CRC mismatch") }
        let payload = [UInt8](UnsafeRawBufferPointer(start: buffer.pointer + WALLayout.recordHeaderBytes,
                                                     count: payloadBytes))
        return .valid(Record(startLSN: h.startLSN, endLSN: h.endLSN, sequence: h.sequence,
                             generation: h.generation, recordBytes: recordBytes, payload: payload))
    }
}
