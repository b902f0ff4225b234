import CSupport
#if canImport(Glibc)
import Glibc
#endif

/// A heap buffer aligned for O_DIRECT (4 KiB), zero-filled at allocation. Owned: freed on
/// deinit. Its pointer escapes into io_uring submissions; the WAL keeps the buffer alive (in
/// its in-flight slot) until the completion for that submission has been reaped.
final class AlignedBuffer {
    let pointer: UnsafeMutableRawPointer
    let count: Int

    init(count: Int, alignment: Int = Int(WALLayout.blockBytes)) {
        precondition(count > 0 && count % alignment == 0)
        guard let p = silt_aligned_alloc(alignment, count) else {
            preconditionFailure("posix_memalign(\(alignment), \(count)) failed: out of memory")
        }
        pointer = p
        self.count = count
    }

    deinit { silt_aligned_free(pointer) }

    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: count) }
}

/// A thin owner of a `silt_uring` (io_uring instance). Single-threaded, like the WAL.
final class IORing {
    private let ring: OpaquePointer
    let path: String

    /// The kernel serves IORING_OP_FUTEX_WAIT (Linux 6.7+): `armFutexWait` may be used.
    let supportsFutexWait: Bool
    /// A futex wait is submitted and its completion not yet reaped.
    var futexWaitArmed = false
    /// The user data of the futex wait's completion (write completions carry sequence << 1 | 0/1).
    static let futexWaitTag = UInt64.max

    init(queueDepth: UInt32, path: String) throws {
        var error: Int32 = 0
        guard let r = silt_uring_create(queueDepth, &error) else {
            throw WALError.syscall(operation: "io_uring_queue_init", path: path, errno: Errno(-error))
        }
        ring = r
        self.path = path
        supportsFutexWait = silt_uring_supports_futex_wait(r) != 0
    }

    /// Submits a wait on the shared futex `word` while it holds `expected`; its completion
    /// (tagged `futexWaitTag`) ends a blocking `nextCompletion`. One at a time.
    func armFutexWait(word: UnsafeMutablePointer<UInt32>, expected: UInt32) throws {
        precondition(supportsFutexWait && !futexWaitArmed)
        silt_uring_prep_futex_wait(unsafeGetSQE(), word, expected, IORing.futexWaitTag)
        try submit()
        futexWaitArmed = true
    }

    deinit { silt_uring_destroy(ring) }

    /// A submission entry; the queue depth is sized so this never runs out while the in-flight
    /// bound holds, so running out is a broken invariant.
    func unsafeGetSQE() -> OpaquePointer {
        guard let sqe = silt_uring_get_sqe(ring) else {
            preconditionFailure("io_uring submission queue full: in-flight bound broken")
        }
        return sqe
    }

    func submit() throws {
        try retryingNegErrno("io_uring_submit", path: path) { silt_uring_submit(ring) }
    }

    struct Completion { var userData: UInt64; var result: Int32 }

    /// The next completion, consumed. `wait` blocks until one arrives; without it returns nil
    /// when none is ready.
    func nextCompletion(wait: Bool) throws -> Completion? {
        var userData: UInt64 = 0
        var result: Int32 = 0
        if wait {
            try retryingNegErrno("io_uring_wait_cqe", path: path) {
                silt_uring_wait_cqe(ring, &userData, &result)
            }
        } else {
            let rc = silt_uring_peek_cqe(ring, &userData, &result)
            if rc == -EAGAIN { return nil }
            if rc < 0 { throw WALError.syscall(operation: "io_uring_peek_cqe", path: path, errno: Errno(-rc)) }
        }
        silt_uring_cqe_seen(ring)
        return Completion(userData: userData, result: result)
    }
}
