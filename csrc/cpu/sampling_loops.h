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

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <limits>
#include <type_traits>
#include <vector>

#include "../bilinear.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CROSSNET_FAST_X86_DISPATCH 1
#include <immintrin.h>
#define CROSSNET_FAST_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define CROSSNET_FAST_X86_DISPATCH 0
#endif

namespace crossnet_fast {
namespace cpu {

constexpr int64_t kTile = 256;  // points whose taps are computed once and reused for all channels

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
      o[i] = static_cast<scalar_t>(weighted(t.weight[0][i], acc_t(plane[t.off[0][i]])) +
                                   weighted(t.weight[1][i], acc_t(plane[t.off[1][i]])) +
                                   weighted(t.weight[2][i], acc_t(plane[t.off[2][i]])) +
                                   weighted(t.weight[3][i], acc_t(plane[t.off[3][i]])));
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
CROSSNET_FAST_TARGET_AVX2 inline __m256 weighted8(__m256 coef, __m256 value) {
  const __m256 used = _mm256_cmp_ps(coef, _mm256_setzero_ps(), _CMP_NEQ_UQ);
  return _mm256_and_ps(used, _mm256_mul_ps(coef, value));
}

// fp32 input, int32 offsets: 8 points at a time, their taps kept in registers while the loop runs
// over the channels (the order of PyTorch's vectorised CPU sampler; channel-outer was 1.3-2.7x
// slower here with gathers); the tail by the scalar loop. Same sums in the same order as the
// scalar code, so results do not depend on which path ran.
CROSSNET_FAST_TARGET_AVX2 inline void forward_channels_avx2(const float* src, float* dst, int64_t C, int64_t in_plane,
                                                            int64_t P, int64_t len,
                                                            const TileTaps<float, int32_t>& t) {
  const int64_t vec_len = len - len % 8;
  for (int64_t i = 0; i < vec_len; i += 8) {
    __m256i off[4];
    __m256 wk[4];
    for (int k = 0; k < 4; ++k) {
      off[k] = _mm256_loadu_si256((const __m256i*)(t.off[k] + i));
      wk[k] = _mm256_loadu_ps(t.weight[k] + i);
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
  for (int64_t i = 0; i < vec_len; i += 8) {
    __m256i off[4];
    __m256 dxk[4], dyk[4];
    for (int k = 0; k < 4; ++k) {
      off[k] = _mm256_loadu_si256((const __m256i*)(t.off[k] + i));
      dxk[k] = _mm256_loadu_ps(t.dx[k] + i);
      dyk[k] = _mm256_loadu_ps(t.dy[k] + i);
    }
    __m256 ax = _mm256_loadu_ps(gx + i), ay = _mm256_loadu_ps(gy + i);
    for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
      __m256 px = _mm256_setzero_ps(), py = _mm256_setzero_ps();
      for (int64_t c = c0; c < std::min(C, c0 + kChunk); ++c) {
        const float* plane = src + c * in_plane;
        const __m256 g = _mm256_loadu_ps(go + c * P + i);
        __m256 v[4];
        for (int k = 0; k < 4; ++k) v[k] = _mm256_i32gather_ps(plane, off[k], 4);
        __m256 sx = weighted8(dxk[0], v[0]), sy = weighted8(dyk[0], v[0]);
        for (int k = 1; k < 4; ++k) {
          sx = _mm256_add_ps(sx, weighted8(dxk[k], v[k]));
          sy = _mm256_add_ps(sy, weighted8(dyk[k], v[k]));
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
                      const TileTaps<acc_t, index_t>& t) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
    if (has_avx2()) return forward_channels_avx2(src, dst, C, in_plane, P, len, t);
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
      for_each_tile(1, total, [&](int64_t, int64_t q0, int64_t len) {
        TileTaps<acc_t, int32_t> t;
        source.fill(t, 0, q0, len, false);  // the points q0.. of the flattened (N * P) grid
        int64_t n = q0 / P, r = q0 % P;  // image and point of q0; then stepped (no division per point)
        for (int64_t i = 0; i < len; ++i) {
          const int32_t base = static_cast<int32_t>(n * in_plane);
          for (int k = 0; k < 4; ++k) t.off[k][i] += base;
          if (++r == P) {
            r = 0;
            ++n;
          }
        }
        forward_channels<scalar_t, acc_t, int32_t>(src, dst + q0, 1, 0, total, len, t);
        poison_undefined(dst + q0, 1, total, len, t);
      });
      return;
    }
  }
  with_plane_index(in_plane, [&](auto index_zero) {
    using index_t = decltype(index_zero);
    for_each_tile(N, P, [&](int64_t n, int64_t p0, int64_t len) {
      TileTaps<acc_t, index_t> t;
      source.fill(t, n, p0, len, false);
      forward_channels<scalar_t, acc_t, index_t>(src + n * C * in_plane, dst + n * C * P + p0, C, in_plane, P, len, t);
      poison_undefined(dst + n * C * P + p0, C, P, len, t);
    });
  });
}

// The backward of sampling, both gradients from one taps table:
//   d loss / d src (gin != nullptr): grad_out scattered into the four taps of every point;
//   d loss / d (point coordinates) (want_coord): per point, the sum over channels of grad_out *
//     d sample / d x (and y), in the derivative units of the source (pixels for the warp,
//     normalised units for grid_sample), handed to store(n, p0, len, gx, gy) one tile at a time
//     (NaN where the point is undefined).
// No two threads ever add into the same (n, c) plane, every plane is summed in one fixed order
// (scatter_tile over the tiles in order) and every coordinate gradient chunk by chunk (kChunk), so
// the result is deterministic without atomics, whatever the thread count or the strategy:
//   - at least as many images as threads, or few channels: one image per task, each tile's taps
//     filled once and used by both gradients while they are in cache;
//   - few large images: an image's taps tabulated once, then its channels scattered in parallel
//     and the coordinate gradients computed in parallel over tiles.
//   src (N, C, in_plane), go (N, C, P) contiguous; gin (N, C, in_plane) zero-initialised accumulator.
template <typename scalar_t, typename acc_t, typename Source, typename Store>
void sample_backward(const scalar_t* src, const scalar_t* go, acc_t* gin, bool want_coord, int64_t N, int64_t C,
                     int64_t in_plane, int64_t P, const Source& source, const Store& store) {
  with_plane_index(in_plane, [&](auto index_zero) {
    using index_t = decltype(index_zero);
    using Tile = TileTaps<acc_t, index_t>;
    // One tile's coordinate gradient (the taps in t) handed to store.
    auto coordinate_tile = [&](int64_t n, int64_t p0, int64_t len, const Tile& t) {
      acc_t gx[kTile], gy[kTile];
      std::fill(gx, gx + len, acc_t(0));
      std::fill(gy, gy + len, acc_t(0));
      coordinate_channels<scalar_t, acc_t, index_t>(src + n * C * in_plane, go + n * C * P + p0, C, in_plane, P, len,
                                                    t, gx, gy);
      if (t.any_undefined) {
        for (int64_t i = 0; i < len; ++i) {
          if (t.undefined[i]) gx[i] = gy[i] = std::numeric_limits<acc_t>::quiet_NaN();
        }
      }
      store(n, p0, len, gx, gy);
    };
    auto scatter_channels = [&](int64_t n, int64_t c0, int64_t c1, int64_t p0, int64_t len, const Tile& t) {
      for (int64_t c = c0; c < c1; ++c) {
        scatter_tile(go + (n * C + c) * P + p0, gin + (n * C + c) * in_plane, &t.off[0][0], &t.weight[0][0], kTile,
                     0, len);
      }
    };
    if (N >= at::get_num_threads() || C <= kChunk) {
      at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
        Tile t;
        for (int64_t n = begin; n < end; ++n) {
          for (int64_t p0 = 0; p0 < P; p0 += kTile) {
            const int64_t len = std::min(kTile, P - p0);
            source.fill(t, n, p0, len, want_coord);
            if (want_coord) coordinate_tile(n, p0, len, t);
            if (gin != nullptr) scatter_channels(n, 0, C, p0, len, t);
          }
        }
      });
      return;
    }
    const int64_t tiles = (P + kTile - 1) / kTile;
    std::vector<Tile> table(tiles);
    for (int64_t n = 0; n < N; ++n) {
      at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          source.fill(table[i], n, i * kTile, std::min(kTile, P - i * kTile), want_coord);
        }
      });
      if (gin != nullptr) {
        at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
          for (int64_t i = 0; i < tiles; ++i) {
            scatter_channels(n, begin, end, i * kTile, std::min(kTile, P - i * kTile), table[i]);
          }
        });
      }
      if (want_coord) {
        at::parallel_for(0, tiles, 1, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) coordinate_tile(n, i * kTile, std::min(kTile, P - i * kTile), table[i]);
        });
      }
    }
  });
}

}  // namespace cpu
}  // namespace crossnet_fast
