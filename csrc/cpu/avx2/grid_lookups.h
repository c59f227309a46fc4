// grid_sample's forward for one or a few channels with AVX2, without a taps table: each group of 8
// points goes from the grid to taps in registers and straight to the gathers. These serve RAFT's
// correlation lookups (one channel, a few dozen points per image, thousands of images) and flow
// fields (2 channels), where a table would cost more than the few channels it is shared by saves.
// Only grid_sample_kernel.cpp uses them. The sums are those of forward_channels (same products,
// same order), so the results are bit-identical to the general path's.
#pragma once

#include <cstdint>
#include <limits>

#include "../tile_taps.h"
#include "grid_taps.h"
#include "isa.h"
#include "taps.h"
#include "tile_loops.h"

namespace crossnet_fast {
namespace cpu {

#if CROSSNET_FAST_X86_DISPATCH

// The forward taps (no derivatives) of 8 grid points from their normalised (gx, gy): grid_points8,
// then the zeros-rule taps, in registers (the one- and few-channel loops below).
CROSSNET_FAST_AVX2_BLOCK inline Taps8 grid_taps8(__m256 gx, __m256 gy, int64_t H, int64_t W, bool border,
                                                 bool align_corners) {
  const GridPoints8 p = grid_points8(gx, gy, H, W, border, align_corners);
  return taps8(p.x, p.y, p.fx, p.fy, H, W, false);
}

// The plane offsets of 8 consecutive points of a flattened (N * P) grid whose first is point r of
// image n, images of P >= 8 points (so 8 points start at most one new image) and in_plane
// elements: n * in_plane, or (n + 1) * in_plane for the lanes past the image's last point.
CROSSNET_FAST_AVX2_BLOCK inline __m256i image_bases8(int64_t n, int64_t r, int64_t P, int64_t in_plane) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i next_image = _mm256_cmpgt_epi32(_mm256_add_epi32(_mm256_set1_epi32(int32_t(r)), lanes),
                                                _mm256_set1_epi32(static_cast<int32_t>(P - 1)));
  return _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(n * in_plane)),
                          _mm256_and_si256(next_image, _mm256_set1_epi32(static_cast<int32_t>(in_plane))));
}

// Steps (n, r) 8 points on through images of P >= 8 points.
inline void next_8_points(int64_t P, int64_t& n, int64_t& r) {
  r += 8;
  if (r >= P) {
    r -= P;
    ++n;
  }
}

// add_image_bases 8 points at a time (images of P >= 8 points); advances i, n and r past the
// points it did.
CROSSNET_FAST_TARGET_AVX2 inline void add_image_bases_avx2(int32_t (*off)[kTile], int64_t len, int64_t P,
                                                           int64_t in_plane, int64_t& n, int64_t& r, int64_t& i) {
  for (; i + 8 <= len; i += 8) {
    const __m256i base = image_bases8(n, r, P, in_plane);
    for (int k = 0; k < 4; ++k) {
      __m256i* o = reinterpret_cast<__m256i*>(off[k] + i);
      _mm256_storeu_si256(o, _mm256_add_epi32(_mm256_loadu_si256(o), base));
    }
    next_8_points(P, n, r);
  }
}

// One channel's samples of 8 points, sum_k weight_k * src[base + off_k] in forward_channels'
// order, each row's two taps read as one 64-bit pair (tap_pairs8: half the gathered elements;
// the gathers are most of the one-channel loops); the pairs may lie anywhere in extent elements.
CROSSNET_FAST_AVX2_BLOCK inline __m256 sample_pairs8(const float* src, const Taps8& t, __m256i base, int32_t extent) {
  const TapPairs8 top =
      tap_pairs8(_mm256_add_epi32(t.off[0], base), _mm256_add_epi32(t.off[1], base), nonzero8(t.weight[0]), extent);
  const TapPairs8 bottom =
      tap_pairs8(_mm256_add_epi32(t.off[2], base), _mm256_add_epi32(t.off[3], base), nonzero8(t.weight[2]), extent);
  __m256 w[4], a, b;
  pair_coefficients(top, t.weight[0], t.weight[1], w[0], w[1]);
  pair_coefficients(bottom, t.weight[2], t.weight[3], w[2], w[3]);
  gather_pairs8(src, top, a, b);
  const __m256 sum = _mm256_add_ps(weighted8(w[0], a), weighted8(w[1], b));
  gather_pairs8(src, bottom, a, b);
  return _mm256_add_ps(_mm256_add_ps(sum, weighted8(w[2], a)), weighted8(w[3], b));
}

// NaN in the lanes of sum whose bit is set in undefined_bits (points that are not finite).
CROSSNET_FAST_AVX2_BLOCK inline __m256 nan_where_undefined(__m256 sum, int undefined_bits) {
  if (undefined_bits == 0) return sum;
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i set = _mm256_and_si256(_mm256_set1_epi32(undefined_bits), lane_bits);
  return _mm256_blendv_ps(sum, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()),
                          _mm256_castsi256_ps(_mm256_cmpgt_epi32(set, _mm256_setzero_si256())));
}

// A few channels (flow fields: 2) of points [0, len) of one image, len a multiple of 8, straight
// from a packed grid g: each point's taps once, in registers, then every channel through
// sample_pairs8 (no taps table: with 2 channels to share it, a table costs more than it saves).
// src: the image's C planes, in_plane (>= 2) apart; dst: its C output rows, P apart.
CROSSNET_FAST_TARGET_AVX2 inline void grid_sample_few_channels_avx2(const float* src, const float* g, float* dst,
                                                                    int64_t len, int64_t C, int64_t in_plane, int64_t P,
                                                                    int64_t H, int64_t W, bool border,
                                                                    bool align_corners) {
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t i = 0; i < len; i += 8) {
    __m256 gx, gy;
    load_grid_xy8(g + 2 * i, gx, gy);
    const Taps8 t = grid_taps8(gx, gy, H, W, border, align_corners);
    for (int64_t c = 0; c < C; ++c) {
      const __m256 sum = sample_pairs8(src + c * in_plane, t, zero, static_cast<int32_t>(in_plane));
      _mm256_storeu_ps(dst + c * P + i, nan_where_undefined(sum, t.undefined_bits));
    }
  }
}

// One-channel grid_sample forward straight from the grid (RAFT's correlation lookups: a few
// dozen points per image, thousands of images): taps in registers, then 4 gathers, without the
// taps table. dst[q] for the points q of [0, len) of the flattened (N * P) grid, whose first point
// is point r of image n; images of P >= 8 points and in_plane elements, extent (>= 2) elements in
// all (int32 offsets). The sums are those of forward_channels (same products, same order); NaN
// for an undefined point.
CROSSNET_FAST_TARGET_AVX2 inline void grid_sample_one_channel_avx2(const float* src, const float* g, float* dst,
                                                                   int64_t len, int64_t P, int64_t in_plane,
                                                                   int32_t extent, int64_t n, int64_t r, int64_t H,
                                                                   int64_t W, bool border, bool align_corners) {
  for (int64_t i = 0; i < len; i += 8) {
    __m256 gx, gy;
    load_grid_xy8(g + 2 * i, gx, gy);
    const Taps8 t = grid_taps8(gx, gy, H, W, border, align_corners);
    const __m256 sum = sample_pairs8(src, t, image_bases8(n, r, P, in_plane), extent);
    _mm256_storeu_ps(dst + i, nan_where_undefined(sum, t.undefined_bits));
    next_8_points(P, n, r);
  }
}

// The same one-channel forward for grids whose batch is innermost in memory (stride_n == 1:
// RAFT's lookup grids, from a broadcast add): lanes are 8 consecutive images at one point, so the
// grid is read with plain loads (gathers through a point table read it 1.8x slower). One call
// samples every point of images [n0, n0 + 8) (n0 + 8 <= N): the results go to a point-major
// buffer first and are written image by image at the end (contiguous rows of P, not 8 stores P
// apart per point). grid_n0: (x of) point 0 of image n0; point p sits at grid_n0 + (p / Wo) *
// stride_h + (p % Wo) * stride_w, its y stride_xy after its x. dst: the (N, P) output.
CROSSNET_FAST_TARGET_AVX2 inline void grid_sample_one_channel_8_images_avx2(
    const float* src, const float* grid_n0, int64_t stride_h, int64_t stride_w, int64_t stride_xy, float* dst,
    int64_t P, int64_t Wo, int64_t in_plane, int32_t extent, int64_t n0, int64_t H, int64_t W, bool border,
    bool align_corners, float* buffer) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i base = _mm256_mullo_epi32(_mm256_add_epi32(_mm256_set1_epi32(int32_t(n0)), lanes),
                                          _mm256_set1_epi32(static_cast<int32_t>(in_plane)));
  // The next block's 8 planes, requested now: the gathers below hit them in a random order, which
  // the hardware prefetcher does not follow (without this, a lookup on cold planes is ~1.4x slower
  // than PyTorch's).
  if (n0 + 16 <= extent / in_plane) {
    const char* next = reinterpret_cast<const char*>(src + (n0 + 8) * in_plane);
    for (int64_t byte = 0; byte < 8 * in_plane * int64_t(sizeof(float)); byte += 64) {
      _mm_prefetch(next + byte, _MM_HINT_T0);
    }
  }
  int64_t p = 0;
  for (int64_t row = 0; p < P; ++row) {
    const float* grid_row = grid_n0 + row * stride_h;
    for (int64_t col = 0; col < Wo && p < P; ++col, ++p) {
      const float* grid_p = grid_row + col * stride_w;
      const __m256 gx = _mm256_loadu_ps(grid_p), gy = _mm256_loadu_ps(grid_p + stride_xy);
      const Taps8 t = grid_taps8(gx, gy, H, W, border, align_corners);
      _mm256_store_ps(buffer + 8 * p, nan_where_undefined(sample_pairs8(src, t, base, extent), t.undefined_bits));
    }
  }
  for (int j = 0; j < 8; ++j) {
    float* out = dst + (n0 + j) * P;
    for (int64_t k = 0; k < P; ++k) out[k] = buffer[8 * k + j];
  }
}

#endif  // CROSSNET_FAST_X86_DISPATCH

}  // namespace cpu
}  // namespace crossnet_fast
