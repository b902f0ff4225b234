// io_uring wrappers for the WAL. See include/silt_uring.h for the contracts.
#define _GNU_SOURCE
#include "silt_uring.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct silt_uring {
    struct io_uring ring;
    struct io_uring_cqe *_Nullable last_cqe;  // reported by wait/peek, consumed by cqe_seen
};

// The opaque SQE type is liburing's SQE; the cast is the whole wrapper.
static inline struct io_uring_sqe *sqe_of(silt_uring_sqe *s) { return (struct io_uring_sqe *)s; }

silt_uring *silt_uring_create(uint32_t queue_depth, int32_t *error) {
    silt_uring *r = calloc(1, sizeof(*r));
    if (r == NULL) { *error = -ENOMEM; return NULL; }
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = queue_depth * 2;
    int rc = io_uring_queue_init_params(queue_depth, &r->ring, &params);
    if (rc < 0) { free(r); *error = rc; return NULL; }
    *error = 0;
    return r;
}

void silt_uring_destroy(silt_uring *ring) {
    io_uring_queue_exit(&ring->ring);
    free(ring);
}

silt_uring_sqe *silt_uring_get_sqe(silt_uring *ring) {
    return (silt_uring_sqe *)io_uring_get_sqe(&ring->ring);
}

void silt_uring_prep_write(silt_uring_sqe *sqe, int32_t fd, const void *buf, uint32_t nbytes,
                           uint64_t offset, uint64_t user_data) {
    io_uring_prep_write(sqe_of(sqe), fd, buf, nbytes, offset);
    io_uring_sqe_set_data64(sqe_of(sqe), user_data);
}

void silt_uring_prep_writev(silt_uring_sqe *sqe, int32_t fd, const struct iovec *iov,
                            uint32_t iov_count, uint64_t offset, uint64_t user_data) {
    io_uring_prep_writev(sqe_of(sqe), fd, iov, iov_count, offset);
    io_uring_sqe_set_data64(sqe_of(sqe), user_data);
}

void silt_uring_prep_read(silt_uring_sqe *sqe, int32_t fd, void *buf, uint32_t nbytes,
                          uint64_t offset, uint64_t user_data) {
    io_uring_prep_read(sqe_of(sqe), fd, buf, nbytes, offset);
    io_uring_sqe_set_data64(sqe_of(sqe), user_data);
}

void silt_uring_prep_fdatasync(silt_uring_sqe *sqe, int32_t fd, uint64_t user_data) {
    io_uring_prep_fsync(sqe_of(sqe), fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe_of(sqe), user_data);
}

// IORING_OP_FUTEX_WAIT and FUTEX2_SIZE_U32 from Linux 6.7's uapi; liburing 2.3's headers
// predate them, so the entry is filled the way liburing 2.5's io_uring_prep_futex_wait does.
#define SILT_IORING_OP_FUTEX_WAIT 51
#define SILT_FUTEX2_SIZE_U32 0x02
#define SILT_FUTEX_BITSET_MATCH_ANY 0xffffffffu

void silt_uring_prep_futex_wait(silt_uring_sqe *sqe, uint32_t *word, uint32_t expected, uint64_t user_data) {
    struct io_uring_sqe *e = sqe_of(sqe);
    // fd = futex2 flags (a shared u32 word), addr = the word, off (addr2) = the expected value.
    io_uring_prep_rw(SILT_IORING_OP_FUTEX_WAIT, e, SILT_FUTEX2_SIZE_U32, word, 0, expected);
    e->rw_flags = 0;
    e->addr3 = SILT_FUTEX_BITSET_MATCH_ANY;
    io_uring_sqe_set_data64(e, user_data);
}

int32_t silt_uring_supports_futex_wait(silt_uring *ring) {
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring->ring);
    if (probe == NULL) return 0;
    int supported = io_uring_opcode_supported(probe, SILT_IORING_OP_FUTEX_WAIT);
    io_uring_free_probe(probe);
    return supported ? 1 : 0;
}

void silt_uring_prep_fsync(silt_uring_sqe *sqe, int32_t fd, uint64_t user_data) {
    io_uring_prep_fsync(sqe_of(sqe), fd, 0);
    io_uring_sqe_set_data64(sqe_of(sqe), user_data);
}

void silt_uring_prep_nop(silt_uring_sqe *sqe, uint64_t user_data) {
    io_uring_prep_nop(sqe_of(sqe));
    io_uring_sqe_set_data64(sqe_of(sqe), user_data);
}

void silt_uring_sqe_set_link(silt_uring_sqe *sqe) {
    sqe_of(sqe)->flags |= IOSQE_IO_LINK;
}

void silt_uring_sqe_set_dsync(silt_uring_sqe *sqe) {
    sqe_of(sqe)->rw_flags |= RWF_DSYNC;
}

int32_t silt_uring_submit(silt_uring *ring) {
    return io_uring_submit(&ring->ring);
}

int32_t silt_uring_submit_and_wait(silt_uring *ring, uint32_t wait_nr) {
    return io_uring_submit_and_wait(&ring->ring, wait_nr);
}

static int32_t report(silt_uring *ring, struct io_uring_cqe *cqe, uint64_t *user_data,
                      int32_t *res) {
    ring->last_cqe = cqe;
    *user_data = io_uring_cqe_get_data64(cqe);
    *res = cqe->res;
    return 0;
}

int32_t silt_uring_wait_cqe(silt_uring *ring, uint64_t *user_data, int32_t *res) {
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_wait_cqe(&ring->ring, &cqe);
    if (rc < 0) return rc;
    return report(ring, cqe, user_data, res);
}

int32_t silt_uring_wait_cqe_timeout(silt_uring *ring, uint64_t timeout_ns, uint64_t *user_data,
                                    int32_t *res) {
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts = {
        .tv_sec = (long long)(timeout_ns / 1000000000ull),
        .tv_nsec = (long long)(timeout_ns % 1000000000ull),
    };
    int rc = io_uring_wait_cqe_timeout(&ring->ring, &cqe, &ts);
    if (rc < 0) return rc;
    return report(ring, cqe, user_data, res);
}

int32_t silt_uring_peek_cqe(silt_uring *ring, uint64_t *user_data, int32_t *res) {
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_peek_cqe(&ring->ring, &cqe);
    if (rc < 0) return rc;
    if (cqe == NULL) return -EAGAIN;
    return report(ring, cqe, user_data, res);
}

void silt_uring_cqe_seen(silt_uring *ring) {
    if (ring->last_cqe != NULL) {
        io_uring_cqe_seen(&ring->ring, ring->last_cqe);
        ring->last_cqe = NULL;
    }
}

int32_t silt_open_direct(const char *path, int32_t create) {
    int flags = O_RDWR | O_DIRECT | O_CLOEXEC | (create ? O_CREAT : 0);
    for (;;) {
        int fd = open(path, flags, 0644);
        if (fd >= 0) return fd;
        if (errno != EINTR) return -errno;
    }
}

int32_t silt_block_device_size(int32_t fd, uint64_t *size_bytes) {
    uint64_t size = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) return -errno;
    *size_bytes = size;
    return 0;
}

int32_t silt_block_device_sector_size(int32_t fd, uint32_t *sector_bytes) {
    int size = 0;
    if (ioctl(fd, BLKSSZGET, &size) != 0) return -errno;
    *sector_bytes = (uint32_t)size;
    return 0;
}

int32_t silt_fd_describe(int32_t fd, int32_t *is_block_device, int32_t *is_regular_file,
                         uint64_t *size_bytes) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    *is_block_device = S_ISBLK(st.st_mode) ? 1 : 0;
    *is_regular_file = S_ISREG(st.st_mode) ? 1 : 0;
    if (S_ISBLK(st.st_mode)) return silt_block_device_size(fd, size_bytes);
    *size_bytes = (uint64_t)st.st_size;
    return 0;
}

int32_t silt_fallocate(int32_t fd, uint64_t length) {
    for (;;) {
        if (fallocate(fd, 0, 0, (off_t)length) == 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

int64_t silt_seek_hole_data(int32_t fd, uint64_t offset, int32_t hole) {
    off_t r = lseek(fd, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
    return r < 0 ? -(int64_t)errno : (int64_t)r;
}

void *silt_aligned_alloc(size_t alignment, size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, alignment, size) != 0) return NULL;
    memset(p, 0, size);
    return p;
}

void silt_aligned_free(void *pointer) {
    free(pointer);
}
