// CPU kernels of the Charbonnier loss. The sum is split into fixed chunks whose partial sums are
// added in order, so the result does not depend on the thread count. When asked, the forward also
// writes d(loss)/d(pred), saving the backward a second read of both inputs.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "../charbonnier.h"
#include "../common.h"

namespace crossnet_fast {
namespace {

constexpr int64_t kChunk = 16384;

// Sum of sqrt((a-b)^2 + eps^2) over [begin, end), optionally writing each term and/or its
// gradient. Eight independent partial sums (summed in a fixed order) let the compiler vectorise the
// loop without reassociating one running sum, so results stay identical from run to run.
template <bool kElementwise, bool kGrad, typename scalar_t, typename acc_t>
acc_t charbonnier_chunk(const scalar_t* a, const scalar_t* b, scalar_t* e_out, scalar_t* g_out, int64_t begin,
                        int64_t end, acc_t eps2, acc_t gscale) {
  constexpr int kLanes = 8;
  acc_t lane[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const acc_t d = acc_t(a[i + j]) - acc_t(b[i + j]);
      const acc_t rho = charbonnier_rho(d, eps2);
      lane[j] += rho;
      if constexpr (kElementwise) e_out[i + j] = static_cast<scalar_t>(rho);
      if constexpr (kGrad) g_out[i + j] = static_cast<scalar_t>(gscale * d / rho);
    }
  }
  for (; i < end; ++i) {
    const acc_t d = acc_t(a[i]) - acc_t(b[i]);
    const acc_t rho = charbonnier_rho(d, eps2);
    lane[0] += rho;
    if constexpr (kElementwise) e_out[i] = static_cast<scalar_t>(rho);
    if constexpr (kGrad) g_out[i] = static_cast<scalar_t>(gscale * d / rho);
  }
  acc_t sum = 0;
  for (int j = 0; j < kLanes; ++j) sum += lane[j];
  return sum;
}

std::tuple<at::Tensor, at::Tensor> charbonnier_cpu(const at::Tensor& pred, const at::Tensor& target, double eps,
                                                   c10::string_view reduction, bool compute_grad) {
  check_loss_inputs(pred, target);
  const Reduction red = parse_reduction(reduction);
  const at::Tensor p = pred.contiguous(), t = target.contiguous();
  const int64_t numel = p.numel();
  const double scale = reduction_scale(red, pred);
  at::Tensor elementwise = red == Reduction::None ? at::empty_like(p) : at::Tensor();
  at::Tensor grad = compute_grad ? at::empty_like(p) : at::empty({0}, pred.options());
  at::Tensor loss;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "charbonnier_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* a = p.data_ptr<scalar_t>();
    const scalar_t* b = t.data_ptr<scalar_t>();
    scalar_t* e_out = red == Reduction::None ? elementwise.data_ptr<scalar_t>() : nullptr;
    scalar_t* g_out = compute_grad ? grad.data_ptr<scalar_t>() : nullptr;
    const acc_t eps2 = static_cast<acc_t>(eps * eps);
    // The fused gradient is d rho / d pred, not scaled by the reduction: 1/numel in fp16 would be
    // subnormal or 0 for large inputs; the autograd backward applies the scale in fp32.
    const acc_t gscale = acc_t(1);
    const int64_t chunks = (numel + kChunk - 1) / kChunk;
    std::vector<acc_t> partial(chunks, acc_t(0));
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ch = begin; ch < end; ++ch) {
        const int64_t first = ch * kChunk, stop = std::min(numel, (ch + 1) * kChunk);
        if (e_out && g_out)
          partial[ch] = charbonnier_chunk<true, true>(a, b, e_out, g_out, first, stop, eps2, gscale);
        else if (e_out)
          partial[ch] = charbonnier_chunk<true, false>(a, b, e_out, g_out, first, stop, eps2, gscale);
        else if (g_out)
          partial[ch] = charbonnier_chunk<false, true>(a, b, e_out, g_out, first, stop, eps2, gscale);
        else
          partial[ch] = charbonnier_chunk<false, false>(a, b, e_out, g_out, first, stop, eps2, gscale);
      }
    });
    if (red != Reduction::None) {
      acc_t total = 0;
      for (const acc_t v : partial) total += v;
      loss = at::scalar_tensor(static_cast<double>(total) * scale, pred.options());
    }
  });
  if (red == Reduction::None) loss = like_input(elementwise, pred);
  if (compute_grad) grad = like_input(grad, pred);
  return {loss, grad};
}

at::Tensor charbonnier_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& pred, const at::Tensor& target,
                                    double eps, c10::string_view reduction) {
  check_loss_inputs(pred, target);
  const Reduction red = parse_reduction(reduction);
  const at::Tensor p = pred.contiguous(), t = target.contiguous();
  const int64_t numel = p.numel();
  at::Tensor g = red == Reduction::None ? grad_loss.expand(pred.sizes()).contiguous() : grad_loss.reshape({1});
  const double scale = reduction_scale(red, pred);
  at::Tensor grad = at::empty_like(p);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pred.scalar_type(), "charbonnier_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor gl = g.to(pred.scalar_type());
    const scalar_t* a = p.data_ptr<scalar_t>();
    const scalar_t* b = t.data_ptr<scalar_t>();
    const scalar_t* gv = gl.data_ptr<scalar_t>();
    scalar_t* out = grad.data_ptr<scalar_t>();
    const acc_t eps2 = static_cast<acc_t>(eps * eps);
    const acc_t gscale = static_cast<acc_t>(scale);
    const bool elementwise = red == Reduction::None;
    at::parallel_for(0, numel, kChunk, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const acc_t d = acc_t(a[i]) - acc_t(b[i]);
        const acc_t upstream = elementwise ? acc_t(gv[i]) : acc_t(gv[0]);
        out[i] = static_cast<scalar_t>(upstream * gscale * d / charbonnier_rho(d, eps2));
      }
    });
  });
  return like_input(grad, pred);
}

}  // namespace

TORCH_LIBRARY_IMPL(crossnet_fast, CPU, m) {
  m.impl("charbonnier", &charbonnier_cpu);
  m.impl("charbonnier_backward", &charbonnier_backward_cpu);
}

}  // namespace crossnet_fast
