import CSupport

/// The node's log buffer: a shared-memory ring with one writer (the broker) and exactly two
/// readers (index 0 = the WAL writer, index 1 = the uploader), each in its own process.
///
/// The region is a memfd created by the supervisor, so it survives the crash of any child; a
/// restarted child calls `attach(fd:)` and continues from the positions in the header.
///
/// ## Region
///
/// ```
///  offset 0      4 KiB header page (each hot field on its own 64-byte cache line)
///  ┌────────────────────────────────────────────────────────────────────────────────┐
///  │ +0    magic u64 "SILTRING" │ version u32 │ headerBytes u32 │ capacityBytes u64     │
///  │       initialized u32 (release-stored last by `create`) │ maxPayloadBytes u32     │
///  │ +64   writePosition u64     committed end: release-stored after the bytes       │
///  │ +128  reservedPosition u64  end of the bytes the writer may be writing now      │
///  │ +192  dataFutex u32 │ dataWaiters u32      readers sleep here; writer bumps      │
///  │ +256  readPosition[0] u64   WAL writer                                          │
///  │ +320  readPosition[1] u64   uploader                                            │
///  │ +384  spaceFutex u32 │ spaceWaiters u32    writer sleeps here; readers bump      │
///  │ +448  uploadRequest u64     upload at least up to here now (any process; max wins) │
///  │ +512  streamUploadSlots[16] u64   streamId + 1 to upload on its own now (0: free)  │
///  └────────────────────────────────────────────────────────────────────────────────┘
///  offset 4096   data area, capacityBytes (a power of two >= 64 KiB)
///  ┌────────────────────────────────────────────────────────────────────────────────┐
///  │ frame │ frame │ ... │ free │ ... │ frame │ padding frame up to the end          │
///  └────────────────────────────────────────────────────────────────────────────────┘
///        ▲ min(readPosition) & (cap-1)        ▲ writePosition & (cap-1)
/// ```
///
/// Positions are byte LSNs: monotonically increasing u64 byte counts, never wrapped; the byte at
/// LSN `p` lives at data offset `p & (capacityBytes - 1)`. Invariant:
/// `min(readPosition) <= readPosition[i] <= writePosition <= reservedPosition` and
/// `writePosition - min(readPosition) <= capacityBytes`.
///
/// ## Frame (the writer's unit, 8-byte aligned, never wraps)
///
/// ```
///   0  crc32c      u32  CRC-32C of bytes 4..<40 of this header, then of the payload
///   4  length      u32  whole frame: 40 + payload + tail padding, a multiple of 8
///   8  kind        u8   1 = data, 2 = padding (the rest of the data area is skipped)
///   9  tailPad     u8   0...7 zero bytes after the payload: payloadLength = length - 40 - tailPad
///  10  flags       u16  opaque to the ring (0 today)
///  12  count       u32  records in the batch
///  16  streamId    u64
///  24  baseOffset  i64
///  32  streamEpoch i64  the stream epoch the broker appended in (see `StreamLog.streamEpoch`)
///  40  payload     payloadLength bytes, then tailPad zero bytes
/// ```
///
/// A frame that does not fit before the end of the data area is preceded by a padding frame
/// covering the rest (header only, count/stream/offset/epoch 0, CRC over its header); when fewer
/// than 40 bytes remain (8 to 32) nothing is written and both sides skip them by rule. A payload
/// is at most `capacityBytes / 4` (`maxPayloadBytes`), so a frame plus its padding always fits
/// in an empty ring; larger appends throw `RingError.payloadTooLarge`. Little-endian hosts only.
///
/// ## Back of the envelope
///
/// - In: one `memcpy` per frame from the producer's buffer into the ring, plus one CRC32C pass
///   (SSE4.2, ~10+ GB/s), one release store and one fence. A 1 MiB batch costs ~100 µs of
///   memory bandwidth; a 1 KiB batch is dominated by the ~50 ns of bookkeeping.
/// - Out: zero-copy. `peek` returns views into the mapping; the readers hand them to
///   io_uring / the object builder and `advance` when done. Each reader re-checks the CRC once.
/// - Cache lines: the writer's line (writePosition) is written once per append and read by
///   both readers; each reader's position line is written by that reader only. The writer
///   caches min(readPosition) and reloads it only when its cached view says the ring is full.
/// - Blocking: futex words with waiter counts; the wake syscall happens only when someone sleeps.
///
/// Threading: one writer thread per region at a time (appends are not internally locked) and
/// one thread per reader index. The object itself may be shared between threads of a process.
public final class LogRing: @unchecked Sendable {
    /// Bytes of the header page before the data area.
    public static let headerBytes = 4096
    /// Bytes of a frame header.
    public static let frameHeaderBytes = 40
    /// Smallest data area.
    public static let capacityBytesMin = 64 * 1024
    /// Number of readers (0 = WAL writer, 1 = uploader).
    public static let readerCount = 2

    static let magic: UInt64 = 0x474E_4952_544C_4953  // "SILTRING" in memory order (little-endian)
    static let version: UInt32 = 2

    // Header field offsets (see the diagram).
    enum Offset {
        static let magic = 0
        static let version = 8
        static let headerBytes = 12
        static let capacityBytes = 16
        static let initialized = 24
        static let maxPayloadBytes = 28
        static let writePosition = 64
        static let reservedPosition = 128
        static let dataFutex = 192
        static let dataWaiters = 196
        static let readPosition0 = 256
        static let readPosition1 = 320
        static let spaceFutex = 384
        static let spaceWaiters = 388
        static let uploadRequest = 448
        static let streamUploadSlots = 512
    }

    enum FrameOffset {
        static let crc = 0
        static let length = 4
        static let kind = 8
        static let tailPad = 9
        static let flags = 10
        static let count = 12
        static let streamId = 16
        static let baseOffset = 24
        static let streamEpoch = 32
    }

    static let kindData: UInt8 = 1
    static let kindPadding: UInt8 = 2

    let mapping: SharedMapping
    /// The data area (the mapping past the header page).
    let data: UnsafeMutableRawPointer
    /// Data area bytes, a power of two.
    public let capacityBytes: Int
    let mask: UInt64
    /// The largest payload one frame carries: `capacityBytes / 4`.
    public let maxPayloadBytes: Int

    let writePositionWord: UnsafeMutablePointer<UInt64>
    let reservedPositionWord: UnsafeMutablePointer<UInt64>
    let readPositionWords: (UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt64>)
    let dataFutex: UnsafeMutablePointer<UInt32>
    let dataWaiters: UnsafeMutablePointer<UInt32>
    let spaceFutex: UnsafeMutablePointer<UInt32>
    let spaceWaiters: UnsafeMutablePointer<UInt32>
    let uploadRequestWord: UnsafeMutablePointer<UInt64>
    let streamUploadSlots: UnsafeMutablePointer<UInt64>
    /// Streams that can wait for an upload of their own at once (`requestStreamUpload`).
    public static let streamUploadSlotCount = 16

    /// Writer-local cache of min(readPosition): refreshed only when it says "full".
    var cachedMinReadPosition: UInt64 = 0

    /// When the writer's last append became visible to the readers (`silt_monotonic_ns`, taken
    /// just before the write position is published). Writer-local, like the append itself: the
    /// latency breakdown's boundary between "append" and "WAL pickup", which must not come
    /// after the reader's pickup (a stamp taken after the append returned could: the WAL writer
    /// wakes at the publish, and the two stages then overlapped).
    public internal(set) var lastPublishedNs: UInt64 = 0

    private init(mapping: SharedMapping, capacityBytes: Int) {
        self.mapping = mapping
        self.data = mapping.base + LogRing.headerBytes
        self.capacityBytes = capacityBytes
        self.mask = UInt64(capacityBytes - 1)
        self.maxPayloadBytes = capacityBytes / 4
        self.writePositionWord = mapping.word(Offset.writePosition, UInt64.self)
        self.reservedPositionWord = mapping.word(Offset.reservedPosition, UInt64.self)
        self.readPositionWords = (mapping.word(Offset.readPosition0, UInt64.self),
                                  mapping.word(Offset.readPosition1, UInt64.self))
        self.dataFutex = mapping.word(Offset.dataFutex, UInt32.self)
        self.dataWaiters = mapping.word(Offset.dataWaiters, UInt32.self)
        self.spaceFutex = mapping.word(Offset.spaceFutex, UInt32.self)
        self.spaceWaiters = mapping.word(Offset.spaceWaiters, UInt32.self)
        self.uploadRequestWord = mapping.word(Offset.uploadRequest, UInt64.self)
        self.streamUploadSlots = mapping.word(Offset.streamUploadSlots, UInt64.self)
    }

    /// The size of the memfd that holds a ring of `capacityBytes`.
    public static func regionBytes(capacityBytes: Int) -> Int { headerBytes + capacityBytes }

    /// Sizes `fd` and formats a fresh, empty ring (all positions 0) in it.
    ///
    /// `capacityBytes` must be a power of two >= 64 KiB. Any previous content is discarded.
    /// The caller keeps ownership of `fd`.
    public static func create(fd: Int32, capacityBytes: Int) throws -> LogRing {
        precondition(capacityBytes >= capacityBytesMin && capacityBytes & (capacityBytes - 1) == 0,
                     "capacityBytes must be a power of two >= \(capacityBytesMin), got \(capacityBytes)")
        precondition(capacityBytes / 4 <= Int(UInt32.max) - 64)
        // Truncate to 0 first so that a re-format starts from zero-filled pages.
        let e = silt_shm_resize(fd, 0)
        guard e == 0 else { throw RingError.system(operation: "ftruncate", errno: e) }
        let mapping = try SharedMapping.create(fd: fd, length: regionBytes(capacityBytes: capacityBytes))
        let b = mapping.base
        b.storeBytes(of: magic, toByteOffset: Offset.magic, as: UInt64.self)
        b.storeBytes(of: version, toByteOffset: Offset.version, as: UInt32.self)
        b.storeBytes(of: UInt32(headerBytes), toByteOffset: Offset.headerBytes, as: UInt32.self)
        b.storeBytes(of: UInt64(capacityBytes), toByteOffset: Offset.capacityBytes, as: UInt64.self)
        b.storeBytes(of: UInt32(capacityBytes / 4), toByteOffset: Offset.maxPayloadBytes, as: UInt32.self)
        // Positions and futex words are already zero (fresh pages). Publish last.
        silt_atomic_store_release_u32(mapping.word(Offset.initialized, UInt32.self), 1)
        return LogRing(mapping: mapping, capacityBytes: capacityBytes)
    }

    /// Maps an existing ring (a restarted child). Validates magic, version, geometry and that
    /// the creator finished formatting it. The state (positions) is whatever the header says.
    public static func attach(fd: Int32) throws -> LogRing {
        let size = try SharedMemory.size(of: fd)
        guard size >= headerBytes + capacityBytesMin else {
            throw RingError.badGeometry("region is \(size) bytes, smaller than a ring")
        }
        let mapping = try SharedMapping(fd: fd, length: size)
        let b = mapping.base
        guard silt_atomic_load_acquire_u32(mapping.word(Offset.initialized, UInt32.self)) == 1 else {
            throw RingError.notInitialized
        }
        let m = b.load(fromByteOffset: Offset.magic, as: UInt64.self)
        guard m == magic else { throw RingError.badMagic(found: m) }
        let v = b.load(fromByteOffset: Offset.version, as: UInt32.self)
        guard v == version else { throw RingError.badVersion(found: v) }
        let hb = Int(b.load(fromByteOffset: Offset.headerBytes, as: UInt32.self))
        let cap = Int(b.load(fromByteOffset: Offset.capacityBytes, as: UInt64.self))
        let maxPayload = Int(b.load(fromByteOffset: Offset.maxPayloadBytes, as: UInt32.self))
        guard hb == headerBytes, cap >= capacityBytesMin, cap & (cap - 1) == 0,
              size == regionBytes(capacityBytes: cap), maxPayload == cap / 4 else {
            throw RingError.badGeometry("header \(hb), capacity \(cap), max payload \(maxPayload), region \(size)")
        }
        let ring = LogRing(mapping: mapping, capacityBytes: cap)
        let w = ring.writePosition
        let r0 = ring.readPosition(0), r1 = ring.readPosition(1)
        guard r0 <= w, r1 <= w, w - min(r0, r1) <= UInt64(cap), ring.reservedPosition >= w else {
            throw RingError.badGeometry("positions write \(w) read \(r0)/\(r1) reserved \(ring.reservedPosition)")
        }
        ring.cachedMinReadPosition = min(r0, r1)
        return ring
    }

    /// Starts the LSN sequence at `lsn` (a node restarting from its WAL continues where it
    /// left off): sets the write, reserved and both read positions.
    ///
    /// Only valid while the ring is empty (write == both reads) and nobody else is using it.
    public func initializePositions(to lsn: UInt64) {
        let w = writePosition
        precondition(readPosition(0) == w && readPosition(1) == w,
                     "initializePositions on a non-empty ring (write \(w), reads \(readPosition(0))/\(readPosition(1)))")
        silt_atomic_store_release_u64(readPositionWords.0, lsn)
        silt_atomic_store_release_u64(readPositionWords.1, lsn)
        silt_atomic_store_release_u64(reservedPositionWord, lsn)
        silt_atomic_store_release_u64(writePositionWord, lsn)
        cachedMinReadPosition = lsn
    }

    // MARK: counters

    /// Asks the uploader to upload everything up to `lsn` now, not at its next interval (a
    /// partition leaving this broker, a broker reopening its streams, DeleteRecords). Any
    /// process may ask; the largest request wins. The uploader polls it.
    public func requestUpload(through lsn: UInt64) {
        var current = silt_atomic_load_acquire_u64(uploadRequestWord)
        while current < lsn && silt_atomic_cas_u64(uploadRequestWord, &current, lsn) == 0 {}
    }

    /// Asks the uploader to upload what the buffer holds of `streamId` now, in an object of
    /// its own, without waiting for the rest (a partition moving away). Returns false when
    /// every slot is taken: the caller asks for a whole upload (`requestUpload`) instead.
    public func requestStreamUpload(_ streamId: UInt64) -> Bool {
        let value = streamId &+ 1
        for i in 0..<LogRing.streamUploadSlotCount where silt_atomic_load_acquire_u64(streamUploadSlots + i) == value {
            return true
        }
        for i in 0..<LogRing.streamUploadSlotCount {
            var expected: UInt64 = 0
            if silt_atomic_cas_u64(streamUploadSlots + i, &expected, value) == 1 { return true }
        }
        return false
    }

    /// The streams asked for with `requestStreamUpload` and not yet taken.
    public var requestedStreamUploads: [UInt64] {
        (0..<LogRing.streamUploadSlotCount).compactMap { i in
            let v = silt_atomic_load_acquire_u64(streamUploadSlots + i)
            return v == 0 ? nil : v &- 1
        }
    }

    /// The uploader took the request for `streamId` (its data up to now is committed).
    public func completeStreamUpload(_ streamId: UInt64) {
        for i in 0..<LogRing.streamUploadSlotCount {
            var expected = streamId &+ 1
            _ = silt_atomic_cas_u64(streamUploadSlots + i, &expected, 0)
        }
    }

    /// The largest position `requestUpload` was asked for (0: never).
    public var uploadRequestPosition: UInt64 { silt_atomic_load_acquire_u64(uploadRequestWord) }

    /// The committed write position: every frame below it is complete and visible.
    public var writePosition: UInt64 { silt_atomic_load_acquire_u64(writePositionWord) }

    /// The end of the bytes the writer may be writing right now (>= writePosition).
    public var reservedPosition: UInt64 { silt_atomic_load_acquire_u64(reservedPositionWord) }

    /// Reader `index`'s position: it has consumed everything below it.
    public func readPosition(_ index: Int) -> UInt64 {
        silt_atomic_load_acquire_u64(readPositionWord(index))
    }

    /// min(readPosition(0), readPosition(1)): space below it is free for the writer.
    public var minReadPosition: UInt64 {
        min(silt_atomic_load_acquire_u64(readPositionWords.0), silt_atomic_load_acquire_u64(readPositionWords.1))
    }

    /// Bytes not holding unread data (of either reader).
    public var freeBytes: Int { capacityBytes - usedBytes }

    /// Bytes holding data that at least one reader has not consumed.
    public var usedBytes: Int {
        let r = minReadPosition
        let w = writePosition
        return Int(w &- r)
    }

    @inline(__always)
    func readPositionWord(_ index: Int) -> UnsafeMutablePointer<UInt64> {
        precondition(index == 0 || index == 1, "reader index must be 0 or 1, got \(index)")
        return index == 0 ? readPositionWords.0 : readPositionWords.1
    }

    /// A reader handle for `index` (0 = WAL writer, 1 = uploader).
    public func reader(_ index: Int) -> LogRingReader {
        _ = readPositionWord(index)
        return LogRingReader(ring: self, index: index)
    }

    // MARK: frames

    @inline(__always)
    static func align8(_ n: Int) -> Int { (n + 7) & ~7 }

    /// CRC-32C of a frame at `frame`: header bytes 4..<40, then `payloadLength` payload bytes.
    @inline(__always)
    static func frameCRC(_ frame: UnsafeRawPointer, payloadLength: Int) -> UInt32 {
        let h = silt_crc32c(0, frame + 4, frameHeaderBytes - 4)
        if payloadLength == 0 { return h }
        return silt_crc32c(h, frame + frameHeaderBytes, payloadLength)
    }
}
