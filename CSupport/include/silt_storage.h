#pragma once
#include <stdint.h>

/// Starts writeback of the dirty pages of `fd` in [offset, offset + bytes) without waiting
/// for it and without a disk cache flush (sync_file_range SYNC_FILE_RANGE_WRITE). Spreading
/// segment writeback this way keeps the periodic fdatasync before a WAL trim short.
/// Returns 0 or an errno value.
int silt_start_writeback(int fd, int64_t offset, int64_t bytes);
