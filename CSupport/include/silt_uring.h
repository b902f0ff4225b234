#pragma once
#include <stdint.h>
#include <stddef.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

// Typed wrappers around liburing for the WAL (SiltWAL).
//
// liburing's API is static inline functions and macros, which Swift cannot always call, so
// each operation the WAL needs is a real C function here. Conventions:
//   - every function that can fail returns 0 (or a count) on success and -errno on failure,
//     exactly like liburing; nothing reads the global errno unless documented;
//   - the ring and its submission entries are opaque (`silt_uring`, `silt_uring_sqe`), so the
//     Swift side never sees liburing's structs or inline functions.

/// An io_uring instance (wraps `struct io_uring`). Created by `silt_uring_create`.
typedef struct silt_uring silt_uring;
/// A submission queue entry owned by a `silt_uring` until the next submit.
typedef struct silt_uring_sqe silt_uring_sqe;

/// Creates a ring with `queue_depth` submission entries (the completion queue is twice that).
/// Returns NULL and stores -errno in `*error` on failure (e.g. -ENOMEM, -EPERM when io_uring is
/// disabled by seccomp or sysctl).
silt_uring *_Nullable silt_uring_create(uint32_t queue_depth, int32_t *_Nonnull error);

/// Tears the ring down (io_uring_queue_exit) and frees it. In-flight requests keep running in
/// the kernel, so callers drain completions first.
void silt_uring_destroy(silt_uring *_Nonnull ring);

/// The next free submission entry, or NULL when the submission queue is full (submit first).
silt_uring_sqe *_Nullable silt_uring_get_sqe(silt_uring *_Nonnull ring);

/// pwrite(fd, buf, nbytes, offset). `buf` must stay valid until the completion arrives.
void silt_uring_prep_write(silt_uring_sqe *_Nonnull sqe, int32_t fd, const void *_Nonnull buf,
                           uint32_t nbytes, uint64_t offset, uint64_t user_data);

/// pwritev(fd, iov, iov_count, offset). `iov` and its buffers must stay valid until completion.
void silt_uring_prep_writev(silt_uring_sqe *_Nonnull sqe, int32_t fd,
                            const struct iovec *_Nonnull iov, uint32_t iov_count,
                            uint64_t offset, uint64_t user_data);

/// pread(fd, buf, nbytes, offset). `buf` must stay valid until the completion arrives.
void silt_uring_prep_read(silt_uring_sqe *_Nonnull sqe, int32_t fd, void *_Nonnull buf,
                          uint32_t nbytes, uint64_t offset, uint64_t user_data);

/// fdatasync(fd) (IORING_FSYNC_DATASYNC).
void silt_uring_prep_fdatasync(silt_uring_sqe *_Nonnull sqe, int32_t fd, uint64_t user_data);

/// fsync(fd) (data and metadata).
void silt_uring_prep_fsync(silt_uring_sqe *_Nonnull sqe, int32_t fd, uint64_t user_data);

/// A no-op request; completes with res == 0.
void silt_uring_prep_nop(silt_uring_sqe *_Nonnull sqe, uint64_t user_data);

/// A wait on the shared (not private) 32-bit futex word at `word` while it holds `expected`
/// (IORING_OP_FUTEX_WAIT, Linux 6.7+; see `silt_uring_supports_futex_wait`). Completes with 0
/// when woken, -EAGAIN when the word no longer held `expected`, -ECANCELED at teardown. Lets
/// one `silt_uring_wait_cqe` wait for a write's completion or a futex wake, whichever is first.
void silt_uring_prep_futex_wait(silt_uring_sqe *_Nonnull sqe, uint32_t *_Nonnull word, uint32_t expected,
                                uint64_t user_data);

/// Whether the kernel serves IORING_OP_FUTEX_WAIT on this ring (probed once by the caller).
int32_t silt_uring_supports_futex_wait(silt_uring *_Nonnull ring);

/// Sets IOSQE_IO_LINK: the next entry submitted starts only after this one completes, and is
/// cancelled (-ECANCELED) if this one fails or is short.
void silt_uring_sqe_set_link(silt_uring_sqe *_Nonnull sqe);

/// Sets RWF_DSYNC on a read/write entry: the write completes only once its data (and the
/// metadata needed to read it back) is durable, like a write followed by fdatasync.
void silt_uring_sqe_set_dsync(silt_uring_sqe *_Nonnull sqe);

/// Submits the queued entries. Returns the number submitted or -errno.
int32_t silt_uring_submit(silt_uring *_Nonnull ring);

/// Submits the queued entries and waits for at least `wait_nr` completions.
/// Returns the number submitted or -errno.
int32_t silt_uring_submit_and_wait(silt_uring *_Nonnull ring, uint32_t wait_nr);

/// Waits for a completion and reports it without consuming it (call `silt_uring_cqe_seen`).
/// Returns 0, or -errno (-EINTR: retry).
int32_t silt_uring_wait_cqe(silt_uring *_Nonnull ring, uint64_t *_Nonnull user_data,
                            int32_t *_Nonnull res);

/// Like `silt_uring_wait_cqe` but gives up after `timeout_ns` (returns -ETIME).
int32_t silt_uring_wait_cqe_timeout(silt_uring *_Nonnull ring, uint64_t timeout_ns,
                                    uint64_t *_Nonnull user_data, int32_t *_Nonnull res);

/// Reports a completion if one is ready, without waiting or consuming it.
/// Returns 0 when one was reported, -EAGAIN when none is ready.
int32_t silt_uring_peek_cqe(silt_uring *_Nonnull ring, uint64_t *_Nonnull user_data,
                            int32_t *_Nonnull res);

/// Consumes the completion last reported by wait/peek (advances the completion queue by one).
void silt_uring_cqe_seen(silt_uring *_Nonnull ring);

/// Opens `path` read-write with O_DIRECT | O_CLOEXEC (plus O_CREAT, mode 0644, when `create`).
/// Returns the descriptor or -errno. -EINVAL usually means the filesystem refuses O_DIRECT
/// (e.g. tmpfs). Retries EINTR.
int32_t silt_open_direct(const char *_Nonnull path, int32_t create);

/// fstat(fd): `*is_block_device` = S_ISBLK, `*is_regular_file` = S_ISREG, `*size_bytes` = the
/// size (BLKGETSIZE64 for block devices, st_size for files). Returns 0 or -errno.
int32_t silt_fd_describe(int32_t fd, int32_t *_Nonnull is_block_device,
                         int32_t *_Nonnull is_regular_file, uint64_t *_Nonnull size_bytes);

/// ioctl(fd, BLKGETSIZE64): the size in bytes of a block device. Returns 0 or -errno.
int32_t silt_block_device_size(int32_t fd, uint64_t *_Nonnull size_bytes);

/// ioctl(fd, BLKSSZGET): the logical sector size of a block device. Returns 0 or -errno.
int32_t silt_block_device_sector_size(int32_t fd, uint32_t *_Nonnull sector_bytes);

/// fallocate(fd, 0, 0, length): reserves space for a regular file. Returns 0 or -errno
/// (-EOPNOTSUPP when the filesystem cannot; callers fall back to ftruncate). Retries EINTR.
int32_t silt_fallocate(int32_t fd, uint64_t length);

/// lseek(fd, offset, SEEK_HOLE) when `hole` is non-zero, else SEEK_DATA: the first hole (or
/// data) at or after `offset`; the end of the file counts as a hole, and ext4 and XFS report an
/// unwritten (fallocated) extent as a hole. Returns the offset or -errno (-ENXIO: no data at or
/// after `offset`; -EINVAL: the filesystem cannot tell).
int64_t silt_seek_hole_data(int32_t fd, uint64_t offset, int32_t hole);

/// posix_memalign: `size` bytes aligned to `alignment` (a power of two, multiple of
/// sizeof(void*)), zero-filled. NULL on failure. Free with `silt_aligned_free`.
void *_Nullable silt_aligned_alloc(size_t alignment, size_t size);

/// Frees memory from `silt_aligned_alloc`.
void silt_aligned_free(void *_Nullable pointer);

#ifdef __cplusplus
}
#endif
