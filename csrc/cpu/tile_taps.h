// The taps table of one tile of sample points (TileTaps) and the portable loops over one tile:
// the samples of C channels, the coordinate gradient over C channels, and the scatter of a
// gradient into one plane. The whole-tensor loops (sampling_loops.h) call these, or their AVX2
// versions (avx2/tile_loops.h, same sums in the same order). Accumulation in acc_t (fp32, fp64
// for fp64); plane offsets in index_t (int32 where a plane allows: half the table, and the index
// width of AVX2 gathers).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "../bilinear.h"

namespace crossnet_fast {
namespace cpu {

constexpr int64_t kTile = 256;  // points whose taps are computed once and reused for all channels
// Tiles whose taps are tabulated together (a "band": 1 MB of taps with their derivatives in fp32)
// so that the channel loops can sweep the whole band one chunk of channels at a time.
constexpr int64_t kBandTiles = 64;
// Channels per chunk of the coordinate-gradient sum. A point's gradient is summed chunk by chunk
// (a partial over each chunk's channels, from 0, then the partials in order), whichever way the
// work is split, so the result does not depend on the thread count or the strategy.
constexpr int64_t kChunk = 16;

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

// Calls fn(index_t{}) with int32 offsets when a plane of in_plane elements allows, else int64.
template <typename Fn>
inline void with_plane_index(int64_t in_plane, const Fn& fn) {
  if (in_plane <= std::numeric_limits<int32_t>::max()) {
    fn(int32_t(0));
  } else {
    fn(int64_t(0));
  }
}

// o[c][i] = sum_k weight_k[i] * plane_c[off_k[i]] for the points [i0, len) of a tile, the C
// channels of one image.
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

// plane[off_k[i]] += weight_k[i] * g[i] for the points [p0, p1) of a tap-major table of P points.
// One tap at a time over the points, not four taps per point: neighbouring points share taps, and
// a point's four adds in a row would make every add wait on the previous one's store (the loop is
// bound by that memory dependency, about 5x slower). The order of the adds is fixed, so the result
// is deterministic.
template <typename scalar_t, typename acc_t, typename index_t>
inline void scatter_tile_scalar(const scalar_t* g, acc_t* plane, const index_t* off, const acc_t* wt, int64_t stride,
                                int64_t p0, int64_t p1) {
  for (int k = 0; k < 4; ++k) {
    const index_t* o = off + k * stride;
    const acc_t* w = wt + k * stride;
    for (int64_t p = p0; p < p1; ++p) plane[o[p]] += weighted(w[p], acc_t(g[p]));
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

}  // namespace cpu
}  // namespace crossnet_fast
