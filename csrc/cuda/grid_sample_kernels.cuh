// Forward and backward kernels of grid_sample (host side: grid_sample_kernel.cu).
//
// Thread mapping, as in the warp's strided kernels: a block is 32 output points (the lanes of a
// warp, so that the contiguous (N, C, Ho, Wo) output and incoming gradient are read and written as
// row segments) x 8 channel groups; each thread computes its point's taps once and loops over
// C / 8 channels. The grid gradient of a point is reduced over the 8 groups in shared memory, in a
// fixed order (no atomics). The input gradient is scattered with atomics into an acc_t buffer
// (fp32 for fp16/bf16/fp32, fp64 for fp64); see grid_sample_deterministic.cuh for the gather.
// Sampling math: grid_taps_strided of ../bilinear.h (shared with the CPU kernel).
#pragma once

#include <ATen/OpMathType.h>

#include <limits>

#include "../bilinear.h"
#include "warp_kernels.cuh"

namespace crossnet_fast {
namespace cuda {

struct GridSampleParams {
  const void* input;     // (N, C, H, W) scalar_t, contiguous
  const void* grid;      // (N, Ho, Wo, 2) grid_kind, strides grid_stride (elements); normalised (x, y)
  void* out;             // forward: (N, C, Ho, Wo) scalar_t contiguous; backward: the atomic path's
                         // grad_input buffer, (N, C, H, W) acc_t contiguous (nullptr when not wanted)
  const void* grad_out;  // backward: (N, C, Ho, Wo) scalar_t contiguous
  void* grad_grid;       // backward: (N, Ho, Wo, 2) grid_kind, strides ggrid_stride (nullptr when not wanted)
  int64_t N, C, H, W, Ho, Wo;
  int64_t grid_stride[4];
  int64_t ggrid_stride[4];
  FloatKind grid_kind;
  GridPadding padding;
  bool align_corners;
};

// Taps of output point (n, oy, ox): offsets y * W + x inside one (H, W) input plane.
template <typename acc_t, typename index_t>
__device__ __forceinline__ GridTaps<acc_t, index_t> point_taps(const GridSampleParams& p, int64_t n, int64_t oy,
                                                               int64_t ox) {
  const int64_t g = n * p.grid_stride[0] + oy * p.grid_stride[1] + ox * p.grid_stride[2];
  const acc_t gx = load_as<acc_t>(p.grid, g, p.grid_kind);
  const acc_t gy = load_as<acc_t>(p.grid, g + p.grid_stride[3], p.grid_kind);
  const index_t W = static_cast<index_t>(p.W);
  return grid_taps_strided<acc_t, index_t>(gx, gy, static_cast<index_t>(p.H), W, W, index_t(1), p.padding,
                                           p.align_corners);
}

// Output point of this thread: q = (n * Ho + oy) * Wo + ox, and the channel group.
template <typename index_t>
struct PointOfThread {
  index_t q, n, oy, ox;
  int group;
  bool valid;
};

template <typename index_t>
__device__ __forceinline__ PointOfThread<index_t> point_of_thread(const GridSampleParams& p) {
  PointOfThread<index_t> r;
  r.q = static_cast<index_t>(blockIdx.x) * kPixelsPerBlock + static_cast<index_t>(threadIdx.x % kPixelsPerBlock);
  r.group = threadIdx.x / kPixelsPerBlock;
  r.valid = r.q < static_cast<index_t>(p.N * p.Ho * p.Wo);
  r.n = r.oy = r.ox = 0;
  if (r.valid) split_pixel<index_t>(r.q, static_cast<index_t>(p.Ho), static_cast<index_t>(p.Wo), &r.n, &r.oy, &r.ox);
  return r;
}

template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kBlock) grid_sample_forward_kernel(const __grid_constant__ GridSampleParams p) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto pt = point_of_thread<index_t>(p);
  if (!pt.valid) return;
  const index_t C = p.C, plane = p.H * p.W, out_plane = p.Ho * p.Wo;
  const auto gt = point_taps<acc_t, index_t>(p, pt.n, pt.oy, pt.ox);
  const BilinearTaps<acc_t, index_t>& t = gt.taps;
  const scalar_t* src = static_cast<const scalar_t*>(p.input) + pt.n * C * plane;
  scalar_t* dst = static_cast<scalar_t*>(p.out) + pt.n * C * out_plane + (pt.q - pt.n * out_plane);
  // An undefined point (NaN grid, or +-inf without border padding) is NaN in every channel; its
  // taps are all 0, so nothing is read for it.
  const acc_t nan = std::numeric_limits<acc_t>::quiet_NaN();
#pragma unroll 4
  for (index_t c = pt.group; c < C; c += kChannelGroups) {
    const scalar_t* s = src + c * plane;
    const acc_t v = weighted(t.weight[0], static_cast<acc_t>(s[t.offset[0]])) +
                    weighted(t.weight[1], static_cast<acc_t>(s[t.offset[1]])) +
                    weighted(t.weight[2], static_cast<acc_t>(s[t.offset[2]])) +
                    weighted(t.weight[3], static_cast<acc_t>(s[t.offset[3]]));
    dst[c * out_plane] = static_cast<scalar_t>(gt.undefined ? nan : v);
  }
}

// At least 2 blocks of 256 per SM (<= 128 registers). The warp's cap of 3 (85 registers) made the
// 64-bit-index and fp64 variants spill 20-116 B per thread (ptxas, sm_90): the padding math and a
// point's 16 tap values live across the channel loop.
constexpr int kGridBackwardBlocksPerSM = 2;

// need_input: scatter into p.out (acc_t buffer); need_grid: write p.grad_grid.
template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kBlock, kGridBackwardBlocksPerSM)
    grid_sample_backward_kernel(const __grid_constant__ GridSampleParams p, bool need_input, bool need_grid) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t partial[2][kChannelGroups][kPixelsPerBlock];
  const auto pt = point_of_thread<index_t>(p);
  const int lane = threadIdx.x % kPixelsPerBlock;
  acc_t gx = acc_t(0), gy = acc_t(0);
  bool undefined = false;
  if (pt.valid) {
    const index_t C = p.C, plane = p.H * p.W, out_plane = p.Ho * p.Wo;
    const auto gt = point_taps<acc_t, index_t>(p, pt.n, pt.oy, pt.ox);
    const BilinearTaps<acc_t, index_t>& t = gt.taps;
    undefined = gt.undefined;
    const index_t base = pt.n * C * plane;
    const scalar_t* src = static_cast<const scalar_t*>(p.input) + base;
    // acc_t buffer: 16-bit atomics would stall a bf16 sum once it is 256x a contribution.
    acc_t* ginput = need_input ? static_cast<acc_t*>(p.out) + base : nullptr;
    const scalar_t* go = static_cast<const scalar_t*>(p.grad_out) + pt.n * C * out_plane + (pt.q - pt.n * out_plane);
#pragma unroll 2
    for (index_t c = pt.group; c < C; c += kChannelGroups) {
      const acc_t g = static_cast<acc_t>(go[c * out_plane]);
      if (need_grid) {
        const scalar_t* s = src + c * plane;
        acc_t v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = static_cast<acc_t>(s[t.offset[k]]);
        gx += g * (weighted(t.dweight_dx[0], v[0]) + weighted(t.dweight_dx[1], v[1]) + weighted(t.dweight_dx[2], v[2]) +
                   weighted(t.dweight_dx[3], v[3]));
        gy += g * (weighted(t.dweight_dy[0], v[0]) + weighted(t.dweight_dy[1], v[1]) + weighted(t.dweight_dy[2], v[2]) +
                   weighted(t.dweight_dy[3], v[3]));
      }
      if (ginput != nullptr) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          // A zero-weight tap adds nothing (and is not touched: an inf gradient stays out of it).
          if (t.weight[k] != acc_t(0)) gpuAtomicAddNoReturn(ginput + c * plane + t.offset[k], t.weight[k] * g);
        }
      }
    }
  }
  if (!need_grid) return;  // uniform over the launch, so the barrier below is safe
  partial[0][pt.group][lane] = gx;
  partial[1][pt.group][lane] = gy;
  __syncthreads();
  if (pt.group == 0 && pt.valid) {
    acc_t sx = partial[0][0][lane], sy = partial[1][0][lane];
#pragma unroll
    for (int g = 1; g < kChannelGroups; ++g) {  // fixed order: deterministic
      sx += partial[0][g][lane];
      sy += partial[1][g][lane];
    }
    if (undefined) sx = sy = std::numeric_limits<acc_t>::quiet_NaN();
    const int64_t o = pt.n * p.ggrid_stride[0] + pt.oy * p.ggrid_stride[1] + pt.ox * p.ggrid_stride[2];
    store_as<acc_t>(p.grad_grid, o, sx, p.grid_kind);
    store_as<acc_t>(p.grad_grid, o + p.ggrid_stride[3], sy, p.grid_kind);
  }
}

}  // namespace cuda
}  // namespace crossnet_fast
