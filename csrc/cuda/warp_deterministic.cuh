// Deterministic feature gradient of multiscale_warp: a gather instead of atomics.
//
//  1. warp_contributions: every (source pixel p, tap k) with a non-zero weight becomes an entry
//     e = 4 * p + k with key = the destination pixel's id, its weight and the offset of p in
//     grad_out (zero-weight taps get a sentinel key that sorts past every destination).
//  2. The host sorts the keys stably (so equal keys keep ascending e: a fixed order) and finds
//     each destination's segment with searchsorted.
//  3. warp_gather_grad: each destination element sums weight * grad_out over its segment in that
//     order, in fp32 (fp64 for fp64), and writes once. No zero-fill, no atomics: bit-identical
//     from run to run. Pixel ids are global over the scales of one launch.
#pragma once

#include <ATen/OpMathType.h>

#include "warp_kernels.cuh"

namespace crossnet_fast {
namespace cuda {

constexpr int kContributionPixelsPerBlock = kBlock;  // one thread per source pixel

// keys, weights, gout_offset: (4 * total_pixels,) int64 / acc_t / int64.
template <typename acc_t>
__global__ void __launch_bounds__(kBlock) warp_contributions(const __grid_constant__ WarpParams p, int64_t sentinel,
                                                             int64_t* keys, acc_t* weights, int64_t* gout_offset) {
  const WarpScale& d = p.scale[scale_of_block(p, blockIdx.x)];
  const int64_t pix = (static_cast<int64_t>(blockIdx.x) - d.block_begin) * kContributionPixelsPerBlock + threadIdx.x;
  if (pix >= d.N * d.H * d.W) return;
  int64_t n, y, x;
  split_pixel<int64_t>(pix, d.H, d.W, &n, &y, &x);
  const int64_t f = n * d.flow_stride[0] + y * d.flow_stride[2] + x * d.flow_stride[3];
  const acc_t fx = load_as<acc_t>(d.flow, f, d.flow_kind);
  const acc_t fy = load_as<acc_t>(d.flow, f + d.flow_stride[1], d.flow_kind);
  // Plain offsets (y * W + x): a destination's pixel id is its image's first id plus the offset.
  const auto t = bilinear_taps<acc_t, int64_t>(static_cast<acc_t>(x) + fx, static_cast<acc_t>(y) + fy, d.H, d.W,
                                               p.padding);
  const int64_t e0 = 4 * (d.pixel_begin + pix);
  const int64_t go = n * d.gout_stride[0] + y * d.gout_stride[2] + x * d.gout_stride[3];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const bool used = t.weight[k] != acc_t(0);
    keys[e0 + k] = used ? d.pixel_begin + n * d.H * d.W + t.offset[k] : sentinel;
    weights[e0 + k] = t.weight[k];
    gout_offset[e0 + k] = go;
  }
}

// Block: 32 destination pixels x 8 channel groups, like warp_backward_strided.
// order: (entries,) int64, entry ids sorted by destination; segment_start: (total_pixels + 1,) int64.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock) warp_gather_grad(const __grid_constant__ WarpParams p,
                                                           const int64_t* order, const int64_t* segment_start,
                                                           const at::opmath_type<scalar_t>* weights,
                                                           const int64_t* gout_offset) {
  using acc_t = at::opmath_type<scalar_t>;
  const WarpScale& d = p.scale[scale_of_block(p, blockIdx.x)];
  const int64_t pix = (static_cast<int64_t>(blockIdx.x) - d.block_begin) * kPixelsPerBlock + threadIdx.x % kPixelsPerBlock;
  if (pix >= d.N * d.H * d.W) return;
  int64_t n, y, x;
  split_pixel<int64_t>(pix, d.H, d.W, &n, &y, &x);
  const int64_t begin = segment_start[d.pixel_begin + pix];
  const int64_t end = segment_start[d.pixel_begin + pix + 1];
  const scalar_t* go = static_cast<const scalar_t*>(d.grad_out);
  scalar_t* dst = static_cast<scalar_t*>(d.out) + n * d.feat_stride[0] + y * d.feat_stride[2] + x * d.feat_stride[3];
  for (int64_t c = threadIdx.x / kPixelsPerBlock; c < d.C; c += kChannelGroups) {
    const int64_t gc = c * d.gout_stride[1];
    acc_t acc = acc_t(0);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t e = order[i];
      acc += weights[e] * static_cast<acc_t>(go[gout_offset[e] + gc]);
    }
    dst[c * d.feat_stride[1]] = static_cast<scalar_t>(acc);
  }
}

}  // namespace cuda
}  // namespace crossnet_fast
