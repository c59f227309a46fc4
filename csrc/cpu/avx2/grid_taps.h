// grid_sample's tile fill for zeros and border padding with AVX2: 8 grid points at a time from
// normalised (x, y) to pixel coordinates (bilinear.h's grid_source_coordinate, operation for
// operation), then to taps (avx2/taps.h). Reflection padding keeps the portable fill.
#pragma once

#include <cstdint>

#include "../tile_taps.h"
#include "isa.h"
#include "taps.h"

namespace crossnet_fast {
namespace cpu {

#if CROSSNET_FAST_X86_DISPATCH

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

#endif  // CROSSNET_FAST_X86_DISPATCH

}  // namespace cpu
}  // namespace crossnet_fast
