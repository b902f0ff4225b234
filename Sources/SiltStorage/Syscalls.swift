#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Thin wrappers: every call retries EINTR, maps errno to `StorageError.io`, and
/// treats EBADF/EFAULT (programmer errors) as precondition failures.
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

    static func fileSize(_ fd: Int32, _ path: String) throws(StorageError) -> Int {
        var st = stat()
        _ = try check(Int(fstat(fd, &st)), "fstat", path)
        return Int(st.st_size)
    }

    static func truncate(_ fd: Int32, _ path: String, toBytes size: Int) throws(StorageError) {
        while true {
            if ftruncate(fd, off_t(size)) == 0 { return }
            if errno == EINTR { continue }
            _ = try check(-1, "ftruncate", path)
        }
    }

    static func datasync(_ fd: Int32, _ path: String, faults: StorageConfig) throws(StorageError) {
        if let injected = faults.faultInjector?(.fsync, path) {
            throw .io(errno: injected, operation: "fdatasync", path: path)
        }
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
    static func syncDirectory(_ path: String, faults: StorageConfig) throws(StorageError) {
        if let injected = faults.faultInjector?(.directoryFsync, path) {
            throw .io(errno: injected, operation: "fsync(dir)", path: path)
        }
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
    static func pwriteAll(_ fd: Int32, _ path: String, _ buffer: ByteBuffer, at position: Int,
                          faults: StorageConfig) throws(StorageError) {
        var injected: Int32? = faults.faultInjector?(.write, path)
        var result: Result<Void, StorageError> = .success(())
        buffer.withUnsafeReadableBytes { bytes in
            var done = 0
            var total = bytes.count
            if injected != nil { total /= 2 }
            while done < total {
                let n = pwrite(fd, bytes.baseAddress! + done, total - done, off_t(position + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    result = .failure(.io(errno: errno, operation: "pwrite", path: path))
                    return
                }
                precondition(n > 0, "pwrite returned 0")
                done += n
            }
            if let code = injected {
                injected = nil
                result = .failure(.io(errno: code, operation: "pwrite", path: path))
            }
        }
        try result.get()
    }

    /// Reads up to `count` bytes at `position` into a new buffer; fewer only at end of file.
    static func preadBytes(_ fd: Int32, _ path: String, count: Int, at position: Int) throws(StorageError) -> ByteBuffer {
        precondition(count >= 0 && position >= 0, "bad pread range")
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var failure: Int32? = nil
        while buffer.readableBytes < count {
            let wanted = count - buffer.readableBytes
            var eof = false
            let already = buffer.readableBytes
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { ptr in
                while true {
                    let n = systemPread(fd, ptr.baseAddress!, wanted, off_t(position + already))
                    if n < 0 {
                        if errno == EINTR { continue }
                        failure = errno
                        return 0
                    }
                    if n == 0 { eof = true }
                    return n
                }
            }
            if let code = failure {
                precondition(code != EBADF && code != EFAULT, "pread \(path): programmer error, errno \(code)")
                throw .io(errno: code, operation: "pread", path: path)
            }
            if eof { break }
        }
        return buffer
    }
}

// Module-level aliases so the `Sys` members can reuse the libc names.
@inline(__always) private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
@inline(__always) private func systemPread(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ n: Int, _ off: off_t) -> Int { pread(fd, buf, n, off) }
