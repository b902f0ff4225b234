#pragma once
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Kafka's record-batch compression codecs over zlib, libsnappy, liblz4 and libzstd.
//
// Codec numbers are Kafka's (record batch attributes bits 0-2). Each codec is the stream
// format Kafka's clients exchange:
//
//   1 gzip    a gzip stream (RFC 1952); decoding also takes concatenated members and zlib streams
//   2 snappy  snappy-java's "xerial" framing, as Kafka's Java client writes it:
//               magic 82 'S' 'N' 'A' 'P' 'P' 'Y' 00, int32 version 1, int32 compatible 1,
//               then chunks: int32 big-endian compressed length, one raw snappy block
//             decoding also takes one raw snappy block (what librdkafka sends)
//   3 lz4     the LZ4 frame format (KafkaLZ4BlockOutputStream: 64 KiB independent blocks)
//   4 zstd    zstd frames
//
// Decoding is bounded by the caller's buffer: nothing is allocated for the output here,
// and a stream that would inflate past `dst_capacity` stops with SILT_CODEC_FULL after at
// most `dst_capacity` bytes. The decoders' own working memory is bounded too (zstd
// windows above 2^SILT_CODEC_ZSTD_WINDOW_LOG_MAX bytes are refused as corrupt; lz4 blocks
// are at most 4 MiB by the format).

enum {
    SILT_CODEC_OK = 0,
    /// The output does not fit `dst_capacity` (decode) or `dst_capacity` is below the bound (encode).
    SILT_CODEC_FULL = 1,
    /// Not a valid stream of this codec, or truncated.
    SILT_CODEC_CORRUPT = 2,
    /// The codec's context could not be allocated.
    SILT_CODEC_NOMEM = 3,
    /// Not one of Kafka's codecs 1-4.
    SILT_CODEC_UNKNOWN = 4,
};

/// Largest zstd window a frame may ask for: 2^24 bytes (16 MiB). Kafka producers use at most
/// 2^23 below level 20.
#define SILT_CODEC_ZSTD_WINDOW_LOG_MAX 24

/// Decodes all of `src` into `dst`; `*dst_length` gets the bytes written (also on FULL).
int silt_codec_decompress(int codec, const uint8_t *_Nonnull src, size_t src_length,
                          uint8_t *_Nonnull dst, size_t dst_capacity, size_t *_Nonnull dst_length);

/// The largest encoded size of `src_length` bytes with `codec` (0 for an unknown codec).
size_t silt_codec_compress_bound(int codec, size_t src_length);

/// Encodes `src` into `dst` at `level` (the codec's own scale; the codec's default when it is
/// SILT_CODEC_DEFAULT_LEVEL). `dst_capacity` must be at least `silt_codec_compress_bound`.
/// `*dst_length` gets the encoded size.
int silt_codec_compress(int codec, int level, const uint8_t *_Nonnull src, size_t src_length,
                        uint8_t *_Nonnull dst, size_t dst_capacity, size_t *_Nonnull dst_length);

/// `level` for "the codec's default" (gzip 6, lz4 fast mode, zstd 3; snappy has no levels).
#define SILT_CODEC_DEFAULT_LEVEL (-1000000)

#ifdef __cplusplus
}
#endif
