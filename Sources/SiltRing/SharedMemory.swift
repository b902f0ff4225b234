import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// Errors of the shared-memory rings. Operating errors are thrown; programmer errors
/// (bad arguments, broken invariants) are preconditions.
public enum RingError: Error, Equatable, Sendable {
    /// A system call failed: `operation` names it, `errno` is the value it set.
    case system(operation: String, errno: Int32)
    /// The region does not start with this ring's magic number (not a ring, or another kind).
    case badMagic(found: UInt64)
    /// The region was formatted by another layout version.
    case badVersion(found: UInt32)
    /// The region's recorded geometry does not match its size or the rules.
    case badGeometry(String)
    /// The region was never completely formatted (the creator died during `create`).
    case notInitialized
    /// No room within the timeout (back-pressure): the slowest reader has not freed enough.
    case full
    /// A frame payload larger than `LogRing.maxPayloadBytes` (a quarter of the capacity).
    case payloadTooLarge(bytes: Int, max: Int)
    /// A reader found a frame that fails its length or CRC32C checks at `lsn`.
    case corruptFrame(lsn: UInt64, reason: String)
}

/// memfd helpers for the supervisor, which creates the regions and hands them to children.
public enum SharedMemory {
    /// A new anonymous memory file (`memfd_create`). The caller owns the fd.
    ///
    /// With `closeOnExec` (the default) the fd is not inherited across exec; clear the flag
    /// (`setCloseOnExec(fd, false)`) or `dup2` it in the spawn file actions for a child.
    public static func createMemfd(name: String, closeOnExec: Bool = true) throws -> Int32 {
        let fd = silt_memfd_create(name, closeOnExec ? UInt32(SILT_MEMFD_CLOEXEC) : 0)
        guard fd >= 0 else { throw RingError.system(operation: "memfd_create", errno: -fd) }
        return fd
    }

    /// Sets or clears FD_CLOEXEC.
    public static func setCloseOnExec(_ fd: Int32, _ on: Bool) throws {
        let e = silt_fd_set_cloexec(fd, on ? 1 : 0)
        guard e == 0 else { throw RingError.system(operation: "fcntl(F_SETFD)", errno: e) }
    }

    /// The size in bytes of the file behind `fd`.
    public static func size(of fd: Int32) throws -> Int {
        let n = silt_shm_size(fd)
        guard n >= 0 else { throw RingError.system(operation: "fstat", errno: Int32(-n)) }
        return Int(n)
    }
}

/// One `MAP_SHARED` mapping of a whole memfd, unmapped when the last owner goes away.
/// It does not own (or close) the fd: the creator of the memfd does.
final class SharedMapping: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let length: Int

    init(fd: Int32, length: Int) throws {
        precondition(length > 0)
        var err: Int32 = 0
        guard let p = silt_shm_map(fd, length, &err) else {
            throw RingError.system(operation: "mmap", errno: err)
        }
        self.base = p
        self.length = length
    }

    /// Sizes the memfd (`ftruncate`, which zero-fills) and maps it.
    static func create(fd: Int32, length: Int) throws -> SharedMapping {
        let e = silt_shm_resize(fd, UInt64(length))
        guard e == 0 else { throw RingError.system(operation: "ftruncate", errno: e) }
        return try SharedMapping(fd: fd, length: length)
    }

    deinit {
        let e = silt_shm_unmap(base, length)
        precondition(e == 0, "munmap failed: \(e)")
    }

    /// A typed pointer to a naturally aligned word at `offset` inside the mapping.
    @inline(__always)
    func word<T>(_ offset: Int, _: T.Type) -> UnsafeMutablePointer<T> {
        assert(offset % MemoryLayout<T>.alignment == 0 && offset + MemoryLayout<T>.size <= length)
        return (base + offset).assumingMemoryBound(to: T.self)
    }
}

/// Futex-based blocking shared by both rings.
///
/// A wait point is two 32-bit words on one cache line: `word`, which the waker bumps, and
/// `waiters`, a count the waiter holds while it may sleep. The waker only pays a syscall
/// when `waiters != 0`. Ordering (no lost wake-up):
///
///     waiter:  waiters += 1; fence(seq_cst); seq = load(word); if ready() { done }; futex_wait(word, seq)
///     waker:   publish (release); fence(seq_cst); if load(waiters) != 0 { word += 1; futex_wake(word) }
///
/// Either the waker sees the waiter's count (and bumps `word`, so `futex_wait` returns at once
/// or is woken), or the waiter's re-check of `ready()` sees the publication.
enum FutexWait {
    /// Blocks until `ready()` holds or `deadline` passes (nil: no limit). Returns `ready()`.
    static func until(word: UnsafeMutablePointer<UInt32>, waiters: UnsafeMutablePointer<UInt32>,
                      deadline: ContinuousClock.Instant?, _ ready: () -> Bool) -> Bool {
        if ready() { return true }
        while true {
            _ = silt_atomic_fetch_add_u32(waiters, 1)
            silt_atomic_fence_seq_cst()
            let seq = silt_atomic_load_acquire_u32(word)
            if ready() {
                _ = silt_atomic_fetch_sub_u32(waiters, 1)
                return true
            }
            var timeoutNs: Int64 = -1
            if let deadline {
                let remaining = deadline - ContinuousClock.now
                if remaining <= .zero {
                    _ = silt_atomic_fetch_sub_u32(waiters, 1)
                    return false
                }
                timeoutNs = nanoseconds(remaining)
            }
            let r = silt_futex_wait(word, seq, timeoutNs)
            _ = silt_atomic_fetch_sub_u32(waiters, 1)
            precondition(r == 0 || r == ETIMEDOUT || r == EAGAIN || r == EINTR, "futex_wait: \(r)")
            if ready() { return true }
        }
    }

    /// Wakes every sleeper of `word` if there may be one. Call after the release store that
    /// made their condition true.
    @inline(__always)
    static func wake(word: UnsafeMutablePointer<UInt32>, waiters: UnsafeMutablePointer<UInt32>) {
        silt_atomic_fence_seq_cst()
        if silt_atomic_load_relaxed_u32(waiters) != 0 {
            _ = silt_atomic_fetch_add_u32(word, 1)
            let r = silt_futex_wake(word, Int32.max)
            precondition(r >= 0, "futex_wake: \(r)")
        }
    }

    static func deadline(after timeout: Duration?) -> ContinuousClock.Instant? {
        timeout.map { ContinuousClock.now + $0 }
    }

    static func nanoseconds(_ d: Duration) -> Int64 {
        let c = d.components
        if c.seconds >= Int64.max / 1_000_000_000 { return Int64.max }
        return max(0, c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
    }
}
