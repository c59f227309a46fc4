// CUDA kernels of upsample_flow: out = scale * bilinear(flow) (align_corners=False), and its
// backward as a gather over each input sample's fixed footprint (no atomics: deterministic).
// Index math: ../upsample.h, shared with the CPU kernels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../common.h"
#include "../upsample.h"
#include "cuda_common.cuh"

namespace crossnet_fast {
namespace cuda {
namespace {

// in: (planes, H, W) contiguous scalar_t; out: (planes, H*scale, W*scale) contiguous.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock) upsample_forward(const scalar_t* in, scalar_t* out, int64_t total,
                                                           int64_t H, int64_t W, int64_t scale) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t Ho = H * scale, Wo = W * scale;
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < total; i += int64_t(gridDim.x) * kBlock) {
    const int64_t x = i % Wo;
    const int64_t r = i / Wo;
    const int64_t y = r % Ho;
    const int64_t plane = r / Ho;
    const auto ty = upsample_tap<acc_t>(y, scale, H);
    const auto tx = upsample_tap<acc_t>(x, scale, W);
    const scalar_t* row0 = in + (plane * H + ty.i0) * W;
    const scalar_t* row1 = in + (plane * H + ty.i1) * W;
    // weighted(): a tap of weight 0 is not used (an inf there must not become NaN).
    const acc_t top = weighted(acc_t(1) - tx.frac, static_cast<acc_t>(row0[tx.i0])) +
                      weighted(tx.frac, static_cast<acc_t>(row0[tx.i1]));
    const acc_t bot = weighted(acc_t(1) - tx.frac, static_cast<acc_t>(row1[tx.i0])) +
                      weighted(tx.frac, static_cast<acc_t>(row1[tx.i1]));
    out[i] = static_cast<scalar_t>(static_cast<acc_t>(scale) * (weighted(acc_t(1) - ty.frac, top) + weighted(ty.frac, bot)));
  }
}

// grad_out: (planes, H*scale, W*scale) contiguous; grad: (planes, H, W) contiguous. Each input
// sample sums the output gradients of its footprint, rows gathered along x first (the CPU order).
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock) upsample_backward(const scalar_t* grad_out, scalar_t* grad, int64_t total,
                                                            int64_t H, int64_t W, int64_t scale) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t Wo = W * scale;
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < total; i += int64_t(gridDim.x) * kBlock) {
    const int64_t j = i % W;
    const int64_t r = i / W;
    const int64_t row = r % H;
    const int64_t plane = r / H;
    int64_t ylo, yhi, xlo, xhi;
    upsample_footprint(row, scale, H, &ylo, &yhi);
    upsample_footprint(j, scale, W, &xlo, &xhi);
    const scalar_t* g = grad_out + plane * (H * scale) * Wo;
    acc_t acc = acc_t(0);
    for (int64_t dy = ylo; dy < yhi; ++dy) {
      const acc_t wy = upsample_weight<acc_t>(dy, row, scale, H);
      if (wy == acc_t(0)) continue;
      acc_t along_x = acc_t(0);
      for (int64_t dx = xlo; dx < xhi; ++dx) {
        const acc_t wx = upsample_weight<acc_t>(dx, j, scale, W);
        if (wx != acc_t(0)) along_x += wx * static_cast<acc_t>(g[dy * Wo + dx]);
      }
      acc += wy * along_x;
    }
    grad[i] = static_cast<scalar_t>(static_cast<acc_t>(scale) * acc);
  }
}

unsigned grid_for(int64_t total) {
  // Enough blocks to fill the device several times over; the loops stride over the rest.
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(total, kBlock), int64_t(1) << 20)));
}

void check_upsample(const at::Tensor& t, int64_t scale, const char* name) {
  check_upsample_input(t, scale, name);
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
}

at::Tensor upsample_flow_cuda(const at::Tensor& flow, int64_t scale) {
  check_upsample(flow, scale, "flow");
  const c10::cuda::CUDAGuard guard(flow.device());
  const int64_t N = flow.size(0), C = flow.size(1), H = flow.size(2), W = flow.size(3);
  const at::Tensor in = flow.contiguous();
  at::Tensor out = at::empty({N, C, H * scale, W * scale}, flow.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t total = out.numel();
  if (total == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, flow.scalar_type(), "upsample_flow_cuda", [&] {
    upsample_forward<scalar_t><<<grid_for(total), kBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
        in.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), total, H, W, scale);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor upsample_flow_backward_cuda(const at::Tensor& grad_out, int64_t scale) {
  check_upsample(grad_out, scale, "grad_out");
  const int64_t N = grad_out.size(0), C = grad_out.size(1), Ho = grad_out.size(2), Wo = grad_out.size(3);
  TORCH_CHECK_VALUE(Ho % scale == 0 && Wo % scale == 0, "grad_out size ", grad_out.sizes(),
                    " must be a multiple of scale ", scale);
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const int64_t H = Ho / scale, W = Wo / scale;
  const at::Tensor g = grad_out.contiguous();
  at::Tensor grad = at::empty({N, C, H, W}, grad_out.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t total = grad.numel();
  if (total == 0) return grad;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "upsample_flow_backward_cuda", [&] {
    upsample_backward<scalar_t><<<grid_for(total), kBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
        g.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), total, H, W, scale);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad;
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(crossnet_fast, CUDA, m) {
  m.impl("upsample_flow", &cuda::upsample_flow_cuda);
  m.impl("upsample_flow_backward", &cuda::upsample_flow_backward_cuda);
}

}  // namespace crossnet_fast
