#pragma once
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// SCRAM's key derivation (RFC 5802 §3, RFC 7677) through OpenSSL's libcrypto: the
// PBKDF2-HMAC of a password (SCRAM's Hi, the "salted password"), HMAC and the plain hash.
// Kafka's mechanisms pick the hash: SCRAM-SHA-256 (32-byte digests), SCRAM-SHA-512 (64).
// Stateless and thread-safe; nothing here allocates memory the caller must free.

/// The hashes SCRAM uses, numbered as Kafka numbers its SCRAM mechanisms.
enum {
    SILT_SCRAM_SHA256 = 1,
    SILT_SCRAM_SHA512 = 2,
};

/// The digest length of `hash` in bytes: 32, 64, or 0 for an unknown hash.
size_t silt_scram_digest_length(int hash);

/// PBKDF2-HMAC (RFC 8018 §5.2) of `password` with `salt` and `iterations` rounds: `out_length`
/// bytes into `out`. Returns 0, or -1 for an unknown hash, `iterations` < 1, a length above
/// INT32_MAX or an OpenSSL failure (`out` is then zeroed).
int silt_scram_pbkdf2(int hash, const uint8_t *_Nullable password, size_t password_length,
                      const uint8_t *_Nullable salt, size_t salt_length, uint32_t iterations,
                      uint8_t *_Nonnull out, size_t out_length);

/// HMAC of `data` under `key`; `out` gets `silt_scram_digest_length(hash)` bytes. 0, or -1
/// (unknown hash, OpenSSL failure).
int silt_scram_hmac(int hash, const uint8_t *_Nullable key, size_t key_length,
                    const uint8_t *_Nullable data, size_t length, uint8_t *_Nonnull out);

/// The hash of `data`; `out` gets `silt_scram_digest_length(hash)` bytes. 0, or -1.
int silt_scram_digest(int hash, const uint8_t *_Nullable data, size_t length, uint8_t *_Nonnull out);

#ifdef __cplusplus
}
#endif
