// CUDA kernels of the Charbonnier loss rho = sqrt((pred - target)^2 + eps^2).
//
// Forward: one pass reads pred and target once, writes rho (reduction "none") and, when asked,
// d rho/d pred = d / rho (not scaled by the reduction: the autograd backward applies the scale in
// fp32, since 1/numel underflows fp16) in the same pass, and leaves one fp32 (fp64) partial sum per
// block; a single-block kernel adds the partials in a fixed order. The grid size depends only on
// numel and the device, so the loss is bit-identical from run to run (no atomics).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../charbonnier.h"
#include "../common.h"
#include "cuda_common.cuh"

namespace crossnet_fast {
namespace cuda {
namespace {

// Sum of v over the block, in a fixed order (warp butterflies, then the warp sums in order).
// The result is valid in thread 0.
template <typename acc_t>
__device__ acc_t block_sum(acc_t v) {
  __shared__ acc_t warp_sums[kBlock / 32];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  acc_t total = acc_t(0);
  if (threadIdx.x == 0) {
    for (int w = 0; w < kBlock / 32; ++w) total += warp_sums[w];
  }
  return total;
}

// a, b: numel elements (same strides, dense; the kernel walks storage order). elementwise, grad:
// outputs of the same layout or nullptr. partial: (gridDim.x,) acc_t or nullptr.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    charbonnier_fused(const scalar_t* a, const scalar_t* b, int64_t numel, at::opmath_type<scalar_t> eps2,
                      at::opmath_type<scalar_t> gscale, scalar_t* elementwise, scalar_t* grad,
                      at::opmath_type<scalar_t>* partial) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t sum = acc_t(0);
  const int64_t stride = int64_t(gridDim.x) * kBlock;
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < numel; i += stride) {
    const acc_t d = static_cast<acc_t>(a[i]) - static_cast<acc_t>(b[i]);
    const acc_t rho = charbonnier_rho(d, eps2);
    sum += rho;
    if (elementwise != nullptr) elementwise[i] = static_cast<scalar_t>(rho);
    if (grad != nullptr) grad[i] = static_cast<scalar_t>(gscale * d / rho);
  }
  if (partial == nullptr) return;  // uniform over the launch
  const acc_t total = block_sum(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// One block: loss = scale * sum(partial[0..count)), each thread summing a fixed strided subset.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock) charbonnier_finish(const at::opmath_type<scalar_t>* partial, int64_t count,
                                                             at::opmath_type<scalar_t> scale, scalar_t* loss) {
  using acc_t = at::opmath_type<scalar_t>;
  acc_t sum = acc_t(0);
  for (int64_t i = threadIdx.x; i < count; i += kBlock) sum += partial[i];
  const acc_t total = block_sum(sum);
  if (threadIdx.x == 0) *loss = static_cast<scalar_t>(total * scale);
}

// grad = upstream * scale * d / rho. upstream: one acc_t value, or numel of them (elementwise).
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    charbonnier_grad(const scalar_t* a, const scalar_t* b, int64_t numel, at::opmath_type<scalar_t> eps2,
                     at::opmath_type<scalar_t> gscale, const at::opmath_type<scalar_t>* upstream,
                     bool upstream_elementwise, scalar_t* grad) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t stride = int64_t(gridDim.x) * kBlock;
  const acc_t u0 = upstream_elementwise ? acc_t(0) : upstream[0];
  for (int64_t i = blockIdx.x * int64_t(kBlock) + threadIdx.x; i < numel; i += stride) {
    const acc_t d = static_cast<acc_t>(a[i]) - static_cast<acc_t>(b[i]);
    const acc_t u = upstream_elementwise ? upstream[i] : u0;
    grad[i] = static_cast<scalar_t>(u * gscale * d / charbonnier_rho(d, eps2));
  }
}

void check_pair(const at::Tensor& pred, const at::Tensor& target) {
  check_loss_inputs(pred, target);
  TORCH_CHECK(pred.is_cuda(), "pred and target must be on one CUDA device");
}

// pred and target as two tensors of one dense layout (kept when they already share one, so
// channels_last inputs are not copied), walked in storage order by the kernels.
std::pair<at::Tensor, at::Tensor> same_layout(const at::Tensor& pred, const at::Tensor& target) {
  if (pred.is_non_overlapping_and_dense() && target.strides() == pred.strides()) return {pred, target};
  return {pred.contiguous(), target.contiguous()};
}

// Blocks of the reducing pass: a few waves of the device, so the partials stay few.
int64_t reduce_grid(int64_t numel) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return std::max<int64_t>(1, std::min<int64_t>(ceil_div(numel, kBlock * 4), sms * 8));
}

int64_t elementwise_grid(int64_t numel) {
  return std::max<int64_t>(1, std::min<int64_t>(ceil_div(numel, kBlock), int64_t(1) << 20));
}

std::tuple<at::Tensor, at::Tensor> charbonnier_cuda(const at::Tensor& pred, const at::Tensor& target, double eps,
                                                    c10::string_view reduction, bool compute_grad) {
  check_pair(pred, target);
  const Reduction red = parse_reduction(reduction);
  const c10::cuda::CUDAGuard guard(pred.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor p, t;  // not a structured binding: lambdas cannot capture those in C++17
  std::tie(p, t) = same_layout(pred, target);
  const int64_t numel = p.numel();
  const double scale = reduction_scale(red, pred);
  const bool none = red == Reduction::None;
  at::Tensor elementwise = none ? at::empty_like(p) : at::Tensor();
  at::Tensor grad = compute_grad ? at::empty_like(p) : at::empty({0}, pred.options());
  at::Tensor loss = none ? elementwise : at::zeros({}, pred.options());
  if (numel > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "charbonnier_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const int64_t blocks = none ? elementwise_grid(numel) : reduce_grid(numel);
      at::Tensor partial =
          none ? at::Tensor() : at::empty({blocks}, pred.options().dtype(accumulate_type(pred.scalar_type())));
      charbonnier_fused<scalar_t><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(
          p.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(), numel, static_cast<acc_t>(eps * eps), acc_t(1),
          none ? elementwise.data_ptr<scalar_t>() : nullptr, compute_grad ? grad.data_ptr<scalar_t>() : nullptr,
          none ? nullptr : partial.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (!none) {
        charbonnier_finish<scalar_t><<<1, kBlock, 0, stream>>>(partial.data_ptr<acc_t>(), blocks,
                                                               static_cast<acc_t>(scale), loss.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  if (none) loss = like_input(elementwise, pred);
  if (compute_grad) grad = like_input(grad, pred);
  return {loss, grad};
}

at::Tensor charbonnier_backward_cuda(const at::Tensor& grad_loss, const at::Tensor& pred, const at::Tensor& target,
                                     double eps, c10::string_view reduction) {
  check_pair(pred, target);
  const Reduction red = parse_reduction(reduction);
  const c10::cuda::CUDAGuard guard(pred.device());
  at::Tensor p, t;  // not a structured binding: lambdas cannot capture those in C++17
  std::tie(p, t) = same_layout(pred, target);
  const int64_t numel = p.numel();
  const bool none = red == Reduction::None;
  const at::ScalarType acc_type = accumulate_type(pred.scalar_type());
  // The upstream gradient in the compute dtype: one value, or one per element in p's layout.
  at::Tensor up;
  if (none) {
    up = at::empty_like(p, p.options().dtype(acc_type));
    up.copy_(grad_loss.expand(pred.sizes()));
  } else {
    up = grad_loss.reshape({1}).to(acc_type).contiguous();
  }
  at::Tensor grad = at::empty_like(p);
  if (numel > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "charbonnier_backward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      charbonnier_grad<scalar_t>
          <<<static_cast<unsigned>(elementwise_grid(numel)), kBlock, 0, at::cuda::getCurrentCUDAStream()>>>(
              p.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(), numel, static_cast<acc_t>(eps * eps),
              static_cast<acc_t>(reduction_scale(red, pred)), up.data_ptr<acc_t>(), none, grad.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return like_input(grad, pred);
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(crossnet_fast, CUDA, m) {
  m.impl("charbonnier", &cuda::charbonnier_cuda);
  m.impl("charbonnier_backward", &cuda::charbonnier_backward_cuda);
}

}  // namespace crossnet_fast
