import CSupport
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension WAL {
    /// Opens (formatting if blank) the WAL at `path` and recovers its live records.
    ///
    /// - `path`: a block device (its size, from BLKGETSIZE64, must be >= `capacityBytes`) or a
    ///   regular file (created and extended to `capacityBytes` with fallocate/ftruncate).
    /// - `fitToDevice`: the capacity was not configured explicitly, so a block device smaller
    ///   than `capacityBytes` is taken whole (its size rounded down to 4 KiB) instead of refused.
    ///   `wal.capacityBytes` is the capacity in use.
    /// - Formats a blank device (both header slots all zero). Anything else without a valid
    ///   header (a filesystem, fio's data) is refused as `.headersCorrupt`, whose message says
    ///   how to format it on purpose (`silt admin format-wal`, `WAL.eraseHeaders`).
    ///   Opened with O_DIRECT; a filesystem that refuses it throws `.directIONotSupported`.
    /// - Returns the WAL, positioned right after the last valid record, and every valid record
    ///   from the trim point on, oldest first. Recovered records are durable (an fdatasync runs
    ///   before this returns) and `durableLSN` is the end of the last one.
    public static func open(path: String, capacityBytes configuredBytes: UInt64, nodeId: Int,
                            fitToDevice: Bool = false, config: WALConfig = WALConfig(),
                            logger: Logger = Logger(label: "silt.wal"))
        throws -> (wal: WAL, recovered: [RecoveredRecord])
    {
        try validate(capacityBytes: configuredBytes, config: config)
        let nodeId = Int64(nodeId)

        let fd = silt_open_direct(path, 1)
        if fd == -EINVAL { throw WALError.directIONotSupported(path: path) }
        if fd < 0 { throw WALError.syscall(operation: "open(O_DIRECT)", path: path, errno: Errno(-fd)) }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }

        let (isBlockDevice, capacityBytes) = try prepareDevice(fd: fd, path: path, capacityBytes: configuredBytes,
                                                               fitToDevice: fitToDevice)
        if capacityBytes != configuredBytes {
            try validate(capacityBytes: capacityBytes, config: config)
            logger.notice("WAL takes the whole device: it is smaller than the default capacity", metadata: [
                "path": "\(path)", "deviceBytes": "\(capacityBytes)", "defaultCapacityBytes": "\(configuredBytes)"])
        }

        // Both header slots in one aligned read.
        let slots = AlignedBuffer(count: Int(WALLayout.areaStartOffset))
        try preadFully(fd: fd, path: path, into: slots.bytes, offset: 0)
        var chosen = try newestHeader(UnsafeRawBufferPointer(slots.bytes), path: path, logger: logger)
        var formatted = false
        if chosen == nil {
            let blank = UnsafeRawBufferPointer(slots.bytes).allSatisfy { $0 == 0 }
            guard blank || config.formatPolicy == .formatIfNoValidHeader else {
                throw WALError.headersCorrupt(path: path)
            }
            chosen = try format(fd: fd, path: path, capacityBytes: capacityBytes, nodeId: nodeId, logger: logger)
            formatted = true
        }
        let current = chosen!
        guard current.capacityBytes == capacityBytes else {
            throw WALError.capacityMismatch(path: path, onDisk: current.capacityBytes, configured: capacityBytes)
        }
        guard current.nodeId == nodeId else {
            throw WALError.nodeIdMismatch(path: path, onDisk: current.nodeId, configured: nodeId)
        }

        let scan = try recover(fd: fd, path: path, header: current, capacityBytes: capacityBytes, logger: logger)
        let ring = try IORing(queueDepth: UInt32(2 * config.maxInFlightWrites + 2), path: path)
        // Records written by this open carry a generation above every record on the device, so
        // a record left behind by an earlier open can never continue this open's records.
        let generation = max(current.generation, scan.maxGeneration) + 1
        let wal = WAL(path: path, fd: fd, ring: ring, capacityBytes: capacityBytes, nodeId: nodeId,
                      config: config, isBlockDevice: isBlockDevice, header: current,
                      generation: generation, logger: logger)
        ok = true
        wal.adoptRecovered(scan)
        // Persist the new generation (older slot) with the same trim point; its fdatasync also
        // makes the recovered records durable (they may have been in a volatile device cache).
        var next = current
        next.generation = generation
        try wal.writeHeader(next)
        if !isBlockDevice, let bounds = config.prepare {
            wal.preparer = FirstLapPreparer.startIfNeeded(fd: fd, path: path, capacityBytes: capacityBytes,
                                                          head: wal.headOffset, bounds: bounds, logger: logger)
        }
        if WALFaults.writeDelayMs > 0 {
            logger.warning("fault point on: every WAL write is delayed (a test's slow device)", metadata: [
                "\(WALFaults.writeDelayVariable)": "\(WALFaults.writeDelayMs)"])
        }
        logger.info("WAL opened", metadata: [
            "path": "\(path)", "blockDevice": "\(isBlockDevice)", "formatted": "\(formatted)",
            "capacityBytes": "\(capacityBytes)", "generation": "\(generation)",
            "trimLSN": "\(current.trimLSN)", "headLSN": "\(wal.nextLSN)",
            "records": "\(scan.records.count)", "scanStop": "\(scan.stopReason)",
        ])
        return (wal, scan.records)
    }

    static func validate(capacityBytes: UInt64, config: WALConfig) throws {
        guard capacityBytes % WALLayout.blockBytes == 0 else {
            throw WALError.invalidConfiguration("capacity \(capacityBytes) is not a multiple of 4096")
        }
        guard config.maxRecordPayloadBytes > 0,
              WALLayout.recordBytes(payloadBytes: config.maxRecordPayloadBytes) <= WALLayout.recordBytesMax else {
            throw WALError.invalidConfiguration("maxRecordPayloadBytes \(config.maxRecordPayloadBytes) out of range")
        }
        guard (1...64).contains(config.maxInFlightWrites) else {
            throw WALError.invalidConfiguration("maxInFlightWrites \(config.maxInFlightWrites) not in 1...64")
        }
        let maxRecord = WALLayout.recordBytes(payloadBytes: config.maxRecordPayloadBytes)
        // Two max records must fit, so a wrap from an empty log always lands before the trim point.
        guard capacityBytes >= WALLayout.areaStartOffset + 2 * maxRecord else {
            throw WALError.invalidConfiguration(
                "capacity \(capacityBytes) too small for 2 records of \(maxRecord) bytes plus 8 KiB of headers")
        }
    }

    /// Checks the device type and size; extends a regular file to `capacityBytes`. Returns
    /// whether it is a block device and the capacity to use: `capacityBytes`, or a smaller
    /// device's size (4 KiB aligned) when `fitToDevice`.
    static func prepareDevice(fd: Int32, path: String, capacityBytes: UInt64,
                              fitToDevice: Bool) throws -> (isBlockDevice: Bool, capacityBytes: UInt64) {
        var isBlock: Int32 = 0, isRegular: Int32 = 0, size: UInt64 = 0
        try retryingNegErrno("fstat", path: path) { silt_fd_describe(fd, &isBlock, &isRegular, &size) }
        if isBlock != 0 {
            let capacityBytes = fitToDevice ? min(capacityBytes, size / WALLayout.blockBytes * WALLayout.blockBytes)
                                            : capacityBytes
            guard size >= capacityBytes else {
                throw WALError.deviceTooSmall(path: path, deviceBytes: size, capacityBytes: capacityBytes)
            }
            var sector: UInt32 = 0
            try retryingNegErrno("ioctl(BLKSSZGET)", path: path) { silt_block_device_sector_size(fd, &sector) }
            guard sector <= UInt32(WALLayout.blockBytes) else {
                throw WALError.invalidConfiguration("\(path) has \(sector)-byte sectors; the WAL writes 4 KiB blocks")
            }
            return (true, capacityBytes)
        }
        guard isRegular != 0 else { throw WALError.unsupportedFileType(path: path) }
        if size < capacityBytes {
            let rc = silt_fallocate(fd, capacityBytes)
            if rc == -EOPNOTSUPP || rc == -ENOSYS {
                try retryingSyscall("ftruncate", path: path) { ftruncate(fd, off_t(capacityBytes)) }
            } else if rc < 0 {
                throw WALError.syscall(operation: "fallocate", path: path, errno: Errno(-rc))
            }
        }
        return (false, capacityBytes)
    }

    /// Writes a fresh header to both slots (trim point at the area start, LSN 0).
    static func format(fd: Int32, path: String, capacityBytes: UInt64, nodeId: Int64,
                       logger: Logger) throws -> WALHeader {
        var formatId: UInt64 = 0
        while formatId == 0 { formatId = UInt64.random(in: 1...UInt64.max) }
        var h = WALHeader(sequence: 0, capacityBytes: capacityBytes, nodeId: nodeId, formatId: formatId,
                          generation: 0, trimLSN: 0, trimOffset: WALLayout.areaStartOffset, trimSequence: 0)
        let buffer = AlignedBuffer(count: Int(WALLayout.headerSlotBytes))
        for seq in 0..<WALLayout.headerSlotCount {
            h.sequence = seq
            h.encode(into: buffer.bytes)
            try pwriteFully(fd: fd, path: path, from: UnsafeRawBufferPointer(buffer.bytes),
                            offset: WALHeader.slotOffset(seq % WALLayout.headerSlotCount))
        }
        try retryingSyscall("fdatasync", path: path) { fdatasync(fd) }
        logger.notice("WAL formatted", metadata: ["path": "\(path)", "capacityBytes": "\(capacityBytes)",
                                                   "nodeId": "\(nodeId)"])
        return h
    }

    /// Persists `header` (with the next sequence) in the older slot: one aligned 4 KiB O_DIRECT
    /// write, then fdatasync. A torn slot write fails its CRC and the other slot, untouched,
    /// still holds the previous header. Updates `self.header` only after success.
    func writeHeader(_ newHeader: WALHeader) throws {
        var h = newHeader
        h.sequence = header.sequence + 1
        precondition(h.capacityBytes == capacityBytes && h.nodeId == nodeId && h.formatId == header.formatId)
        precondition(h.trimOffset >= WALLayout.areaStartOffset && h.trimOffset <= capacityBytes
                     && h.trimOffset % WALLayout.blockBytes == 0)
        h.encode(into: headerBuffer.bytes)
        do {
            try WAL.pwriteFully(fd: fd, path: path, from: UnsafeRawBufferPointer(headerBuffer.bytes),
                                offset: WALHeader.slotOffset(h.sequence % WALLayout.headerSlotCount))
            try retryingSyscall("fdatasync", path: path) { fdatasync(fd) }
        } catch let error as WALError {
            failure = error
            throw error
        }
        fsyncs += 1
        headerWrites += 1
        header = h
    }

    static func preadFully(fd: Int32, path: String, into buffer: UnsafeMutableRawBufferPointer,
                           offset: UInt64) throws {
        let n = try retryingSyscall("pread", path: path) {
            pread(fd, buffer.baseAddress!, buffer.count, off_t(offset))
        }
        guard n == buffer.count else {
            throw WALError.syscall(operation: "pread (short: \(n) of \(buffer.count) at \(offset))",
                                   path: path, errno: Errno(EIO))
        }
    }

    static func pwriteFully(fd: Int32, path: String, from buffer: UnsafeRawBufferPointer,
                            offset: UInt64) throws {
        let n = try retryingSyscall("pwrite", path: path) {
            pwrite(fd, buffer.baseAddress!, buffer.count, off_t(offset))
        }
        guard n == buffer.count else {
            throw WALError.syscall(operation: "pwrite (short: \(n) of \(buffer.count) at \(offset))",
                                   path: path, errno: Errno(EIO))
        }
    }
}

extension WAL {
    /// The capacity and node id in the newest valid header of the WAL at `path`, read without
    /// opening it for writing: a takeover checks whose WAL it is, and its size, first.
    public static func identity(path: String) throws -> (capacityBytes: UInt64, nodeId: Int64) {
        switch try contents(path: path) {
        case let .siltWAL(nodeId, capacityBytes): return (capacityBytes, nodeId)
        case let .siltWALOfVersion(version): throw WALError.unsupportedFormatVersion(path: path, version: version)
        case .blank, .other: throw WALError.headersCorrupt(path: path)
        }
    }

    /// The valid header slot with the highest sequence among the two at the start of
    /// `slots`; nil when neither is valid. A header of another format version is refused.
    static func newestHeader(_ slots: UnsafeRawBufferPointer, path: String, logger: Logger?) throws -> WALHeader? {
        var chosen: WALHeader?
        for i in 0..<Int(WALLayout.headerSlotCount) {
            let slot = UnsafeRawBufferPointer(rebasing: slots[
                (i * Int(WALLayout.headerSlotBytes))..<((i + 1) * Int(WALLayout.headerSlotBytes))])
            do {
                let h = try WALHeader.decode(slot)
                if chosen == nil || h.sequence > chosen!.sequence { chosen = h }
            } catch WALHeader.DecodeError.badVersion(let v) {
                throw WALError.unsupportedFormatVersion(path: path, version: v)
            } catch {
                logger?.info("WAL header slot invalid", metadata: ["path": "\(path)", "slot": "\(i)", "reason": "\(error)"])
            }
        }
        return chosen
    }
}
