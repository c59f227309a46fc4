// The CPU loops of bilinear sampling, shared by the warp (sample points = pixel + flow) and
// grid_sample (points from a normalised grid). A "taps source" fills the taps of a tile of points
// (TileTaps, below) for image n; the loops own the memory traffic: taps computed once per tile and
// reused for every channel. Accumulation in acc_t (fp32, fp64 for fp64).
//
// Speed: on x86-64 the per-channel loops of fp32 inputs use AVX2 gathers (picked at run time; the
// rest of the extension is built for the baseline ISA, so it runs on any x86-64), and a taps source
// may fill a whole tile in one vectorisable loop. Offsets inside one plane are int32 when the plane
// allows it (half the table, and the index width AVX2 gathers take).
#pragma once

#include <ATen/Parallel.h>
#include <c10/macros/Macros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../bilinear.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CROSSNET_FAST_X86_DISPATCH 1
#include <immintrin.h>
#define CROSSNET_FAST_TARGET_AVX2 __attribute__((target("avx2,fma")))
// The 8-lane building blocks (taps, pairs, transposes): always inlined. They pass structs of
// vectors, which a call would move through memory; past a few call sites GCC stopped inlining
// them and the one-channel lookups ran 1.9x slower.
#define CROSSNET_FAST_AVX2_BLOCK __attribute__((target("avx2,fma"), always_inline))
#else
#define CROSSNET_FAST_X86_DISPATCH 0
#endif

namespace crossnet_fast {
namespace cpu {

constexpr int64_t kTile = 256;  // points whose taps are computed once and reused for all channels
// Tiles whose taps are tabulated together (a "band": 1 MB of taps with their derivatives in fp32)
// so that the channel loops can sweep the whole band one chunk of channels at a time.
constexpr int64_t kBandTiles = 64;

// The AVX2 paths run where the CPU has AVX2 and FMA, unless CROSSNET_FAST_CPU_ISA=baseline (for
// comparisons and to rule them out when debugging; read once).
inline bool has_avx2() {
#if CROSSNET_FAST_X86_DISPATCH
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && [] {
    const char* isa = std::getenv("CROSSNET_FAST_CPU_ISA");
    return isa == nullptr || std::string(isa) != "baseline";
  }();
  return yes;
#else
  return false;
#endif
}

// Runs fn(n, p0, len) in parallel over tiles of kTile points of every image n < N.
template <typename Fn>
inline void for_each_tile(int64_t N, int64_t P, const Fn& fn) {
  const int64_t tiles = (P + kTile - 1) / kTile;
  at::parallel_for(0, N * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p0 = (t % tiles) * kTile;
      fn(t / tiles, p0, std::min(kTile, P - p0));
    }
  });
}

// The taps of one tile, structure of arrays (tap-major) so the channel loops read them contiguously.
// Where a tap is not used its weight (and derivatives) are 0 and its offset a valid index (0).
template <typename acc_t, typename index_t>
struct TileTaps {
  index_t off[4][kTile];
  acc_t weight[4][kTile];
  acc_t dx[4][kTile];  // d weight / d (the source's x coordinate); filled only when asked for
  acc_t dy[4][kTile];
  bool undefined[kTile];  // sample and coordinate gradient are NaN (grid_sample's non-finite points)
  bool any_undefined;

  // Points [i0, len) of the tile, point by point from a taps_of(n, p) -> GridTaps<acc_t, int64_t>
  // function: the general path (i0 > 0: the tail after a vectorised fill of [0, i0)).
  template <typename PointTaps>
  void fill_pointwise(const PointTaps& taps_of, int64_t n, int64_t p0, int64_t len, bool with_derivatives,
                      int64_t i0 = 0) {
    if (i0 == 0) any_undefined = false;
    for (int64_t i = i0; i < len; ++i) {
      const auto t = taps_of(n, p0 + i);
      for (int k = 0; k < 4; ++k) {
        off[k][i] = static_cast<index_t>(t.taps.offset[k]);
        weight[k][i] = t.taps.weight[k];
        if (with_derivatives) {
          dx[k][i] = t.taps.dweight_dx[k];
          dy[k][i] = t.taps.dweight_dy[k];
        }
      }
      undefined[i] = t.undefined;
      any_undefined |= t.undefined;
    }
  }
};

// ---- per-tile channel loops -------------------------------------------------------------------

// o[c][i] = sum_k weight_k[i] * plane_c[off_k[i]] for the C channels of one image.
template <typename scalar_t, typename acc_t, typename index_t>
inline void forward_channels_scalar(const scalar_t* src, scalar_t* dst, int64_t C, int64_t in_plane, int64_t P,
                                    int64_t i0, int64_t len, const TileTaps<acc_t, index_t>& t) {
  for (int64_t c = 0; c < C; ++c) {
    const scalar_t* plane = src + c * in_plane;
    scalar_t* o = dst + c * P;
    for (int64_t i = i0; i < len; ++i) {
      o[i] = static_cast<scalar_t>(
          weighted(t.weight[0][i], acc_t(plane[t.off[0][i]])) + weighted(t.weight[1][i], acc_t(plane[t.off[1][i]])) +
          weighted(t.weight[2][i], acc_t(plane[t.off[2][i]])) + weighted(t.weight[3][i], acc_t(plane[t.off[3][i]])));
    }
  }
}

// Channels per chunk of the coordinate-gradient sum. A point's gradient is summed chunk by chunk
// (a partial over each chunk's channels, from 0, then the partials in order), whichever way the
// work is split, so the result does not depend on the thread count or the strategy.
constexpr int64_t kChunk = 16;

// gx[i] += sum over chunks of (sum_c g_c[i] * sum_k dx_k[i] * plane_c[off_k[i]]) (and gy): the
// coordinate gradient of the points [i0, len) of a tile, over the C channels of one image.
template <typename scalar_t, typename acc_t, typename index_t>
inline void coordinate_channels_scalar(const scalar_t* src, const scalar_t* go, int64_t C, int64_t in_plane, int64_t P,
                                       int64_t i0, int64_t len, const TileTaps<acc_t, index_t>& t, acc_t* gx,
                                       acc_t* gy) {
  acc_t px[kTile], py[kTile];  // one chunk's partial sums; channel-outer so each plane is read in order
  for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
    std::fill(px + i0, px + len, acc_t(0));
    std::fill(py + i0, py + len, acc_t(0));
    for (int64_t c = c0; c < std::min(C, c0 + kChunk); ++c) {
      const scalar_t* plane = src + c * in_plane;
      const scalar_t* g = go + c * P;
      for (int64_t i = i0; i < len; ++i) {
        const acc_t v0 = plane[t.off[0][i]], v1 = plane[t.off[1][i]], v2 = plane[t.off[2][i]], v3 = plane[t.off[3][i]];
        const acc_t gi = g[i];
        px[i] += gi * (weighted(t.dx[0][i], v0) + weighted(t.dx[1][i], v1) + weighted(t.dx[2][i], v2) +
                       weighted(t.dx[3][i], v3));
        py[i] += gi * (weighted(t.dy[0][i], v0) + weighted(t.dy[1][i], v1) + weighted(t.dy[2][i], v2) +
                       weighted(t.dy[3][i], v3));
      }
    }
    for (int64_t i = i0; i < len; ++i) {
      gx[i] += px[i];
      gy[i] += py[i];
    }
  }
}

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

CROSSNET_FAST_AVX2_BLOCK inline __m256 nonzero8(__m256 v) { return _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ); }

// fp32 input, int32 offsets: 8 points at a time, their taps kept in registers while the loop runs
// over the channels (the order of PyTorch's vectorised CPU sampler; channel-outer was 1.3-2.7x
// slower here with gathers); the tail by the scalar loop. Same sums in the same order as the
// scalar code, so results do not depend on which path ran.
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
#endif

template <typename scalar_t, typename acc_t, typename index_t>
void forward_channels(const scalar_t* src, scalar_t* dst, int64_t C, int64_t in_plane, int64_t P, int64_t len,
                      int64_t extent, const TileTaps<acc_t, index_t>& t) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
    if (has_avx2()) return forward_channels_avx2(src, dst, C, in_plane, P, len, extent, t);
  }
#endif
  forward_channels_scalar(src, dst, C, in_plane, P, int64_t(0), len, t);
}

template <typename scalar_t, typename acc_t, typename index_t>
void coordinate_channels(const scalar_t* src, const scalar_t* go, int64_t C, int64_t in_plane, int64_t P, int64_t len,
                         const TileTaps<acc_t, index_t>& t, acc_t* gx, acc_t* gy) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
    if (has_avx2()) return coordinate_channels_avx2(src, go, C, in_plane, P, len, t, gx, gy);
  }
#endif
  coordinate_channels_scalar(src, go, C, in_plane, P, int64_t(0), len, t, gx, gy);
}

// plane[off_k[i]] += weight_k[i] * g[i] for the points [p0, p1) of a tap-major table of P points;
// one tap at a time: neighbouring points share taps, and adding all four taps of a point before the
// next would chain every add to the previous store (a memory dependency that made this loop 5x
// slower). The order of the adds is fixed, so the result is deterministic.
template <typename scalar_t, typename acc_t, typename index_t>
inline void scatter_tile_scalar(const scalar_t* g, acc_t* plane, const index_t* off, const acc_t* wt, int64_t stride,
                                int64_t p0, int64_t p1) {
  for (int k = 0; k < 4; ++k) {
    const index_t* o = off + k * stride;
    const acc_t* w = wt + k * stride;
    for (int64_t p = p0; p < p1; ++p) plane[o[p]] += weighted(w[p], acc_t(g[p]));
  }
}

#if CROSSNET_FAST_X86_DISPATCH
// fp32: the products of a tap for 8 points at a time into a small buffer, then only the scalar
// read-add-writes (15% faster in a micro-benchmark: the adds into colliding addresses cannot be
// vectorised, the products can). Same values and order as the scalar loop.
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
#endif

#if CROSSNET_FAST_X86_DISPATCH
// Transposes the 8x8 block of floats in r: lane i of r[j] becomes lane j of r[i].
CROSSNET_FAST_AVX2_BLOCK inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
    t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
  }
  for (int j = 0; j < 8; j += 4) {
    u[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
    u[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xEE);
    u[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
    u[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20);
    r[j + 4] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31);
  }
}

// Both gradients 8 channels at a time, for fp32 with AVX2, in pixel-major buffers of 8 channels
// (buf[pixel][j] for channel c0 + j): one tap of one point is then a single 8-lane read (of the
// input) or read-add-write (of its gradient) instead of 8 gathered or scalar ones on 8 planes (the
// scalar adds were the backward's largest cost, the gathers the next).

// out[i * 8 + j] = rows[j * stride + i] for i < len: 8 rows (channels, stride apart) into the
// pixel-major layout (a tile's grad_out, or a block's whole input planes). out 32-byte aligned.
CROSSNET_FAST_TARGET_AVX2 inline void to_pixel_major8(const float* rows, int64_t stride, int64_t len, float* out) {
  const int64_t vec_len = len - len % 8;
  for (int64_t i = 0; i < vec_len; i += 8) {
    __m256 r[8];
    for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(rows + j * stride + i);
    transpose8x8(r);
    for (int j = 0; j < 8; ++j) _mm256_store_ps(out + (i + j) * 8, r[j]);
  }
  for (int64_t i = vec_len; i < len; ++i) {
    for (int j = 0; j < 8; ++j) out[i * 8 + j] = rows[j * stride + i];
  }
}

// buf[off_k[i]][j] += weight_k[i] * g8[i][j]: each lane receives the products of
// scatter_tile_scalar in its order (tap outer, points in order), so the sums are bit-identical to
// the plane-by-plane loop. buf 32-byte aligned.
CROSSNET_FAST_TARGET_AVX2 inline void scatter_tile_block8(const float (*g8)[8], float* buf,
                                                          const TileTaps<float, int32_t>& t, int64_t len) {
  for (int k = 0; k < 4; ++k) {
    for (int64_t i = 0; i < len; ++i) {
      float* b = buf + int64_t(t.off[k][i]) * 8;
      const __m256 product = weighted8(_mm256_set1_ps(t.weight[k][i]), _mm256_load_ps(g8[i]));
      _mm256_store_ps(b, _mm256_add_ps(_mm256_load_ps(b), product));
    }
  }
}

// px[i] += sum over the 8 channels j in order of g8[i][j] * sum_k dx_k[i] * in8[off_k[i]][j] (and
// py with dy): the terms of coordinate_channels_scalar, added to the chunk's partial sums in the
// same channel order (per point, after a transpose back to channel-major), so bit-identical.
CROSSNET_FAST_TARGET_AVX2 inline void coordinate_tile_block8(const float (*g8)[8], const float* in8,
                                                             const TileTaps<float, int32_t>& t, int64_t len, float* px,
                                                             float* py) {
  alignas(32) float tx[8][8], ty[8][8];  // the terms of 8 points, point-major
  for (int64_t i0 = 0; i0 < len; i0 += 8) {
    const int64_t n = std::min<int64_t>(8, len - i0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t p = i0 + i;
      __m256 sx = _mm256_setzero_ps(), sy = _mm256_setzero_ps();
      for (int k = 0; k < 4; ++k) {
        const __m256 v = _mm256_load_ps(in8 + int64_t(t.off[k][p]) * 8);
        const __m256 wx = weighted8(_mm256_set1_ps(t.dx[k][p]), v), wy = weighted8(_mm256_set1_ps(t.dy[k][p]), v);
        sx = k == 0 ? wx : _mm256_add_ps(sx, wx);
        sy = k == 0 ? wy : _mm256_add_ps(sy, wy);
      }
      const __m256 g = _mm256_load_ps(g8[p]);
      _mm256_store_ps(tx[i], _mm256_mul_ps(g, sx));
      _mm256_store_ps(ty[i], _mm256_mul_ps(g, sy));
    }
    if (n == 8) {
      __m256 rx[8], ry[8];
      for (int i = 0; i < 8; ++i) {
        rx[i] = _mm256_load_ps(tx[i]);
        ry[i] = _mm256_load_ps(ty[i]);
      }
      transpose8x8(rx);
      transpose8x8(ry);
      __m256 ax = _mm256_loadu_ps(px + i0), ay = _mm256_loadu_ps(py + i0);
      for (int j = 0; j < 8; ++j) {
        ax = _mm256_add_ps(ax, rx[j]);
        ay = _mm256_add_ps(ay, ry[j]);
      }
      _mm256_storeu_ps(px + i0, ax);
      _mm256_storeu_ps(py + i0, ay);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        for (int j = 0; j < 8; ++j) {
          px[i0 + i] += tx[i][j];
          py[i0 + i] += ty[i][j];
        }
      }
    }
  }
}

// out[j * P + i] = sum_k weight_k[i] * in8[off_k[i]][j] for the 8 channels j of a tile (rows P
// apart): the sums of forward_channels_scalar, in its order.
CROSSNET_FAST_TARGET_AVX2 inline void forward_tile_block8(const float* in8, const TileTaps<float, int32_t>& t,
                                                          int64_t len, float* out, int64_t P) {
  alignas(32) float o8[8][8];  // 8 points' samples, point-major
  for (int64_t i0 = 0; i0 < len; i0 += 8) {
    const int64_t n = std::min<int64_t>(8, len - i0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t p = i0 + i;
      __m256 sum = weighted8(_mm256_set1_ps(t.weight[0][p]), _mm256_load_ps(in8 + int64_t(t.off[0][p]) * 8));
      for (int k = 1; k < 4; ++k) {
        sum = _mm256_add_ps(sum,
                            weighted8(_mm256_set1_ps(t.weight[k][p]), _mm256_load_ps(in8 + int64_t(t.off[k][p]) * 8)));
      }
      _mm256_store_ps(o8[i], sum);
    }
    if (n == 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_load_ps(o8[i]);
      transpose8x8(r);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(out + j * P + i0, r[j]);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        for (int j = 0; j < 8; ++j) out[j * P + i0 + i] = o8[i][j];
      }
    }
  }
}

// The buffer of scatter_tile_block8 (in_plane pixels x 8 channels) into 8 planes, in_plane apart.
CROSSNET_FAST_TARGET_AVX2 inline void store_block8(const float* buf, int64_t in_plane, float* planes) {
  const int64_t vec_len = in_plane - in_plane % 8;
  for (int64_t q = 0; q < vec_len; q += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_load_ps(buf + (q + i) * 8);
    transpose8x8(r);
    for (int j = 0; j < 8; ++j) _mm256_storeu_ps(planes + j * in_plane + q, r[j]);
  }
  for (int64_t q = vec_len; q < in_plane; ++q) {
    for (int j = 0; j < 8; ++j) planes[j * in_plane + q] = buf[q * 8 + j];
  }
}
#endif

#if CROSSNET_FAST_X86_DISPATCH
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
#endif

// A 64-byte-aligned buffer of `count` floats, or none for count 0 (the pixel-major blocks, whose
// loads and stores are 32-byte aligned).
using AlignedFloats = std::unique_ptr<float, decltype(&std::free)>;
inline AlignedFloats aligned_floats(int64_t count) {
  if (count == 0) return AlignedFloats(nullptr, &std::free);
  const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  float* buffer = static_cast<float*>(std::aligned_alloc(64, bytes));
  TORCH_CHECK(buffer != nullptr, "crossnet_fast: out of memory for a ", bytes, "-byte buffer");
  return AlignedFloats(buffer, &std::free);
}

// Whether sample_backward runs its 8-channels-at-a-time pass (the *_block8 functions): fp32 with
// AVX2, at least 8 channels, and buffers of at most 8 MB each per thread.
template <typename scalar_t, typename acc_t, typename index_t>
inline bool block8_applies(int64_t C, int64_t in_plane) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
    return has_avx2() && C >= 8 && in_plane * 8 * int64_t(sizeof(float)) <= (int64_t(8) << 20);
  }
#endif
  return false;
}

template <typename scalar_t, typename acc_t, typename index_t>
inline void scatter_tile(const scalar_t* g, acc_t* plane, const index_t* off, const acc_t* wt, int64_t stride,
                         int64_t p0, int64_t p1) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
    if (has_avx2() && p1 - p0 <= kTile) return scatter_tile_avx2(g, plane, off, wt, stride, p0, p1);
  }
#endif
  scatter_tile_scalar(g, plane, off, wt, stride, p0, p1);
}

// ---- the three loops --------------------------------------------------------------------------

// Calls fn(index_t{}) with int32 offsets when a plane of in_plane elements allows, else int64.
template <typename Fn>
inline void with_plane_index(int64_t in_plane, const Fn& fn) {
  if (in_plane <= std::numeric_limits<int32_t>::max()) {
    fn(int32_t(0));
  } else {
    fn(int64_t(0));
  }
}

// NaN into the outputs of undefined points of a tile (rare: non-finite grids only, so kept out of
// the hot loops). dst points at the tile's first output of channel 0; channels are P apart.
template <typename scalar_t, typename acc_t, typename index_t>
inline void poison_undefined(scalar_t* dst, int64_t C, int64_t P, int64_t len, const TileTaps<acc_t, index_t>& t) {
  if (!t.any_undefined) return;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < len; ++i) {
      if (t.undefined[i]) dst[c * P + i] = static_cast<scalar_t>(std::numeric_limits<acc_t>::quiet_NaN());
    }
  }
}

// off[k][i] += (image of point i) * in_plane for the points [0, len) of a tile of a flattened
// (N * P) grid whose first point is point r of image n (stepped: no division per point).
template <typename acc_t>
inline void add_image_bases(TileTaps<acc_t, int32_t>& t, int64_t len, int64_t P, int64_t in_plane, int64_t n,
                            int64_t r) {
  int64_t i = 0;
#if CROSSNET_FAST_X86_DISPATCH
  if (has_avx2() && P >= 8) add_image_bases_avx2(t.off, len, P, in_plane, n, r, i);
#endif
  for (; i < len; ++i) {
    const int32_t base = static_cast<int32_t>(n * in_plane);
    for (int k = 0; k < 4; ++k) t.off[k][i] += base;
    if (++r == P) {
      r = 0;
      ++n;
    }
  }
}

// out[n, c, p] = sum_k weight_k * src[n, c, offset_k] (NaN for an undefined point).
//   src (N, C, in_plane) contiguous, dst (N, C, P) contiguous. source.fill(tile, n, p0, len, deriv).
// A source whose points are stored back to back across images (Source::kFlat: grid_sample) with
// one channel and few points per image (RAFT's correlation lookups: hundreds of 7x7 samples of
// 16x16 planes) runs as one long image: full tiles across image boundaries, each tap offset moved
// to its image's plane, instead of a short tile per image.
template <typename scalar_t, typename acc_t, typename Source>
void sample_forward(const scalar_t* src, scalar_t* dst, int64_t N, int64_t C, int64_t in_plane, int64_t P,
                    const Source& source) {
  if constexpr (Source::kFlat) {
    if (C == 1 && P < kTile && N * in_plane <= std::numeric_limits<int32_t>::max()) {
      const int64_t total = N * P;
      if (source.sample_one_channel_batch_inner(src, dst, N, in_plane)) return;  // its fast path
      for_each_tile(1, total, [&](int64_t, int64_t q0, int64_t len) {
        if (source.sample_one_channel(src, dst + q0, q0, len, in_plane, N * in_plane)) return;  // its fast path
        TileTaps<acc_t, int32_t> t;
        source.fill(t, 0, q0, len, false);  // the points q0.. of the flattened (N * P) grid
        add_image_bases(t, len, P, in_plane, q0 / P, q0 % P);
        forward_channels<scalar_t, acc_t, int32_t>(src, dst + q0, 1, 0, total, len, N * in_plane, t);
        poison_undefined(dst + q0, 1, total, len, t);
      });
      return;
    }
  }
  if constexpr (Source::kFlat) {
    // A few channels (flow fields) straight from the grid source, where it can (its own fast path).
    if (C <= 4 && source.template few_channels_apply<scalar_t>(C, in_plane)) {
      for_each_tile(N, P, [&](int64_t n, int64_t p0, int64_t len) {
        source.sample_few_channels(src + n * C * in_plane, dst + n * C * P + p0, n, p0, len, C, in_plane, P);
      });
      return;
    }
  }
  with_plane_index(in_plane, [&](auto index_zero) {
    using index_t = decltype(index_zero);
    const int64_t tiles = (P + kTile - 1) / kTile;
    // Channels [0, c8) 8 at a time from a pixel-major copy of their planes (contiguous 8-channel
    // reads instead of gathers; see sample_backward's pass 2), one task per (image, 8 channels).
    int64_t c8 = 0;
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
      if (block8_applies<scalar_t, acc_t, index_t>(C, in_plane)) {
        c8 = C - C % 8;
        const int64_t blocks = c8 / 8, band_tiles = std::min(tiles, kBandTiles);
        at::parallel_for(0, N * blocks, 1, [&](int64_t begin, int64_t end) {
          std::vector<TileTaps<float, int32_t>> band(band_tiles);
          const AlignedFloats in8 = aligned_floats(in_plane * 8);
          int64_t band_image = -1;  // the image whose taps `band` holds, where one band covers it
          for (int64_t task = begin; task < end; ++task) {
            const int64_t n = task / blocks, c0 = (task % blocks) * 8;
            to_pixel_major8(src + (n * C + c0) * in_plane, in_plane, in_plane, in8.get());
            const bool refill = !(tiles == band_tiles && band_image == n);  // the next blocks reuse them
            band_image = tiles == band_tiles ? n : -1;
            for (int64_t b0 = 0; b0 < tiles; b0 += band_tiles) {
              const int64_t b1 = std::min(tiles, b0 + band_tiles);
              for (int64_t i = b0; i < b1; ++i) {
                const int64_t len = std::min(kTile, P - i * kTile);
                if (refill) source.fill(band[i - b0], n, i * kTile, len, false);
                float* out = dst + (n * C + c0) * P + i * kTile;
                forward_tile_block8(in8.get(), band[i - b0], len, out, P);
                poison_undefined(out, 8, P, len, band[i - b0]);
              }
            }
          }
        });
      }
    }
#endif
    if (c8 == C) return;
    // Bands of tiles, swept one chunk of channels at a time (see sample_backward: the chunk's planes
    // stay in cache however incoherent the points); bands small enough to give every thread several.
    const int64_t band_tiles =
        std::clamp(N * tiles / (4 * int64_t(at::get_num_threads())), int64_t(1), std::min(tiles, kBandTiles));
    const int64_t bands = (tiles + band_tiles - 1) / band_tiles;
    at::parallel_for(0, N * bands, 1, [&](int64_t begin, int64_t end) {
      std::vector<TileTaps<acc_t, index_t>> band(band_tiles);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / bands, b0 = (task % bands) * band_tiles, b1 = std::min(tiles, b0 + band_tiles);
        for (int64_t i = b0; i < b1; ++i)
          source.fill(band[i - b0], n, i * kTile, std::min(kTile, P - i * kTile), false);
        for (int64_t c0 = c8; c0 < C; c0 += kChunk) {
          for (int64_t i = b0; i < b1; ++i) {
            forward_channels<scalar_t, acc_t, index_t>(
                src + (n * C + c0) * in_plane, dst + (n * C + c0) * P + i * kTile, std::min(kChunk, C - c0), in_plane,
                P, std::min(kTile, P - i * kTile), in_plane, band[i - b0]);
          }
        }
        for (int64_t i = b0; i < b1; ++i) {
          poison_undefined(dst + (n * C + c8) * P + i * kTile, C - c8, P, std::min(kTile, P - i * kTile), band[i - b0]);
        }
      }
    });
  });
}

// The backward of sampling, both gradients from one taps table:
//   d loss / d src (gin != nullptr): grad_out scattered into the four taps of every point;
//   d loss / d (point coordinates) (want_coord): per point, the sum over channels of grad_out *
//     d sample / d x (and y), in the derivative units of the source (pixels for the warp,
//     normalised units for grid_sample), handed to store(n, p0, len, gx, gy) one tile at a time
//     (NaN where the point is undefined).
// Order of work: the taps of a band of tiles are tabulated once, then the band is swept one chunk
// of kChunk channels at a time (chunk outer, tiles inner). A chunk's planes (16 x 64 KB at 128^2)
// stay in the L2 cache while every tile of the band reads and adds into them; tile outer, every
// tile of an incoherent grid touched all C planes of the image and missed the cache on almost
// every tap (the backward with both gradients of a random grid was 2x slower). With fp32 and AVX2
// the input gradient is summed 8 channels at a time (scatter_tile_block8) in a pass of its own,
// over (image, 8 channels) tasks; channels left over take the plane-by-plane loop.
// No two threads ever add into the same (n, c) plane, every plane is summed in one fixed order
// (the tiles in order, the taps of scatter_tile_scalar) and every coordinate gradient chunk by
// chunk (kChunk), so the result is deterministic without atomics, whatever the thread count,
// band or strategy:
//   - at least as many images as threads, or few channels: one image per task;
//   - few large images: per band, the channels scattered in parallel and the coordinate gradients
//     computed in parallel over tiles.
//   src (N, C, in_plane), go (N, C, P) contiguous; gin (N, C, in_plane), need not be initialised:
//   every element is written (each plane zeroed by the thread that sums it, just before).
template <typename scalar_t, typename acc_t, typename Source, typename Store>
void sample_backward(const scalar_t* src, const scalar_t* go, acc_t* gin, bool want_coord, int64_t N, int64_t C,
                     int64_t in_plane, int64_t P, const Source& source, const Store& store) {
  with_plane_index(in_plane, [&](auto index_zero) {
    using index_t = decltype(index_zero);
    using Tile = TileTaps<acc_t, index_t>;
    const int64_t tiles = (P + kTile - 1) / kTile;
    const int64_t band_tiles = std::min(tiles, kBandTiles);
    auto tile_len = [&](int64_t i) { return std::min(kTile, P - i * kTile); };
    // Pass 2 (8 channels at a time) sums the input gradient of channels [0, c_plane) and, where
    // every channel is in a block of 8, the coordinate gradients too; pass 1 does the rest.
    const bool blocked = block8_applies<scalar_t, acc_t, index_t>(C, in_plane);
    const int64_t c_plane = gin != nullptr && blocked ? C - C % 8 : 0;
    const bool plane_scatter = gin != nullptr && c_plane < C;  // pass 1 sums planes [c_plane, C)
    const bool blocked_coord = want_coord && blocked && C % 8 == 0;
    const bool blocked_pass = c_plane > 0 || blocked_coord;

    // Band [b0, b1) of image n: band[i - b0] holds tile i's taps; gx/gy the band's coordinate sums.
    auto fill_tiles = [&](int64_t n, int64_t b0, int64_t i0, int64_t i1, Tile* band, bool derivatives) {
      for (int64_t i = i0; i < i1; ++i) source.fill(band[i - b0], n, i * kTile, tile_len(i), derivatives);
    };
    // Coordinate gradients of tiles [i0, i1), all channels, chunk outer.
    auto coordinate_tiles = [&](int64_t n, int64_t b0, int64_t i0, int64_t i1, const Tile* band, acc_t* gx, acc_t* gy) {
      std::fill(gx + (i0 - b0) * kTile, gx + (i1 - b0) * kTile, acc_t(0));
      std::fill(gy + (i0 - b0) * kTile, gy + (i1 - b0) * kTile, acc_t(0));
      for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
        const int64_t chunk = std::min(kChunk, C - c0);  // one chunk: a single partial, added to gx
        for (int64_t i = i0; i < i1; ++i) {
          coordinate_channels<scalar_t, acc_t, index_t>(
              src + (n * C + c0) * in_plane, go + (n * C + c0) * P + i * kTile, chunk, in_plane, P, tile_len(i),
              band[i - b0], gx + (i - b0) * kTile, gy + (i - b0) * kTile);
        }
      }
      for (int64_t i = i0; i < i1; ++i) {
        const Tile& t = band[i - b0];
        acc_t* tx = gx + (i - b0) * kTile;
        acc_t* ty = gy + (i - b0) * kTile;
        if (t.any_undefined) {
          for (int64_t j = 0; j < tile_len(i); ++j) {
            if (t.undefined[j]) tx[j] = ty[j] = std::numeric_limits<acc_t>::quiet_NaN();
          }
        }
        store(n, i * kTile, tile_len(i), tx, ty);
      }
    };
    // Input gradient of channels [c_begin, c_end) from tiles [b0, b1), chunk outer, tiles in order;
    // the planes are zeroed before the first band.
    auto scatter_tiles = [&](int64_t n, int64_t c_begin, int64_t c_end, int64_t b0, int64_t b1, const Tile* band) {
      if (b0 == 0) std::fill(gin + (n * C + c_begin) * in_plane, gin + (n * C + c_end) * in_plane, acc_t(0));
      for (int64_t c0 = c_begin; c0 < c_end; c0 += kChunk) {
        for (int64_t i = b0; i < b1; ++i) {
          for (int64_t c = c0; c < std::min(c_end, c0 + kChunk); ++c) {
            scatter_tile(go + (n * C + c) * P + i * kTile, gin + (n * C + c) * in_plane, &band[i - b0].off[0][0],
                         &band[i - b0].weight[0][0], kTile, 0, tile_len(i));
          }
        }
      }
    };

    if (tiles == 0) {  // no sample points: a zero input gradient
      if (gin != nullptr) std::fill(gin, gin + N * C * in_plane, acc_t(0));
      return;
    }
    // Pass 1: coordinate gradients and the plane-by-plane input gradient.
    const bool pass1_coord = want_coord && !blocked_coord;
    if (pass1_coord || plane_scatter) {
      if (N >= at::get_num_threads() || C <= kChunk) {
        at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
          std::vector<Tile> band(band_tiles);
          std::vector<acc_t> gx(pass1_coord ? band_tiles * kTile : 0), gy(gx.size());
          for (int64_t n = begin; n < end; ++n) {
            for (int64_t b0 = 0; b0 < tiles; b0 += band_tiles) {
              const int64_t b1 = std::min(tiles, b0 + band_tiles);
              fill_tiles(n, b0, b0, b1, band.data(), pass1_coord);
              if (pass1_coord) coordinate_tiles(n, b0, b0, b1, band.data(), gx.data(), gy.data());
              if (plane_scatter) scatter_tiles(n, c_plane, C, b0, b1, band.data());
            }
          }
        });
      } else {
        std::vector<Tile> band(band_tiles);
        std::vector<acc_t> gx(pass1_coord ? band_tiles * kTile : 0), gy(gx.size());
        for (int64_t n = 0; n < N; ++n) {
          for (int64_t b0 = 0; b0 < tiles; b0 += band_tiles) {
            const int64_t b1 = std::min(tiles, b0 + band_tiles);
            at::parallel_for(b0, b1, 1,
                             [&](int64_t i0, int64_t i1) { fill_tiles(n, b0, i0, i1, band.data(), pass1_coord); });
            if (plane_scatter) {
              at::parallel_for(c_plane, C, 1, [&](int64_t c_begin, int64_t c_end) {
                scatter_tiles(n, c_begin, c_end, b0, b1, band.data());
              });
            }
            if (pass1_coord) {
              at::parallel_for(b0, b1, 1, [&](int64_t i0, int64_t i1) {
                coordinate_tiles(n, b0, i0, i1, band.data(), gx.data(), gy.data());
              });
            }
          }
        }
      }
    }

#if CROSSNET_FAST_X86_DISPATCH
    // Pass 2, one task per (image, chunk of kChunk channels), its blocks of 8 in order: each block's
    // input and gradient in pixel-major buffers (in_plane x 8), swept band by band (an image of
    // one band keeps its taps for all its blocks; a larger one tabulates them again per block,
    // cheap next to the gathers and adds it saves). A chunk's coordinate
    // partial sums go to `partials`, added per point in chunk order at the end, as in pass 1.
    if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
      if (!blocked_pass) return;
      const int64_t chunks = (C + kChunk - 1) / kChunk;
      std::vector<float> partials(blocked_coord ? N * chunks * 2 * P : 0);  // (N, chunks, x/y, P)
      at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
        std::vector<Tile> band(band_tiles);
        const AlignedFloats in8 = aligned_floats(blocked_coord ? in_plane * 8 : 0);
        const AlignedFloats grad8 = aligned_floats(c_plane > 0 ? in_plane * 8 : 0);
        alignas(32) float g8[kTile][8];
        int64_t band_image = -1;  // the image whose taps `band` holds, where one band covers it
        for (int64_t task = begin; task < end; ++task) {
          const int64_t n = task / chunks, chunk = task % chunks;
          float* px = blocked_coord ? &partials[((n * chunks + chunk) * 2) * P] : nullptr;
          float* py = blocked_coord ? px + P : nullptr;
          if (blocked_coord) std::fill(px, px + 2 * P, 0.0f);
          for (int64_t c0 = chunk * kChunk; c0 < std::min(C, (chunk + 1) * kChunk); c0 += 8) {
            const bool scatter = c0 + 8 <= c_plane;
            if (!scatter && !blocked_coord) continue;
            if (blocked_coord) to_pixel_major8(src + (n * C + c0) * in_plane, in_plane, in_plane, in8.get());
            if (scatter) std::fill(grad8.get(), grad8.get() + in_plane * 8, 0.0f);
            const bool refill = !(tiles == band_tiles && band_image == n);  // the next blocks reuse them
            band_image = tiles == band_tiles ? n : -1;
            for (int64_t b0 = 0; b0 < tiles; b0 += band_tiles) {
              const int64_t b1 = std::min(tiles, b0 + band_tiles);
              if (refill) fill_tiles(n, b0, b0, b1, band.data(), blocked_coord);
              for (int64_t i = b0; i < b1; ++i) {
                to_pixel_major8(go + (n * C + c0) * P + i * kTile, P, tile_len(i), &g8[0][0]);
                if (scatter) scatter_tile_block8(g8, grad8.get(), band[i - b0], tile_len(i));
                if (blocked_coord) {
                  coordinate_tile_block8(g8, in8.get(), band[i - b0], tile_len(i), px + i * kTile, py + i * kTile);
                }
              }
            }
            if (scatter) store_block8(grad8.get(), in_plane, gin + (n * C + c0) * in_plane);
          }
        }
      });
      if (!blocked_coord) return;
      // The coordinate gradients: chunk partials summed in order, undefined points NaN, stored.
      at::parallel_for(0, N * tiles, 1, [&](int64_t begin, int64_t end) {
        Tile t;
        float gx[kTile], gy[kTile];
        for (int64_t task = begin; task < end; ++task) {
          const int64_t n = task / tiles, i = task % tiles, len = tile_len(i);
          std::fill(gx, gx + len, 0.0f);
          std::fill(gy, gy + len, 0.0f);
          for (int64_t chunk = 0; chunk < chunks; ++chunk) {
            const float* px = &partials[((n * chunks + chunk) * 2) * P + i * kTile];
            const float* py = px + P;
            for (int64_t j = 0; j < len; ++j) {
              gx[j] += px[j];
              gy[j] += py[j];
            }
          }
          source.fill(t, n, i * kTile, len, false);  // for the undefined points
          if (t.any_undefined) {
            for (int64_t j = 0; j < len; ++j) {
              if (t.undefined[j]) gx[j] = gy[j] = std::numeric_limits<float>::quiet_NaN();
            }
          }
          store(n, i * kTile, len, gx, gy);
        }
      });
    }
#endif
  });
}

}  // namespace cpu
}  // namespace crossnet_fast
