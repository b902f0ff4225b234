#pragma once
#include <stdint.h>
#include <stddef.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

// Shared memory between the processes of a node: memfd regions created by the supervisor,
// mapped MAP_SHARED by every role, futex wake-ups on words inside them, and atomics with
// explicit C11 memory orders on the counters they hold.
//
// Errors are returned as positive errno values (0 = success) unless a comment says otherwise.

// MARK: memfd and mappings

/// Flags for `silt_memfd_create`.
#define SILT_MEMFD_CLOEXEC 1u

/// `memfd_create(name, MFD_CLOEXEC if flags has SILT_MEMFD_CLOEXEC)`.
/// Returns the new fd (>= 0) or -errno. Retries EINTR.
int silt_memfd_create(const char *_Nonnull name, unsigned flags);

/// `ftruncate(fd, length)`, retrying EINTR. Returns 0 or errno.
int silt_shm_resize(int fd, uint64_t length);

/// The size of the file behind `fd` (fstat st_size), or -errno.
int64_t silt_shm_size(int fd);

/// `mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`.
/// Returns the mapping, or NULL with `*error` set to errno.
void *_Nullable silt_shm_map(int fd, size_t length, int *_Nonnull error);

/// `munmap(address, length)`. Returns 0 or errno.
int silt_shm_unmap(void *_Nonnull address, size_t length);

/// Sets (on != 0) or clears FD_CLOEXEC on `fd`. Returns 0 or errno.
/// Clear it on an fd a child must inherit across posix_spawn.
int silt_fd_set_cloexec(int fd, int on);

// MARK: futex (shared, NOT FUTEX_PRIVATE: waiters and wakers are different processes)

/// Sleeps while `*address == expected`, at most `timeout_ns` nanoseconds (< 0: no limit).
/// Returns 0 (woken, maybe spuriously), ETIMEDOUT, EAGAIN (`*address != expected` on entry)
/// or EINTR. Callers re-check their condition in every case.
int silt_futex_wait(uint32_t *_Nonnull address, uint32_t expected, int64_t timeout_ns);

/// Wakes at most `count` waiters of `address` (INT32_MAX: all). Returns the number woken or -errno.
int silt_futex_wake(uint32_t *_Nonnull address, int32_t count);

// MARK: atomics on shared memory
//
// Plain (non-_Atomic) words in a shared mapping, accessed with the compiler's C11 atomic
// builtins and the memory order in each name. Inline so that the hot paths of the rings
// pay one instruction, not a call.

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of a node, so a time taken in
/// the broker and one taken in the WAL writer subtract (the latency breakdown's stage times).
/// A vDSO call, ~20 ns, no system call.
static inline uint64_t silt_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t silt_atomic_load_relaxed_u64(const uint64_t *_Nonnull p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline uint64_t silt_atomic_load_acquire_u64(const uint64_t *_Nonnull p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void silt_atomic_store_relaxed_u64(uint64_t *_Nonnull p, uint64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline void silt_atomic_store_release_u64(uint64_t *_Nonnull p, uint64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
/// Returns the value before the add. Sequentially consistent (a full barrier).
static inline uint64_t silt_atomic_fetch_add_u64(uint64_t *_Nonnull p, uint64_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
/// Compare-and-swap (strong, acq_rel on success, acquire on failure). Returns 1 when it
/// swapped; otherwise 0 with `*expected` updated to the current value.
static inline int silt_atomic_cas_u64(uint64_t *_Nonnull p, uint64_t *_Nonnull expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ? 1 : 0;
}

static inline uint32_t silt_atomic_load_relaxed_u32(const uint32_t *_Nonnull p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline uint32_t silt_atomic_load_acquire_u32(const uint32_t *_Nonnull p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void silt_atomic_store_relaxed_u32(uint32_t *_Nonnull p, uint32_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline void silt_atomic_store_release_u32(uint32_t *_Nonnull p, uint32_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
/// Returns the value before the add. Sequentially consistent (a full barrier).
static inline uint32_t silt_atomic_fetch_add_u32(uint32_t *_Nonnull p, uint32_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
/// Returns the value before the subtraction. Sequentially consistent.
static inline uint32_t silt_atomic_fetch_sub_u32(uint32_t *_Nonnull p, uint32_t v) {
    return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST);
}
/// Compare-and-swap (strong, acq_rel on success, acquire on failure). Returns 1 when it
/// swapped; otherwise 0 with `*expected` updated to the current value.
static inline int silt_atomic_cas_u32(uint32_t *_Nonnull p, uint32_t *_Nonnull expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ? 1 : 0;
}

/// `atomic_thread_fence(memory_order_seq_cst)`: orders a publish store before the load of a
/// waiter count (and a waiter's count increment before its re-check), so no wake-up is lost.
static inline void silt_atomic_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/// `atomic_thread_fence(memory_order_acquire)`: plain reads before it happen before later loads
/// (seqlock-style "copy, then check the data was not overwritten").
static inline void silt_atomic_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
/// `atomic_thread_fence(memory_order_release)`.
static inline void silt_atomic_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }

#ifdef __cplusplus
}
#endif
