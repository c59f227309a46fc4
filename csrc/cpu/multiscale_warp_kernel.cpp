// CPU kernels of multiscale_warp and its backward: every scale in turn, each parallel over pixel
// tiles (forward, flow gradient) or channel planes (feature gradient, so no two threads ever add
// into the same element: deterministic without atomics). Accumulation in fp32 (fp64 for fp64).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common.h"

namespace crossnet_fast {
namespace {

constexpr int64_t kTile = 256;  // pixels whose taps are computed once and reused for all channels

// The taps of pixel p (row-major in an H x W plane) displaced by its flow; flow_n points at one
// image's (2, H, W) flow in the accumulate type.
template <typename acc_t>
inline BilinearTaps<acc_t, int64_t> pixel_taps(const acc_t* flow_n, int64_t p, int64_t H, int64_t W,
                                               Padding padding) {
  return bilinear_taps<acc_t, int64_t>(acc_t(p % W) + flow_n[p], acc_t(p / W) + flow_n[H * W + p], H, W, padding);
}

// Runs fn(n, p0, len) in parallel over tiles of kTile pixels of every image n < N.
template <typename Fn>
inline void for_each_tile(int64_t N, int64_t HW, const Fn& fn) {
  const int64_t tiles = (HW + kTile - 1) / kTile;
  at::parallel_for(0, N * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p0 = (t % tiles) * kTile;
      fn(t / tiles, p0, std::min(kTile, HW - p0));
    }
  });
}

at::Tensor warp_forward_one(const at::Tensor& feat, const at::Tensor& flow, Padding padding) {
  const int64_t N = feat.size(0), C = feat.size(1), H = feat.size(2), W = feat.size(3);
  const int64_t HW = H * W;
  const at::Tensor feat_c = feat.contiguous();
  const at::Tensor flow_c = flow.to(accumulate_type(feat.scalar_type())).contiguous();
  at::Tensor out = at::empty({N, C, H, W}, feat.options().memory_format(at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "multiscale_warp_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* src = feat_c.data_ptr<scalar_t>();
    const acc_t* fl = flow_c.data_ptr<acc_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    for_each_tile(N, HW, [&](int64_t n, int64_t p0, int64_t len) {
      int64_t off[4][kTile];
      acc_t wt[4][kTile];
      for (int64_t i = 0; i < len; ++i) {
        const auto taps = pixel_taps(fl + n * 2 * HW, p0 + i, H, W, padding);
        for (int k = 0; k < 4; ++k) {
          off[k][i] = taps.offset[k];
          wt[k][i] = taps.weight[k];
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* plane = src + (n * C + c) * HW;
        scalar_t* o = dst + (n * C + c) * HW + p0;
        for (int64_t i = 0; i < len; ++i) {
          o[i] = static_cast<scalar_t>(
              weighted(wt[0][i], acc_t(plane[off[0][i]])) + weighted(wt[1][i], acc_t(plane[off[1][i]])) +
              weighted(wt[2][i], acc_t(plane[off[2][i]])) + weighted(wt[3][i], acc_t(plane[off[3][i]])));
        }
      }
    });
  });
  return like_input(out, feat);
}

// d loss / d flow: for each pixel, sum over channels of grad_out * d(sample)/d(x, y).
at::Tensor warp_grad_flow_one(const at::Tensor& grad_out, const at::Tensor& feat, const at::Tensor& flow,
                              Padding padding) {
  const int64_t N = feat.size(0), C = feat.size(1), H = feat.size(2), W = feat.size(3);
  const int64_t HW = H * W;
  const at::ScalarType acc_type = accumulate_type(feat.scalar_type());
  const at::Tensor feat_c = feat.contiguous();
  const at::Tensor go_c = grad_out.to(feat.scalar_type()).contiguous();
  const at::Tensor flow_c = flow.to(acc_type).contiguous();
  at::Tensor grad_flow = at::empty({N, 2, H, W}, flow_c.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "multiscale_warp_grad_flow_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* src = feat_c.data_ptr<scalar_t>();
    const scalar_t* go = go_c.data_ptr<scalar_t>();
    const acc_t* fl = flow_c.data_ptr<acc_t>();
    acc_t* gfl = grad_flow.data_ptr<acc_t>();
    for_each_tile(N, HW, [&](int64_t n, int64_t p0, int64_t len) {
      int64_t off[4][kTile];
      acc_t dx[4][kTile], dy[4][kTile];
      acc_t gx[kTile], gy[kTile];
      for (int64_t i = 0; i < len; ++i) {
        const auto taps = pixel_taps(fl + n * 2 * HW, p0 + i, H, W, padding);
        for (int k = 0; k < 4; ++k) {
          off[k][i] = taps.offset[k];
          dx[k][i] = taps.dweight_dx[k];
          dy[k][i] = taps.dweight_dy[k];
        }
        gx[i] = acc_t(0);
        gy[i] = acc_t(0);
      }
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* plane = src + (n * C + c) * HW;
        const scalar_t* g = go + (n * C + c) * HW + p0;
        for (int64_t i = 0; i < len; ++i) {
          const acc_t v0 = plane[off[0][i]], v1 = plane[off[1][i]], v2 = plane[off[2][i]], v3 = plane[off[3][i]];
          const acc_t gi = g[i];
          gx[i] += gi * (weighted(dx[0][i], v0) + weighted(dx[1][i], v1) + weighted(dx[2][i], v2) +
                         weighted(dx[3][i], v3));
          gy[i] += gi * (weighted(dy[0][i], v0) + weighted(dy[1][i], v1) + weighted(dy[2][i], v2) +
                         weighted(dy[3][i], v3));
        }
      }
      acc_t* ox = gfl + n * 2 * HW + p0;
      acc_t* oy = ox + HW;
      for (int64_t i = 0; i < len; ++i) {
        ox[i] = gx[i];
        oy[i] = gy[i];
      }
    });
  });
  return like_input(grad_flow.to(flow.scalar_type()), flow);
}

// d loss / d feat: scatter grad_out into the four taps. Taps of one image are computed once into a
// scratch table, then each thread owns whole (n, c) planes, so the adds never race. The table is
// stored tap-major ([k][p]) and scattered one tap at a time over a tile: neighbouring pixels share
// taps, and adding all four taps of a pixel before the next would chain every add to the previous
// store (a memory dependency that made this loop 5x slower).
at::Tensor warp_grad_feat_one(const at::Tensor& grad_out, const at::Tensor& feat, const at::Tensor& flow,
                              Padding padding) {
  const int64_t N = feat.size(0), C = feat.size(1), H = feat.size(2), W = feat.size(3);
  const int64_t HW = H * W;
  const at::ScalarType acc_type = accumulate_type(feat.scalar_type());
  const at::Tensor go_c = grad_out.to(feat.scalar_type()).contiguous();
  const at::Tensor flow_c = flow.to(acc_type).contiguous();
  at::Tensor grad_acc = at::zeros({N, C, H, W}, feat.options().dtype(acc_type));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feat.scalar_type(), "multiscale_warp_grad_feat_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* go = go_c.data_ptr<scalar_t>();
    const acc_t* fl = flow_c.data_ptr<acc_t>();
    acc_t* gin = grad_acc.data_ptr<acc_t>();
    std::vector<int64_t> off(4 * HW);
    std::vector<acc_t> wt(4 * HW);
    for (int64_t n = 0; n < N; ++n) {
      at::parallel_for(0, HW, kTile, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
          const auto taps = pixel_taps(fl + n * 2 * HW, p, H, W, padding);
          for (int k = 0; k < 4; ++k) {
            off[k * HW + p] = taps.offset[k];
            wt[k * HW + p] = taps.weight[k];
          }
        }
      });
      at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          const scalar_t* g = go + (n * C + c) * HW;
          acc_t* plane = gin + (n * C + c) * HW;
          for (int64_t p0 = 0; p0 < HW; p0 += kTile) {
            const int64_t p1 = std::min(HW, p0 + kTile);
            for (int k = 0; k < 4; ++k) {
              const int64_t* o = off.data() + k * HW;
              const acc_t* w = wt.data() + k * HW;
              for (int64_t p = p0; p < p1; ++p) plane[o[p]] += weighted(w[p], acc_t(g[p]));
            }
          }
        }
      });
    }
  });
  return like_input(grad_acc.to(feat.scalar_type()), feat);
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
    TORCH_CHECK_VALUE(grad_outs[s].sizes() == feats[s].sizes(), "grad_outs[", s, "] must have the shape of feats[", s, "]");
    if (output_mask[0]) grad_feats.push_back(warp_grad_feat_one(grad_outs[s], feats[s], flows[s], pad));
    if (output_mask[1]) grad_flows.push_back(warp_grad_flow_one(grad_outs[s], feats[s], flows[s], pad));
  }
  return {grad_feats, grad_flows};
}

}  // namespace

TORCH_LIBRARY_IMPL(crossnet_fast, CPU, m) {
  m.impl("multiscale_warp", &multiscale_warp_cpu);
  m.impl("multiscale_warp_backward", &multiscale_warp_backward_cpu);
}

}  // namespace crossnet_fast
