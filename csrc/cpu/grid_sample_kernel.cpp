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

// The taps source of grid_sample: point p of image n reads its normalised (x, y) from the grid,
// which may have any strides (RAFT's lookup grids come batch-innermost from a broadcast add; a
// copy to contiguous cost more than the sampling).
template <typename acc_t>
struct GridSampleTaps {
  // fill(t, 0, q0, len) reads points q0.. of the whole (N * P) grid: its math does not depend on
  // the image, so the forward may run tiles across image boundaries (sample_forward).
  static constexpr bool kFlat = true;
  const acc_t* grid;  // (N, Ho, Wo, 2), accumulate type, element strides below
  int64_t P, Wo, stride_n, stride_h, stride_w, stride_xy;
  int64_t H, W;
  GridPadding padding;
  bool align_corners;

  // Whether points [p0, p0 + len) of image n lie back to back as (x, y) pairs: rows packed, and
  // images packed too where the range runs into the next image (an expanded grid, stride_n 0,
  // qualifies tile by tile).
  bool packed(int64_t n, int64_t p0, int64_t len) const {
    return rows_packed() && (p0 % P + len <= P || stride_n == 2 * P);
  }

  // Whether the points of one image lie back to back as (x, y) pairs (any image stride).
  bool rows_packed() const { return stride_xy == 1 && (Wo == 1 || stride_w == 2) && (P == Wo || stride_h == 2 * Wo); }

  // The (x, y) of point p of image n; p >= P (tiles of the flattened grid) is point p % P of
  // image n + p / P.
  const acc_t* point(int64_t n, int64_t p) const {
    n += p / P;
    p %= P;
    return grid + n * stride_n + (p / Wo) * stride_h + (p % Wo) * stride_w;
  }

  template <typename scalar_t>
  bool sample_one_channel(const scalar_t* src, scalar_t* dst, int64_t q0, int64_t len, int64_t in_plane,
                          int64_t extent) const;
  template <typename scalar_t>
  bool sample_one_channel_batch_inner(const scalar_t* src, scalar_t* dst, int64_t N, int64_t in_plane) const;

  // sample_forward's few-channel path (flow fields): whether it applies to these inputs, and the
  // tile [p0, p0 + len) of image n: groups of 8 packed points from registers
  // (cpu::grid_sample_few_channels_avx2), the rest (and unpacked tiles) through the general path.
  // src_n: the image's planes; dst: its tile start.
  template <typename scalar_t>
  bool few_channels_apply(int64_t C, int64_t in_plane) const {
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
      return cpu::has_avx2() && padding != GridPadding::Reflection && rows_packed() && in_plane >= 2 &&
             C * in_plane <= std::numeric_limits<int32_t>::max();
    }
#endif
    return false;
  }

  template <typename scalar_t>
  void sample_few_channels(const scalar_t* src_n, scalar_t* dst, int64_t n, int64_t p0, int64_t len, int64_t C,
                           int64_t in_plane, int64_t P_out) const {
    int64_t done = 0;
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
      if (packed(n, p0, len)) {
        done = len - len % 8;
        cpu::grid_sample_few_channels_avx2(src_n, point(n, p0), dst, done, C, in_plane, P_out, H, W,
                                           padding == GridPadding::Border, align_corners);
      }
    }
#endif
    if (done == len) return;
    // The rest through the general path: bilinear.h taps point by point, forward_channels' sums.
    cpu::TileTaps<acc_t, int32_t> t;
    t.fill_pointwise(*this, n, p0 + done, len - done, false);
    cpu::forward_channels_scalar(src_n, dst + done, C, in_plane, P_out, int64_t(0), len - done, t);
    cpu::poison_undefined(dst + done, C, P_out, len - done, t);
  }

  GridTaps<acc_t, int64_t> operator()(int64_t n, int64_t p) const {
    const acc_t* g = point(n, p);
    return grid_taps_strided<acc_t, int64_t>(g[0], g[stride_xy], H, W, W, int64_t(1), padding, align_corners);
  }

  template <typename index_t>
  void fill(cpu::TileTaps<acc_t, index_t>& t, int64_t n, int64_t p0, int64_t len, bool with_derivatives) const {
    // Reflection, fp64, and CPUs without AVX2 take the general path: bilinear.h point by point.
    if (padding == GridPadding::Reflection) return t.fill_pointwise(*this, n, p0, len, with_derivatives);
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
      if (cpu::has_avx2()) {
        const int64_t vec_len = len - len % 8;
        const float* xy = packed(n, p0, len) ? point(n, p0) : nullptr;
        alignas(32) float gathered[2 * cpu::kTile];
        if (xy == nullptr) {  // the tile's points, interleaved (x, y), as a contiguous grid has them
          int64_t m = n + p0 / P, r = p0 % P, h = r / Wo, w = r % Wo;  // stepped: no division per point
          for (int64_t i = 0; i < vec_len; ++i) {
            const float* g = grid + m * stride_n + h * stride_h + w * stride_w;
            gathered[2 * i] = g[0];
            gathered[2 * i + 1] = g[stride_xy];
            if (++w == Wo) {
              w = 0;
              if (++h * Wo == P) {
                h = 0;
                ++m;
              }
            }
          }
          xy = gathered;
        }
        cpu::fill_grid_taps_avx2(t, xy, vec_len, H, W, padding == GridPadding::Border, align_corners, with_derivatives);
        if (vec_len < len) t.fill_pointwise(*this, n, p0, len, with_derivatives, vec_len);  // the tail
        return;
      }
    }
#endif
    t.fill_pointwise(*this, n, p0, len, with_derivatives);
  }
};

// sample_forward's one-channel flattened tiles: points [q0, q0 + len) of the (N * P) grid straight
// from the grid (cpu::grid_sample_one_channel_avx2) where that path applies (fp32, AVX2, zeros or
// border padding, images of >= 8 points, whole groups of 8, packed points); false otherwise
// (grids with the batch innermost take sample_one_channel_batch_inner first).
template <typename acc_t>
template <typename scalar_t>
bool GridSampleTaps<acc_t>::sample_one_channel(const scalar_t* src, scalar_t* dst, int64_t q0, int64_t len,
                                               int64_t in_plane, int64_t extent) const {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
    if (cpu::has_avx2() && padding != GridPadding::Reflection && P >= 8 && len % 8 == 0 && extent >= 2 &&
        packed(0, q0, len)) {
      cpu::grid_sample_one_channel_avx2(src, point(0, q0), dst, len, P, in_plane, static_cast<int32_t>(extent), q0 / P,
                                        q0 % P, H, W, padding == GridPadding::Border, align_corners);
      return true;
    }
  }
#endif
  return false;
}

// sample_forward's one-channel grids whose batch is innermost (stride_n == 1), all at once, 8
// images per step (cpu::grid_sample_one_channel_8_images_avx2), where that applies (fp32, AVX2,
// zeros or border padding, N a multiple of 8, non-negative strides, int32 offsets); false
// otherwise.
template <typename acc_t>
template <typename scalar_t>
bool GridSampleTaps<acc_t>::sample_one_channel_batch_inner(const scalar_t* src, scalar_t* dst, int64_t N,
                                                           int64_t in_plane) const {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
    const int64_t extent = N * in_plane;
    if (!cpu::has_avx2() || padding == GridPadding::Reflection || stride_n != 1 || N % 8 != 0 || extent < 2 ||
        stride_h < 0 || stride_w < 0 || stride_xy < 0) {
      return false;
    }
    const int64_t blocks = N / 8;
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      const cpu::AlignedFloats buffer = cpu::aligned_floats(8 * P);  // point-major results of one block
      for (int64_t block = begin; block < end; ++block) {
        cpu::grid_sample_one_channel_8_images_avx2(src, grid + block * 8, stride_h, stride_w, stride_xy, dst, P, Wo,
                                                   in_plane, static_cast<int32_t>(extent), block * 8, H, W,
                                                   padding == GridPadding::Border, align_corners, buffer.get());
      }
    });
    return true;
  }
#endif
  return false;
}

// The grid in the accumulate type, without a copy when it already is (any strides).
inline at::Tensor grid_in(const at::Tensor& grid, at::ScalarType acc_type) {
  return grid.scalar_type() == acc_type ? grid : grid.to(acc_type).contiguous();
}

template <typename acc_t>
GridSampleTaps<acc_t> grid_taps_of(const at::Tensor& g, int64_t H, int64_t W, GridPadding pad, bool align_corners) {
  const int64_t Ho = g.size(1), Wo = g.size(2);
  return GridSampleTaps<acc_t>{g.data_ptr<acc_t>(), Ho * Wo, Wo, g.stride(0), g.stride(1),  g.stride(2),
                               g.stride(3),         H,       W,  pad,         align_corners};
}

at::Tensor grid_sample_cpu(const at::Tensor& input, const at::Tensor& grid, c10::string_view padding,
                           bool align_corners) {
  check_grid_sample_inputs(input, grid);
  const GridPadding pad = parse_grid_padding(padding);
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const int64_t Ho = grid.size(1), Wo = grid.size(2);
  const at::Tensor input_c = input.contiguous();
  const at::Tensor grid_c = grid_in(grid, accumulate_type(input.scalar_type()));
  at::Tensor out = at::empty({N, C, Ho, Wo}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grid_sample_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    cpu::sample_forward<scalar_t, acc_t>(input_c.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, C, H * W, Ho * Wo,
                                         grid_taps_of<acc_t>(grid_c, H, W, pad, align_corners));
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
  const at::Tensor grid_c = grid_in(grid, acc_type);
  at::Tensor grad_input = input.new_empty({0});
  at::Tensor grad_grid = grid.new_empty({0});
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "grid_sample_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const GridSampleTaps<acc_t> taps = grid_taps_of<acc_t>(grid_c, H, W, pad, align_corners);
    // every element written by sample_backward
    at::Tensor acc = output_mask[0] ? at::empty({N, C, H, W}, input.options().dtype(acc_type)) : at::Tensor();
    at::Tensor gg = output_mask[1]
                        ? at::empty({N, Ho, Wo, 2}, grid_c.options().memory_format(at::MemoryFormat::Contiguous))
                        : at::Tensor();
    acc_t* out = output_mask[1] ? gg.data_ptr<acc_t>() : nullptr;
    cpu::sample_backward<scalar_t, acc_t>(input_c.data_ptr<scalar_t>(), go_c.data_ptr<scalar_t>(),
                                          output_mask[0] ? acc.data_ptr<acc_t>() : nullptr, output_mask[1], N, C, H * W,
                                          P, taps,
                                          [&](int64_t n, int64_t p0, int64_t len, const acc_t* gx, const acc_t* gy) {
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
