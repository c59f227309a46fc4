// The 8-channel path of fp32 with AVX2: 8 channels of an image in pixel-major buffers (buf[pixel][j]
// for channel c0 + j, made by an 8x8 transpose per 8 pixels), so that one tap of one point is a
// single contiguous 8-lane read (forward, coordinate gradient) or read-add-write (input gradient)
// instead of 8 gathers or 8 scalar adds into 8 planes; the scalar adds are the backward's largest
// cost, the gathers the next. The blocks (one tile, 8 channels) and the passes that run them over
// a whole tensor (sample_forward's and sample_backward's, sampling_loops.h): each lane gets the
// products of the portable loop in its order, so the results are bit-identical to it.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include "../tile_taps.h"
#include "isa.h"
#include "tile_loops.h"

namespace crossnet_fast {
namespace cpu {

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

#if CROSSNET_FAST_X86_DISPATCH

// ---- blocks: one tile, 8 channels ---------------------------------------------------------------

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

// ---- passes: a whole tensor ---------------------------------------------------------------------

// sample_forward's channels [0, c8) of every image (c8 a multiple of 8), one task per (image, block
// of 8 channels): the block's planes copied pixel-major once, then every tile through
// forward_tile_block8. An image of one band keeps its taps for all its blocks; a larger one
// tabulates them again per block, which costs little next to the gathers it saves.
//   src (N, C, in_plane), dst (N, C, P) contiguous; source.fill(tile, n, p0, len, deriv).
template <typename Source>
void forward_block8_pass(const float* src, float* dst, int64_t N, int64_t C, int64_t c8, int64_t in_plane, int64_t P,
                         const Source& source) {
  const int64_t tiles = (P + kTile - 1) / kTile;
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

// sample_backward's 8-channel pass: the input gradient of channels [0, c8) (c8 a multiple of 8;
// 0: none) and, with `coord` (every channel in a block of 8), the coordinate gradients. One task per
// (image, chunk of kChunk channels), its blocks of 8 in order: each block's input and gradient in
// pixel-major buffers (in_plane x 8), swept band by band (taps reused across blocks as in
// forward_block8_pass). A chunk's coordinate partial sums go to `partials` and are added per point
// in chunk order at the end: the order of the plane pass, so the sums are the same.
//   Arguments as sample_backward's; gin (N, C, in_plane) when c8 > 0.
template <typename Source, typename Store>
void backward_block8_pass(const float* src, const float* go, float* gin, int64_t N, int64_t C, int64_t c8, bool coord,
                          int64_t in_plane, int64_t P, const Source& source, const Store& store) {
  using Tile = TileTaps<float, int32_t>;
  const int64_t tiles = (P + kTile - 1) / kTile;
  const int64_t band_tiles = std::min(tiles, kBandTiles);
  auto tile_len = [&](int64_t i) { return std::min(kTile, P - i * kTile); };
  const int64_t chunks = (C + kChunk - 1) / kChunk;
  std::vector<float> partials(coord ? N * chunks * 2 * P : 0);  // (N, chunks, x/y, P)
  at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<Tile> band(band_tiles);
    const AlignedFloats in8 = aligned_floats(coord ? in_plane * 8 : 0);
    const AlignedFloats grad8 = aligned_floats(c8 > 0 ? in_plane * 8 : 0);
    alignas(32) float g8[kTile][8];
    int64_t band_image = -1;  // the image whose taps `band` holds, where one band covers it
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / chunks, chunk = task % chunks;
      float* px = coord ? &partials[((n * chunks + chunk) * 2) * P] : nullptr;
      float* py = coord ? px + P : nullptr;
      if (coord) std::fill(px, px + 2 * P, 0.0f);
      for (int64_t c0 = chunk * kChunk; c0 < std::min(C, (chunk + 1) * kChunk); c0 += 8) {
        const bool scatter = c0 + 8 <= c8;
        if (!scatter && !coord) continue;
        if (coord) to_pixel_major8(src + (n * C + c0) * in_plane, in_plane, in_plane, in8.get());
        if (scatter) std::fill(grad8.get(), grad8.get() + in_plane * 8, 0.0f);
        const bool refill = !(tiles == band_tiles && band_image == n);  // the next blocks reuse them
        band_image = tiles == band_tiles ? n : -1;
        for (int64_t b0 = 0; b0 < tiles; b0 += band_tiles) {
          const int64_t b1 = std::min(tiles, b0 + band_tiles);
          if (refill) {
            for (int64_t i = b0; i < b1; ++i) source.fill(band[i - b0], n, i * kTile, tile_len(i), coord);
          }
          for (int64_t i = b0; i < b1; ++i) {
            to_pixel_major8(go + (n * C + c0) * P + i * kTile, P, tile_len(i), &g8[0][0]);
            if (scatter) scatter_tile_block8(g8, grad8.get(), band[i - b0], tile_len(i));
            if (coord) coordinate_tile_block8(g8, in8.get(), band[i - b0], tile_len(i), px + i * kTile, py + i * kTile);
          }
        }
        if (scatter) store_block8(grad8.get(), in_plane, gin + (n * C + c0) * in_plane);
      }
    }
  });
  if (!coord) return;
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

#endif  // CROSSNET_FAST_X86_DISPATCH

}  // namespace cpu
}  // namespace crossnet_fast
