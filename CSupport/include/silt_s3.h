#pragma once
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// libcurl and OpenSSL wrappers for the S3 client (SiltObjectStore).
//
// libcurl's variadic `curl_easy_setopt` becomes typed functions here; Swift never sees a
// CURL pointer. One `silt_http` is one HTTP exchange: request (method, URL, headers, body)
// and response (status, raw header block, body) buffered in C-owned memory. A
// `silt_multi` drives many exchanges on one thread and owns the keep-alive connection
// pool (connections are cached by the multi handle and reused across exchanges).
//
// Thread rules: a `silt_http` belongs to one thread at a time (the owner configures it,
// hands it to the multi thread with `silt_multi_add`, gets it back from
// `silt_multi_next_done`). Every `silt_multi_*` call except `silt_multi_wakeup` must come
// from the one thread that drives the multi handle.

/// Once per process, before any other function here; idempotent and thread-safe.
void silt_curl_global_init(void);

typedef struct silt_http silt_http;
typedef struct silt_multi silt_multi;

/// A new exchange, or NULL when out of memory.
silt_http *_Nullable silt_http_new(void);
/// Frees the exchange; it must not be attached to a multi handle.
void silt_http_free(silt_http *_Nullable http);

/// Sets the URL (copied). Returns a CURLcode (0 on success).
int silt_http_set_url(silt_http *_Nonnull http, const char *_Nonnull url);
/// Sets the method: "GET", "HEAD" (no body read), "PUT"/"POST" (body from
/// `silt_http_set_body`, an empty body when none), "DELETE" or any other token.
int silt_http_set_method(silt_http *_Nonnull http, const char *_Nonnull method);
/// Adds one request header line "Name: value" (copied). 0 on success, else ENOMEM.
int silt_http_add_header(silt_http *_Nonnull http, const char *_Nonnull line);
/// Sets the request body (copied into the exchange). 0 on success, else ENOMEM.
int silt_http_set_body(silt_http *_Nonnull http, const uint8_t *_Nullable data, size_t length);
/// Connect and whole-exchange timeouts in milliseconds. Returns a CURLcode.
int silt_http_set_timeouts(silt_http *_Nonnull http, long connect_ms, long total_ms);
/// An opaque tag the caller can read back (e.g. an index into a table of waiters).
void silt_http_set_tag(silt_http *_Nonnull http, uint64_t tag);
uint64_t silt_http_tag(const silt_http *_Nonnull http);

/// The HTTP status of the last response (0 before a response).
long silt_http_status(const silt_http *_Nonnull http);
/// The response body received so far; `*length` gets its size. Valid until free.
const uint8_t *_Nullable silt_http_body(const silt_http *_Nonnull http, size_t *_Nonnull length);
/// The raw header block of the final response ("Name: value\r\n" lines, status line
/// first; interim 1xx responses are dropped). Valid until free.
const uint8_t *_Nullable silt_http_headers(const silt_http *_Nonnull http, size_t *_Nonnull length);
/// curl's detailed error message of the last failure ("" when none).
const char *_Nonnull silt_http_error_detail(const silt_http *_Nonnull http);
/// Whether the exchange reused a pooled connection (1) or opened a new one (0):
/// the number of new connections it made is reported by CURLINFO_NUM_CONNECTS.
long silt_http_new_connections(const silt_http *_Nonnull http);

/// A new multi handle with at most `max_connections` cached/open connections in total.
silt_multi *_Nullable silt_multi_new(long max_connections);
void silt_multi_free(silt_multi *_Nullable multi);
/// Starts an exchange. Returns a CURLMcode (0 on success).
int silt_multi_add(silt_multi *_Nonnull multi, silt_http *_Nonnull http);
/// Runs transfers that are ready; `*running` gets the number still in flight.
int silt_multi_perform(silt_multi *_Nonnull multi, int *_Nonnull running);
/// Waits up to `timeout_ms` for socket activity or a `silt_multi_wakeup`.
int silt_multi_poll(silt_multi *_Nonnull multi, int timeout_ms);
/// Interrupts `silt_multi_poll` from any thread.
int silt_multi_wakeup(silt_multi *_Nonnull multi);
/// The next finished exchange (already detached from the multi handle), or NULL.
/// `*curl_code` gets its CURLcode (0 = a complete response was received).
silt_http *_Nullable silt_multi_next_done(silt_multi *_Nonnull multi, int *_Nonnull curl_code);

/// curl's text for a CURLcode.
const char *_Nonnull silt_curl_strerror(int code);

// Numeric CURLcodes the retry logic distinguishes (mirrors of curl.h so Swift needs no macros).
enum {
    SILT_CURLE_OK = 0,
    SILT_CURLE_COULDNT_CONNECT = 7,
    SILT_CURLE_PARTIAL_FILE = 18,
    SILT_CURLE_OPERATION_TIMEDOUT = 28,
    SILT_CURLE_SEND_ERROR = 55,
    SILT_CURLE_RECV_ERROR = 56,
    SILT_CURLE_GOT_NOTHING = 52,
};

/// SHA-256 of `data` into `out` (32 bytes).
void silt_sha256(const uint8_t *_Nullable data, size_t length, uint8_t *_Nonnull out);
/// HMAC-SHA256 of `data` under `key` into `out` (32 bytes).
void silt_hmac_sha256(const uint8_t *_Nonnull key, size_t key_length,
                      const uint8_t *_Nullable data, size_t length, uint8_t *_Nonnull out);
/// MD5 of `data` into `out` (16 bytes); for the Content-MD5 header of DeleteObjects.
void silt_md5(const uint8_t *_Nullable data, size_t length, uint8_t *_Nonnull out);
/// Lowercase hex of `length` bytes into `out` (2*length + 1 bytes, NUL-terminated).
void silt_hex(const uint8_t *_Nonnull data, size_t length, char *_Nonnull out);

#ifdef __cplusplus
}
#endif
