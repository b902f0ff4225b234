// memfd, mmap and futex wrappers for the shared-memory rings (see silt_shm.h).
#define _GNU_SOURCE
#include "include/silt_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int silt_memfd_create(const char *_Nonnull name, unsigned flags) {
    unsigned mfd = (flags & SILT_MEMFD_CLOEXEC) ? MFD_CLOEXEC : 0;
    for (;;) {
        int fd = memfd_create(name, mfd);
        if (fd >= 0) return fd;
        if (errno != EINTR) return -errno;
    }
}

int silt_shm_resize(int fd, uint64_t length) {
    for (;;) {
        if (ftruncate(fd, (off_t)length) == 0) return 0;
        if (errno != EINTR) return errno;
    }
}

int64_t silt_shm_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -(int64_t)errno;
    return (int64_t)st.st_size;
}

void *_Nullable silt_shm_map(int fd, size_t length, int *_Nonnull error) {
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *error = errno;
        return NULL;
    }
    *error = 0;
    return p;
}

int silt_shm_unmap(void *_Nonnull address, size_t length) {
    return munmap(address, length) == 0 ? 0 : errno;
}

int silt_fd_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return errno;
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, flags) == 0 ? 0 : errno;
}

int silt_futex_wait(uint32_t *_Nonnull address, uint32_t expected, int64_t timeout_ns) {
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    // FUTEX_WAIT (shared): the key is the page of the memfd, so waiters in other processes match.
    long r = syscall(SYS_futex, address, FUTEX_WAIT, expected, tsp, NULL, 0);
    if (r == 0) return 0;
    return errno;
}

int silt_futex_wake(uint32_t *_Nonnull address, int32_t count) {
    long r = syscall(SYS_futex, address, FUTEX_WAKE, count, NULL, NULL, 0);
    if (r < 0) return -errno;
    return (int)r;
}
