// libcurl + OpenSSL wrappers for the S3 client. See include/silt_s3.h.
#include "include/silt_s3.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct silt_buffer {
    uint8_t *data;
    size_t length;
    size_t capacity;
};

struct silt_http {
    CURL *easy;
    struct curl_slist *headers;
    uint8_t *body;          // request body (owned copy)
    size_t body_length;
    int has_body_method;    // PUT/POST: send `body`
    struct silt_buffer response_body;
    struct silt_buffer response_headers;
    uint64_t tag;
    char error[CURL_ERROR_SIZE];
};

struct silt_multi {
    CURLM *multi;
};

static pthread_once_t silt_curl_once = PTHREAD_ONCE_INIT;
static void silt_curl_init_once(void) { curl_global_init(CURL_GLOBAL_ALL); }
void silt_curl_global_init(void) { pthread_once(&silt_curl_once, silt_curl_init_once); }

static int silt_buffer_append(struct silt_buffer *b, const void *data, size_t n) {
    if (b->length + n > b->capacity) {
        size_t cap = b->capacity ? b->capacity : 1024;
        while (cap < b->length + n) cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) return ENOMEM;
        b->data = p;
        b->capacity = cap;
    }
    memcpy(b->data + b->length, data, n);
    b->length += n;
    return 0;
}

static size_t silt_write_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    struct silt_http *h = userdata;
    size_t n = size * nmemb;
    if (silt_buffer_append(&h->response_body, ptr, n) != 0) return 0;  // aborts the transfer
    return n;
}

static size_t silt_write_header(char *ptr, size_t size, size_t nmemb, void *userdata) {
    struct silt_http *h = userdata;
    size_t n = size * nmemb;
    // A new status line starts a new response (after 100-continue or a redirect): keep
    // only the final response's headers.
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) h->response_headers.length = 0;
    if (silt_buffer_append(&h->response_headers, ptr, n) != 0) return 0;
    return n;
}

silt_http *silt_http_new(void) {
    silt_curl_global_init();
    struct silt_http *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->easy = curl_easy_init();
    if (!h->easy) { free(h); return NULL; }
    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, (void *)h);
    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, silt_write_body);
    curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, (void *)h);
    curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, silt_write_header);
    curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, (void *)h);
    curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->error);
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h->easy, CURLOPT_FOLLOWLOCATION, 0L);
    // Identity encoding only: the body bytes must be the object bytes.
    curl_easy_setopt(h->easy, CURLOPT_ACCEPT_ENCODING, NULL);
    curl_easy_setopt(h->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    return h;
}

void silt_http_free(silt_http *h) {
    if (!h) return;
    curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->headers);
    free(h->body);
    free(h->response_body.data);
    free(h->response_headers.data);
    free(h);
}

int silt_http_set_url(silt_http *h, const char *url) {
    return (int)curl_easy_setopt(h->easy, CURLOPT_URL, url);
}

int silt_http_set_method(silt_http *h, const char *method) {
    h->has_body_method = 0;
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
        return (int)curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, NULL);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, NULL);
        return (int)curl_easy_setopt(h->easy, CURLOPT_NOBODY, 1L);
    }
    if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
        h->has_body_method = 1;
        // POSTFIELDS carries the body (sent with Content-Length); CUSTOMREQUEST names the verb.
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_length);
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->body ? (char *)h->body : "");
        return (int)curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, method);
    }
    return (int)curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST, method);
}

int silt_http_add_header(silt_http *h, const char *line) {
    struct curl_slist *l = curl_slist_append(h->headers, line);
    if (!l) return ENOMEM;
    h->headers = l;
    return (int)curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->headers);
}

int silt_http_set_body(silt_http *h, const uint8_t *data, size_t length) {
    free(h->body);
    h->body = NULL;
    h->body_length = 0;
    if (length > 0) {
        h->body = malloc(length);
        if (!h->body) return ENOMEM;
        memcpy(h->body, data, length);
        h->body_length = length;
    }
    if (h->has_body_method) {
        // Re-point POSTFIELDS at the new copy (the method may have been set first).
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_length);
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->body ? (char *)h->body : "");
    }
    return 0;
}

int silt_http_set_timeouts(silt_http *h, long connect_ms, long total_ms) {
    CURLcode c = curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    if (c != CURLE_OK) return (int)c;
    return (int)curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, total_ms);
}

void silt_http_set_tag(silt_http *h, uint64_t tag) { h->tag = tag; }
uint64_t silt_http_tag(const silt_http *h) { return h->tag; }

long silt_http_status(const silt_http *h) {
    long status = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

const uint8_t *silt_http_body(const silt_http *h, size_t *length) {
    *length = h->response_body.length;
    return h->response_body.data;
}

const uint8_t *silt_http_headers(const silt_http *h, size_t *length) {
    *length = h->response_headers.length;
    return h->response_headers.data;
}

const char *silt_http_error_detail(const silt_http *h) { return h->error; }

long silt_http_new_connections(const silt_http *h) {
    long n = 0;
    curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &n);
    return n;
}

silt_multi *silt_multi_new(long max_connections) {
    silt_curl_global_init();
    struct silt_multi *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->multi = curl_multi_init();
    if (!m->multi) { free(m); return NULL; }
    curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, max_connections);
    return m;
}

void silt_multi_free(silt_multi *m) {
    if (!m) return;
    curl_multi_cleanup(m->multi);
    free(m);
}

int silt_multi_add(silt_multi *m, silt_http *h) {
    return (int)curl_multi_add_handle(m->multi, h->easy);
}

int silt_multi_perform(silt_multi *m, int *running) {
    return (int)curl_multi_perform(m->multi, running);
}

int silt_multi_poll(silt_multi *m, int timeout_ms) {
    int numfds = 0;
    return (int)curl_multi_poll(m->multi, NULL, 0, timeout_ms, &numfds);
}

int silt_multi_wakeup(silt_multi *m) { return (int)curl_multi_wakeup(m->multi); }

silt_http *silt_multi_next_done(silt_multi *m, int *curl_code) {
    int queued = 0;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m->multi, &queued)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        *curl_code = (int)msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        curl_multi_remove_handle(m->multi, easy);
        return (silt_http *)priv;
    }
    return NULL;
}

const char *silt_curl_strerror(int code) { return curl_easy_strerror((CURLcode)code); }

void silt_sha256(const uint8_t *data, size_t length, uint8_t *out) {
    unsigned int n = 32;
    static const uint8_t empty = 0;
    EVP_Digest(data ? (const void *)data : (const void *)&empty, length, out, &n, EVP_sha256(), NULL);
}

void silt_hmac_sha256(const uint8_t *key, size_t key_length, const uint8_t *data, size_t length,
                      uint8_t *out) {
    unsigned int n = 32;
    static const uint8_t empty = 0;
    HMAC(EVP_sha256(), key, (int)key_length, data ? data : &empty, length, out, &n);
}

void silt_md5(const uint8_t *data, size_t length, uint8_t *out) {
    unsigned int n = 16;
    static const uint8_t empty = 0;
    EVP_Digest(data ? (const void *)data : (const void *)&empty, length, out, &n, EVP_md5(), NULL);
}

void silt_hex(const uint8_t *data, size_t length, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < length; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * length] = 0;
}
