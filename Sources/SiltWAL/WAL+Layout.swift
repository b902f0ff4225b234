import CSupport

/// On-disk layout constants and the encoding of header slots and record headers.
/// All integers are little-endian. See `WAL` for the diagram.
enum WALLayout {
    /// Alignment of every write and every record: the O_DIRECT unit and the atomic unit assumed
    /// for header slot writes.
    static let blockBytes: UInt64 = 4096
    static let headerSlotBytes: UInt64 = 4096
    static let headerSlotCount: UInt64 = 2
    /// The record area starts after the two header slots.
    static let areaStartOffset: UInt64 = headerSlotBytes * headerSlotCount
    static let recordHeaderBytes: Int = 64
    /// 2: WAL frames carry the stream epoch (`WALFrameCodec`). Version 1 WALs are refused.
    static let formatVersion: UInt32 = 2
    /// "SILTWALH" as a little-endian u64.
    static let headerMagic: UInt64 = 0x484C_4157_544C_4953
    /// "SWLR" as a little-endian u32.
    static let recordMagic: UInt32 = 0x524C_5753
    /// Hard bound on a record's on-disk size, whatever the configuration (recovery sanity).
    static let recordBytesMax: UInt64 = 64 << 20

    static func alignUp(_ value: UInt64) -> UInt64 {
        (value + blockBytes - 1) / blockBytes * blockBytes
    }

    /// On-disk bytes of a record with `payloadBytes` of payload.
    static func recordBytes(payloadBytes: Int) -> UInt64 {
        alignUp(UInt64(recordHeaderBytes + payloadBytes))
    }
}

// MARK: - Little-endian field access

extension UnsafeMutableRawPointer {
    @inline(__always) func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

extension UnsafeRawPointer {
    @inline(__always) func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

// MARK: - Header slot

/// One header slot (the first 80 bytes of a 4 KiB slot; the rest is zero).
///
/// ```
///  0 u64 magic "SILTWALH"     8 u32 version          12 u32 reserved
/// 16 u64 sequence (newer wins)                       24 u64 capacityBytes
/// 32 i64 nodeId              40 u64 formatId (random, per format; records carry it)
/// 48 u64 generation (bumped at every open; records carry it; never decreases along the log)
/// 56 u64 trimLSN             64 u64 trimOffset (device offset of the first live record)
/// 72 u64 trimSequence (record sequence expected at trimOffset)
/// 80 u32 crc32c of bytes [0, 80)
/// ```
struct WALHeader: Equatable {
    var sequence: UInt64
    var capacityBytes: UInt64
    var nodeId: Int64
    var formatId: UInt64
    var generation: UInt64
    var trimLSN: UInt64
    var trimOffset: UInt64
    var trimSequence: UInt64

    static let crcOffset = 80

    func encode(into slot: UnsafeMutableRawBufferPointer) {
        precondition(slot.count == Int(WALLayout.headerSlotBytes))
        let p = slot.baseAddress!
        p.initializeMemory(as: UInt8.self, repeating: 0, count: slot.count)
        p.storeLE(WALLayout.headerMagic, at: 0)
        p.storeLE(WALLayout.formatVersion, at: 8)
        p.storeLE(sequence, at: 16)
        p.storeLE(capacityBytes, at: 24)
        p.storeLE(nodeId, at: 32)
        p.storeLE(formatId, at: 40)
        p.storeLE(generation, at: 48)
        p.storeLE(trimLSN, at: 56)
        p.storeLE(trimOffset, at: 64)
        p.storeLE(trimSequence, at: 72)
        p.storeLE(silt_crc32c(0, p, Self.crcOffset), at: Self.crcOffset)
        // Assert on the write side too: what we are about to write decodes to ourselves.
        assert(try! WALHeader.decode(UnsafeRawBufferPointer(slot)) == self)
    }

    enum DecodeError: Error, Equatable { case badMagic, badCRC, badVersion(UInt32) }

    static func decode(_ slot: UnsafeRawBufferPointer) throws -> WALHeader {
        precondition(slot.count >= crcOffset + 4)
        let p = slot.baseAddress!
        guard p.loadLE(UInt64.self, at: 0) == WALLayout.headerMagic else { throw DecodeError.badMagic }
        guard p.loadLE(UInt32.self, at: crcOffset) == silt_crc32c(0, p, crcOffset) else {
            throw DecodeError.badCRC
        }
        let version = p.loadLE(UInt32.self, at: 8)
        guard version == WALLayout.formatVersion else { throw DecodeError.badVersion(version) }
        return WALHeader(
            sequence: p.loadLE(UInt64.self, at: 16),
            capacityBytes: p.loadLE(UInt64.self, at: 24),
            nodeId: p.loadLE(Int64.self, at: 32),
            formatId: p.loadLE(UInt64.self, at: 40),
            generation: p.loadLE(UInt64.self, at: 48),
            trimLSN: p.loadLE(UInt64.self, at: 56),
            trimOffset: p.loadLE(UInt64.self, at: 64),
            trimSequence: p.loadLE(UInt64.self, at: 72))
    }

    /// The device offset of slot `index` (0 = A, 1 = B). Sequence n lives in slot n % 2.
    static func slotOffset(_ index: UInt64) -> UInt64 { index * WALLayout.headerSlotBytes }
}

// MARK: - Record header

/// The 64-byte header at the start of every record.
///
/// ```
///  0 u32 magic "SWLR"        4 u32 crc32c of bytes [8, 64 + payloadBytes)  (header rest + payload)
///  8 u64 startLSN           16 u64 endLSN        (endLSN - startLSN >= payloadBytes)
/// 24 u64 sequence           (record number since format; +1 per record)
/// 32 u64 formatId           40 u64 generation    (the open that wrote it)
/// 48 u32 payloadBytes       52 u32 recordBytes   (on-disk size, a 4 KiB multiple)
/// 56 u32 version            60 u32 reserved (0)
/// 64 payload ... zero padding to recordBytes
/// ```
struct WALRecordHeader: Equatable {
    var startLSN: UInt64
    var endLSN: UInt64
    var sequence: UInt64
    var formatId: UInt64
    var generation: UInt64
    var payloadBytes: UInt32
    var recordBytes: UInt32

    /// Writes the header fields (not the CRC) at `p`.
    func encodeFields(at p: UnsafeMutableRawPointer) {
        p.storeLE(WALLayout.recordMagic, at: 0)
        p.storeLE(UInt32(0), at: 4)
        p.storeLE(startLSN, at: 8)
        p.storeLE(endLSN, at: 16)
        p.storeLE(sequence, at: 24)
        p.storeLE(formatId, at: 32)
        p.storeLE(generation, at: 40)
        p.storeLE(payloadBytes, at: 48)
        p.storeLE(recordBytes, at: 52)
        p.storeLE(WALLayout.formatVersion, at: 56)
        p.storeLE(UInt32(0), at: 60)
    }

    /// Decodes the fields of a header (structure only: CRC is checked by the caller, who has
    /// the payload). Returns nil when the magic, version or sizes are not a record header.
    static func decodeFields(_ p: UnsafeRawPointer) -> WALRecordHeader? {
        guard p.loadLE(UInt32.self, at: 0) == WALLayout.recordMagic,
              p.loadLE(UInt32.self, at: 56) == WALLayout.formatVersion,
              p.loadLE(UInt32.self, at: 60) == 0 else { return nil }
        let h = WALRecordHeader(
            startLSN: p.loadLE(UInt64.self, at: 8),
            endLSN: p.loadLE(UInt64.self, at: 16),
            sequence: p.loadLE(UInt64.self, at: 24),
            formatId: p.loadLE(UInt64.self, at: 32),
            generation: p.loadLE(UInt64.self, at: 40),
            payloadBytes: p.loadLE(UInt32.self, at: 48),
            recordBytes: p.loadLE(UInt32.self, at: 52))
        guard UInt64(h.recordBytes) == WALLayout.recordBytes(payloadBytes: Int(h.payloadBytes)),
              UInt64(h.recordBytes) <= WALLayout.recordBytesMax,
              h.endLSN > h.startLSN,
              h.endLSN - h.startLSN >= UInt64(h.payloadBytes) else { return nil }
        return h
    }

    static func storedCRC(_ p: UnsafeRawPointer) -> UInt32 { p.loadLE(UInt32.self, at: 4) }

    /// CRC32C over [8, 64 + payloadBytes) of a record image starting at `p`.
    static func computeCRC(_ p: UnsafeRawPointer, payloadBytes: Int) -> UInt32 {
        silt_crc32c(0, p + 8, WALLayout.recordHeaderBytes - 8 + payloadBytes)
    }
}
