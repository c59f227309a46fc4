// CPU kernels of multiscale_warp and its backward: every scale in turn, through the sampling loops
// shared with grid_sample (sampling_loops.h: parallel over pixel tiles for the forward and the flow
// gradient, over channel planes for the feature gradient, so no two threads ever add into the same
// element: deterministic without atomics). The warp's part is its taps source, WarpTaps: pixel +
// flow through bilinear.h, with an AVX2 tile fill for fp32 (avx2/warp_taps.h). Accumulation in
// fp32 (fp64 for fp64).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common.h"
#include "avx2/isa.h"
#include "avx2/warp_taps.h"
#include "sampling_loops.h"
#include "tile_taps.h"

namespace crossnet_fast {
namespace {

// The taps source of one warp scale: pixel p (row-major in an H x W plane) of image n displaced by
// its flow; fl points at the (N, 2, H, W) flow in the accumulate type.
template <typename acc_t>
struct WarpTaps {
  const acc_t* fl;
  int64_t H, W;
  Padding padding;
  GridTaps<acc_t, int64_t> operator()(int64_t n, int64_t p) const {
    const acc_t* flow_n = fl + n * 2 * H * W;
    // A warp point is never "undefined": NaN handling is in the taps' weights (bilinear.h).
    return {bilinear_taps<acc_t, int64_t>(acc_t(p % W) + flow_n[p], acc_t(p / W) + flow_n[H * W + p], H, W, padding),
            false};
  }
  template <typename index_t>
  void fill(cpu::TileTaps<acc_t, index_t>& t, int64_t n, int64_t p0, int64_t len, bool with_derivatives) const {
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (cpu::kAvx2Types<acc_t, acc_t, index_t>) {  // (a fill reads the flow: no data type)
      const int64_t vec_len = len - len % 8;
      if (cpu::has_avx2() && cpu::fill_warp_taps_avx2(t, fl + n * 2 * H * W, p0, vec_len, H, W,
                                                      padding == Padding::Border, with_derivatives)) {
        if (vec_len < len) t.fill_pointwise(*this, n, p0, len, with_derivatives, vec_len);  // the tail
        return;
      }
    }
#endif
    t.fill_pointwise(*this, n, p0, len, with_derivatives);
  }
};

at::Tensor warp_forward_one(const at::Tensor& feat, const at::Tensor& flow, Padding padding) {
  const int64_t N = feat.size(0), C = feat.size(1), H = feat.size(2), W = feat.size(3);
  const at::Tensor feat_c = feat.contiguous();
  const at::Tensor flow_c = flow.to(accumulate_type(feat.scalar_type())).contiguous();
  at::Tensor out = at::empty({N, C, H, W}, feat.options().memory_format(at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "multiscale_warp_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cpu::sample_forward<scalar_t, acc_t>(feat_c.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, C, H * W, H * W,
                                         WarpTaps<acc_t>{flow_c.data_ptr<acc_t>(), H, W, padding});
  });
  return like_input(out, feat);
}

// Both gradients of one scale from one pass (cpu::sample_backward: deterministic). grad_feat and
// grad_flow are set where asked for.
void warp_backward_one(const at::Tensor& grad_out, const at::Tensor& feat, const at::Tensor& flow, Padding padding,
                       bool want_feat, bool want_flow, at::Tensor& grad_feat, at::Tensor& grad_flow) {
  const int64_t N = feat.size(0), C = feat.size(1), H = feat.size(2), W = feat.size(3);
  const int64_t HW = H * W;
  const at::ScalarType acc_type = accumulate_type(feat.scalar_type());
  const at::Tensor feat_c = feat.contiguous();
  const at::Tensor go_c = grad_out.to(feat.scalar_type()).contiguous();
  const at::Tensor flow_c = flow.to(acc_type).contiguous();
  // every element written by sample_backward
  at::Tensor grad_acc = want_feat ? at::empty({N, C, H, W}, feat.options().dtype(acc_type)) : at::Tensor();
  at::Tensor gflow = want_flow ? at::empty({N, 2, H, W}, flow_c.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "multiscale_warp_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    acc_t* gfl = want_flow ? gflow.data_ptr<acc_t>() : nullptr;
    cpu::sample_backward<scalar_t, acc_t>(feat_c.data_ptr<scalar_t>(), go_c.data_ptr<scalar_t>(),
                                          want_feat ? grad_acc.data_ptr<acc_t>() : nullptr, want_flow, N, C, HW, HW,
                                          WarpTaps<acc_t>{flow_c.data_ptr<acc_t>(), H, W, padding},
                                          [&](int64_t n, int64_t p0, int64_t len, const acc_t* gx, const acc_t* gy) {
                                            acc_t* ox = gfl + n * 2 * HW + p0;  // channel 0 of (N, 2, H, W)
                                            acc_t* oy = ox + HW;
                                            for (int64_t i = 0; i < len; ++i) {
                                              ox[i] = gx[i];
                                              oy[i] = gy[i];
                                            }
                                          });
  });
  if (want_feat) grad_feat = like_input(grad_acc.to(feat.scalar_type()), feat);
  if (want_flow) grad_flow = like_input(gflow.to(flow.scalar_type()), flow);
}

std::vector<at::Tensor> multiscale_warp_cpu(at::TensorList feats, at::TensorList flows, c10::string_view padding) {
  check_warp_inputs(feats, flows);
  const Padding pad = parse_padding(padding);
  std::vector<at::Tensor> outs;
  outs.reserve(feats.size());
  for (size_t s = 0; s < feats.size(); ++s) outs.push_back(warp_forward_one(feats[s], flows[s], pad));
  return outs;
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> multiscale_warp_backward_cpu(
    at::TensorList grad_outs, at::TensorList feats, at::TensorList flows, c10::string_view padding,
    std::array<bool, 2> output_mask) {
  check_warp_inputs(feats, flows);
  TORCH_CHECK_VALUE(grad_outs.size() == feats.size(), "grad_outs must have one tensor per scale");
  const Padding pad = parse_padding(padding);
  std::vector<at::Tensor> grad_feats, grad_flows;
  for (size_t s = 0; s < feats.size(); ++s) {
    TORCH_CHECK_VALUE(grad_outs[s].sizes() == feats[s].sizes(), "grad_outs[", s, "] must have the shape of feats[", s,
                      "]");
    at::Tensor grad_feat, grad_flow;
    warp_backward_one(grad_outs[s], feats[s], flows[s], pad, output_mask[0], output_mask[1], grad_feat, grad_flow);
    if (output_mask[0]) grad_feats.push_back(grad_feat);
    if (output_mask[1]) grad_flows.push_back(grad_flow);
  }
  return {grad_feats, grad_flows};
}

}  // namespace

TORCH_LIBRARY_IMPL(crossnet_fast, CPU, m) {
  m.impl("multiscale_warp", &multiscale_warp_cpu);
  m.impl("multiscale_warp_backward", &multiscale_warp_backward_cpu);
}

}  // namespace crossnet_fast
