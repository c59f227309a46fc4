// CPU kernels of upsample_flow: out = scale * bilinear(flow) (align_corners=False). The backward is
// a gather over each input sample's fixed footprint (a transposed tap table per axis), so it is
// deterministic and needs no atomics.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common.h"
#include "../upsample.h"

namespace crossnet_fast {
namespace {

template <typename acc_t>
std::vector<UpsampleTap<acc_t>> axis_taps(int64_t size_in, int64_t scale) {
  std::vector<UpsampleTap<acc_t>> taps(size_in * scale);
  for (int64_t d = 0; d < size_in * scale; ++d) taps[d] = upsample_tap<acc_t>(d, scale, size_in);
  return taps;
}

// For every input index, the (output index, weight) pairs that read it: CSR arrays.
template <typename acc_t>
struct Footprint {
  std::vector<int64_t> start, dst;
  std::vector<acc_t> weight;
};

template <typename acc_t>
Footprint<acc_t> transpose_taps(const std::vector<UpsampleTap<acc_t>>& taps, int64_t size_in) {
  std::vector<std::vector<std::pair<int64_t, acc_t>>> lists(size_in);
  for (int64_t d = 0; d < static_cast<int64_t>(taps.size()); ++d) {
    lists[taps[d].i0].push_back({d, acc_t(1) - taps[d].frac});
    lists[taps[d].i1].push_back({d, taps[d].frac});
  }
  Footprint<acc_t> fp;
  fp.start.push_back(0);
  for (const auto& l : lists) {
    for (const auto& e : l) {
      fp.dst.push_back(e.first);
      fp.weight.push_back(e.second);
    }
    fp.start.push_back(static_cast<int64_t>(fp.dst.size()));
  }
  return fp;
}

at::Tensor upsample_flow_cpu(const at::Tensor& flow, int64_t scale) {
  check_upsample_input(flow, scale, "flow");
  const int64_t N = flow.size(0), C = flow.size(1), H = flow.size(2), W = flow.size(3);
  const int64_t Ho = H * scale, Wo = W * scale;
  const at::Tensor in = flow.contiguous();
  at::Tensor out = at::empty({N, C, Ho, Wo}, flow.options().memory_format(at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, flow.scalar_type(), "upsample_flow_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto ty = axis_taps<acc_t>(H, scale);
    const auto tx = axis_taps<acc_t>(W, scale);
    const scalar_t* src = in.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const acc_t s = static_cast<acc_t>(scale);
    // Separable: interpolate every input row along x once (H x Wo, already times scale), then each
    // output row is a blend of two of those rows, a loop the compiler vectorises.
    at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> rows(H * Wo);
      for (int64_t plane = begin; plane < end; ++plane) {
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

at::Tensor upsample_flow_backward_cpu(const at::Tensor& grad_out, int64_t scale) {
  check_upsample_input(grad_out, scale, "grad_out");
  const int64_t N = grad_out.size(0), C = grad_out.size(1), Ho = grad_out.size(2), Wo = grad_out.size(3);
  TORCH_CHECK_VALUE(Ho % scale == 0 && Wo % scale == 0, "grad_out size ", grad_out.sizes(),
                    " must be a multiple of scale ", scale);
  const int64_t H = Ho / scale, W = Wo / scale;
  const at::Tensor g = grad_out.contiguous();
  at::Tensor grad = at::empty({N, C, H, W}, grad_out.options().memory_format(at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "upsample_flow_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto fy = transpose_taps(axis_taps<acc_t>(H, scale), H);
    const auto fx = transpose_taps(axis_taps<acc_t>(W, scale), W);
    const scalar_t* src = g.data_ptr<scalar_t>();
    scalar_t* dst = grad.data_ptr<scalar_t>();
    const acc_t s = static_cast<acc_t>(scale);
    at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> rows(Ho * W);  // gradient already gathered along x, per output row
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* gp = src + plane * Ho * Wo;
        for (int64_t y = 0; y < Ho; ++y) {
          for (int64_t j = 0; j < W; ++j) {
            acc_t acc = 0;
            for (int64_t e = fx.start[j]; e < fx.start[j + 1]; ++e) acc += fx.weight[e] * acc_t(gp[y * Wo + fx.dst[e]]);
            rows[y * W + j] = acc;
          }
        }
        scalar_t* o = dst + plane * H * W;
        for (int64_t i = 0; i < H; ++i) {
          for (int64_t j = 0; j < W; ++j) {
            acc_t acc = 0;
            for (int64_t e = fy.start[i]; e < fy.start[i + 1]; ++e) acc += fy.weight[e] * rows[fy.dst[e] * W + j];
            o[i * W + j] = static_cast<scalar_t>(s * acc);
          }
        }
      }
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(crossnet_fast, CPU, m) {
  m.impl("upsample_flow", &upsample_flow_cpu);
  m.impl("upsample_flow_backward", &upsample_flow_backward_cpu);
}

}  // namespace crossnet_fast
