// CPU kernels of upsample_flow (out = scale * bilinear(flow), align_corners=False) and resize_flow
// (any size, either convention, x and y scaled by their own ratio). Separable: per-axis tap tables,
// one plane per task. The backward sums in a fixed order per plane: deterministic, no atomics.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common.h"
#include "../upsample.h"

namespace crossnet_fast {
namespace {

// The taps of every output index of one axis.
template <typename acc_t, typename Axis>
std::vector<UpsampleTap<acc_t>> axis_taps(const Axis& axis, int64_t size_out) {
  std::vector<UpsampleTap<acc_t>> taps(size_out);
  for (int64_t d = 0; d < size_out; ++d) taps[d] = axis.tap(d);
  return taps;
}

// The factor that turns channel c's interpolated values into output pixels: the y ratio for the
// second channel (a flow's y component), the x ratio for every other one (upsample_flow's two
// ratios are equal, so there any channel count is a uniform scale).
template <typename acc_t>
struct ChannelFactors {
  acc_t x, y;
  acc_t of(int64_t plane, int64_t C) const { return plane % C == 1 ? y : x; }
};

// Planes per task: small resizes (RAFT upsamples 2 planes of 128^2 a dozen times a forward) run on
// the calling thread, as waking the pool costs more than the work; large ones spread over threads.
int64_t planes_per_task(int64_t plane_elements) {
  constexpr int64_t kMinTaskElements = int64_t(1) << 16;
  return std::max<int64_t>(1, kMinTaskElements / std::max<int64_t>(plane_elements, 1));
}

// out (N, C, Ho, Wo) = factor(c) * bilinear(in) with the given per-axis taps; in (N, C, H, W).
// Separable: interpolate every input row along x once (H x Wo, already times the factor), then each
// output row is a blend of two of those rows, a loop the compiler vectorises.
template <typename Axis>
at::Tensor resample_forward(const at::Tensor& flow, const Axis& ay, const Axis& ax, int64_t Ho, int64_t Wo,
                            double factor_x, double factor_y) {
  const int64_t N = flow.size(0), C = flow.size(1), H = flow.size(2), W = flow.size(3);
  const at::Tensor in = flow.contiguous();
  at::Tensor out = at::empty({N, C, Ho, Wo}, flow.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, flow.scalar_type(), "resample_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto ty = axis_taps<acc_t>(ay.template as<acc_t>(), Ho);
    const auto tx = axis_taps<acc_t>(ax.template as<acc_t>(), Wo);
    const ChannelFactors<acc_t> factors{static_cast<acc_t>(factor_x), static_cast<acc_t>(factor_y)};
    const scalar_t* src = in.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, N * C, planes_per_task(Ho * Wo), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> rows(H * Wo);
      for (int64_t plane = begin; plane < end; ++plane) {
        const acc_t s = factors.of(plane, C);
        const scalar_t* in_plane = src + plane * H * W;
        for (int64_t i = 0; i < H; ++i) {
          const scalar_t* r = in_plane + i * W;
          acc_t* o = rows.data() + i * Wo;
          for (int64_t x = 0; x < Wo; ++x) {
            const auto& t = tx[x];
            o[x] = s * (weighted(acc_t(1) - t.frac, acc_t(r[t.i0])) + weighted(t.frac, acc_t(r[t.i1])));
          }
        }
        scalar_t* out_plane = dst + plane * Ho * Wo;
        for (int64_t y = 0; y < Ho; ++y) {
          const acc_t* r0 = rows.data() + ty[y].i0 * Wo;
          const acc_t* r1 = rows.data() + ty[y].i1 * Wo;
          const acc_t fy = ty[y].frac, gy = acc_t(1) - fy;
          scalar_t* o = out_plane + y * Wo;
          for (int64_t x = 0; x < Wo; ++x) o[x] = static_cast<scalar_t>(weighted(gy, r0[x]) + weighted(fy, r1[x]));
        }
      }
    });
  });
  return out;
}

// The adjoint of resample_forward: grad (N, C, H, W) from grad_out (N, C, Ho, Wo). Per plane, in a
// fixed order (deterministic, no atomics): every output row adds its weighted gradient into the
// two input rows it read (full-width vector loops), then each of those H rows is scattered along x
// into its W input samples; the scalar x pass thus runs over H rows, not Ho (8x fewer for RAFT's
// x8 upsampling). A zero weight adds nothing, as in the forward.
template <typename Axis>
at::Tensor resample_backward(const at::Tensor& grad_out, const Axis& ay, const Axis& ax, int64_t H, int64_t W,
                             double factor_x, double factor_y) {
  const int64_t N = grad_out.size(0), C = grad_out.size(1), Ho = grad_out.size(2), Wo = grad_out.size(3);
  const at::Tensor g = grad_out.contiguous();
  at::Tensor grad = at::empty({N, C, H, W}, grad_out.options().memory_format(at::MemoryFormat::Contiguous));
  if (grad.numel() == 0) return grad;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "resample_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto ty = axis_taps<acc_t>(ay.template as<acc_t>(), Ho);
    const auto tx = axis_taps<acc_t>(ax.template as<acc_t>(), Wo);
    const ChannelFactors<acc_t> factors{static_cast<acc_t>(factor_x), static_cast<acc_t>(factor_y)};
    const scalar_t* src = g.data_ptr<scalar_t>();
    scalar_t* dst = grad.data_ptr<scalar_t>();
    at::parallel_for(0, N * C, planes_per_task(Ho * Wo), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> rows(H * Wo);  // the gradient gathered along y: input rows x output columns
      std::vector<acc_t> line(W);
      for (int64_t plane = begin; plane < end; ++plane) {
        const acc_t s = factors.of(plane, C);
        std::fill(rows.begin(), rows.end(), acc_t(0));
        const scalar_t* gp = src + plane * Ho * Wo;
        for (int64_t y = 0; y < Ho; ++y) {
          const scalar_t* gr = gp + y * Wo;
          const acc_t fy = ty[y].frac, gy = acc_t(1) - fy;
          // Two loops: both taps are the same row at the clamped edge.
          acc_t* r0 = rows.data() + ty[y].i0 * Wo;
          for (int64_t x = 0; x < Wo; ++x) r0[x] += weighted(gy, acc_t(gr[x]));
          acc_t* r1 = rows.data() + ty[y].i1 * Wo;
          for (int64_t x = 0; x < Wo; ++x) r1[x] += weighted(fy, acc_t(gr[x]));
        }
        scalar_t* o = dst + plane * H * W;
        for (int64_t i = 0; i < H; ++i) {
          std::fill(line.begin(), line.end(), acc_t(0));
          const acc_t* r = rows.data() + i * Wo;
          for (int64_t x = 0; x < Wo; ++x) {
            const auto& t = tx[x];
            line[t.i0] += weighted(acc_t(1) - t.frac, r[x]);
            line[t.i1] += weighted(t.frac, r[x]);
          }
          for (int64_t j = 0; j < W; ++j) o[i * W + j] = static_cast<scalar_t>(s * line[j]);
        }
      }
    });
  });
  return grad;
}

at::Tensor upsample_flow_cpu(const at::Tensor& flow, int64_t scale) {
  check_upsample_input(flow, scale, "flow");
  const int64_t H = flow.size(2), W = flow.size(3);
  return resample_forward(flow, UpsampleAxisSpec{H, scale}, UpsampleAxisSpec{W, scale}, H * scale, W * scale,
                          double(scale), double(scale));
}

at::Tensor upsample_flow_backward_cpu(const at::Tensor& grad_out, int64_t scale) {
  check_upsample_input(grad_out, scale, "grad_out");
  const int64_t Ho = grad_out.size(2), Wo = grad_out.size(3);
  TORCH_CHECK_VALUE(Ho % scale == 0 && Wo % scale == 0, "grad_out size ", grad_out.sizes(),
                    " must be a multiple of scale ", scale);
  const int64_t H = Ho / scale, W = Wo / scale;
  return resample_backward(grad_out, UpsampleAxisSpec{H, scale}, UpsampleAxisSpec{W, scale}, H, W, double(scale),
                           double(scale));
}

at::Tensor resize_flow_cpu(const at::Tensor& flow, int64_t height, int64_t width, bool align_corners) {
  check_resize_input(flow, height, width, "flow", "height, width");
  const int64_t H = flow.size(2), W = flow.size(3);
  return resample_forward(flow, ResizeAxisSpec{H, height, align_corners}, ResizeAxisSpec{W, width, align_corners},
                          height, width, double(width) / double(W), double(height) / double(H));
}

at::Tensor resize_flow_backward_cpu(const at::Tensor& grad_out, int64_t height, int64_t width, bool align_corners) {
  check_resize_input(grad_out, height, width, "grad_out", "input height, width");
  const int64_t Ho = grad_out.size(2), Wo = grad_out.size(3);
  return resample_backward(grad_out, ResizeAxisSpec{height, Ho, align_corners},
                           ResizeAxisSpec{width, Wo, align_corners}, height, width, double(Wo) / double(width),
                           double(Ho) / double(height));
}

}  // namespace

TORCH_LIBRARY_IMPL(crossnet_fast, CPU, m) {
  m.impl("upsample_flow", &upsample_flow_cpu);
  m.impl("upsample_flow_backward", &upsample_flow_backward_cpu);
  m.impl("resize_flow", &resize_flow_cpu);
  m.impl("resize_flow_backward", &resize_flow_backward_cpu);
}

}  // namespace crossnet_fast
