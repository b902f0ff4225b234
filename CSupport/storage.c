#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include "silt_storage.h"

int silt_start_writeback(int fd, int64_t offset, int64_t bytes) {
    for (;;) {
        if (sync_file_range(fd, (off64_t)offset, (off64_t)bytes, SYNC_FILE_RANGE_WRITE) == 0) return 0;
        if (errno != EINTR) return errno;
    }
}
