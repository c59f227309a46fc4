// CPU kernels of grid_sample and its backward (bilinear, zeros/border/reflection padding, both
// align_corners). Accumulation in fp32 (fp64 for fp64).
//
// The parts, in this file:
//   GridSampleTaps      the taps source (see sampling_loops.h): point p of image n from the grid, any
//                       strides, through bilinear.h's grid_taps_strided; its tile fill takes the
//                       AVX2 path (avx2/grid_taps.h) for fp32 with zeros or border padding.
//   one/few channels    grid_sample's own forward paths for one channel and few points per image
//                       (RAFT's correlation lookups) and for up to 4 channels (flow fields), with
//                       their AVX2 loops in avx2/grid_lookups.h; tried first by the forward.
//   the launchers       grid_sample_cpu (those paths, else cpu::sample_forward) and
//                       grid_sample_backward_cpu (cpu::sample_backward: the input gradient summed
//                       plane by plane in a fixed order, so deterministic).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <limits>
#include <type_traits>

#include "../common.h"
#include "avx2/grid_lookups.h"
#include "avx2/grid_taps.h"
#include "avx2/isa.h"
#include "sampling_loops.h"
#include "tile_taps.h"

namespace crossnet_fast {
namespace {

// The taps source of grid_sample: point p of image n reads its normalised (x, y) from the grid,
// which may have any strides (RAFT's lookup grids come batch-innermost from a broadcast add, and
// a copy to contiguous costs more than the sampling). Points p >= P continue into the next images
// (point p % P of image n + p / P): the math does not depend on the image, so the one-channel
// forward runs tiles of the flattened (N * P) grid across image boundaries.
template <typename acc_t>
struct GridSampleTaps {
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

  GridTaps<acc_t, int64_t> operator()(int64_t n, int64_t p) const {
    const acc_t* g = point(n, p);
    return grid_taps_strided<acc_t, int64_t>(g[0], g[stride_xy], H, W, W, int64_t(1), padding, align_corners);
  }

  template <typename index_t>
  void fill(cpu::TileTaps<acc_t, index_t>& t, int64_t n, int64_t p0, int64_t len, bool with_derivatives) const {
    // Reflection, fp64, and CPUs without AVX2 take the general path: bilinear.h point by point.
    if (padding == GridPadding::Reflection) return t.fill_pointwise(*this, n, p0, len, with_derivatives);
#if CROSSNET_FAST_X86_DISPATCH
    if constexpr (cpu::kAvx2Types<acc_t, acc_t, index_t>) {  // (a fill reads the grid: no data type)
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

// ---- one channel, few points per image (RAFT's correlation lookups) -----------------------------
// Hundreds of 7x7 samples of 16x16 planes: a tile per image would be mostly empty, so the grid runs
// as one long image of N * P points, full tiles across image boundaries, each tap offset moved to
// its image's plane (add_image_bases). With AVX2 (fp32, zeros or border padding) the points go
// from the grid to taps in registers and straight to the gathers (avx2/grid_lookups.h).

// off[k][i] += (image of point i) * in_plane for the points [0, len) of a tile of the flattened
// (N * P) grid whose first point is point r of image n (stepped: no division per point).
template <typename acc_t>
inline void add_image_bases(cpu::TileTaps<acc_t, int32_t>& t, int64_t len, int64_t P, int64_t in_plane, int64_t n,
                            int64_t r) {
  int64_t i = 0;
#if CROSSNET_FAST_X86_DISPATCH
  // Any data type: only the int32 offsets change.
  if (cpu::has_avx2() && P >= 8) cpu::add_image_bases_avx2(t.off, len, P, in_plane, n, r, i);
#endif
  for (; i < len; ++i) {
    const int32_t base = static_cast<int32_t>(n * in_plane);
    for (int k = 0; k < 4; ++k) t.off[k][i] += base;
    if (++r == P) {
      r = 0;
      ++n;
    }
  }
}

// Points [q0, q0 + len) of the flattened (N * P) grid straight from the grid
// (cpu::grid_sample_one_channel_avx2) where that path applies (fp32, AVX2, zeros or border
// padding, images of >= 8 points, whole groups of 8, packed points); false otherwise.
template <typename scalar_t, typename acc_t>
bool one_channel_registers(const GridSampleTaps<acc_t>& s, const scalar_t* src, scalar_t* dst, int64_t q0, int64_t len,
                           int64_t in_plane, int64_t extent) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (cpu::kAvx2Types<scalar_t, acc_t>) {
    if (cpu::has_avx2() && s.padding != GridPadding::Reflection && s.P >= 8 && len % 8 == 0 && extent >= 2 &&
        s.packed(0, q0, len)) {
      cpu::grid_sample_one_channel_avx2(src, s.point(0, q0), dst, len, s.P, in_plane, static_cast<int32_t>(extent),
                                        q0 / s.P, q0 % s.P, s.H, s.W, s.padding == GridPadding::Border,
                                        s.align_corners);
      return true;
    }
  }
#endif
  return false;
}

// Every point of a grid whose batch is innermost (stride_n == 1: RAFT's layout), 8 images per step
// (cpu::grid_sample_one_channel_8_images_avx2), where that applies (fp32, AVX2, zeros or border
// padding, N a multiple of 8, non-negative strides, int32 offsets); false otherwise.
template <typename scalar_t, typename acc_t>
bool one_channel_batch_inner(const GridSampleTaps<acc_t>& s, const scalar_t* src, scalar_t* dst, int64_t N,
                             int64_t in_plane) {
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (cpu::kAvx2Types<scalar_t, acc_t>) {
    const int64_t extent = N * in_plane;
    if (!cpu::has_avx2() || s.padding == GridPadding::Reflection || s.stride_n != 1 || N % 8 != 0 || extent < 2 ||
        s.stride_h < 0 || s.stride_w < 0 || s.stride_xy < 0) {
      return false;
    }
    const int64_t blocks = N / 8;
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      const cpu::AlignedFloats buffer = cpu::aligned_floats(8 * s.P);  // point-major results of one block
      for (int64_t block = begin; block < end; ++block) {
        cpu::grid_sample_one_channel_8_images_avx2(src, s.grid + block * 8, s.stride_h, s.stride_w, s.stride_xy, dst,
                                                   s.P, s.Wo, in_plane, static_cast<int32_t>(extent), block * 8, s.H,
                                                   s.W, s.padding == GridPadding::Border, s.align_corners,
                                                   buffer.get());
      }
    });
    return true;
  }
#endif
  return false;
}

// The one-channel forward of N images of P < kTile points: the batch-innermost path, else tiles
// of the flattened grid, each from registers where it can, else through a taps table.
template <typename scalar_t, typename acc_t>
void forward_one_channel(const GridSampleTaps<acc_t>& s, const scalar_t* src, scalar_t* dst, int64_t N,
                         int64_t in_plane) {
  const int64_t P = s.P, total = N * P;
  if (one_channel_batch_inner(s, src, dst, N, in_plane)) return;
  cpu::for_each_tile(1, total, [&](int64_t, int64_t q0, int64_t len) {
    if (one_channel_registers(s, src, dst + q0, q0, len, in_plane, N * in_plane)) return;
    cpu::TileTaps<acc_t, int32_t> t;
    s.fill(t, 0, q0, len, false);  // the points q0.. of the flattened (N * P) grid
    add_image_bases(t, len, P, in_plane, q0 / P, q0 % P);
    cpu::forward_channels<scalar_t, acc_t, int32_t>(src, dst + q0, 1, 0, total, len, N * in_plane, t);
    cpu::poison_undefined(dst + q0, 1, total, len, t);
  });
}

// ---- a few channels (flow fields) ---------------------------------------------------------------
// Up to 4 channels with rows of packed points: each group of 8 points from the grid to taps in
// registers, then every channel (cpu::grid_sample_few_channels_avx2); with 2 channels to share it,
// a taps table costs more than it saves.

// Whether the few-channel path applies: fp32 with AVX2, zeros or border padding, packed rows,
// planes of >= 2 elements and int32 offsets.
template <typename scalar_t, typename acc_t>
bool few_channels_apply(const GridSampleTaps<acc_t>& s, int64_t C, int64_t in_plane) {
  return cpu::use_avx2<scalar_t, acc_t>() && s.padding != GridPadding::Reflection && s.rows_packed() && in_plane >= 2 &&
         C * in_plane <= std::numeric_limits<int32_t>::max();
}

// The tile [p0, p0 + len) of image n: groups of 8 packed points from registers, the rest (and
// tiles whose points run into an unpacked next image) through the taps table. src_n: the image's
// planes; dst: its tile start, channels P_out apart.
template <typename scalar_t, typename acc_t>
void few_channels_tile(const GridSampleTaps<acc_t>& s, const scalar_t* src_n, scalar_t* dst, int64_t n, int64_t p0,
                       int64_t len, int64_t C, int64_t in_plane, int64_t P_out) {
  int64_t done = 0;
#if CROSSNET_FAST_X86_DISPATCH
  if constexpr (cpu::kAvx2Types<scalar_t, acc_t>) {
    if (s.packed(n, p0, len)) {
      done = len - len % 8;
      cpu::grid_sample_few_channels_avx2(src_n, s.point(n, p0), dst, done, C, in_plane, P_out, s.H, s.W,
                                         s.padding == GridPadding::Border, s.align_corners);
    }
  }
#endif
  if (done == len) return;
  // The rest through the general path: bilinear.h taps point by point, forward_channels' sums.
  cpu::TileTaps<acc_t, int32_t> t;
  t.fill_pointwise(s, n, p0 + done, len - done, false);
  cpu::forward_channels_scalar(src_n, dst + done, C, in_plane, P_out, int64_t(0), len - done, t);
  cpu::poison_undefined(dst + done, C, P_out, len - done, t);
}

// ---- launchers ----------------------------------------------------------------------------------

// grid_sample's forward: its own one- and few-channel paths where they apply, else the shared loops.
//   src (N, C, in_plane) contiguous, dst (N, C, P) contiguous.
template <typename scalar_t, typename acc_t>
void forward(const scalar_t* src, scalar_t* dst, int64_t N, int64_t C, int64_t in_plane, int64_t P,
             const GridSampleTaps<acc_t>& s) {
  if (C == 1 && P < cpu::kTile && N * in_plane <= std::numeric_limits<int32_t>::max()) {
    return forward_one_channel(s, src, dst, N, in_plane);
  }
  if (C <= 4 && few_channels_apply<scalar_t>(s, C, in_plane)) {
    cpu::for_each_tile(N, P, [&](int64_t n, int64_t p0, int64_t len) {
      few_channels_tile(s, src + n * C * in_plane, dst + n * C * P + p0, n, p0, len, C, in_plane, P);
    });
    return;
  }
  cpu::sample_forward<scalar_t, acc_t>(src, dst, N, C, in_plane, P, s);
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
    forward<scalar_t, acc_t>(input_c.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), N, C, H * W, Ho * Wo,
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
