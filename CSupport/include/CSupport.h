#pragma once
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), exactly as Kafka's record batch v2 uses it.
///
/// `crc` is the CRC of the bytes before `data` (0 to start); the function applies the initial
/// inversion and the final xor itself, so calls chain: crc(crc(0, a), b) == crc(0, a ++ b).
/// `silt_crc32c(0, "123456789", 9) == 0xE3069283`.
/// Uses SSE4.2 `crc32` when the CPU has it (detected once with CPUID), else slicing-by-8 tables.
uint32_t silt_crc32c(uint32_t crc, const void *_Nonnull data, size_t length);

/// The portable table implementation (slicing-by-8). Same contract as `silt_crc32c`.
uint32_t silt_crc32c_software(uint32_t crc, const void *_Nonnull data, size_t length);

/// The SSE4.2 implementation. Same contract as `silt_crc32c`.
/// Precondition: `silt_crc32c_hardware() == 1`; on other machines this falls back to software.
uint32_t silt_crc32c_sse42(uint32_t crc, const void *_Nonnull data, size_t length);

/// 1 when `silt_crc32c` uses the hardware instruction on this machine, else 0.
int silt_crc32c_hardware(void);

#ifdef __cplusplus
}
#endif

// The other parts of the C layer, one header a concern.
#include "silt_uring.h"    // io_uring (liburing) wrappers for the WAL
#include "silt_shm.h"      // memfd, mmap, futex and atomics for shared-memory rings
#include "silt_process.h"  // posix_spawn and signal helpers for the supervisor
#include "silt_s3.h"       // libcurl and OpenSSL (SigV4) wrappers for the S3 client
#include "silt_storage.h"  // segment writeback
#include "silt_codec.h"    // gzip, snappy, lz4 and zstd for record batches
#include "silt_scram.h"    // PBKDF2, HMAC and hashes for SCRAM credentials (OpenSSL)
