// CUDA kernels of upsample_flow (out = scale * bilinear(flow), align_corners=False) and resize_flow
// (any size, either convention, x and y scaled by their own ratio), and their backwards as a gather
// over each input sample's footprint (no atomics: deterministic).
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

// in: (planes, H, W) contiguous scalar_t; out: (planes, Ho, Wo) contiguous; plane p = n * C + c is
// multiplied by factor_y when c == 1 (a flow's y component) and by factor_x otherwise. `Axis`:
// UpsampleAxis or ResizeAxis (../upsample.h), the per-axis taps shared with the CPU kernels.
template <typename scalar_t, typename Axis>
__global__ void __launch_bounds__(kBlock)
    resample_forward(const scalar_t* in, scalar_t* out, int64_t total, int64_t C, int64_t H, int64_t W, int64_t Ho,
                     int64_t Wo, Axis ay, Axis ax, at::opmath_type<scalar_t> factor_x,
                     at::opmath_type<scalar_t> factor_y) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < total; i += int64_t(gridDim.x) * kBlock) {
    const int64_t x = i % Wo;
    const int64_t r = i / Wo;
    const int64_t y = r % Ho;
    const int64_t plane = r / Ho;
    const auto ty = ay.tap(y);
    const auto tx = ax.tap(x);
    const scalar_t* row0 = in + (plane * H + ty.i0) * W;
    const scalar_t* row1 = in + (plane * H + ty.i1) * W;
    // weighted(): a tap of weight 0 is not used (an inf there must not become NaN).
    const acc_t top = weighted(acc_t(1) - tx.frac, static_cast<acc_t>(row0[tx.i0])) +
                      weighted(tx.frac, static_cast<acc_t>(row0[tx.i1]));
    const acc_t bot = weighted(acc_t(1) - tx.frac, static_cast<acc_t>(row1[tx.i0])) +
                      weighted(tx.frac, static_cast<acc_t>(row1[tx.i1]));
    const acc_t factor = plane % C == 1 ? factor_y : factor_x;
    out[i] = static_cast<scalar_t>(factor * (weighted(acc_t(1) - ty.frac, top) + weighted(ty.frac, bot)));
  }
}

// Longest x footprint whose weights resample_backward keeps in registers (x8 upsampling: 24).
constexpr int kCachedFoot = 32;

// grad_out: (planes, Ho, Wo) contiguous; grad: (planes, H, W) contiguous. Each input sample sums
// the output gradients of its footprint with the forward's weights recomputed (no atomics:
// deterministic), rows gathered along x first.
template <typename scalar_t, typename Axis>
__global__ void __launch_bounds__(kBlock)
    resample_backward(const scalar_t* grad_out, scalar_t* grad, int64_t total, int64_t C, int64_t H, int64_t W,
                      int64_t Ho, int64_t Wo, Axis ay, Axis ax, at::opmath_type<scalar_t> factor_x,
                      at::opmath_type<scalar_t> factor_y) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < total; i += int64_t(gridDim.x) * kBlock) {
    const int64_t j = i % W;
    const int64_t r = i / W;
    const int64_t row = r % H;
    const int64_t plane = r / H;
    int64_t ylo, yhi, xlo, xhi;
    ay.footprint(row, &ylo, &yhi);
    ax.footprint(j, &xlo, &xhi);
    const scalar_t* g = grad_out + plane * Ho * Wo;
    acc_t acc = acc_t(0);
    const int64_t nx = xhi - xlo;
    if (nx <= kCachedFoot) {
      // The x weights once per input sample, in registers (constant indices after unrolling), not
      // once per row of the footprint: (3 s)^2 divisions at x`s` otherwise. Same sums, same order.
      acc_t wx[kCachedFoot];
#pragma unroll
      for (int k = 0; k < kCachedFoot; ++k) wx[k] = k < nx ? axis_weight<acc_t>(ax, xlo + k, j) : acc_t(0);
      for (int64_t dy = ylo; dy < yhi; ++dy) {
        const acc_t wy = axis_weight<acc_t>(ay, dy, row);
        if (wy == acc_t(0)) continue;
        const scalar_t* grow = g + dy * Wo + xlo;
        acc_t along_x = acc_t(0);
#pragma unroll
        for (int k = 0; k < kCachedFoot; ++k) {
          if (k < nx && wx[k] != acc_t(0)) along_x += wx[k] * static_cast<acc_t>(grow[k]);
        }
        acc += wy * along_x;
      }
    } else {
      for (int64_t dy = ylo; dy < yhi; ++dy) {
        const acc_t wy = axis_weight<acc_t>(ay, dy, row);
        if (wy == acc_t(0)) continue;
        acc_t along_x = acc_t(0);
        for (int64_t dx = xlo; dx < xhi; ++dx) {
          const acc_t wx = axis_weight<acc_t>(ax, dx, j);
          if (wx != acc_t(0)) along_x += wx * static_cast<acc_t>(g[dy * Wo + dx]);
        }
        acc += wy * along_x;
      }
    }
    const acc_t factor = plane % C == 1 ? factor_y : factor_x;
    grad[i] = static_cast<scalar_t>(factor * acc);
  }
}

unsigned grid_for(int64_t total) {
  // Enough blocks to fill the device several times over; the loops stride over the rest.
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(total, kBlock), int64_t(1) << 20)));
}

// Launches resample_forward: out (N, C, Ho, Wo) from in (N, C, H, W); ay, ax: UpsampleAxisSpec or
// ResizeAxisSpec (../upsample.h), made Axis objects of the dispatched accumulation type.
template <typename AxisSpec>
at::Tensor launch_forward(const at::Tensor& flow, const AxisSpec& ay, const AxisSpec& ax, int64_t Ho, int64_t Wo,
                          double factor_x, double factor_y) {
  const c10::cuda::CUDAGuard guard(flow.device());
  const int64_t N = flow.size(0), C = flow.size(1), H = flow.size(2), W = flow.size(3);
  const at::Tensor in = flow.contiguous();
  at::Tensor out = at::empty({N, C, Ho, Wo}, flow.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t total = out.numel();
  if (total == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, flow.scalar_type(), "resample_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    resample_forward<scalar_t><<<grid_for(total), kBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
        in.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), total, C, H, W, Ho, Wo, ay.template as<acc_t>(),
        ax.template as<acc_t>(), static_cast<acc_t>(factor_x), static_cast<acc_t>(factor_y));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// Launches resample_backward: grad (N, C, H, W) from grad_out (N, C, Ho, Wo).
template <typename AxisSpec>
at::Tensor launch_backward(const at::Tensor& grad_out, const AxisSpec& ay, const AxisSpec& ax, int64_t H, int64_t W,
                           double factor_x, double factor_y) {
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const int64_t N = grad_out.size(0), C = grad_out.size(1), Ho = grad_out.size(2), Wo = grad_out.size(3);
  const at::Tensor g = grad_out.contiguous();
  at::Tensor grad = at::empty({N, C, H, W}, grad_out.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t total = grad.numel();
  if (total == 0) return grad;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "resample_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    resample_backward<scalar_t><<<grid_for(total), kBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
        g.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), total, C, H, W, Ho, Wo, ay.template as<acc_t>(),
        ax.template as<acc_t>(), static_cast<acc_t>(factor_x), static_cast<acc_t>(factor_y));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad;
}

void check_cuda(const at::Tensor& t, const char* name) { TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor"); }

at::Tensor upsample_flow_cuda(const at::Tensor& flow, int64_t scale) {
  check_upsample_input(flow, scale, "flow");
  check_cuda(flow, "flow");
  const int64_t H = flow.size(2), W = flow.size(3);
  return launch_forward(flow, UpsampleAxisSpec{H, scale}, UpsampleAxisSpec{W, scale}, H * scale, W * scale,
                        double(scale), double(scale));
}

at::Tensor upsample_flow_backward_cuda(const at::Tensor& grad_out, int64_t scale) {
  check_upsample_input(grad_out, scale, "grad_out");
  check_cuda(grad_out, "grad_out");
  const int64_t Ho = grad_out.size(2), Wo = grad_out.size(3);
  TORCH_CHECK_VALUE(Ho % scale == 0 && Wo % scale == 0, "grad_out size ", grad_out.sizes(),
                    " must be a multiple of scale ", scale);
  const int64_t H = Ho / scale, W = Wo / scale;
  return launch_backward(grad_out, UpsampleAxisSpec{H, scale}, UpsampleAxisSpec{W, scale}, H, W, double(scale),
                         double(scale));
}

at::Tensor resize_flow_cuda(const at::Tensor& flow, int64_t height, int64_t width, bool align_corners) {
  check_resize_input(flow, height, width, "flow", "height, width");
  check_cuda(flow, "flow");
  const int64_t H = flow.size(2), W = flow.size(3);
  return launch_forward(flow, ResizeAxisSpec{H, height, align_corners}, ResizeAxisSpec{W, width, align_corners}, height,
                        width, double(width) / double(W), double(height) / double(H));
}

at::Tensor resize_flow_backward_cuda(const at::Tensor& grad_out, int64_t height, int64_t width, bool align_corners) {
  check_resize_input(grad_out, height, width, "grad_out", "input height, width");
  check_cuda(grad_out, "grad_out");
  const int64_t Ho = grad_out.size(2), Wo = grad_out.size(3);
  return launch_backward(grad_out, ResizeAxisSpec{height, Ho, align_corners}, ResizeAxisSpec{width, Wo, align_corners},
                         height, width, double(Wo) / double(width), double(Ho) / double(height));
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(crossnet_fast, CUDA, m) {
  m.impl("upsample_flow", &cuda::upsample_flow_cuda);
  m.impl("upsample_flow_backward", &cuda::upsample_flow_backward_cuda);
  m.impl("resize_flow", &cuda::resize_flow_cuda);
  m.impl("resize_flow_backward", &cuda::resize_flow_backward_cuda);
}

}  // namespace crossnet_fast
