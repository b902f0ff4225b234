#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Thin wrappers for the producer-state snapshot files: every call retries EINTR, maps errno
/// to `StorageError.io`, and treats EBADF/EFAULT (programmer errors) as precondition failures.
enum Sys {
    static func check(_ result: Int, _ operation: String, _ path: String) throws(StorageError) -> Int {
        if result >= 0 { return result }
        let code = errno
        precondition(code != EBADF && code != EFAULT, "\(operation) \(path): programmer error, errno \(code)")
        throw .io(errno: code, operation: operation, path: path)
    }

    static func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws(StorageError) -> Int32 {
        while true {
            let fd = systemOpen(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw .io(errno: errno, operation: "open", path: path)
        }
    }

    static func datasync(_ fd: Int32, _ path: String) throws(StorageError) {
        while true {
            #if os(Linux)
            let rc = fdatasync(fd)
            #else
            let rc = fsync(fd)
            #endif
            if rc == 0 { return }
            if errno == EINTR { continue }
            _ = try check(-1, "fdatasync", path)
        }
    }

    /// fsync of a directory, so that file creations and deletions in it are durable.
    static func syncDirectory(_ path: String) throws(StorageError) {
        let fd = try openFile(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        while true {
            if fsync(fd) == 0 { return }
            if errno == EINTR { continue }
            // Some file systems refuse fsync on directories; nothing more can be done there.
            if errno == EINVAL { return }
            _ = try check(-1, "fsync(dir)", path)
        }
    }

    /// Writes all readable bytes of `buffer` at `position`. On error some prefix may have been written.
    static func pwriteAll(_ fd: Int32, _ path: String, _ buffer: ByteBuffer, at position: Int) throws(StorageError) {
        var result: Result<Void, StorageError> = .success(())
        buffer.withUnsafeReadableBytes { bytes in
            var done = 0
            while done < bytes.count {
                let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(position + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    result = .failure(.io(errno: errno, operation: "pwrite", path: path))
                    return
                }
                precondition(n > 0, "pwrite returned 0")
                done += n
            }
        }
        try result.get()
    }
}

// Module-level alias so the `Sys` member can reuse the libc name.
@inline(__always) private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
