// CPU kernels of grid_sample and its backward (bilinear, zeros/border/reflection padding, both
// align_corners): the coordinate math of bilinear.h (grid_taps_strided) through the sampling loops
// shared with the warp (sampling_loops.h). The input gradient is summed plane by plane in a fixed
// order, so the backward is deterministic. Accumulation in fp32 (fp64 for fp64).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common.h"
#include "sampling_loops.h"
#include "taps_avx2.h"

namespace crossnet_fast {
namespace {

// The taps source of grid_sample: point p of image n reads its normalised (x, y) from the grid.
template <typename acc_t>
struct GridSampleTaps {
  // fill(t, 0, q0, len) reads points q0.. of the whole (N * P) grid: its math does not depend on
  // the image, so the forward may run tiles across image boundaries (sample_forward).
  static constexpr bool kFlat = true;
  const acc_t* grid;  // (N, P, 2) contiguous, accumulate type
  int64_t P, H, W;
  GridPadding padding;
  bool align_corners;

  GridTaps<acc_t, int64_t> operator()(int64_t n, int64_t p) const {
    const acc_t* g = grid + (n * P + p) * 2;
    return grid_taps_strided<acc_t, int64_t>(g[0], g[1], H, W, W, int64_t(1), padding, align_corners);
  }

  template <typename index_t>
  void fill(cpu::TileTaps<acc_t, index_t>& t, int64_t n, int64_t p0, int64_t len, bool with_derivatives) const {
    // Reflection, fp64, and CPUs without AVX2 take the general path: bilinear.h point by point.
    if (padding == GridPadding::Reflection) return t.fill_pointwise(*this, n, p0, len, with_derivatives);
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
      if (cpu::has_avx2()) {
        const int64_t vec_len = len - len % 8;
        cpu::fill_grid_taps_avx2(t, grid + (n * P + p0) * 2, vec_len, H, W, padding == GridPadding::Border,
                                 align_corners, with_derivatives);
        if (vec_len < len) t.fill_pointwise(*this, n, p0, len, with_derivatives, vec_len);  // the tail
        return;
      }
    }
#endif
    t.fill_pointwise(*this, n, p0, len, with_derivatives);
  }
};

at::Tensor grid_sample_cpu(const at::Tensor& input, const at::Tensor& grid, c10::string_view padding,
                           bool align_corners) {
  check_grid_sample_inputs(input, grid);
  const GridPadding pad = parse_grid_padding(padding);
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const int64_t Ho = grid.size(1), Wo = grid.size(2);
  const at::Tensor input_c = input.contiguous();
  const at::Tensor grid_c = grid.to(accumulate_type(input.scalar_type())).contiguous();
  at::Tensor out = at::empty({N, C, Ho, Wo}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grid_sample_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cpu::sample_forward<scalar_t, acc_t>(
        input_c.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, C, H * W, Ho * Wo,
        GridSampleTaps<acc_t>{grid_c.data_ptr<acc_t>(), Ho * Wo, H, W, pad, align_corners});
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> grid_sample_backward_cpu(const at::Tensor& grad_out, const at::Tensor& input,
                                                            const at::Tensor& grid, c10::string_view padding,
                                                            bool align_corners, std::array<bool, 2> output_mask) {
  check_grid_sample_inputs(input, grid);
  const GridPadding pad = parse_grid_padding(padding);
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const int64_t Ho = grid.size(1), Wo = grid.size(2), P = Ho * Wo;
  TORCH_CHECK_VALUE(grad_out.dim() == 4 && grad_out.size(0) == N && grad_out.size(1) == C && grad_out.size(2) == Ho &&
                        grad_out.size(3) == Wo,
                    "grad_out must be (N, C, Ho, Wo) = (", N, ", ", C, ", ", Ho, ", ", Wo, "), got ", grad_out.sizes());
  const at::ScalarType acc_type = accumulate_type(input.scalar_type());
  const at::Tensor input_c = input.contiguous();
  const at::Tensor go_c = grad_out.to(input.scalar_type()).contiguous();
  const at::Tensor grid_c = grid.to(acc_type).contiguous();
  at::Tensor grad_input = input.new_empty({0});
  at::Tensor grad_grid = grid.new_empty({0});
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grid_sample_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const GridSampleTaps<acc_t> taps{grid_c.data_ptr<acc_t>(), P, H, W, pad, align_corners};
    // every element written by sample_backward
    at::Tensor acc = output_mask[0] ? at::empty({N, C, H, W}, input.options().dtype(acc_type)) : at::Tensor();
    at::Tensor gg = output_mask[1] ? at::empty({N, Ho, Wo, 2}, grid_c.options()) : at::Tensor();
    acc_t* out = output_mask[1] ? gg.data_ptr<acc_t>() : nullptr;
    cpu::sample_backward<scalar_t, acc_t>(
        input_c.data_ptr<scalar_t>(), go_c.data_ptr<scalar_t>(), output_mask[0] ? acc.data_ptr<acc_t>() : nullptr,
        output_mask[1], N, C, H * W, P, taps, [&](int64_t n, int64_t p0, int64_t len, const acc_t* gx, const acc_t* gy) {
          acc_t* o = out + (n * P + p0) * 2;  // (x, y) interleaved, as in the grid
          for (int64_t i = 0; i < len; ++i) {
            o[2 * i] = gx[i];
            o[2 * i + 1] = gy[i];
          }
        });
    if (output_mask[0]) grad_input = like_input(acc.to(input.scalar_type()), input);
    if (output_mask[1]) grad_grid = like_input(gg.to(grid.scalar_type()), grid);
  });
  return {grad_input, grad_grid};
}

}  // namespace

TORCH_LIBRARY_IMPL(crossnet_fast, CPU, m) {
  m.impl("grid_sample", &grid_sample_cpu);
  m.impl("grid_sample_backward", &grid_sample_backward_cpu);
}

}  // namespace crossnet_fast
