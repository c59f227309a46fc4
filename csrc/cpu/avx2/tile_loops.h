// AVX2 versions of the per-tile loops of tile_taps.h, for fp32 with int32 offsets: 8 points at a
// time, taps read as 64-bit pairs where that halves the gathered elements. Each computes the
// portable loop's sums in its order, so the results are bit-identical (see avx2/isa.h).
#pragma once

#include <algorithm>
#include <cstdint>

#include "../tile_taps.h"
#include "isa.h"

namespace crossnet_fast {
namespace cpu {

#if CROSSNET_FAST_X86_DISPATCH
// weighted() on 8 lanes: coef * value where coef != 0 (NaN counts as non-zero), else exactly 0.
CROSSNET_FAST_AVX2_BLOCK inline __m256 weighted8(__m256 coef, __m256 value) {
  const __m256 used = _mm256_cmp_ps(coef, _mm256_setzero_ps(), _CMP_NEQ_UQ);
  return _mm256_and_ps(used, _mm256_mul_ps(coef, value));
}

// The two taps of one row of 8 points (k = 2r at column x0, k = 2r + 1 at x0 + 1) read as one
// 64-bit pair per point: 4-element gathers of pairs fetch half the elements of 8-element gathers
// of single taps, and gathers are what the channel loops spend their time on. A pair starts at
// tap 2r where the two taps are neighbours in memory (both inside the image). Otherwise at most one
// of them has a non-zero coefficient (a tap outside the image has weight and derivatives 0, offset
// 0), so the pair is read around that one (starting one element earlier where it is the last
// element of the plane) and `swapped` marks the lanes where tap 2r is the pair's second value.
// With the coefficients put in the matching slots (pair_coefficients), the products are those of
// the tap-by-tap loop, and the zero product merely changes places in the sum, which leaves every
// sum bit-identical (x + 0 = x for every x but -0, and -0 only arises as -0 + -0).
struct TapPairs8 {
  __m128i start_lo, start_hi;  // pair starts of points {0, 1, 4, 5} and {2, 3, 6, 7}
  __m256 swapped;              // all-ones lanes: tap 2r is the second value of the pair
};

// o0, o1: offsets of taps 2r and 2r + 1; matters0: lanes where tap 2r has a non-zero coefficient;
// extent: elements readable from the plane's start (>= 2).
CROSSNET_FAST_AVX2_BLOCK inline TapPairs8 tap_pairs8(__m256i o0, __m256i o1, __m256 matters0, int32_t extent) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i neighbours = _mm256_cmpeq_epi32(o1, _mm256_add_epi32(o0, one));
  const __m256i first_matters = _mm256_castps_si256(matters0);
  const __m256i real = _mm256_blendv_epi8(o1, o0, first_matters);
  const __m256i fits = _mm256_cmpgt_epi32(_mm256_set1_epi32(extent - 1), real);  // real + 1 < extent
  const __m256i start = _mm256_blendv_epi8(_mm256_blendv_epi8(_mm256_sub_epi32(real, one), real, fits), o0, neighbours);
  // Tap 2r is the pair's first value when it is the real tap and the pair starts there, or when
  // the real tap is 2r + 1 and the pair ends there.
  const __m256i swapped = _mm256_andnot_si256(neighbours, _mm256_xor_si256(first_matters, fits));
  const __m256i s = _mm256_permutevar8x32_epi32(start, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
  return {_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1), _mm256_castsi256_ps(swapped)};
}

// The coefficients (c0 of tap 2r, c1 of tap 2r + 1) in the slots of the pair's first and second value.
CROSSNET_FAST_AVX2_BLOCK inline void pair_coefficients(const TapPairs8& p, __m256 c0, __m256 c1, __m256& first,
                                                       __m256& second) {
  first = _mm256_blendv_ps(c0, c1, p.swapped);
  second = _mm256_blendv_ps(c1, c0, p.swapped);
}

// The pairs of 8 points of one plane: first[i] = plane[start_i], second[i] = plane[start_i + 1].
CROSSNET_FAST_AVX2_BLOCK inline void gather_pairs8(const float* plane, const TapPairs8& p, __m256& first,
                                                   __m256& second) {
  const auto* pairs = reinterpret_cast<const long long*>(plane);
  const __m256 lo = _mm256_castsi256_ps(_mm256_i32gather_epi64(pairs, p.start_lo, 4));  // points 0 1 | 4 5
  const __m256 hi = _mm256_castsi256_ps(_mm256_i32gather_epi64(pairs, p.start_hi, 4));  // points 2 3 | 6 7
  first = _mm256_shuffle_ps(lo, hi, 0x88);
  second = _mm256_shuffle_ps(lo, hi, 0xDD);
}

// All-ones in the lanes where v != 0 (NaN counts as non-zero, as in weighted()).
CROSSNET_FAST_AVX2_BLOCK inline __m256 nonzero8(__m256 v) { return _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ); }

// fp32 input, int32 offsets: 8 points at a time, their taps kept in registers while the loop runs
// over the channels (the order of PyTorch's vectorised CPU sampler: the taps are loaded once per 8
// points, where a channel-outer order reloads them per channel and is 1.3-2.7x slower); the tail
// by the scalar loop.
CROSSNET_FAST_TARGET_AVX2 inline void forward_channels_avx2(const float* src, float* dst, int64_t C, int64_t in_plane,
                                                            int64_t P, int64_t len, int64_t extent,
                                                            const TileTaps<float, int32_t>& t) {
  const int64_t vec_len = len - len % 8;
  // Tap pairs pay for their set-up (per 8 points) once there are a few channels to read.
  const bool pairs = C >= 4 && extent >= 2;
  for (int64_t i = 0; i < vec_len; i += 8) {
    __m256i off[4];
    __m256 wk[4];
    for (int k = 0; k < 4; ++k) {
      off[k] = _mm256_loadu_si256((const __m256i*)(t.off[k] + i));
      wk[k] = _mm256_loadu_ps(t.weight[k] + i);
    }
    if (pairs) {
      const TapPairs8 top = tap_pairs8(off[0], off[1], nonzero8(wk[0]), static_cast<int32_t>(extent));
      const TapPairs8 bottom = tap_pairs8(off[2], off[3], nonzero8(wk[2]), static_cast<int32_t>(extent));
      __m256 w[4];
      pair_coefficients(top, wk[0], wk[1], w[0], w[1]);
      pair_coefficients(bottom, wk[2], wk[3], w[2], w[3]);
      for (int64_t c = 0; c < C; ++c) {
        const float* plane = src + c * in_plane;
        __m256 a, b;
        gather_pairs8(plane, top, a, b);
        __m256 sum = _mm256_add_ps(weighted8(w[0], a), weighted8(w[1], b));
        gather_pairs8(plane, bottom, a, b);
        sum = _mm256_add_ps(_mm256_add_ps(sum, weighted8(w[2], a)), weighted8(w[3], b));
        _mm256_storeu_ps(dst + c * P + i, sum);
      }
      continue;
    }
    for (int64_t c = 0; c < C; ++c) {
      const float* plane = src + c * in_plane;
      __m256 sum = weighted8(wk[0], _mm256_i32gather_ps(plane, off[0], 4));
      for (int k = 1; k < 4; ++k) sum = _mm256_add_ps(sum, weighted8(wk[k], _mm256_i32gather_ps(plane, off[k], 4)));
      _mm256_storeu_ps(dst + c * P + i, sum);
    }
  }
  forward_channels_scalar<float, float, int32_t>(src, dst, C, in_plane, P, vec_len, len, t);
}

// coordinate_channels_scalar for fp32: 8 points at a time, taps in registers, channels inner (as in
// forward_channels_avx2); the tail by the scalar loop.
CROSSNET_FAST_TARGET_AVX2 inline void coordinate_channels_avx2(const float* src, const float* go, int64_t C,
                                                               int64_t in_plane, int64_t P, int64_t len,
                                                               const TileTaps<float, int32_t>& t, float* gx,
                                                               float* gy) {
  const int64_t vec_len = len - len % 8;
  const bool pairs = C >= 4 && in_plane >= 2;  // as in forward_channels_avx2
  const int32_t extent = static_cast<int32_t>(in_plane);
  for (int64_t i = 0; i < vec_len; i += 8) {
    __m256i off[4];
    __m256 dxk[4], dyk[4];
    for (int k = 0; k < 4; ++k) {
      off[k] = _mm256_loadu_si256((const __m256i*)(t.off[k] + i));
      dxk[k] = _mm256_loadu_ps(t.dx[k] + i);
      dyk[k] = _mm256_loadu_ps(t.dy[k] + i);
    }
    __m256 ax = _mm256_loadu_ps(gx + i), ay = _mm256_loadu_ps(gy + i);
    // cx/cy: the coefficients of the four values read per channel (taps, or pair slots).
    __m256 cx[4] = {dxk[0], dxk[1], dxk[2], dxk[3]}, cy[4] = {dyk[0], dyk[1], dyk[2], dyk[3]};
    TapPairs8 top{}, bottom{};
    if (pairs) {
      top = tap_pairs8(off[0], off[1], _mm256_or_ps(nonzero8(dxk[0]), nonzero8(dyk[0])), extent);
      bottom = tap_pairs8(off[2], off[3], _mm256_or_ps(nonzero8(dxk[2]), nonzero8(dyk[2])), extent);
      pair_coefficients(top, dxk[0], dxk[1], cx[0], cx[1]);
      pair_coefficients(bottom, dxk[2], dxk[3], cx[2], cx[3]);
      pair_coefficients(top, dyk[0], dyk[1], cy[0], cy[1]);
      pair_coefficients(bottom, dyk[2], dyk[3], cy[2], cy[3]);
    }
    for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
      __m256 px = _mm256_setzero_ps(), py = _mm256_setzero_ps();
      for (int64_t c = c0; c < std::min(C, c0 + kChunk); ++c) {
        const float* plane = src + c * in_plane;
        const __m256 g = _mm256_loadu_ps(go + c * P + i);
        __m256 v[4];
        if (pairs) {
          gather_pairs8(plane, top, v[0], v[1]);
          gather_pairs8(plane, bottom, v[2], v[3]);
        } else {
          for (int k = 0; k < 4; ++k) v[k] = _mm256_i32gather_ps(plane, off[k], 4);
        }
        __m256 sx = weighted8(cx[0], v[0]), sy = weighted8(cy[0], v[0]);
        for (int k = 1; k < 4; ++k) {
          sx = _mm256_add_ps(sx, weighted8(cx[k], v[k]));
          sy = _mm256_add_ps(sy, weighted8(cy[k], v[k]));
        }
        px = _mm256_add_ps(px, _mm256_mul_ps(g, sx));
        py = _mm256_add_ps(py, _mm256_mul_ps(g, sy));
      }
      ax = _mm256_add_ps(ax, px);
      ay = _mm256_add_ps(ay, py);
    }
    _mm256_storeu_ps(gx + i, ax);
    _mm256_storeu_ps(gy + i, ay);
  }
  coordinate_channels_scalar<float, float, int32_t>(src, go, C, in_plane, P, vec_len, len, t, gx, gy);
}

// scatter_tile_scalar for fp32: a tap's products for 8 points at a time into a small buffer, then
// only the read-add-writes one by one (points may share a tap, so the adds cannot be vectorised,
// but the products can: about 15% faster). Same values, same order.
CROSSNET_FAST_TARGET_AVX2 inline void scatter_tile_avx2(const float* g, float* plane, const int32_t* off,
                                                        const float* wt, int64_t stride, int64_t p0, int64_t p1) {
  alignas(32) float products[kTile];
  const int64_t vec_end = p0 + (p1 - p0) - (p1 - p0) % 8;
  for (int k = 0; k < 4; ++k) {
    const int32_t* o = off + k * stride;
    const float* w = wt + k * stride;
    for (int64_t p = p0; p < vec_end; p += 8) {
      _mm256_store_ps(products + (p - p0), weighted8(_mm256_loadu_ps(w + p), _mm256_loadu_ps(g + p)));
    }
    for (int64_t p = vec_end; p < p1; ++p) products[p - p0] = weighted(w[p], g[p]);
    for (int64_t p = p0; p < p1; ++p) plane[o[p]] += products[p - p0];
  }
}

#endif  // CROSSNET_FAST_X86_DISPATCH

}  // namespace cpu
}  // namespace crossnet_fast
