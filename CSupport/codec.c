// Kafka's compression codecs over zlib, libsnappy, liblz4 and libzstd. See include/silt_codec.h.
#include "include/silt_codec.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

// ---------------------------------------------------------------- gzip (zlib)

static int gzip_decompress(const uint8_t *src, size_t src_length, uint8_t *dst, size_t cap, size_t *out) {
    z_stream z;
    memset(&z, 0, sizeof z);
    // 15 + 32: a 32 KiB window, gzip or zlib header detected automatically.
    if (inflateInit2(&z, 15 + 32) != Z_OK) return SILT_CODEC_NOMEM;
    int result = SILT_CODEC_OK;
    size_t in_done = 0, out_done = 0;
    uint8_t probe;   // one byte past a full `dst`: does the stream still have output?
    for (;;) {
        size_t in_chunk = src_length - in_done > UINT32_MAX ? UINT32_MAX : src_length - in_done;
        size_t out_room = cap - out_done;
        int probing = out_room == 0;
        z.next_in = (Bytef *)(src + in_done);
        z.avail_in = (uInt)in_chunk;
        z.next_out = probing ? &probe : dst + out_done;
        z.avail_out = probing ? 1 : (uInt)(out_room > UINT32_MAX ? UINT32_MAX : out_room);
        uInt out_before = z.avail_out;
        int rc = inflate(&z, Z_NO_FLUSH);
        in_done += in_chunk - z.avail_in;
        size_t produced = out_before - z.avail_out;
        if (probing && produced > 0) { result = SILT_CODEC_FULL; break; }
        if (!probing) out_done += produced;
        if (rc == Z_STREAM_END) {
            if (in_done == src_length) break;
            // Another gzip member follows (gzip allows concatenation).
            if (inflateReset(&z) != Z_OK) { result = SILT_CODEC_CORRUPT; break; }
            continue;
        }
        int progressed = produced > 0 || in_chunk != z.avail_in;
        if (rc == Z_OK && progressed) continue;
        // Z_BUF_ERROR (or Z_OK) without progress: the input ended inside the stream.
        result = rc == Z_MEM_ERROR ? SILT_CODEC_NOMEM : SILT_CODEC_CORRUPT;   // data error or truncated
        break;
    }
    inflateEnd(&z);
    *out = out_done;
    return result;
}

static size_t gzip_bound(size_t n) {
    // zlib's conservative deflateBound (any level and memory setting) plus the gzip wrapper's
    // 18 bytes of header and trailer, with room to spare.
    return n + ((n + 7) >> 3) + ((n + 63) >> 6) + 5 + 18 + 64;
}

static int gzip_compress(int level, const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out) {
    if (level == SILT_CODEC_DEFAULT_LEVEL) level = Z_DEFAULT_COMPRESSION;
    z_stream z;
    memset(&z, 0, sizeof z);
    // 15 + 16: a gzip wrapper; memLevel 8 and the default strategy, as java.util.zip does.
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return SILT_CODEC_NOMEM;
    if (n > UINT32_MAX || cap > UINT32_MAX) { deflateEnd(&z); return SILT_CODEC_FULL; }
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out = cap - z.avail_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? SILT_CODEC_OK : SILT_CODEC_FULL;
}

// ---------------------------------------------------------------- snappy (xerial framing)

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
enum { XERIAL_HEADER_BYTES = 16, XERIAL_CHUNK_BYTES = 32 * 1024 };

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/// One raw snappy block into dst + *done; its size is read from its preamble before anything is written.
static int snappy_block(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *done) {
    size_t length = 0;
    if (snappy_uncompressed_length((const char *)src, n, &length) != SNAPPY_OK) return SILT_CODEC_CORRUPT;
    if (length > cap - *done) return SILT_CODEC_FULL;
    size_t written = length;
    if (snappy_uncompress((const char *)src, n, (char *)dst + *done, &written) != SNAPPY_OK || written != length) {
        return SILT_CODEC_CORRUPT;
    }
    *done += written;
    return SILT_CODEC_OK;
}

static int snappy_decompress(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out) {
    *out = 0;
    if (n < XERIAL_HEADER_BYTES || memcmp(src, xerial_magic, sizeof xerial_magic) != 0) {
        return snappy_block(src, n, dst, cap, out);   // raw snappy (librdkafka)
    }
    size_t at = XERIAL_HEADER_BYTES;   // version and compatible version are not checked, as snappy-java does not
    while (at < n) {
        if (n - at < 4) return SILT_CODEC_CORRUPT;
        size_t chunk = load_be32(src + at);
        at += 4;
        if (chunk > n - at) return SILT_CODEC_CORRUPT;
        int rc = snappy_block(src + at, chunk, dst, cap, out);
        if (rc != SILT_CODEC_OK) return rc;
        at += chunk;
    }
    return SILT_CODEC_OK;
}

static size_t snappy_bound(size_t n) {
    size_t chunks = n / XERIAL_CHUNK_BYTES + 1;
    return XERIAL_HEADER_BYTES + chunks * (4 + snappy_max_compressed_length(XERIAL_CHUNK_BYTES));
}

static int snappy_compress_xerial(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out) {
    if (cap < snappy_bound(n)) return SILT_CODEC_FULL;
    memcpy(dst, xerial_magic, sizeof xerial_magic);
    store_be32(dst + 8, 1);    // version
    store_be32(dst + 12, 1);   // compatible version
    size_t at = XERIAL_HEADER_BYTES;
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < XERIAL_CHUNK_BYTES ? n - done : XERIAL_CHUNK_BYTES;
        size_t written = cap - at - 4;
        if (snappy_compress((const char *)src + done, chunk, (char *)dst + at + 4, &written) != SNAPPY_OK) {
            return SILT_CODEC_FULL;
        }
        store_be32(dst + at, (uint32_t)written);
        at += 4 + written;
        done += chunk;
    }
    *out = at;
    return SILT_CODEC_OK;
}

// ---------------------------------------------------------------- lz4 (frame format)

static int lz4_decompress(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out) {
    LZ4F_dctx *ctx = NULL;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION))) return SILT_CODEC_NOMEM;
    int result = SILT_CODEC_OK;
    size_t in_done = 0, out_done = 0, hint = 1;
    uint8_t probe;
    while (in_done < n) {
        int probing = out_done == cap;
        size_t out_room = probing ? 1 : cap - out_done;
        size_t in_room = n - in_done;
        hint = LZ4F_decompress(ctx, probing ? &probe : dst + out_done, &out_room, src + in_done, &in_room, NULL);
        if (LZ4F_isError(hint)) { result = SILT_CODEC_CORRUPT; break; }
        in_done += in_room;
        if (probing && out_room > 0) { result = SILT_CODEC_FULL; break; }
        if (!probing) out_done += out_room;
        if (in_room == 0 && out_room == 0 && !probing) { result = SILT_CODEC_CORRUPT; break; }   // no progress
    }
    // hint 0: the last frame ended (a context that finished a frame takes the next one).
    while (result == SILT_CODEC_OK && hint != 0) {
        // All input consumed; the frame may still hold buffered output, or be truncated.
        int probing = out_done == cap;
        size_t out_room = probing ? 1 : cap - out_done, in_room = 0;
        hint = LZ4F_decompress(ctx, probing ? &probe : dst + out_done, &out_room, src + n, &in_room, NULL);
        if (LZ4F_isError(hint)) { result = SILT_CODEC_CORRUPT; break; }
        if (out_room == 0) { if (hint != 0) result = SILT_CODEC_CORRUPT; break; }
        if (probing) { result = SILT_CODEC_FULL; break; }
        out_done += out_room;
    }
    LZ4F_freeDecompressionContext(ctx);
    *out = out_done;
    return result;
}

static LZ4F_preferences_t lz4_preferences(int level) {
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;          // KafkaLZ4BlockOutputStream's block size
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;   // Kafka's reader takes independent blocks only
    prefs.compressionLevel = level == SILT_CODEC_DEFAULT_LEVEL ? 0 : level;
    return prefs;
}

static int lz4_compress(int level, const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out) {
    LZ4F_preferences_t prefs = lz4_preferences(level);
    size_t rc = LZ4F_compressFrame(dst, cap, src, n, &prefs);
    if (LZ4F_isError(rc)) return SILT_CODEC_FULL;
    *out = rc;
    return SILT_CODEC_OK;
}

// ---------------------------------------------------------------- zstd

static int zstd_decompress(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out) {
    ZSTD_DCtx *ctx = ZSTD_createDCtx();
    if (ctx == NULL) return SILT_CODEC_NOMEM;
    ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, SILT_CODEC_ZSTD_WINDOW_LOG_MAX);
    ZSTD_inBuffer in = {src, n, 0};
    ZSTD_outBuffer output = {dst, cap, 0};
    int result = SILT_CODEC_OK;
    size_t rc = 1;
    uint8_t probe;
    for (;;) {
        if (output.pos == output.size) {
            // dst is full: one more byte of output means the stream inflates past it.
            if (rc == 0 && in.pos == in.size) break;
            ZSTD_outBuffer one = {&probe, 1, 0};
            rc = ZSTD_decompressStream(ctx, &one, &in);
            if (ZSTD_isError(rc)) { result = SILT_CODEC_CORRUPT; break; }
            if (one.pos > 0) { result = SILT_CODEC_FULL; break; }
            if (rc == 0 && in.pos == in.size) break;
            if (in.pos == in.size) { result = SILT_CODEC_CORRUPT; break; }   // truncated
            continue;
        }
        size_t in_before = in.pos, out_before = output.pos;
        rc = ZSTD_decompressStream(ctx, &output, &in);
        if (ZSTD_isError(rc)) { result = SILT_CODEC_CORRUPT; break; }
        if (rc == 0 && in.pos == in.size) break;   // the last frame is complete and flushed
        if (in.pos == in_before && output.pos == out_before) { result = SILT_CODEC_CORRUPT; break; }   // truncated
    }
    ZSTD_freeDCtx(ctx);
    *out = output.pos;
    return result;
}

static int zstd_compress(int level, const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *out) {
    size_t rc = ZSTD_compress(dst, cap, src, n, level == SILT_CODEC_DEFAULT_LEVEL ? ZSTD_CLEVEL_DEFAULT : level);
    if (ZSTD_isError(rc)) return SILT_CODEC_FULL;
    *out = rc;
    return SILT_CODEC_OK;
}

// ---------------------------------------------------------------- dispatch

int silt_codec_decompress(int codec, const uint8_t *src, size_t src_length, uint8_t *dst, size_t dst_capacity,
                          size_t *dst_length) {
    *dst_length = 0;
    switch (codec) {
    case 1: return gzip_decompress(src, src_length, dst, dst_capacity, dst_length);
    case 2: return snappy_decompress(src, src_length, dst, dst_capacity, dst_length);
    case 3: return lz4_decompress(src, src_length, dst, dst_capacity, dst_length);
    case 4: return zstd_decompress(src, src_length, dst, dst_capacity, dst_length);
    default: return SILT_CODEC_UNKNOWN;
    }
}

size_t silt_codec_compress_bound(int codec, size_t n) {
    switch (codec) {
    case 1: return gzip_bound(n);
    case 2: return snappy_bound(n);
    case 3: { LZ4F_preferences_t prefs = lz4_preferences(0); return LZ4F_compressFrameBound(n, &prefs); }
    case 4: return ZSTD_compressBound(n);
    default: return 0;
    }
}

int silt_codec_compress(int codec, int level, const uint8_t *src, size_t src_length, uint8_t *dst, size_t dst_capacity,
                        size_t *dst_length) {
    *dst_length = 0;
    switch (codec) {
    case 1: return gzip_compress(level, src, src_length, dst, dst_capacity, dst_length);
    case 2: return snappy_compress_xerial(src, src_length, dst, dst_capacity, dst_length);
    case 3: return lz4_compress(level, src, src_length, dst, dst_capacity, dst_length);
    case 4: return zstd_compress(level, src, src_length, dst, dst_capacity, dst_length);
    default: return SILT_CODEC_UNKNOWN;
    }
}
