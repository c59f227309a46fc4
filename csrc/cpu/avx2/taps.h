// The bilinear taps of 8 sample points at a time (fp32, int32 offsets), the core of the AVX2 tile
// fills of grid_sample (avx2/grid_taps.h) and the warp (avx2/warp_taps.h). Every expression is the
// one of bilinear.h (the definition), operation for operation and without fused multiply-adds, so
// the taps are bit-identical to the portable fill's (point by point through bilinear.h).
#pragma once

#include <cstdint>

#include "../tile_taps.h"
#include "isa.h"

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

#endif  // CROSSNET_FAST_X86_DISPATCH

}  // namespace cpu
}  // namespace crossnet_fast
