// The warp's tile fill with AVX2: 8 pixels at a time displaced by their flow, clamped for border
// padding (bilinear.h's Border rule, operation for operation), then to taps (avx2/taps.h).
#pragma once

#include <algorithm>
#include <cstdint>

#include "../tile_taps.h"
#include "isa.h"
#include "taps.h"

namespace crossnet_fast {
namespace cpu {

#if CROSSNET_FAST_X86_DISPATCH

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

#endif  // CROSSNET_FAST_X86_DISPATCH

}  // namespace cpu
}  // namespace crossnet_fast
