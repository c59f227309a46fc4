// Forward and backward kernels of multiscale_warp (one launch covers every scale).
//
// Two thread mappings:
//  * strided (any layout, the NCHW fast path): a block is 32 pixels (the lanes of a warp, so NCHW
//    loads and stores are row segments) x 8 channel groups; each thread loops over C / 8 channels.
//    The flow gradient of a pixel is reduced over its 8 groups in shared memory, in a fixed order.
//  * channels_last (NHWC, 16-byte aligned channel vectors): 2^log2_lanes lanes share a pixel, each
//    owning 16-byte channel vectors, so every tap is one contiguous, coalesced row of channels; the
//    feature gradient uses vector atomics and the flow gradient is reduced with warp shuffles.
// Sampling math: bilinear_taps_strided of ../bilinear.h (shared with the CPU kernels).
#pragma once

#include <ATen/OpMathType.h>

#include "warp_params.cuh"

namespace crossnet_fast {
namespace cuda {

// Decomposes a pixel id of one scale into (n, y, x).
template <typename index_t>
__device__ __forceinline__ void split_pixel(index_t pix, index_t H, index_t W, index_t* n, index_t* y, index_t* x) {
  const index_t hw = H * W;
  *n = pix / hw;
  const index_t r = pix - *n * hw;
  *y = r / W;
  *x = r - *y * W;
}

// Taps of output pixel (n, y, x) of scale d, with offsets in d's feature strides (within one image).
template <typename acc_t, typename index_t>
__device__ __forceinline__ BilinearTaps<acc_t, index_t> taps_of(const WarpScale& d, Padding padding, index_t n,
                                                                index_t y, index_t x) {
  const int64_t f = n * d.flow_stride[0] + y * d.flow_stride[2] + x * d.flow_stride[3];
  const acc_t fx = load_as<acc_t>(d.flow, f, d.flow_kind);
  const acc_t fy = load_as<acc_t>(d.flow, f + d.flow_stride[1], d.flow_kind);
  return bilinear_taps_strided<acc_t, index_t>(static_cast<acc_t>(x) + fx, static_cast<acc_t>(y) + fy, d.H, d.W,
                                               static_cast<index_t>(d.feat_stride[2]),
                                               static_cast<index_t>(d.feat_stride[3]), padding);
}

// Backward kernels: at least 3 blocks of 256 per SM (<= 85 registers). ptxas (sm_90) gives the
// 32-bit variants 61-66 registers either way; a cap of 4 blocks (64 registers) made the fp32 and
// half channels_last variants spill, so 3 keeps every hot variant spill-free.
constexpr int kBackwardBlocksPerSM = 3;

// ------------------------------------------------------------------------------------------------
// Strided kernels.

template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kBlock) warp_forward_strided(const __grid_constant__ WarpParams p) {
  using acc_t = at::opmath_type<scalar_t>;
  const WarpScale& d = p.scale[scale_of_block(p, blockIdx.x)];
  const index_t H = d.H, W = d.W, C = d.C;
  const index_t pix = (static_cast<index_t>(blockIdx.x) - static_cast<index_t>(d.block_begin)) * kPixelsPerBlock +
                      static_cast<index_t>(threadIdx.x % kPixelsPerBlock);
  if (pix >= static_cast<index_t>(d.N) * H * W) return;
  index_t n, y, x;
  split_pixel(pix, H, W, &n, &y, &x);
  const auto t = taps_of<acc_t, index_t>(d, p.padding, n, y, x);
  const index_t s1 = d.feat_stride[1];
  const scalar_t* src = static_cast<const scalar_t*>(d.feat) + n * static_cast<index_t>(d.feat_stride[0]);
  scalar_t* dst = static_cast<scalar_t*>(d.out) + n * static_cast<index_t>(d.feat_stride[0]) +
                  y * static_cast<index_t>(d.feat_stride[2]) + x * static_cast<index_t>(d.feat_stride[3]);
#pragma unroll 4
  for (index_t c = threadIdx.x / kPixelsPerBlock; c < C; c += kChannelGroups) {
    const scalar_t* plane = src + c * s1;
    const acc_t v = weighted(t.weight[0], static_cast<acc_t>(plane[t.offset[0]])) +
                    weighted(t.weight[1], static_cast<acc_t>(plane[t.offset[1]])) +
                    weighted(t.weight[2], static_cast<acc_t>(plane[t.offset[2]])) +
                    weighted(t.weight[3], static_cast<acc_t>(plane[t.offset[3]]));
    dst[c * s1] = static_cast<scalar_t>(v);
  }
}

template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kBlock, kBackwardBlocksPerSM)
    warp_backward_strided(const __grid_constant__ WarpParams p) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t partial[2][kChannelGroups][kPixelsPerBlock];
  const WarpScale& d = p.scale[scale_of_block(p, blockIdx.x)];
  const index_t H = d.H, W = d.W, C = d.C;
  const int lane = threadIdx.x % kPixelsPerBlock;
  const int group = threadIdx.x / kPixelsPerBlock;
  const index_t pix = (static_cast<index_t>(blockIdx.x) - static_cast<index_t>(d.block_begin)) * kPixelsPerBlock + lane;
  const bool valid = pix < static_cast<index_t>(d.N) * H * W;
  acc_t gx = acc_t(0), gy = acc_t(0);
  index_t n = 0, y = 0, x = 0;
  if (valid) {
    split_pixel(pix, H, W, &n, &y, &x);
    const auto t = taps_of<acc_t, index_t>(d, p.padding, n, y, x);
    const index_t s1 = d.feat_stride[1];
    const index_t g1 = d.gout_stride[1];
    const index_t base = n * static_cast<index_t>(d.feat_stride[0]);
    const scalar_t* src = static_cast<const scalar_t*>(d.feat) + base;
    // The feature gradient accumulates in an acc_t (fp32, fp64) buffer of the features' layout:
    // 16-bit atomics would stall a bf16 sum once it is 256x a contribution.
    acc_t* gfeat = p.need_feat ? static_cast<acc_t*>(d.out) + base : nullptr;
    const scalar_t* go = static_cast<const scalar_t*>(d.grad_out) + n * static_cast<index_t>(d.gout_stride[0]) +
                         y * static_cast<index_t>(d.gout_stride[2]) + x * static_cast<index_t>(d.gout_stride[3]);
#pragma unroll 2
    for (index_t c = group; c < C; c += kChannelGroups) {
      const acc_t g = static_cast<acc_t>(go[c * g1]);
      if (p.need_flow) {
        const scalar_t* plane = src + c * s1;
        acc_t v[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = static_cast<acc_t>(plane[t.offset[k]]);
        gx += g * (weighted(t.dweight_dx[0], v[0]) + weighted(t.dweight_dx[1], v[1]) + weighted(t.dweight_dx[2], v[2]) +
                   weighted(t.dweight_dx[3], v[3]));
        gy += g * (weighted(t.dweight_dy[0], v[0]) + weighted(t.dweight_dy[1], v[1]) + weighted(t.dweight_dy[2], v[2]) +
                   weighted(t.dweight_dy[3], v[3]));
      }
      if (gfeat != nullptr) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          // A zero-weight tap adds nothing (skipping it saves 3 of 4 atomics at integer flows).
          if (t.weight[k] != acc_t(0)) {
            gpuAtomicAddNoReturn(gfeat + c * s1 + t.offset[k], t.weight[k] * g);
          }
        }
      }
    }
  }
  if (!p.need_flow) return;  // uniform over the launch, so the barrier below is safe
  partial[0][group][lane] = gx;
  partial[1][group][lane] = gy;
  __syncthreads();
  if (group == 0 && valid) {
    acc_t sx = partial[0][0][lane], sy = partial[1][0][lane];
#pragma unroll
    for (int g = 1; g < kChannelGroups; ++g) {  // fixed order: deterministic
      sx += partial[0][g][lane];
      sy += partial[1][g][lane];
    }
    const int64_t o = n * d.gflow_stride[0] + y * d.gflow_stride[2] + x * d.gflow_stride[3];
    store_as<acc_t>(d.grad_flow, o, sx, d.flow_kind);
    store_as<acc_t>(d.grad_flow, o + d.gflow_stride[1], sy, d.flow_kind);
  }
}

// ------------------------------------------------------------------------------------------------
// channels_last kernels. Requirements checked by the host: channel stride 1, C a multiple of the
// vector width V, the other strides multiples of V, 16-byte aligned base pointers.

template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kBlock) warp_forward_nhwc(const __grid_constant__ WarpParams p) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int V = vec_width<scalar_t>();
  using vec_t = Vec<scalar_t, V>;
  const WarpScale& d = p.scale[scale_of_block(p, blockIdx.x)];
  const index_t H = d.H, W = d.W, C = d.C;
  const int log2_lanes = d.log2_lanes;
  const int lane = threadIdx.x & ((1 << log2_lanes) - 1);
  const index_t pix = ((static_cast<index_t>(blockIdx.x) - static_cast<index_t>(d.block_begin)) << (8 - log2_lanes)) +
                      static_cast<index_t>(threadIdx.x >> log2_lanes);
  if (pix >= static_cast<index_t>(d.N) * H * W) return;
  index_t n, y, x;
  split_pixel(pix, H, W, &n, &y, &x);
  const auto t = taps_of<acc_t, index_t>(d, p.padding, n, y, x);
  const index_t base = n * static_cast<index_t>(d.feat_stride[0]);
  const scalar_t* src = static_cast<const scalar_t*>(d.feat) + base;
  scalar_t* dst = static_cast<scalar_t*>(d.out) + base + y * static_cast<index_t>(d.feat_stride[2]) +
                  x * static_cast<index_t>(d.feat_stride[3]);
  for (index_t c = static_cast<index_t>(lane) * V; c < C; c += static_cast<index_t>(V) << log2_lanes) {
    vec_t tap[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) tap[k] = *reinterpret_cast<const vec_t*>(src + t.offset[k] + c);
    vec_t o;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      o.v[i] = static_cast<scalar_t>(weighted(t.weight[0], static_cast<acc_t>(tap[0].v[i])) +
                                     weighted(t.weight[1], static_cast<acc_t>(tap[1].v[i])) +
                                     weighted(t.weight[2], static_cast<acc_t>(tap[2].v[i])) +
                                     weighted(t.weight[3], static_cast<acc_t>(tap[3].v[i])));
    }
    *reinterpret_cast<vec_t*>(dst + c) = o;
  }
}

template <typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kBlock, kBackwardBlocksPerSM)
    warp_backward_nhwc(const __grid_constant__ WarpParams p) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int V = vec_width<scalar_t>();
  using vec_t = Vec<scalar_t, V>;
  const WarpScale& d = p.scale[scale_of_block(p, blockIdx.x)];
  const index_t H = d.H, W = d.W, C = d.C;
  const int log2_lanes = d.log2_lanes;
  const int lane = threadIdx.x & ((1 << log2_lanes) - 1);
  const index_t pix = ((static_cast<index_t>(blockIdx.x) - static_cast<index_t>(d.block_begin)) << (8 - log2_lanes)) +
                      static_cast<index_t>(threadIdx.x >> log2_lanes);
  const bool valid = pix < static_cast<index_t>(d.N) * H * W;
  acc_t gx = acc_t(0), gy = acc_t(0);
  index_t n = 0, y = 0, x = 0;
  if (valid) {
    split_pixel(pix, H, W, &n, &y, &x);
    const auto t = taps_of<acc_t, index_t>(d, p.padding, n, y, x);
    const index_t base = n * static_cast<index_t>(d.feat_stride[0]);
    const scalar_t* src = static_cast<const scalar_t*>(d.feat) + base;
    acc_t* gfeat = p.need_feat ? static_cast<acc_t*>(d.out) + base : nullptr;  // acc_t buffer, as above
    const scalar_t* go = static_cast<const scalar_t*>(d.grad_out) + n * static_cast<index_t>(d.gout_stride[0]) +
                         y * static_cast<index_t>(d.gout_stride[2]) + x * static_cast<index_t>(d.gout_stride[3]);
    for (index_t c = static_cast<index_t>(lane) * V; c < C; c += static_cast<index_t>(V) << log2_lanes) {
      const vec_t gv = *reinterpret_cast<const vec_t*>(go + c);
      acc_t g[V];
#pragma unroll
      for (int i = 0; i < V; ++i) g[i] = static_cast<acc_t>(gv.v[i]);
      if (p.need_flow) {
        vec_t tap[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) tap[k] = *reinterpret_cast<const vec_t*>(src + t.offset[k] + c);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          const acc_t v0 = tap[0].v[i], v1 = tap[1].v[i], v2 = tap[2].v[i], v3 = tap[3].v[i];
          gx += g[i] * (weighted(t.dweight_dx[0], v0) + weighted(t.dweight_dx[1], v1) + weighted(t.dweight_dx[2], v2) +
                        weighted(t.dweight_dx[3], v3));
          gy += g[i] * (weighted(t.dweight_dy[0], v0) + weighted(t.dweight_dy[1], v1) + weighted(t.dweight_dy[2], v2) +
                        weighted(t.dweight_dy[3], v3));
        }
      }
      if (gfeat != nullptr) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if (t.weight[k] == acc_t(0)) continue;  // a zero tap adds nothing
          acc_t contrib[V];
#pragma unroll
          for (int i = 0; i < V; ++i) contrib[i] = t.weight[k] * g[i];
          atomic_add_vec<acc_t, V>(gfeat + t.offset[k] + c, contrib);
        }
      }
    }
  }
  if (!p.need_flow) return;  // uniform over the launch
  // Butterfly over the lanes of one pixel (groups are aligned and never straddle a warp); every
  // lane of the warp takes part, valid or not, as __shfl_xor_sync requires.
  for (int offset = (1 << log2_lanes) >> 1; offset > 0; offset >>= 1) {
    gx += __shfl_xor_sync(0xffffffffu, gx, offset);
    gy += __shfl_xor_sync(0xffffffffu, gy, offset);
  }
  if (valid && lane == 0) {
    const int64_t o = n * d.gflow_stride[0] + y * d.gflow_stride[2] + x * d.gflow_stride[3];
    store_as<acc_t>(d.grad_flow, o, gx, d.flow_kind);
    store_as<acc_t>(d.grad_flow, o + d.gflow_stride[1], gy, d.flow_kind);
  }
}

}  // namespace cuda
}  // namespace crossnet_fast
