// The CPU loops of bilinear sampling, shared by the warp (sample points = pixel + flow) and
// grid_sample (points from a normalised grid). A "taps source" taps_of(n, p) returns the
// GridTaps<acc_t, int64_t> of point p of image n (for the warp `undefined` is always false); the
// loops own the memory traffic: taps computed once per tile and reused for every channel.
// Accumulation in acc_t (fp32, fp64 for fp64).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "../bilinear.h"

namespace crossnet_fast {
namespace cpu {

constexpr int64_t kTile = 256;  // points whose taps are computed once and reused for all channels

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

// out[n, c, p] = sum_k weight_k * src[n, c, offset_k] (NaN for an undefined point).
//   src (N, C, in_plane) contiguous, dst (N, C, P) contiguous.
template <typename scalar_t, typename acc_t, typename TapsOf>
void sample_forward(const scalar_t* src, scalar_t* dst, int64_t N, int64_t C, int64_t in_plane, int64_t P,
                    const TapsOf& taps_of) {
  for_each_tile(N, P, [&](int64_t n, int64_t p0, int64_t len) {
    int64_t off[4][kTile];
    acc_t wt[4][kTile];
    bool undefined[kTile];
    bool any_undefined = false;
    for (int64_t i = 0; i < len; ++i) {
      const auto t = taps_of(n, p0 + i);
      for (int k = 0; k < 4; ++k) {
        off[k][i] = t.taps.offset[k];
        wt[k][i] = t.taps.weight[k];
      }
      undefined[i] = t.undefined;
      any_undefined |= t.undefined;
    }
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t* plane = src + (n * C + c) * in_plane;
      scalar_t* o = dst + (n * C + c) * P + p0;
      for (int64_t i = 0; i < len; ++i) {
        o[i] = static_cast<scalar_t>(
            weighted(wt[0][i], acc_t(plane[off[0][i]])) + weighted(wt[1][i], acc_t(plane[off[1][i]])) +
            weighted(wt[2][i], acc_t(plane[off[2][i]])) + weighted(wt[3][i], acc_t(plane[off[3][i]])));
      }
      // Rare (non-finite grids only), so kept out of the hot loop above.
      if (any_undefined) {
        for (int64_t i = 0; i < len; ++i) {
          if (undefined[i]) o[i] = static_cast<scalar_t>(std::numeric_limits<acc_t>::quiet_NaN());
        }
      }
    }
  });
}

// d loss / d (point coordinates): for each point, sum over channels of grad_out * d sample / d x
// (and y), with the derivative conventions of the taps (pixels for the warp, normalised units for
// grid_sample). store(n, p0, len, gx, gy) writes one tile (gx, gy: len values, NaN where undefined).
//   src (N, C, in_plane), go (N, C, P) contiguous.
template <typename scalar_t, typename acc_t, typename TapsOf, typename Store>
void sample_coordinate_grad(const scalar_t* src, const scalar_t* go, int64_t N, int64_t C, int64_t in_plane,
                            int64_t P, const TapsOf& taps_of, const Store& store) {
  for_each_tile(N, P, [&](int64_t n, int64_t p0, int64_t len) {
    int64_t off[4][kTile];
    acc_t dx[4][kTile], dy[4][kTile];
    acc_t gx[kTile], gy[kTile];
    bool undefined[kTile];
    for (int64_t i = 0; i < len; ++i) {
      const auto t = taps_of(n, p0 + i);
      for (int k = 0; k < 4; ++k) {
        off[k][i] = t.taps.offset[k];
        dx[k][i] = t.taps.dweight_dx[k];
        dy[k][i] = t.taps.dweight_dy[k];
      }
      undefined[i] = t.undefined;
      gx[i] = acc_t(0);
      gy[i] = acc_t(0);
    }
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t* plane = src + (n * C + c) * in_plane;
      const scalar_t* g = go + (n * C + c) * P + p0;
      for (int64_t i = 0; i < len; ++i) {
        const acc_t v0 = plane[off[0][i]], v1 = plane[off[1][i]], v2 = plane[off[2][i]], v3 = plane[off[3][i]];
        const acc_t gi = g[i];
        gx[i] += gi * (weighted(dx[0][i], v0) + weighted(dx[1][i], v1) + weighted(dx[2][i], v2) +
                       weighted(dx[3][i], v3));
        gy[i] += gi * (weighted(dy[0][i], v0) + weighted(dy[1][i], v1) + weighted(dy[2][i], v2) +
                       weighted(dy[3][i], v3));
      }
    }
    for (int64_t i = 0; i < len; ++i) {
      if (undefined[i]) gx[i] = gy[i] = std::numeric_limits<acc_t>::quiet_NaN();
    }
    store(n, p0, len, gx, gy);
  });
}

// d loss / d src: scatter grad_out into the four taps of every point. The taps of one image are
// computed once into a scratch table, then each thread owns whole (n, c) planes, so the adds never
// race and their order is fixed (deterministic without atomics). The table is tap-major ([k][p])
// and scattered one tap at a time over a tile: neighbouring points share taps, and adding all four
// taps of a point before the next would chain every add to the previous store (a memory
// dependency that made this loop 5x slower).
//   go (N, C, P) contiguous; gin (N, C, in_plane) zero-initialised accumulator.
template <typename scalar_t, typename acc_t, typename TapsOf>
void sample_input_grad(const scalar_t* go, acc_t* gin, int64_t N, int64_t C, int64_t in_plane, int64_t P,
                       const TapsOf& taps_of) {
  std::vector<int64_t> off(4 * P);
  std::vector<acc_t> wt(4 * P);
  for (int64_t n = 0; n < N; ++n) {
    at::parallel_for(0, P, kTile, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const auto t = taps_of(n, p);
        for (int k = 0; k < 4; ++k) {
          off[k * P + p] = t.taps.offset[k];
          wt[k * P + p] = t.taps.weight[k];
        }
      }
    });
    at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const scalar_t* g = go + (n * C + c) * P;
        acc_t* plane = gin + (n * C + c) * in_plane;
        for (int64_t p0 = 0; p0 < P; p0 += kTile) {
          const int64_t p1 = std::min(P, p0 + kTile);
          for (int k = 0; k < 4; ++k) {
            const int64_t* o = off.data() + k * P;
            const acc_t* w = wt.data() + k * P;
            for (int64_t p = p0; p < p1; ++p) plane[o[p]] += weighted(w[p], acc_t(g[p]));
          }
        }
      }
    });
  }
}

}  // namespace cpu
}  // namespace crossnet_fast
