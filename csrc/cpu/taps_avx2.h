// Bilinear taps of 8 points at a time with AVX2, fp32, int32 offsets: the fast paths of the tile
// fills of grid_sample (GridSampleTaps::fill) and of the warp (WarpTaps::fill). x86-64 only,
// picked at run time. Every expression is the one of bilinear.h (the definition), operation for
// operation and without fused multiply-adds, so the values are bit-identical to the general path's
// (point by point through bilinear.h).
#pragma once

#include <limits>

#include "sampling_loops.h"

namespace crossnet_fast {
namespace cpu {

#if CROSSNET_FAST_X86_DISPATCH

// The zeros-rule taps (bilinear_taps_strided with Padding::Zeros) of 8 sample points (x, y) in
// pixels, in registers; dweight/dx = -+wy * fx and dweight/dy = -+wx * fy (filled only
// with_derivatives), fx and fy being d pixel / d (the source's coordinate) (0 where it was
// clamped). undefined_bits: the 8-bit mask of the points that are not finite (they read nothing).
struct Taps8 {
  __m256i off[4];
  __m256 weight[4], dx[4], dy[4];
  int undefined_bits;
};

CROSSNET_FAST_AVX2_BLOCK inline Taps8 taps8(__m256 x, __m256 y, __m256 fx, __m256 fy, int64_t H, int64_t W,
                                            bool with_derivatives) {
  const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps(), minus1 = _mm256_set1_ps(-1.f);
  const __m256 w = _mm256_set1_ps(float(W)), h = _mm256_set1_ps(float(H));
  const __m256i minus_one = _mm256_set1_epi32(-1);
  const __m256 defined = _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(x, x), zero, _CMP_EQ_OQ),
                                       _mm256_cmp_ps(_mm256_sub_ps(y, y), zero, _CMP_EQ_OQ));
  // A point at or beyond -1 / size reads nothing (checked before any float -> int conversion).
  __m256 used = _mm256_and_ps(defined, _mm256_cmp_ps(x, minus1, _CMP_GE_OQ));
  used = _mm256_and_ps(used, _mm256_cmp_ps(x, w, _CMP_LT_OQ));
  used = _mm256_and_ps(used, _mm256_cmp_ps(y, minus1, _CMP_GE_OQ));
  used = _mm256_and_ps(used, _mm256_cmp_ps(y, h, _CMP_LT_OQ));
  const __m256 xs = _mm256_and_ps(used, x), ys = _mm256_and_ps(used, y);
  // floor by truncation, one down for negative non-integers (bilinear.h's floor_of)
  const __m256 xt = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(xs)), yt = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(ys));
  const __m256 x0f = _mm256_sub_ps(xt, _mm256_and_ps(_mm256_cmp_ps(xt, xs, _CMP_GT_OQ), one));
  const __m256 y0f = _mm256_sub_ps(yt, _mm256_and_ps(_mm256_cmp_ps(yt, ys, _CMP_GT_OQ), one));
  const __m256 ax = _mm256_sub_ps(xs, x0f), ay = _mm256_sub_ps(ys, y0f);
  const __m256i x0 = _mm256_cvttps_epi32(x0f), y0 = _mm256_cvttps_epi32(y0f);
  const __m256i used_i = _mm256_castps_si256(used);
  const __m256i in_x[2] = {_mm256_and_si256(used_i, _mm256_cmpgt_epi32(x0, minus_one)),
                           _mm256_and_si256(used_i, _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(W - 1)), x0))};
  const __m256i in_y[2] = {_mm256_cmpgt_epi32(y0, minus_one),
                           _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(H - 1)), y0)};
  const __m256 wx[2] = {_mm256_sub_ps(one, ax), ax}, wy[2] = {_mm256_sub_ps(one, ay), ay};
  const __m256 sign[2] = {minus1, one};
  const __m256i base = _mm256_add_epi32(_mm256_mullo_epi32(y0, _mm256_set1_epi32(int32_t(W))), x0);
  Taps8 t;
  for (int k = 0; k < 4; ++k) {
    const int dx = k & 1, dy = k >> 1;
    const __m256i in_i = _mm256_and_si256(in_x[dx], in_y[dy]);
    const __m256 in = _mm256_castsi256_ps(in_i);
    t.off[k] = _mm256_and_si256(in_i, _mm256_add_epi32(base, _mm256_set1_epi32(int32_t(dy * W + dx))));
    t.weight[k] = _mm256_and_ps(in, _mm256_mul_ps(wx[dx], wy[dy]));
    if (with_derivatives) {
      t.dx[k] = _mm256_and_ps(in, _mm256_mul_ps(_mm256_mul_ps(sign[dx], wy[dy]), fx));
      t.dy[k] = _mm256_and_ps(in, _mm256_mul_ps(_mm256_mul_ps(wx[dx], sign[dy]), fy));
    }
  }
  t.undefined_bits = ~_mm256_movemask_ps(defined) & 0xff;
  return t;
}

// taps8 stored at t[.][i .. i+8); returns the undefined bits.
CROSSNET_FAST_AVX2_BLOCK inline int store_taps8(TileTaps<float, int32_t>& t, int64_t i, __m256 x, __m256 y, __m256 fx,
                                                __m256 fy, int64_t H, int64_t W, bool with_derivatives) {
  const Taps8 k8 = taps8(x, y, fx, fy, H, W, with_derivatives);
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_si256((__m256i*)(t.off[k] + i), k8.off[k]);
    _mm256_storeu_ps(t.weight[k] + i, k8.weight[k]);
    if (with_derivatives) {
      _mm256_storeu_ps(t.dx[k] + i, k8.dx[k]);
      _mm256_storeu_ps(t.dy[k] + i, k8.dy[k]);
    }
  }
  return k8.undefined_bits;
}

// The normalised (x, y) of 8 grid points stored (x, y) interleaved from g: even and odd lanes
// split (an in-lane shuffle, then the order fixed).
CROSSNET_FAST_AVX2_BLOCK inline void load_grid_xy8(const float* g, __m256& gx, __m256& gy) {
  const __m256 lo = _mm256_loadu_ps(g), hi = _mm256_loadu_ps(g + 8);
  gx = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))),
                                              _MM_SHUFFLE(3, 1, 2, 0)));
  gy = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))),
                                              _MM_SHUFFLE(3, 1, 2, 0)));
}

// The pixel coordinates (x, y) of 8 grid points from their normalised (gx, gy), and their
// derivatives fx, fy (d pixel / d normalised coordinate; 0 where border padding clamped):
// bilinear.h's grid_source_coordinate for zeros or border padding.
struct GridPoints8 {
  __m256 x, y, fx, fy;
};

CROSSNET_FAST_AVX2_BLOCK inline GridPoints8 grid_points8(__m256 gx, __m256 gy, int64_t H, int64_t W, bool border,
                                                         bool align_corners) {
  const __m256 one = _mm256_set1_ps(1.f), half = _mm256_set1_ps(0.5f), zero = _mm256_setzero_ps();
  const __m256 w = _mm256_set1_ps(float(W)), h = _mm256_set1_ps(float(H));
  const __m256 max_x = _mm256_set1_ps(float(W) - 1.f), max_y = _mm256_set1_ps(float(H) - 1.f);
  // x = (g + 1) / 2 * (W - 1) or ((g + 1) * W - 1) / 2 (halving is exact, so * 0.5 is the same).
  GridPoints8 p;
  p.x = align_corners ? _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(gx, one), half), max_x)
                      : _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(gx, one), w), one), half);
  p.y = align_corners ? _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(gy, one), half), max_y)
                      : _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(gy, one), h), one), half);
  p.fx = _mm256_set1_ps(align_corners ? (float(W) - 1.f) / 2.f : float(W) / 2.f);
  p.fy = _mm256_set1_ps(align_corners ? (float(H) - 1.f) / 2.f : float(H) / 2.f);
  if (border) {  // clamp into [0, size-1]; derivative 0 on and beyond the bounds; NaN stays NaN
    p.fx =
        _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(p.x, zero, _CMP_GT_OQ), _mm256_cmp_ps(p.x, max_x, _CMP_LT_OQ)), p.fx);
    p.fy =
        _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(p.y, zero, _CMP_GT_OQ), _mm256_cmp_ps(p.y, max_y, _CMP_LT_OQ)), p.fy);
    p.x = _mm256_blendv_ps(p.x, zero, _mm256_cmp_ps(p.x, zero, _CMP_LE_OQ));
    p.x = _mm256_blendv_ps(p.x, max_x, _mm256_cmp_ps(p.x, max_x, _CMP_GE_OQ));
    p.y = _mm256_blendv_ps(p.y, zero, _mm256_cmp_ps(p.y, zero, _CMP_LE_OQ));
    p.y = _mm256_blendv_ps(p.y, max_y, _mm256_cmp_ps(p.y, max_y, _CMP_GE_OQ));
  }
  return p;
}

// The forward taps (no derivatives) of 8 grid points from their normalised (gx, gy): grid_points8,
// then the zeros-rule taps, in registers (the one- and few-channel loops below).
CROSSNET_FAST_AVX2_BLOCK inline Taps8 grid_taps8(__m256 gx, __m256 gy, int64_t H, int64_t W, bool border,
                                                 bool align_corners) {
  const GridPoints8 p = grid_points8(gx, gy, H, W, border, align_corners);
  return taps8(p.x, p.y, p.fx, p.fy, H, W, false);
}

// grid_sample's taps for zeros or border padding, points [0, len) of a tile (len a multiple of
// 8): grid_points8, then the zeros-rule taps.
CROSSNET_FAST_TARGET_AVX2 inline void fill_grid_taps_avx2(TileTaps<float, int32_t>& t, const float* g, int64_t len,
                                                          int64_t H, int64_t W, bool border, bool align_corners,
                                                          bool with_derivatives) {
  bool any = false;
  for (int64_t i = 0; i < len; i += 8) {
    __m256 gx, gy;
    load_grid_xy8(g + 2 * i, gx, gy);
    const GridPoints8 p = grid_points8(gx, gy, H, W, border, align_corners);
    const int undefined_bits = store_taps8(t, i, p.x, p.y, p.fx, p.fy, H, W, with_derivatives);
    for (int j = 0; j < 8; ++j) t.undefined[i + j] = (undefined_bits >> j) & 1;
    any |= undefined_bits != 0;
  }
  t.any_undefined = any;
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
// sample_pairs8 (no taps table: with 2 channels to share it, the table cost more than it saved).
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
  // the hardware prefetcher does not follow (a cold lookup ran ~1.4x slower than PyTorch's).
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

// The warp's taps, pixels [p0, p0 + len) of one (H, W) image displaced by its flow (flow_n: the
// image's (2, H, W) flow), len a multiple of 8 (the caller fills a shorter tail point by point).
// Border padding clamps the point (derivative 0 strictly beyond the bounds, bilinear.h's Border
// rule); zeros padding lets taps outside count 0.
// Returns false, having filled nothing that counts, when a point is NaN with border padding: its
// taps carry NaN weights (bilinear.h), which the caller then fills point by point.
CROSSNET_FAST_TARGET_AVX2 inline bool fill_warp_taps_avx2(TileTaps<float, int32_t>& t, const float* flow_n, int64_t p0,
                                                          int64_t len, int64_t H, int64_t W, bool border,
                                                          bool with_derivatives) {
  const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
  const __m256 max_x = _mm256_set1_ps(float(W) - 1.f), max_y = _mm256_set1_ps(float(H) - 1.f);
  const int64_t HW = H * W;
  // Pixel columns and rows of the tile, stepped (no division per pixel).
  alignas(32) float col[kTile], row[kTile];
  int64_t c = p0 % W, r = p0 / W;
  for (int64_t i = 0; i < len; ++i) {
    col[i] = float(c);
    row[i] = float(r);
    if (++c == W) {
      c = 0;
      ++r;
    }
  }
  for (int64_t i = 0; i < len; i += 8) {
    __m256 x = _mm256_add_ps(_mm256_load_ps(col + i), _mm256_loadu_ps(flow_n + p0 + i));
    __m256 y = _mm256_add_ps(_mm256_load_ps(row + i), _mm256_loadu_ps(flow_n + HW + p0 + i));
    __m256 fx = one, fy = one;
    if (border) {
      const __m256 nan = _mm256_or_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q), _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
      if (_mm256_movemask_ps(nan) != 0) return false;
      const __m256 below_x = _mm256_cmp_ps(x, zero, _CMP_LT_OQ), above_x = _mm256_cmp_ps(x, max_x, _CMP_GT_OQ);
      const __m256 below_y = _mm256_cmp_ps(y, zero, _CMP_LT_OQ), above_y = _mm256_cmp_ps(y, max_y, _CMP_GT_OQ);
      fx = _mm256_andnot_ps(_mm256_or_ps(below_x, above_x), one);
      fy = _mm256_andnot_ps(_mm256_or_ps(below_y, above_y), one);
      x = _mm256_blendv_ps(_mm256_blendv_ps(x, zero, below_x), max_x, above_x);
      y = _mm256_blendv_ps(_mm256_blendv_ps(y, zero, below_y), max_y, above_y);
    }
    store_taps8(t, i, x, y, fx, fy, H, W, with_derivatives);  // a non-finite zeros point reads nothing
  }
  std::fill(t.undefined, t.undefined + len, false);
  t.any_undefined = false;
  return true;
}

#endif

}  // namespace cpu
}  // namespace crossnet_fast
