import CSupport
import Foundation
import SiltRing

/// The region the WAL writer shares with the broker (a memfd created by the supervisor):
/// the WAL's recovery hand-off and its durable position.
///
/// ```
///  +0    magic u64 "SILTWALS"
///  +8    ready u32 (futex word: 0 while the WAL recovers, then generation >= 1) │ pad u32
///  +16   recoveredStartLSN u64 │ +24 recoveredEndLSN u64 │ +32 recoveredBytes u64
///  +64   durableLSN u64        (release-stored by the WAL after each completed write)
///  +72   usedBytes u64 │ +80 capacityBytes u64   (the WAL's fill level, for early trims)
///  +4096 recovered frames: WALFrameCodec records, recoveredBytes long
/// ```
/// On every start the WAL writer recovers its device, writes the valid tail here, stores
/// the LSN range and bumps `ready`. A broker that (re)starts waits for `ready`, replays the
/// frames its partition logs lack, and from then on follows `durableLSN`.
public final class WALState: @unchecked Sendable {
    public static let headerBytes = 4096
    static let magic: UInt64 = 0x5357_4C41_5754_4C49   // "ILTWALWS" little-endian; any fixed value

    let base: UnsafeMutableRawPointer
    let length: Int

    /// Sizes the region for `tailBytesMax` bytes of recovered frames and maps it.
    public static func create(fd: Int32, tailBytesMax: Int) throws -> WALState {
        let length = headerBytes + tailBytesMax
        let e = silt_shm_resize(fd, UInt64(length))
        guard e == 0 else { throw RingError.system(operation: "ftruncate", errno: e) }
        let state = try WALState(fd: fd, length: length)
        state.word64(0).pointee = WALState.magic
        return state
    }

    public static func attach(fd: Int32) throws -> WALState {
        let state = try WALState(fd: fd, length: try SharedMemory.size(of: fd))
        guard state.word64(0).pointee == WALState.magic else { throw RingError.badMagic(found: state.word64(0).pointee) }
        return state
    }

    private init(fd: Int32, length: Int) throws {
        var err: Int32 = 0
        guard let p = silt_shm_map(fd, length, &err) else { throw RingError.system(operation: "mmap", errno: err) }
        base = p
        self.length = length
    }

    deinit { _ = silt_shm_unmap(base, length) }

    private func word64(_ offset: Int) -> UnsafeMutablePointer<UInt64> {
        (base + offset).assumingMemoryBound(to: UInt64.self)
    }
    private var readyWord: UnsafeMutablePointer<UInt32> { (base + 8).assumingMemoryBound(to: UInt32.self) }

    public var tailBytesMax: Int { length - WALState.headerBytes }
    /// 0 until the WAL writer has published its recovery; then the number of publications.
    public var readyGeneration: UInt32 { silt_atomic_load_acquire_u32(readyWord) }
    public var recoveredStartLSN: UInt64 { silt_atomic_load_acquire_u64(word64(16)) }
    public var recoveredEndLSN: UInt64 { silt_atomic_load_acquire_u64(word64(24)) }
    public var durableLSN: UInt64 { silt_atomic_load_acquire_u64(word64(64)) }

    /// The recovered frames (valid after `readyGeneration` > 0, until the next publication).
    public var recoveredFrames: UnsafeRawBufferPointer {
        let bytes = Int(silt_atomic_load_acquire_u64(word64(32)))
        return UnsafeRawBufferPointer(start: base + WALState.headerBytes, count: bytes)
    }

    /// WAL side: publishes a recovery (frames already encoded with `WALFrameCodec`).
    public func publishRecovery(startLSN: UInt64, endLSN: UInt64, frames: [UInt8]) {
        precondition(frames.count <= tailBytesMax, "recovered WAL tail larger than the hand-off region")
        frames.withUnsafeBytes { src in
            if src.count > 0 { (base + WALState.headerBytes).copyMemory(from: src.baseAddress!, byteCount: src.count) }
        }
        silt_atomic_store_release_u64(word64(16), startLSN)
        silt_atomic_store_release_u64(word64(24), endLSN)
        silt_atomic_store_release_u64(word64(32), UInt64(frames.count))
        silt_atomic_store_release_u64(word64(64), endLSN)
        _ = silt_atomic_fetch_add_u32(readyWord, 1)
        _ = silt_futex_wake(readyWord, Int32.max)
    }

    /// WAL side: everything below `lsn` is on the device.
    public func storeDurable(_ lsn: UInt64) { silt_atomic_store_release_u64(word64(64), lsn) }

    /// WAL side: how full the WAL is.
    public func storeUsage(usedBytes: UInt64, capacityBytes: UInt64) {
        silt_atomic_store_release_u64(word64(72), usedBytes)
        silt_atomic_store_release_u64(word64(80), capacityBytes)
    }
    public var usedBytes: UInt64 { silt_atomic_load_acquire_u64(word64(72)) }
    public var capacityBytes: UInt64 { silt_atomic_load_acquire_u64(word64(80)) }

    /// Broker side: waits (futex, no spinning) until a recovery is published.
    public func waitReady(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let g = readyGeneration
            if g > 0 { return true }
            let left = deadline - ContinuousClock.now
            if left <= .zero { return false }
            let ns = left.components.seconds * 1_000_000_000 + left.components.attoseconds / 1_000_000_000
            _ = silt_futex_wait(readyWord, 0, min(ns, 100_000_000))
        }
    }
}

/// How frames travel through the WAL: each ring frame becomes
/// `streamId u64 | baseOffset i64 | count u32 | payloadLength u32 | streamEpoch i64 | payload`
/// (little-endian), concatenated into one WAL record per group commit. The WAL record's CRC
/// covers it all. The stream epoch is the one the broker appended in: a node that reads the
/// WAL back (its own after a restart, or a dead node's in a takeover) commits each frame in
/// its epoch, so frames a newer epoch superseded are refused, not committed.
public enum WALFrameCodec {
    public static let headerBytes = 32

    public struct Frame {
        public var streamId: UInt64
        public var streamEpoch: Int64
        public var baseOffset: Int64
        public var count: UInt32
        public var payload: UnsafeRawBufferPointer
    }

    public static func encodeHeader(streamId: UInt64, streamEpoch: Int64, baseOffset: Int64, count: UInt32,
                                    payloadLength: Int, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= headerBytes)
        out.storeBytes(of: streamId.littleEndian, toByteOffset: 0, as: UInt64.self)
        out.storeBytes(of: baseOffset.littleEndian, toByteOffset: 8, as: Int64.self)
        out.storeBytes(of: count.littleEndian, toByteOffset: 16, as: UInt32.self)
        out.storeBytes(of: UInt32(payloadLength).littleEndian, toByteOffset: 20, as: UInt32.self)
        out.storeBytes(of: streamEpoch.littleEndian, toByteOffset: 24, as: Int64.self)
    }

    public struct DecodeError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Splits concatenated frames; throws on a frame that does not fit (never trusted blindly).
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> [Frame] {
        var frames: [Frame] = []
        var i = 0
        while i < bytes.count {
            guard bytes.count - i >= headerBytes else { throw DecodeError(description: "truncated frame header at \(i)") }
            let streamId = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let baseOffset = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 8, as: Int64.self))
            let count = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 16, as: UInt32.self))
            let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 20, as: UInt32.self)))
            let epoch = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 24, as: Int64.self))
            guard bytes.count - i - headerBytes >= length else {
                throw DecodeError(description: "frame at \(i) claims \(length) bytes, \(bytes.count - i - headerBytes) left")
            }
            guard epoch >= 0 else { throw DecodeError(description: "frame at \(i) has stream epoch \(epoch)") }
            frames.append(Frame(streamId: streamId, streamEpoch: epoch, baseOffset: baseOffset, count: count,
                                payload: UnsafeRawBufferPointer(rebasing: bytes[(i + headerBytes)..<(i + headerBytes + length)])))
            i += headerBytes + length
        }
        return frames
    }
}
