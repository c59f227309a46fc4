// Deterministic feature gradient of multiscale_warp: a gather instead of atomics.
//
//  1. warp_contributions: every (source pixel p, tap k) becomes an entry e = 4 * p + k whose key
//     is the destination pixel's id where the tap's weight is non-zero, else a sentinel that
//     sorts past every destination. Keys are 32-bit: one sort takes at most INT_MAX entries
//     (PyTorch's limit), so a larger pyramid is sorted one scale and one group of whole images at
//     a time (multiscale_warp_kernel.cu), and the radix sort runs over 32 bits, not 64.
//  2. The host sorts the keys stably (equal keys keep ascending e: a fixed order) and finds each
//     destination's segment with searchsorted.
//  3. warp_gather_grad: each destination element sums weight * grad_out over its segment in that
//     order, in fp32 (fp64 for fp64), and writes once. An entry's weight and grad_out offset are
//     recomputed from e (its source pixel and tap) instead of being stored, once per
//     kWarpGatherChannels channels: per pixel the pass
//     keeps 4 keys, 4 sorted keys and 4 int64 sort indices (the sort's own scratch on top), about
//     half of the earlier ~250 B with stored 64-bit keys, weights and offsets. No zero-fill, no
//     atomics: bit-identical from run to run. Pixel ids are global over the scales of one launch;
//     a destination only receives entries from its own scale.
#pragma once

#include <ATen/OpMathType.h>

#include "warp_kernels.cuh"

namespace crossnet_fast {
namespace cuda {

constexpr int kContributionPixelsPerBlock = kBlock;  // one thread per source pixel

// The taps of source pixel `pix` (index inside its scale) with plain (y * W + x) offsets.
template <typename acc_t>
__device__ __forceinline__ BilinearTaps<acc_t, int64_t> plain_taps(const WarpScale& d, Padding padding, int64_t pix,
                                                                   int64_t* n, int64_t* y, int64_t* x) {
  split_pixel<int64_t>(pix, d.H, d.W, n, y, x);
  const int64_t f = *n * d.flow_stride[0] + *y * d.flow_stride[2] + *x * d.flow_stride[3];
  const acc_t fx = load_as<acc_t>(d.flow, f, d.flow_kind);
  const acc_t fy = load_as<acc_t>(d.flow, f + d.flow_stride[1], d.flow_kind);
  return bilinear_taps<acc_t, int64_t>(static_cast<acc_t>(*x) + fx, static_cast<acc_t>(*y) + fy, d.H, d.W, padding);
}

// keys: (4 * total_pixels,) key_t (int32 in practice); sentinel = total_pixels.
template <typename acc_t, typename key_t>
__global__ void __launch_bounds__(kBlock)
    warp_contributions(const __grid_constant__ WarpParams p, key_t sentinel, key_t* keys) {
  const WarpScale& d = p.scale[scale_of_block(p, blockIdx.x)];
  const int64_t pix = (static_cast<int64_t>(blockIdx.x) - d.block_begin) * kContributionPixelsPerBlock + threadIdx.x;
  if (pix >= d.N * d.H * d.W) return;
  int64_t n, y, x;
  const auto t = plain_taps<acc_t>(d, p.padding, pix, &n, &y, &x);
  const int64_t e0 = 4 * (d.pixel_begin + pix);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const bool used = t.weight[k] != acc_t(0);
    keys[e0 + k] = used ? static_cast<key_t>(d.pixel_begin + n * d.H * d.W + t.offset[k]) : sentinel;
  }
}

// The weight of tap k (0..3) of `t` by selects: indexing t.weight with a run-time k would put the
// array in local memory.
template <typename acc_t>
__device__ __forceinline__ acc_t warp_tap_weight(const BilinearTaps<acc_t, int64_t>& t, int k) {
  const acc_t top = (k & 1) ? t.weight[1] : t.weight[0];
  const acc_t bottom = (k & 1) ? t.weight[3] : t.weight[2];
  return (k & 2) ? bottom : top;
}

// Channels a thread sums per pass over its segment: each entry's flow is re-read and its taps
// recomputed once per pass, not once per channel (each channel still sums in segment order).
constexpr int kWarpGatherChannels = 4;

// Block: 32 destination pixels x 8 channel groups, like warp_backward_strided.
// order: (entries,) int64, entry ids sorted by destination; segment_start: (total_pixels + 1,) int64.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    warp_gather_grad(const __grid_constant__ WarpParams p, const int64_t* order, const int64_t* segment_start) {
  using acc_t = at::opmath_type<scalar_t>;
  const WarpScale& d = p.scale[scale_of_block(p, blockIdx.x)];
  const int64_t pix =
      (static_cast<int64_t>(blockIdx.x) - d.block_begin) * kPixelsPerBlock + threadIdx.x % kPixelsPerBlock;
  if (pix >= d.N * d.H * d.W) return;
  int64_t n, y, x;
  split_pixel<int64_t>(pix, d.H, d.W, &n, &y, &x);
  const int64_t begin = segment_start[d.pixel_begin + pix];
  const int64_t end = segment_start[d.pixel_begin + pix + 1];
  const scalar_t* go = static_cast<const scalar_t*>(d.grad_out);
  scalar_t* dst = static_cast<scalar_t*>(d.out) + n * d.feat_stride[0] + y * d.feat_stride[2] + x * d.feat_stride[3];
  for (int64_t c0 = threadIdx.x / kPixelsPerBlock; c0 < d.C; c0 += kChannelGroups * kWarpGatherChannels) {
    acc_t acc[kWarpGatherChannels];
#pragma unroll
    for (int m = 0; m < kWarpGatherChannels; ++m) acc[m] = acc_t(0);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t e = order[i];
      int64_t sn, sy, sx;  // the entry's source pixel (same scale, same image)
      const auto t = plain_taps<acc_t>(d, p.padding, (e >> 2) - d.pixel_begin, &sn, &sy, &sx);
      const acc_t w = warp_tap_weight(t, static_cast<int>(e & 3));
      const scalar_t* g = go + sn * d.gout_stride[0] + sy * d.gout_stride[2] + sx * d.gout_stride[3];
#pragma unroll
      for (int m = 0; m < kWarpGatherChannels; ++m) {
        const int64_t c = c0 + m * kChannelGroups;
        if (c < d.C) acc[m] += w * static_cast<acc_t>(g[c * d.gout_stride[1]]);
      }
    }
#pragma unroll
    for (int m = 0; m < kWarpGatherChannels; ++m) {
      const int64_t c = c0 + m * kChannelGroups;
      if (c < d.C) dst[c * d.feat_stride[1]] = static_cast<scalar_t>(acc[m]);
    }
  }
}

}  // namespace cuda
}  // namespace crossnet_fast
