// The CPU loops of bilinear sampling over whole tensors, shared by the warp (multiscale_warp_kernel.cpp:
// sample points = pixel + flow) and grid_sample (grid_sample_kernel.cpp: points from a normalised
// grid).
//
// The parts (csrc/cpu/):
//   tile_taps.h         TileTaps, the taps table of one tile of kTile points (four plane offsets
//                       and weights per point, and the weights' derivatives for the backward), and
//                       the portable loops over one tile: samples, coordinate gradient, scatter.
//   sampling_loops.h    this file: sample_forward and sample_backward, and the one place each
//                       per-tile loop picks its AVX2 version (forward_channels, coordinate_channels,
//                       scatter_tile).
//   avx2/               the AVX2 building blocks, fp32 with int32 offsets (x86-64 only, chosen at run
//                       time, bit-identical to the portable loops):
//     isa.h             the compile-time switch, has_avx2() and the vector-path predicate;
//     tile_loops.h      the per-tile loops 8 points at a time, taps read in pairs;
//     block8.h          8 channels at a time in pixel-major buffers: the blocks and the passes of
//                       sample_forward and sample_backward that run them;
//     taps.h            the taps of 8 points, used by the two sources' fills, grid_taps.h and
//                       warp_taps.h;
//     grid_lookups.h    grid_sample's own one- and few-channel forward (RAFT's lookups and flow
//                       fields), which grid_sample_kernel.cpp tries before sample_forward.
//
// How they fit: an op describes its sample points by a taps source (GridSampleTaps, WarpTaps), an
// object with
//   operator()(n, p) -> GridTaps<acc_t, int64_t>   one point's taps (bilinear.h, the definition)
//   fill(TileTaps& t, n, p0, len, with_derivatives)  the taps of points [p0, p0 + len) of image n,
//                                                    by its AVX2 fill or point by point
// and passes it to sample_forward / sample_backward, which own the memory traffic: a tile's taps are
// computed once and reused for every channel, tiles are grouped into bands, and a band is swept one
// chunk of kChunk channels at a time so that the chunk's planes stay in cache however incoherent the
// points. Every sum has one fixed order, so results do not depend on the thread count, the split of
// the work or the instruction set. Accumulation in acc_t (fp32, fp64 for fp64).
//
// The two loops:
//   sample_forward   the channels in whole blocks of 8 by forward_block8_pass (fp32 with AVX2,
//                    C >= 8), the others band by band through forward_channels;
//   sample_backward  a BackwardPlan divides the work between backward_plane_pass (portable, plane by
//                    plane, split over images or within a band) and backward_block8_pass.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "avx2/block8.h"
#include "avx2/isa.h"
#include "avx2/tile_loops.h"
#include "tile_taps.h"

namespace crossnet_fast {
namespace cpu {

// ---- the per-tile loops, portable or AVX2 ------------------------------------------------------

// forward_channels_scalar for the points [0, len) of a tile; extent: elements readable from src
// (>= in_plane; the AVX2 loop reads tap pairs anywhere inside it).
template <typename scalar_t, typename acc_t, typename index_t>
void forward_channels(const scalar_t* src, scalar_t* dst, int64_t C, int64_t in_plane, int64_t P, int64_t len,
                      int64_t extent, const TileTaps<acc_t, index_t>& t) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (kAvx2Types<scalar_t, acc_t, index_t>) {
    if (has_avx2()) return forward_channels_avx2(src, dst, C, in_plane, P, len, extent, t);
  }
#endif
  forward_channels_scalar(src, dst, C, in_plane, P, int64_t(0), len, t);
}

// coordinate_channels_scalar for the points [0, len) of a tile.
template <typename scalar_t, typename acc_t, typename index_t>
void coordinate_channels(const scalar_t* src, const scalar_t* go, int64_t C, int64_t in_plane, int64_t P, int64_t len,
                         const TileTaps<acc_t, index_t>& t, acc_t* gx, acc_t* gy) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (kAvx2Types<scalar_t, acc_t, index_t>) {
    if (has_avx2()) return coordinate_channels_avx2(src, go, C, in_plane, P, len, t, gx, gy);
  }
#endif
  coordinate_channels_scalar(src, go, C, in_plane, P, int64_t(0), len, t, gx, gy);
}

// scatter_tile_scalar (the AVX2 version buffers at most a tile's points).
template <typename scalar_t, typename acc_t, typename index_t>
inline void scatter_tile(const scalar_t* g, acc_t* plane, const index_t* off, const acc_t* wt, int64_t stride,
                         int64_t p0, int64_t p1) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (kAvx2Types<scalar_t, acc_t, index_t>) {
    if (has_avx2() && p1 - p0 <= kTile) return scatter_tile_avx2(g, plane, off, wt, stride, p0, p1);
  }
#endif
  scatter_tile_scalar(g, plane, off, wt, stride, p0, p1);
}

// Whether the 8-channel passes (avx2/block8.h) run: the vector path, at least 8 channels, and
// pixel-major buffers of at most 8 MB each per thread.
template <typename scalar_t, typename acc_t, typename index_t>
inline bool block8_applies(int64_t C, int64_t in_plane) {
  return use_avx2<scalar_t, acc_t, index_t>() && C >= 8 && in_plane * 8 * int64_t(sizeof(float)) <= (int64_t(8) << 20);
}

// ---- forward ----------------------------------------------------------------------------------

// out[n, c, p] = sum_k weight_k * src[n, c, offset_k] (NaN for an undefined point).
//   src (N, C, in_plane) contiguous, dst (N, C, P) contiguous. source.fill(tile, n, p0, len, deriv).
// The channels in whole blocks of 8 go through forward_block8_pass where it applies (contiguous
// 8-channel reads instead of gathers); the others band by band, one chunk of channels at a time.
template <typename scalar_t, typename acc_t, typename Source>
void sample_forward(const scalar_t* src, scalar_t* dst, int64_t N, int64_t C, int64_t in_plane, int64_t P,
                    const Source& source) {
  with_plane_index(in_plane, [&](auto index_zero) {
    using index_t = decltype(index_zero);
    const int64_t tiles = (P + kTile - 1) / kTile;
    int64_t c8 = 0;  // channels [0, c8) done 8 at a time
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (kAvx2Types<scalar_t, acc_t, index_t>) {
      if (block8_applies<scalar_t, acc_t, index_t>(C, in_plane)) {
        c8 = C - C % 8;
        forward_block8_pass(src, dst, N, C, c8, in_plane, P, source);
      }
    }
#endif
    if (c8 == C) return;
    // Bands small enough to give every thread several.
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

// ---- backward ---------------------------------------------------------------------------------

// Who computes what in sample_backward. Two passes share the work:
//   the 8-channel pass (backward_block8_pass; fp32 with AVX2 and C >= 8) sums the input gradient of
//     the channels in whole blocks of 8, and the coordinate gradient where every channel is in one;
//   the plane pass (backward_plane_pass, portable) does the rest, plane by plane.
// The plane pass splits its work over threads in one of two ways (Split).
struct BackwardPlan {
  enum class Split {
    kImages,     // one image per task: at least as many images as threads, or few channels
    kBandParts,  // few large images: per band, the planes scattered in parallel and the
                 // coordinate gradients computed in parallel over tiles
  };
  int64_t block8_channels;  // the 8-channel pass sums the input gradient of channels [0, block8_channels)
  bool block8_coord;        // the 8-channel pass computes the coordinate gradient
  bool plane_scatter;       // the plane pass sums the input gradient of channels [block8_channels, C)
  bool plane_coord;         // the plane pass computes the coordinate gradient
  Split split;

  template <typename scalar_t, typename acc_t, typename index_t>
  static BackwardPlan make(bool want_input, bool want_coord, int64_t N, int64_t C, int64_t in_plane) {
    const bool block8 = block8_applies<scalar_t, acc_t, index_t>(C, in_plane);
    BackwardPlan plan;
    plan.block8_channels = want_input && block8 ? C - C % 8 : 0;
    plan.block8_coord = want_coord && block8 && C % 8 == 0;
    plan.plane_scatter = want_input && plan.block8_channels < C;
    plan.plane_coord = want_coord && !plan.block8_coord;
    plan.split = N >= at::get_num_threads() || C <= kChunk ? Split::kImages : Split::kBandParts;
    return plan;
  }
};

// sample_backward's plane pass: the input gradient of channels [plan.block8_channels, C) (with
// plan.plane_scatter) and the coordinate gradients (with plan.plane_coord), band by band, chunk of
// channels outer and tiles inner.
template <typename scalar_t, typename acc_t, typename index_t, typename Source, typename Store>
void backward_plane_pass(const scalar_t* src, const scalar_t* go, acc_t* gin, int64_t N, int64_t C, int64_t in_plane,
                         int64_t P, const BackwardPlan& plan, const Source& source, const Store& store) {
  using Tile = TileTaps<acc_t, index_t>;
  const int64_t tiles = (P + kTile - 1) / kTile;
  const int64_t band_tiles = std::min(tiles, kBandTiles);
  const int64_t c_plane = plan.block8_channels;  // the planes this pass sums: [c_plane, C)
  const bool coord = plan.plane_coord, scatter = plan.plane_scatter;
  auto tile_len = [&](int64_t i) { return std::min(kTile, P - i * kTile); };

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
        coordinate_channels<scalar_t, acc_t, index_t>(src + (n * C + c0) * in_plane, go + (n * C + c0) * P + i * kTile,
                                                      chunk, in_plane, P, tile_len(i), band[i - b0],
                                                      gx + (i - b0) * kTile, gy + (i - b0) * kTile);
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

  if (plan.split == BackwardPlan::Split::kImages) {
    at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
      std::vector<Tile> band(band_tiles);
      std::vector<acc_t> gx(coord ? band_tiles * kTile : 0), gy(gx.size());
      for (int64_t n = begin; n < end; ++n) {
        for (int64_t b0 = 0; b0 < tiles; b0 += band_tiles) {
          const int64_t b1 = std::min(tiles, b0 + band_tiles);
          fill_tiles(n, b0, b0, b1, band.data(), coord);
          if (coord) coordinate_tiles(n, b0, b0, b1, band.data(), gx.data(), gy.data());
          if (scatter) scatter_tiles(n, c_plane, C, b0, b1, band.data());
        }
      }
    });
    return;
  }
  std::vector<Tile> band(band_tiles);
  std::vector<acc_t> gx(coord ? band_tiles * kTile : 0), gy(gx.size());
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t b0 = 0; b0 < tiles; b0 += band_tiles) {
      const int64_t b1 = std::min(tiles, b0 + band_tiles);
      at::parallel_for(b0, b1, 1, [&](int64_t i0, int64_t i1) { fill_tiles(n, b0, i0, i1, band.data(), coord); });
      if (scatter) {
        at::parallel_for(c_plane, C, 1, [&](int64_t c_begin, int64_t c_end) {
          scatter_tiles(n, c_begin, c_end, b0, b1, band.data());
        });
      }
      if (coord) {
        at::parallel_for(b0, b1, 1, [&](int64_t i0, int64_t i1) {
          coordinate_tiles(n, b0, i0, i1, band.data(), gx.data(), gy.data());
        });
      }
    }
  }
}

// The backward of sampling, both gradients from one taps table:
//   d loss / d src (gin != nullptr): grad_out scattered into the four taps of every point;
//   d loss / d (point coordinates) (want_coord): per point, the sum over channels of grad_out *
//     d sample / d x (and y), in the derivative units of the source (pixels for the warp,
//     normalised units for grid_sample), handed to store(n, p0, len, gx, gy) one tile at a time
//     (NaN where the point is undefined).
// A BackwardPlan divides the work between the plane pass and the 8-channel pass. Both tabulate the
// taps of a band of tiles once and sweep it one chunk of kChunk channels at a time (chunk outer,
// tiles inner): a chunk's planes (16 x 64 KB at 128^2) stay in the L2 cache while every tile of the
// band reads and adds into them, where a tile-outer order would touch all C planes of the image per
// tile and, on an incoherent grid, miss the cache on almost every tap (about 2x slower).
// No two threads ever add into the same (n, c) plane, every plane is summed in one fixed order
// (the tiles in order, the taps of scatter_tile_scalar) and every coordinate gradient chunk by chunk
// (kChunk), so the result is deterministic without atomics, whatever the thread count, band or plan.
//   src (N, C, in_plane), go (N, C, P) contiguous; gin (N, C, in_plane), need not be initialised:
//   every element is written (each plane zeroed by the thread that sums it, just before).
template <typename scalar_t, typename acc_t, typename Source, typename Store>
void sample_backward(const scalar_t* src, const scalar_t* go, acc_t* gin, bool want_coord, int64_t N, int64_t C,
                     int64_t in_plane, int64_t P, const Source& source, const Store& store) {
  with_plane_index(in_plane, [&](auto index_zero) {
    using index_t = decltype(index_zero);
    if (P == 0) {  // no sample points: a zero input gradient
      if (gin != nullptr) std::fill(gin, gin + N * C * in_plane, acc_t(0));
      return;
    }
    const BackwardPlan plan = BackwardPlan::make<scalar_t, acc_t, index_t>(gin != nullptr, want_coord, N, C, in_plane);
    if (plan.plane_scatter || plan.plane_coord) {
      backward_plane_pass<scalar_t, acc_t, index_t>(src, go, gin, N, C, in_plane, P, plan, source, store);
    }
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (kAvx2Types<scalar_t, acc_t, index_t>) {
      if (plan.block8_channels > 0 || plan.block8_coord) {
        backward_block8_pass(src, go, gin, N, C, plan.block8_channels, plan.block8_coord, in_plane, P, source, store);
      }
    }
#endif
  });
}

}  // namespace cpu
}  // namespace crossnet_fast
