// SCRAM key derivation with OpenSSL's libcrypto (see silt_scram.h).
#include "silt_scram.h"

#include <limits.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

// OpenSSL reads a NULL key or buffer of length 0 differently across versions (HMAC with a
// NULL key reuses the previous one): empty inputs point here instead.
static const uint8_t empty_input[1] = {0};

static const EVP_MD *scram_md(int hash) {
    switch (hash) {
    case SILT_SCRAM_SHA256: return EVP_sha256();
    case SILT_SCRAM_SHA512: return EVP_sha512();
    default: return NULL;
    }
}

size_t silt_scram_digest_length(int hash) {
    switch (hash) {
    case SILT_SCRAM_SHA256: return 32;
    case SILT_SCRAM_SHA512: return 64;
    default: return 0;
    }
}

int silt_scram_pbkdf2(int hash, const uint8_t *password, size_t password_length, const uint8_t *salt,
                      size_t salt_length, uint32_t iterations, uint8_t *out, size_t out_length) {
    const EVP_MD *md = scram_md(hash);
    if (md == NULL || iterations < 1 || iterations > INT_MAX || password_length > INT_MAX || salt_length > INT_MAX ||
        out_length > INT_MAX) {
        memset(out, 0, out_length);
        return -1;
    }
    int ok = PKCS5_PBKDF2_HMAC((const char *)(password_length ? password : empty_input), (int)password_length,
                               salt_length ? salt : empty_input, (int)salt_length, (int)iterations, md,
                               (int)out_length, out);
    if (ok != 1) {
        memset(out, 0, out_length);
        return -1;
    }
    return 0;
}

int silt_scram_hmac(int hash, const uint8_t *key, size_t key_length, const uint8_t *data, size_t length,
                    uint8_t *out) {
    const EVP_MD *md = scram_md(hash);
    if (md == NULL || key_length > INT_MAX) return -1;
    unsigned int n = 0;
    if (HMAC(md, key_length ? key : empty_input, (int)key_length, length ? data : empty_input, length, out, &n) == NULL) {
        return -1;
    }
    return n == silt_scram_digest_length(hash) ? 0 : -1;
}

int silt_scram_digest(int hash, const uint8_t *data, size_t length, uint8_t *out) {
    const EVP_MD *md = scram_md(hash);
    if (md == NULL) return -1;
    unsigned int n = 0;
    if (EVP_Digest(length ? data : empty_input, length, out, &n, md, NULL) != 1) return -1;
    return n == silt_scram_digest_length(hash) ? 0 : -1;
}
