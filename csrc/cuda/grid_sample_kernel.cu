// CUDA entry points of grid_sample and its backward (kernels: grid_sample_kernels.cuh and
// grid_sample_deterministic.cuh).
//
// input and grad_out are made contiguous (NCHW) first; the grid is read with its own strides and in
// its own float dtype. The output is contiguous (N, C, Ho, Wo); grad_input follows input's layout
// and dtype, grad_grid grid's (the fakes' promise). A gradient not asked for by output_mask is an
// empty (0,) tensor. Backward: grad_grid is reduced per point without atomics; grad_input is
// scattered with fp32 (fp64 for fp64) atomics and cast once, or, under
// at::globalContext().deterministicAlgorithms(), gathered after a stable sort (bit-identical run
// to run; sorted per group of whole images, at most 536,870,911 output points per image).
// 32-bit indices when every element offset fits, else 64-bit.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "../common.h"
#include "grid_sample_deterministic.cuh"
#include "grid_sample_kernels.cuh"
#include "sorted_segments.cuh"

namespace crossnet_fast {
namespace cuda {
namespace {

constexpr int64_t kIndex32Limit = (int64_t(1) << 31) - kBlock;

void check_cuda(const at::Tensor& input, const at::Tensor& grid) {
  check_grid_sample_inputs(input, grid);
  TORCH_CHECK(input.is_cuda(), "grid_sample (CUDA): input and grid must be CUDA tensors");
}

GridSampleParams params_for(const at::Tensor& input, const at::Tensor& grid, GridPadding padding, bool align_corners) {
  GridSampleParams p{};
  p.input = input.data_ptr();
  p.grid = grid.data_ptr();
  p.N = input.size(0);
  p.C = input.size(1);
  p.H = input.size(2);
  p.W = input.size(3);
  p.Ho = grid.size(1);
  p.Wo = grid.size(2);
  for (int d = 0; d < 4; ++d) p.grid_stride[d] = grid.stride(d);
  p.grid_kind = float_kind(grid.scalar_type());
  p.padding = padding;
  p.align_corners = align_corners;
  return p;
}

// 32-bit offsets when the input, the (N, C, Ho, Wo) output and the point count all fit (the grid
// is always addressed in 64 bits).
bool fits_index32(const GridSampleParams& p) {
  return p.N * p.C * p.H * p.W < kIndex32Limit && p.N * p.C * p.Ho * p.Wo < kIndex32Limit &&
         p.N * p.Ho * p.Wo < kIndex32Limit;
}

unsigned blocks_for(int64_t items, int64_t per_block) {
  const int64_t blocks = ceil_div(items, per_block);
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "grid_sample: too many blocks (", blocks, ")");
  return static_cast<unsigned>(blocks);
}

at::Tensor grid_sample_cuda(const at::Tensor& input, const at::Tensor& grid, c10::string_view padding,
                            bool align_corners) {
  check_cuda(input, grid);
  const GridPadding pad = parse_grid_padding(padding);
  const c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor in = input.contiguous();
  at::Tensor out = at::empty({input.size(0), input.size(1), grid.size(1), grid.size(2)}, input.options());
  if (out.numel() == 0) return out;
  GridSampleParams p = params_for(in, grid, pad, align_corners);
  p.out = out.data_ptr();
  const unsigned blocks = blocks_for(p.N * p.Ho * p.Wo, kPixelsPerBlock);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "grid_sample_cuda", [&] {
    if (fits_index32(p)) {
      grid_sample_forward_kernel<scalar_t, int32_t><<<blocks, kBlock, 0, stream>>>(p);
    } else {
      grid_sample_forward_kernel<scalar_t, int64_t><<<blocks, kBlock, 0, stream>>>(p);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// grad_input by sort + gather into `grad_input` ((N, C, H, W) scalar_t contiguous, every element
// written). p.grad_out is set; there is at least one point; 4 * N * Ho * Wo <= kMaxSortEntries and
// N * H * W < INT_MAX (the caller splits larger batches): one sort of 32-bit keys.
template <typename scalar_t>
void deterministic_grad_input(const GridSampleParams& p, at::Tensor& grad_input, cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t points = p.N * p.Ho * p.Wo;
  const int64_t pixels = p.N * p.H * p.W;
  TORCH_INTERNAL_ASSERT(4 * points <= kMaxSortEntries && pixels < kMaxSortEntries);
  at::Tensor keys = at::empty({4 * points}, grad_input.options().dtype(at::kInt));
  const unsigned blocks = blocks_for(points, kContributionPointsPerBlock);
  grid_sample_contributions<acc_t, int32_t>
      <<<blocks, kBlock, 0, stream>>>(p, static_cast<int32_t>(pixels), keys.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto [order, segment_start] = sorted_segments(std::move(keys), pixels);
  grid_sample_gather_grad<scalar_t><<<blocks_for(pixels, kPixelsPerBlock), kBlock, 0, stream>>>(
      p, order.data_ptr<int64_t>(), segment_start.data_ptr<int64_t>(), grad_input.data_ptr<scalar_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The deterministic input gradient of a whole batch: whole images are sorted together while their
// entries fit one sort (kMaxSortEntries: PyTorch's sort takes at most INT_MAX elements), so the
// batch has no size limit; one image must fit on its own. in, grid, go: the backward's tensors
// (in and go contiguous); ginput: (N, C, H, W) contiguous, every element written.
template <typename scalar_t>
void deterministic_grad_input_batched(const at::Tensor& in, const at::Tensor& grid, const at::Tensor& go,
                                      GridPadding pad, bool align_corners, at::Tensor& ginput, cudaStream_t stream) {
  const int64_t N = in.size(0), H = in.size(2), W = in.size(3), Ho = grid.size(1), Wo = grid.size(2);
  TORCH_CHECK(4 * Ho * Wo <= kMaxSortEntries && H * W < kMaxSortEntries,
              "grid_sample backward (CUDA) under torch.use_deterministic_algorithms(True) sorts the input "
              "gradient's contributions per image: at most 536,870,911 output points (Ho * Wo) and 2,147,483,646 "
              "input pixels (H * W) per image, got ",
              Ho * Wo, " and ", H * W, "; use the default (atomic) backward for larger images");
  const int64_t group = images_per_sort(4 * Ho * Wo, H * W);
  for (int64_t n0 = 0; n0 < N; n0 += group) {
    const int64_t count = std::min(group, N - n0);
    GridSampleParams p = params_for(in.narrow(0, n0, count), grid.narrow(0, n0, count), pad, align_corners);
    p.grad_out = go.narrow(0, n0, count).data_ptr();
    at::Tensor part = ginput.narrow(0, n0, count);  // a contiguous slice of the contiguous buffer
    deterministic_grad_input<scalar_t>(p, part, stream);
  }
}

std::tuple<at::Tensor, at::Tensor> grid_sample_backward_cuda(const at::Tensor& grad_out, const at::Tensor& input,
                                                             const at::Tensor& grid, c10::string_view padding,
                                                             bool align_corners, std::array<bool, 2> output_mask) {
  check_cuda(input, grid);
  const GridPadding pad = parse_grid_padding(padding);
  TORCH_CHECK_VALUE(grad_out.dim() == 4 && grad_out.size(0) == input.size(0) && grad_out.size(1) == input.size(1) &&
                        grad_out.size(2) == grid.size(1) && grad_out.size(3) == grid.size(2),
                    "grad_out must be (N, C, Ho, Wo) = (", input.size(0), ", ", input.size(1), ", ", grid.size(1), ", ",
                    grid.size(2), "), got ", grad_out.sizes());
  TORCH_CHECK(grad_out.device() == input.device(), "grad_out must be on the device of input");
  const bool need_input = output_mask[0], need_grid = output_mask[1];
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  const at::Tensor in = input.contiguous();
  const at::Tensor go = grad_out.to(input.scalar_type()).contiguous();
  GridSampleParams p = params_for(in, grid, pad, align_corners);
  p.grad_out = go.data_ptr();
  const int64_t points = p.N * p.Ho * p.Wo;
  // The atomic path accumulates into zeros of the accumulate type (no 16-bit atomics), cast once
  // below; the gather path writes every element in the input dtype.
  at::Tensor ginput;
  if (need_input) {
    ginput = deterministic && points > 0 ? at::empty(in.sizes(), in.options())
                                         : at::zeros(in.sizes(), in.options().dtype(accumulate_type(in.scalar_type())));
    p.out = deterministic ? nullptr : ginput.data_ptr();
  }
  at::Tensor ggrid = need_grid ? at::empty_like(grid) : at::empty({0}, grid.options());
  if (need_grid) {
    p.grad_grid = ggrid.data_ptr();
    for (int d = 0; d < 4; ++d) p.ggrid_stride[d] = ggrid.stride(d);
  }
  const bool scatter = need_input && !deterministic;
  if (points > 0 && (scatter || need_grid)) {
    const unsigned blocks = blocks_for(points, kPixelsPerBlock);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "grid_sample_backward_cuda", [&] {
      if (fits_index32(p)) {
        grid_sample_backward_kernel<scalar_t, int32_t><<<blocks, kBlock, 0, stream>>>(p, scatter, need_grid);
      } else {
        grid_sample_backward_kernel<scalar_t, int64_t><<<blocks, kBlock, 0, stream>>>(p, scatter, need_grid);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  if (need_input && deterministic && points > 0 && in.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "grid_sample_backward_det_cuda", [&] {
      deterministic_grad_input_batched<scalar_t>(in, grid, go, pad, align_corners, ginput, stream);
    });
  }
  at::Tensor grad_input =
      need_input ? like_input(ginput.to(input.scalar_type()), input) : at::empty({0}, input.options());
  return {grad_input, ggrid};
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(crossnet_fast, CUDA, m) {
  m.impl("grid_sample", &cuda::grid_sample_cuda);
  m.impl("grid_sample_backward", &cuda::grid_sample_backward_cuda);
}

}  // namespace crossnet_fast
