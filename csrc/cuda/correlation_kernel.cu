// CUDA kernels of the correlation (cost volume; the definition is in crossnet_fast/ops/correlation.py).
//
// Layout: f1, f2 and grad_out are read as contiguous NCHW (channels_last or strided inputs are
// copied once by .contiguous(); the cost volume's new shape is contiguous anyway). One thread per
// result element, consecutive threads along the last dimension, so every load of a warp is one
// coalesced row segment (every s-th element for stride s).
//
// Accumulation: at::opmath_type (fp32 for fp16/bf16/fp32, fp64 for fp64), rounded once to the
// output dtype after dividing by C, as the CPU kernel does.
//
// Determinism: the forward sums channels 0..C-1; both gradients are gathers, each element summing
// its terms over the displacements k = 0..K-1 in order (then over nothing else), so there are no
// atomics and the results are bit-identical from run to run, whatever the launch configuration.
// Locality: a term whose displaced point lies outside the image is skipped, never multiplied by a
// zero, so an inf/NaN reaches only the outputs (and gradient elements) that read it.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <array>

#include "../common.h"
#include "cuda_common.cuh"

namespace crossnet_fast {
namespace cuda {
namespace {

// [host-emulation begin] From here to the end marker the code is plain C++ apart from the CUDA
// keywords: tests/ops/test_correlation_cuda_host.py compiles it for the CPU and runs it against the
// float64 oracle, so the index math is tested without a GPU.

// The geometry shared by the three kernels (all sizes in elements of the NCHW arrays).
struct CorrGeometry {
  int64_t N, C, H, W, D, dil, s, Ho, Wo, side, K;
};

// The grid-stride loop of the three kernels: every element idx in [0, total) of a contiguous
// (d0, d1, d2, d3) array, consecutive threads on consecutive elements (coalesced), calls
// body(idx, i0, i1, i2, i3) with its indices. One copy of the loop and of the 64-bit index
// unpacking, so that the kernels cannot drift apart in either.
template <typename Body>
__device__ __forceinline__ void for_each_element(int64_t total, int64_t d1, int64_t d2, int64_t d3, Body body) {
  for (int64_t idx = blockIdx.x * int64_t(kBlock) + threadIdx.x; idx < total; idx += int64_t(gridDim.x) * kBlock) {
    const int64_t i3 = idx % d3;
    int64_t r = idx / d3;
    const int64_t i2 = r % d2;
    r /= d2;
    const int64_t i1 = r % d1;
    const int64_t i0 = r / d1;
    body(idx, i0, i1, i2, i3);
  }
}

// out (N, K, Ho, Wo): out[n, k, i, j] = (sum_c f1[n, c, y, x] * f2[n, c, yy, xx]) / C, with
// y = i*s, x = j*s, yy = y + dy*dil, xx = x + dx*dil; 0 when (yy, xx) is outside the image.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    correlation_fwd(const scalar_t* __restrict__ f1, const scalar_t* __restrict__ f2, scalar_t* __restrict__ out,
                    CorrGeometry g, int64_t total) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t plane = g.H * g.W;
  const acc_t c_count = static_cast<acc_t>(g.C);
  for_each_element(total, g.K, g.Ho, g.Wo, [&](int64_t idx, int64_t n, int64_t k, int64_t i, int64_t j) {
    const int64_t dy = k / g.side - g.D, dx = k % g.side - g.D;
    const int64_t y = i * g.s, x = j * g.s;
    const int64_t yy = y + dy * g.dil, xx = x + dx * g.dil;
    acc_t acc = acc_t(0);
    if (yy >= 0 && yy < g.H && xx >= 0 && xx < g.W) {
      const scalar_t* a = f1 + n * g.C * plane + y * g.W + x;
      const scalar_t* b = f2 + n * g.C * plane + yy * g.W + xx;
      for (int64_t c = 0; c < g.C; ++c) acc += static_cast<acc_t>(a[c * plane]) * static_cast<acc_t>(b[c * plane]);
      acc = acc / c_count;
    }
    out[idx] = static_cast<scalar_t>(acc);
  });
}

// grad_f1 (N, C, H, W): at a read point (y, x) = (i*s, j*s),
// sum_k G[n, k, i, j] * f2[n, c, y + dy*dil, x + dx*dil] / C over the k whose point is inside;
// 0 elsewhere (stride > 1: points f1 is never read at).
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    correlation_grad_f1(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ f2,
                        scalar_t* __restrict__ grad_f1, CorrGeometry g, int64_t total) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t plane = g.H * g.W, out_plane = g.Ho * g.Wo;
  const acc_t c_count = static_cast<acc_t>(g.C);
  for_each_element(total, g.C, g.H, g.W, [&](int64_t idx, int64_t n, int64_t c, int64_t y, int64_t x) {
    acc_t acc = acc_t(0);
    if (y % g.s == 0 && x % g.s == 0) {
      const int64_t i = y / g.s, j = x / g.s;
      const scalar_t* go = grad_out + n * g.K * out_plane + i * g.Wo + j;
      const scalar_t* b = f2 + (n * g.C + c) * plane;
      // Image coordinates fit in int (the 64-bit divisions and remainders of the inner loop would
      // cost more than the loads); the displacements run in k order, dy-major.
      const int H = static_cast<int>(g.H), W = static_cast<int>(g.W), D = static_cast<int>(g.D);
      const int dil = static_cast<int>(g.dil), side = static_cast<int>(g.side);
      for (int dy = -D; dy <= D; ++dy) {
        const int yy = static_cast<int>(y) + dy * dil;
        if (yy < 0 || yy >= H) continue;
        const scalar_t* go_row = go + int64_t(dy + D) * side * out_plane;
        const scalar_t* b_row = b + int64_t(yy) * W;
        for (int dx = -D; dx <= D; ++dx) {
          const int xx = static_cast<int>(x) + dx * dil;
          if (xx < 0 || xx >= W) continue;
          acc += static_cast<acc_t>(go_row[int64_t(dx + D) * out_plane]) * static_cast<acc_t>(b_row[xx]);
        }
      }
      acc = acc / c_count;
    }
    grad_f1[idx] = static_cast<scalar_t>(acc);
  });
}

// grad_f2 (N, C, H, W): at (yy, xx), sum_k G[n, k, y/s, x/s] * f1[n, c, y, x] / C over the k whose
// source point (y, x) = (yy - dy*dil, xx - dx*dil) is inside the image and a read point (y, x
// multiples of s).
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    correlation_grad_f2(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ f1,
                        scalar_t* __restrict__ grad_f2, CorrGeometry g, int64_t total) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t plane = g.H * g.W, out_plane = g.Ho * g.Wo;
  const acc_t c_count = static_cast<acc_t>(g.C);
  for_each_element(total, g.C, g.H, g.W, [&](int64_t idx, int64_t n, int64_t c, int64_t yy, int64_t xx) {
    const scalar_t* go = grad_out + n * g.K * out_plane;
    const scalar_t* a = f1 + (n * g.C + c) * plane;
    acc_t acc = acc_t(0);
    // int coordinates (see correlation_grad_f1); displacements in k order, dy-major.
    const int H = static_cast<int>(g.H), W = static_cast<int>(g.W), D = static_cast<int>(g.D);
    const int dil = static_cast<int>(g.dil), side = static_cast<int>(g.side), s = static_cast<int>(g.s);
    const int Wo = static_cast<int>(g.Wo);
    for (int dy = -D; dy <= D; ++dy) {
      const int y = static_cast<int>(yy) - dy * dil;
      if (y < 0 || y >= H || y % s != 0) continue;
      const scalar_t* go_row = go + int64_t(dy + D) * side * out_plane + int64_t(y / s) * Wo;
      const scalar_t* a_row = a + int64_t(y) * W;
      for (int dx = -D; dx <= D; ++dx) {
        const int x = static_cast<int>(xx) - dx * dil;
        if (x < 0 || x >= W || x % s != 0) continue;
        acc += static_cast<acc_t>(go_row[int64_t(dx + D) * out_plane + x / s]) * static_cast<acc_t>(a_row[x]);
      }
    }
    grad_f2[idx] = static_cast<scalar_t>(acc / c_count);
  });
}

// [host-emulation end]

CorrGeometry make_geometry(const at::Tensor& f1, int64_t D, int64_t dil, int64_t s) {
  CorrGeometry g;
  g.N = f1.size(0);
  g.C = f1.size(1);
  g.H = f1.size(2);
  g.W = f1.size(3);
  g.D = D;
  g.dil = dil;
  g.s = s;
  g.Ho = (g.H + s - 1) / s;
  g.Wo = (g.W + s - 1) / s;
  g.side = 2 * D + 1;
  g.K = g.side * g.side;
  return g;
}

// Blocks of a grid-stride launch over `total` elements (capped: each thread then loops).
unsigned grid_for(int64_t total) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(total, kBlock), int64_t(1) << 20)));
}

// CUDA tensors, and a geometry whose image coordinates and displacements the gradient kernels can
// add in int (each below 2^30, so no sum of two overflows).
void check_cuda(const at::Tensor& f1, const CorrGeometry& g) {
  TORCH_CHECK(f1.is_cuda(), "f1 and f2 must be CUDA tensors");
  constexpr int64_t kLimit = int64_t(1) << 30;
  TORCH_CHECK_VALUE(g.H < kLimit && g.W < kLimit && g.D * g.dil < kLimit && g.s < kLimit,
                    "correlation (CUDA): H, W, stride and max_displacement * dilation must be below 2^30, got H=", g.H,
                    ", W=", g.W, ", stride=", g.s, ", max_displacement * dilation=", g.D * g.dil);
}

at::Tensor correlation_cuda(const at::Tensor& f1, const at::Tensor& f2, int64_t max_displacement, int64_t dilation,
                            int64_t stride) {
  check_correlation_inputs(f1, f2, max_displacement, dilation, stride);
  const CorrGeometry g = make_geometry(f1, max_displacement, dilation, stride);
  check_cuda(f1, g);
  const c10::cuda::CUDAGuard guard(f1.device());
  at::Tensor out = at::empty({g.N, g.K, g.Ho, g.Wo}, f1.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  if (g.C == 0) return out.zero_();  // an empty channel sum
  const at::Tensor a = f1.contiguous(), b = f2.contiguous();
  const int64_t total = out.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "correlation_cuda", [&] {
    correlation_fwd<scalar_t><<<grid_for(total), kBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
        a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), g, total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> correlation_backward_cuda(const at::Tensor& grad_out, const at::Tensor& f1,
                                                             const at::Tensor& f2, int64_t max_displacement,
                                                             int64_t dilation, int64_t stride,
                                                             std::array<bool, 2> output_mask) {
  check_correlation_inputs(f1, f2, max_displacement, dilation, stride);
  const CorrGeometry g = make_geometry(f1, max_displacement, dilation, stride);
  check_cuda(f1, g);
  TORCH_CHECK_VALUE(grad_out.dim() == 4 && grad_out.size(0) == g.N && grad_out.size(1) == g.K &&
                        grad_out.size(2) == g.Ho && grad_out.size(3) == g.Wo,
                    "grad_out must have the correlation's output shape (", g.N, ", ", g.K, ", ", g.Ho, ", ", g.Wo,
                    "), got ", grad_out.sizes());
  TORCH_CHECK(grad_out.device() == f1.device(), "grad_out must be on the device of f1");
  const c10::cuda::CUDAGuard guard(f1.device());
  const auto contiguous = f1.options().memory_format(at::MemoryFormat::Contiguous);
  // Every element of both gradients is written by its kernel (zeros included): no fill needed.
  at::Tensor grad1 = output_mask[0] ? at::empty(f1.sizes(), contiguous) : at::empty({0}, f1.options());
  at::Tensor grad2 = output_mask[1] ? at::empty(f2.sizes(), contiguous) : at::empty({0}, f2.options());
  const int64_t total = f1.numel();
  if (total > 0) {  // else nothing to write: C == 0 or an empty batch or plane
    const at::Tensor go = grad_out.to(f1.scalar_type()).contiguous();
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f1.scalar_type(), "correlation_backward_cuda", [&] {
      if (output_mask[0]) {
        const at::Tensor b = f2.contiguous();
        correlation_grad_f1<scalar_t><<<grid_for(total), kBlock, 0, stream>>>(
            go.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), grad1.data_ptr<scalar_t>(), g, total);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      if (output_mask[1]) {
        const at::Tensor a = f1.contiguous();
        correlation_grad_f2<scalar_t><<<grid_for(total), kBlock, 0, stream>>>(
            go.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), grad2.data_ptr<scalar_t>(), g, total);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  if (output_mask[0]) grad1 = like_input(grad1, f1);
  if (output_mask[1]) grad2 = like_input(grad2, f2);
  return {grad1, grad2};
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(crossnet_fast, CUDA, m) {
  m.impl("correlation", &cuda::correlation_cuda);
  m.impl("correlation_backward", &cuda::correlation_backward_cuda);
}

}  // namespace crossnet_fast
