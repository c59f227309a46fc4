// grid_sample's taps for zeros or border padding, fp32, with AVX2 (a fast path of
// GridSampleTaps::fill in grid_sample_kernel.cpp; x86-64 only, picked at run time).
#pragma once

#include "sampling_loops.h"

namespace crossnet_fast {
namespace cpu {

#if CROSSNET_FAST_X86_DISPATCH
// grid_sample's taps for zeros or border padding, fp32, 8 points at a time (len a multiple of 8):
// the expressions of bilinear.h's grid_source_coordinate + bilinear_taps_strided (zeros rule),
// operation for operation (no fused multiply-adds), so the values are bit-identical to the
// general path's. In RAFT-like uses (one channel, a few points per image) the taps are most of
// the work.
CROSSNET_FAST_TARGET_AVX2 inline void fill_grid_taps_avx2(TileTaps<float, int32_t>& t, const float* g, int64_t len,
                                                          int64_t H, int64_t W, bool border, bool align_corners,
                                                          bool with_derivatives) {
  const __m256 one = _mm256_set1_ps(1.f), half = _mm256_set1_ps(0.5f), zero = _mm256_setzero_ps();
  const __m256 w = _mm256_set1_ps(float(W)), h = _mm256_set1_ps(float(H));
  const __m256 max_x = _mm256_set1_ps(float(W) - 1.f), max_y = _mm256_set1_ps(float(H) - 1.f);
  const __m256 fx0 = _mm256_set1_ps(align_corners ? (float(W) - 1.f) / 2.f : float(W) / 2.f);
  const __m256 fy0 = _mm256_set1_ps(align_corners ? (float(H) - 1.f) / 2.f : float(H) / 2.f);
  const __m256i width = _mm256_set1_epi32(int32_t(W)), last_x = _mm256_set1_epi32(int32_t(W - 1));
  const __m256i last_y = _mm256_set1_epi32(int32_t(H - 1)), minus_one = _mm256_set1_epi32(-1);
  bool any = false;
  for (int64_t i = 0; i < len; i += 8) {
    // (x, y) pairs of 8 points: split even and odd lanes (in-lane shuffle, then fix the order).
    const __m256 lo = _mm256_loadu_ps(g + 2 * i), hi = _mm256_loadu_ps(g + 2 * i + 8);
    const __m256 gx = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
    const __m256 gy = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
    // x = (g + 1) / 2 * (W - 1) or ((g + 1) * W - 1) / 2 (halving is exact, so * 0.5 is the same).
    __m256 x = align_corners ? _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(gx, one), half), max_x)
                             : _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(gx, one), w), one), half);
    __m256 y = align_corners ? _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(gy, one), half), max_y)
                             : _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(gy, one), h), one), half);
    __m256 fx = fx0, fy = fy0;
    if (border) {  // clamp into [0, size-1]; derivative 0 on and beyond the bounds; NaN stays NaN
      fx = _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), _mm256_cmp_ps(x, max_x, _CMP_LT_OQ)), fx);
      fy = _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(y, zero, _CMP_GT_OQ), _mm256_cmp_ps(y, max_y, _CMP_LT_OQ)), fy);
      x = _mm256_blendv_ps(x, zero, _mm256_cmp_ps(x, zero, _CMP_LE_OQ));
      x = _mm256_blendv_ps(x, max_x, _mm256_cmp_ps(x, max_x, _CMP_GE_OQ));
      y = _mm256_blendv_ps(y, zero, _mm256_cmp_ps(y, zero, _CMP_LE_OQ));
      y = _mm256_blendv_ps(y, max_y, _mm256_cmp_ps(y, max_y, _CMP_GE_OQ));
    }
    const __m256 defined = _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(x, x), zero, _CMP_EQ_OQ),
                                         _mm256_cmp_ps(_mm256_sub_ps(y, y), zero, _CMP_EQ_OQ));
    const __m256 minus1 = _mm256_set1_ps(-1.f);
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
                             _mm256_and_si256(used_i, _mm256_cmpgt_epi32(last_x, x0))};
    const __m256i in_y[2] = {_mm256_cmpgt_epi32(y0, minus_one), _mm256_cmpgt_epi32(last_y, y0)};
    const __m256 wx[2] = {_mm256_sub_ps(one, ax), ax}, wy[2] = {_mm256_sub_ps(one, ay), ay};
    const __m256 sign[2] = {_mm256_set1_ps(-1.f), one};
    const __m256i base = _mm256_add_epi32(_mm256_mullo_epi32(y0, width), x0);
    for (int k = 0; k < 4; ++k) {
      const int dx = k & 1, dy = k >> 1;
      const __m256i in_i = _mm256_and_si256(in_x[dx], in_y[dy]);
      const __m256 in = _mm256_castsi256_ps(in_i);
      const __m256i delta = _mm256_set1_epi32(int32_t(dy * W + dx));
      _mm256_storeu_si256((__m256i*)(t.off[k] + i), _mm256_and_si256(in_i, _mm256_add_epi32(base, delta)));
      _mm256_storeu_ps(t.weight[k] + i, _mm256_and_ps(in, _mm256_mul_ps(wx[dx], wy[dy])));
      if (with_derivatives) {
        _mm256_storeu_ps(t.dx[k] + i, _mm256_and_ps(in, _mm256_mul_ps(_mm256_mul_ps(sign[dx], wy[dy]), fx)));
        _mm256_storeu_ps(t.dy[k] + i, _mm256_and_ps(in, _mm256_mul_ps(_mm256_mul_ps(wx[dx], sign[dy]), fy)));
      }
    }
    const int undefined_bits = ~_mm256_movemask_ps(defined) & 0xff;
    for (int j = 0; j < 8; ++j) t.undefined[i + j] = (undefined_bits >> j) & 1;
    any |= undefined_bits != 0;
  }
  t.any_undefined = any;
}

#endif

}  // namespace cpu
}  // namespace crossnet_fast
