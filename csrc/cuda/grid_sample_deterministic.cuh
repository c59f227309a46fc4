// Deterministic input gradient of grid_sample: a gather instead of atomics, the warp's scheme
// (warp_deterministic.cuh) for grid points.
//
//  1. grid_sample_contributions: every (output point q, tap k) is an entry e = 4 * q + k whose key
//     is the input pixel it reads, n * H * W + y * W + x, where the tap's weight is non-zero, else
//     the sentinel N * H * W (sorts past every pixel).
//  2. sorted_segments (sorted_segments.cuh): a stable sort groups the entries by pixel, in
//     ascending e, and gives each pixel its segment. One sort takes at most INT_MAX entries
//     (PyTorch's limit): the launcher sorts groups of whole images (grid_sample_kernel.cu).
//  3. grid_sample_gather_grad: each input element sums weight * grad_out over its segment in that
//     order, in acc_t, and writes once (every element: no zero-fill). An entry's weight is
//     recomputed from the grid instead of stored, once per kGatherChannels channels. Bit-identical
//     from run to run.
#pragma once

#include "grid_sample_kernels.cuh"

namespace crossnet_fast {
namespace cuda {

constexpr int kContributionPointsPerBlock = kBlock;  // one thread per output point

// keys: (4 * N * Ho * Wo,) key_t; sentinel = N * H * W.
template <typename acc_t, typename key_t>
__global__ void __launch_bounds__(kBlock)
    grid_sample_contributions(const __grid_constant__ GridSampleParams p, key_t sentinel, key_t* keys) {
  const int64_t q = static_cast<int64_t>(blockIdx.x) * kContributionPointsPerBlock + threadIdx.x;
  if (q >= p.N * p.Ho * p.Wo) return;
  int64_t n, oy, ox;
  split_pixel<int64_t>(q, p.Ho, p.Wo, &n, &oy, &ox);
  const auto t = point_taps<acc_t, int64_t>(p, n, oy, ox).taps;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    keys[4 * q + k] = t.weight[k] != acc_t(0) ? static_cast<key_t>(n * p.H * p.W + t.offset[k]) : sentinel;
  }
}

// The weight of tap k (0..3) of `t` by selects: indexing t.weight with a run-time k would put the
// array in local memory.
template <typename acc_t, typename index_t>
__device__ __forceinline__ acc_t tap_weight(const BilinearTaps<acc_t, index_t>& t, int k) {
  const acc_t top = (k & 1) ? t.weight[1] : t.weight[0];
  const acc_t bottom = (k & 1) ? t.weight[3] : t.weight[2];
  return (k & 2) ? bottom : top;
}

// Channels a thread sums per pass over its segment: each entry's taps are recomputed from the grid
// once per pass, not once per channel (each channel still sums its entries in segment order).
constexpr int kGatherChannels = 4;

// Block: 32 input pixels x 8 channel groups. order: (4 * N * Ho * Wo,) int64 entry ids sorted by
// pixel; segment_start: (N * H * W + 1,) int64. grad_input: (N, C, H, W) scalar_t contiguous.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    grid_sample_gather_grad(const __grid_constant__ GridSampleParams p, const int64_t* order,
                            const int64_t* segment_start, scalar_t* grad_input) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t pix = static_cast<int64_t>(blockIdx.x) * kPixelsPerBlock + threadIdx.x % kPixelsPerBlock;
  const int64_t plane = p.H * p.W, out_plane = p.Ho * p.Wo;
  if (pix >= p.N * plane) return;
  const int64_t n = pix / plane;
  const int64_t begin = segment_start[pix];
  const int64_t end = segment_start[pix + 1];
  const scalar_t* go = static_cast<const scalar_t*>(p.grad_out) + n * p.C * out_plane;
  scalar_t* dst = grad_input + n * p.C * plane + (pix - n * plane);
  for (int64_t c0 = threadIdx.x / kPixelsPerBlock; c0 < p.C; c0 += kChannelGroups * kGatherChannels) {
    acc_t acc[kGatherChannels];
#pragma unroll
    for (int m = 0; m < kGatherChannels; ++m) acc[m] = acc_t(0);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t e = order[i];
      const int64_t q = e >> 2;  // the entry's output point (same image n)
      int64_t qn, oy, ox;
      split_pixel<int64_t>(q, p.Ho, p.Wo, &qn, &oy, &ox);
      const acc_t w = tap_weight(point_taps<acc_t, int64_t>(p, qn, oy, ox).taps, static_cast<int>(e & 3));
      const scalar_t* g = go + (q - qn * out_plane);
#pragma unroll
      for (int m = 0; m < kGatherChannels; ++m) {
        const int64_t c = c0 + m * kChannelGroups;
        if (c < p.C) acc[m] += w * static_cast<acc_t>(g[c * out_plane]);
      }
    }
#pragma unroll
    for (int m = 0; m < kGatherChannels; ++m) {
      const int64_t c = c0 + m * kChannelGroups;
      if (c < p.C) dst[c * plane] = static_cast<scalar_t>(acc[m]);
    }
  }
}

}  // namespace cuda
}  // namespace crossnet_fast
