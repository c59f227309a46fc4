// CUDA entry points of multiscale_warp and its backward: argument preparation, the layout and
// index-width choice, and one launch per pass for all scales (kernels in warp_kernels.cuh and
// warp_deterministic.cuh).
//
// Layout rule: outputs are empty_like(input) (channels_last in, channels_last out). The
// channels_last kernels run when every scale qualifies (16-byte channel vectors); anything else
// runs the strided kernels, which read any layout in place (fast for NCHW).
// Backward: the feature gradient scatters with atomics, or, when
// at::globalContext().deterministicAlgorithms() is set, is gathered after a stable sort
// (bit-identical run to run, slower). The flow gradient is always reduced without atomics.
// The atomic backward of NCHW features runs on channels_last copies by default (see
// transpose_for_backward): 16-byte vector atomics cut the atomic count by the vector width.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "../common.h"
#include "sorted_segments.cuh"
#include "warp_deterministic.cuh"
#include "warp_kernels.cuh"

namespace crossnet_fast {
namespace cuda {
namespace {

// A tensor that the kernels can address with its own strides and whose empty_like has the same
// strides (outputs then share the input's strides).
at::Tensor dense(const at::Tensor& t) { return t.is_non_overlapping_and_dense() ? t : t.contiguous(); }

// One past the largest element offset of t, for the 32-bit index decision.
int64_t span(const at::Tensor& t) {
  int64_t s = 1;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) == 0) return 0;
    s += (t.size(d) - 1) * std::abs(t.stride(d));
  }
  return s;
}

// True when t can be read as 16-byte channel vectors: channel stride 1, C and every other stride
// multiples of V elements, base address 16-byte aligned.
bool channel_vectors_ok(const at::Tensor& t, int64_t V) {
  if (t.size(1) % V != 0 || t.size(1) < V) return false;
  if (t.stride(1) != 1 && t.size(1) > 1) return false;
  for (int64_t d : {0, 2, 3}) {
    if (t.size(d) > 1 && t.stride(d) % V != 0) return false;
  }
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

int log2_lanes_for(int64_t C, int64_t V) {
  const int64_t vectors = C / V;
  int l = 0;
  while (l < 5 && (int64_t(1) << l) < vectors) ++l;
  return l;
}

void fill_strides(int64_t (&dst)[4], const at::Tensor& t) {
  for (int d = 0; d < 4; ++d) dst[d] = t.defined() ? t.stride(d) : 0;
}

// Sets block_begin for every scale and returns the grid size. pixels_per_block < 0 means the
// channels_last mapping (kBlock >> log2_lanes pixels per block).
int64_t assign_blocks(WarpParams& p, int64_t pixels_per_block) {
  int64_t blocks = 0, pixels = 0;
  for (int s = 0; s < p.num_scales; ++s) {
    WarpScale& d = p.scale[s];
    const int64_t ppb = pixels_per_block > 0 ? pixels_per_block : (kBlock >> d.log2_lanes);
    d.block_begin = blocks;
    d.pixel_begin = pixels;
    const int64_t count = d.N * d.H * d.W;
    blocks += ceil_div(count, ppb);
    pixels += count;
  }
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "multiscale_warp: too many blocks (", blocks, ")");
  return blocks;
}

// The scales [first, first + count) of one launch.
struct Chunk {
  int64_t first, count;
};

std::vector<Chunk> chunks_of(int64_t num_scales) {
  std::vector<Chunk> out;
  for (int64_t s = 0; s < num_scales; s += kMaxScales)
    out.push_back({s, std::min<int64_t>(kMaxScales, num_scales - s)});
  return out;
}

template <typename scalar_t, typename index_t>
void launch_forward(const WarpParams& p, int64_t blocks, bool nhwc, cudaStream_t stream) {
  if (nhwc) {
    warp_forward_nhwc<scalar_t, index_t><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(p);
  } else {
    warp_forward_strided<scalar_t, index_t><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(p);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename scalar_t, typename index_t>
void launch_backward(const WarpParams& p, int64_t blocks, bool nhwc, cudaStream_t stream) {
  if (nhwc) {
    warp_backward_nhwc<scalar_t, index_t><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(p);
  } else {
    warp_backward_strided<scalar_t, index_t><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(p);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void check_cuda_inputs(at::TensorList feats, at::TensorList flows) {
  check_warp_inputs(feats, flows);
  for (size_t s = 0; s < feats.size(); ++s) {
    TORCH_CHECK(feats[s].is_cuda() && flows[s].is_cuda(), "multiscale_warp (CUDA): feats[", s, "] and flows[", s,
                "] must be CUDA tensors");
  }
}

// The prepared tensors of one call, per scale.
struct Prepared {
  std::vector<at::Tensor> feat, flow, grad_out, out, grad_flow;
  bool nhwc = true;
  bool index32 = true;
};

void decide_layout_and_index(Prepared& prep, int64_t V) {
  prep.nhwc = !prep.feat.empty();
  prep.index32 = true;
  for (size_t s = 0; s < prep.feat.size(); ++s) {
    const at::Tensor& f = prep.feat[s];
    // C == 1 is both layouts at once; the strided kernel handles it as well.
    prep.nhwc = prep.nhwc && f.size(1) > 1 && f.stride(1) == 1 && channel_vectors_ok(f, V);
    const int64_t pixels = f.size(0) * f.size(2) * f.size(3);
    for (const auto* list : {&prep.feat, &prep.flow, &prep.grad_out, &prep.grad_flow}) {
      if (s < list->size() && (*list)[s].defined())
        prep.index32 = prep.index32 && span((*list)[s]) < (int64_t(1) << 31);
    }
    prep.index32 = prep.index32 && pixels * std::max<int64_t>(f.size(1), 2) < (int64_t(1) << 31) - kBlock;
  }
}

WarpParams params_for(const Prepared& prep, const Chunk& chunk, Padding padding, bool nhwc, int64_t V) {
  WarpParams p{};
  p.num_scales = static_cast<int>(chunk.count);
  p.padding = padding;
  for (int64_t i = 0; i < chunk.count; ++i) {
    const int64_t s = chunk.first + i;
    WarpScale& d = p.scale[i];
    const at::Tensor& f = prep.feat[s];
    d.feat = f.data_ptr();
    d.flow = prep.flow[s].data_ptr();
    d.out = prep.out.empty() || !prep.out[s].defined() ? nullptr : prep.out[s].data_ptr();
    d.grad_out = prep.grad_out.empty() ? nullptr : prep.grad_out[s].data_ptr();
    d.grad_flow = prep.grad_flow.empty() || !prep.grad_flow[s].defined() ? nullptr : prep.grad_flow[s].data_ptr();
    d.N = f.size(0);
    d.C = f.size(1);
    d.H = f.size(2);
    d.W = f.size(3);
    fill_strides(d.feat_stride, f);
    fill_strides(d.flow_stride, prep.flow[s]);
    fill_strides(d.gout_stride, prep.grad_out.empty() ? at::Tensor() : prep.grad_out[s]);
    fill_strides(d.gflow_stride, prep.grad_flow.empty() ? at::Tensor() : prep.grad_flow[s]);
    d.log2_lanes = nhwc ? log2_lanes_for(d.C, V) : 0;
    d.flow_kind = float_kind(prep.flow[s].scalar_type());
  }
  return p;
}

std::vector<at::Tensor> multiscale_warp_cuda(at::TensorList feats, at::TensorList flows, c10::string_view padding) {
  check_cuda_inputs(feats, flows);
  const Padding pad = parse_padding(padding);
  if (feats.empty()) return {};
  const c10::cuda::CUDAGuard guard(feats[0].device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  Prepared prep;
  for (size_t s = 0; s < feats.size(); ++s) {
    prep.feat.push_back(dense(feats[s]));
    prep.flow.push_back(flows[s]);
    prep.out.push_back(at::empty_like(prep.feat.back()));
  }
  std::vector<at::Tensor> outs;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feats[0].scalar_type(), "multiscale_warp_cuda", [&] {
    const int64_t V = vec_width<scalar_t>();
    decide_layout_and_index(prep, V);
    for (const Chunk& chunk : chunks_of(static_cast<int64_t>(feats.size()))) {
      WarpParams p = params_for(prep, chunk, pad, prep.nhwc, V);
      const int64_t blocks = assign_blocks(p, prep.nhwc ? -1 : kPixelsPerBlock);
      if (blocks == 0) continue;
      if (prep.index32) {
        launch_forward<scalar_t, int32_t>(p, blocks, prep.nhwc, stream);
      } else {
        launch_forward<scalar_t, int64_t>(p, blocks, prep.nhwc, stream);
      }
    }
  });
  for (size_t s = 0; s < feats.size(); ++s) outs.push_back(like_input(prep.out[s], feats[s]));
  return outs;
}

// grad_feat of the scales in `chunk` by sort + gather (see warp_deterministic.cuh). prep.out holds
// the (uninitialised) grad_feat tensors; every element is written. One sort takes at most
// kMaxSortEntries (INT_MAX) entries, 4 per pixel: a chunk of more than 536,870,911 pixels is
// sorted one scale and one group of whole images at a time (deterministic_grad_feat_split).
template <typename scalar_t>
void deterministic_grad_feat(const Prepared& prep, const Chunk& chunk, Padding pad, cudaStream_t stream);

// The same for a chunk too large for one sort: each scale's images in groups that fit, through
// views of the prepared tensors (narrow along the batch: the kernels read any strides).
template <typename scalar_t>
void deterministic_grad_feat_split(const Prepared& prep, const Chunk& chunk, Padding pad, cudaStream_t stream) {
  for (int64_t s = chunk.first; s < chunk.first + chunk.count; ++s) {
    const at::Tensor& f = prep.feat[s];
    const int64_t N = f.size(0), plane = f.size(2) * f.size(3);
    TORCH_CHECK(4 * plane <= kMaxSortEntries,
                "multiscale_warp backward (CUDA) under torch.use_deterministic_algorithms(True) sorts the "
                "feature gradient's contributions per image: at most 536,870,911 pixels (H * W) per image, got ",
                plane, " at scale ", s, "; use the default (atomic) backward for larger images");
    const int64_t group = images_per_sort(4 * plane, plane);
    for (int64_t n0 = 0; n0 < N; n0 += group) {
      const int64_t count = std::min(group, N - n0);
      Prepared part;
      part.feat.push_back(f.narrow(0, n0, count));
      part.flow.push_back(prep.flow[s].narrow(0, n0, count));
      part.grad_out.push_back(prep.grad_out[s].narrow(0, n0, count));
      part.out.push_back(prep.out[s].narrow(0, n0, count));
      deterministic_grad_feat<scalar_t>(part, Chunk{0, 1}, pad, stream);
    }
  }
}

template <typename scalar_t>
void deterministic_grad_feat(const Prepared& prep, const Chunk& chunk, Padding pad, cudaStream_t stream) {
  using acc_t = at::opmath_type<scalar_t>;
  WarpParams p = params_for(prep, chunk, pad, /*nhwc=*/false, 1);
  const int64_t blocks = assign_blocks(p, kContributionPixelsPerBlock);
  const int64_t total = p.scale[p.num_scales - 1].pixel_begin +
                        p.scale[p.num_scales - 1].N * p.scale[p.num_scales - 1].H * p.scale[p.num_scales - 1].W;
  if (total == 0) return;
  if (4 * total > kMaxSortEntries) {
    deterministic_grad_feat_split<scalar_t>(prep, chunk, pad, stream);
    return;
  }
  // 32-bit keys: every entry id and the sentinel fit (4 * total <= INT_MAX); the radix sort then
  // runs over 32 bits.
  at::Tensor keys = at::empty({4 * total}, prep.feat[chunk.first].options().dtype(at::kInt));
  warp_contributions<acc_t, int32_t>
      <<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(p, static_cast<int32_t>(total), keys.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // A stable sort keeps equal keys in ascending entry order: the fixed summation order. The keys
  // are freed before the gather: only the sorted copy is needed.
  const auto [order, segment_start] = sorted_segments(std::move(keys), total);
  const int64_t gather_blocks = assign_blocks(p, kPixelsPerBlock);
  warp_gather_grad<scalar_t><<<static_cast<unsigned>(gather_blocks), kBlock, 0, stream>>>(
      p, order.data_ptr<int64_t>(), segment_start.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Whether the atomic backward of non-channels_last features should run on channels_last copies
// (vector atomics: C/V atomics per tap instead of C, for three extra passes over the features).
// CROSSNET_FAST_WARP_BACKWARD=direct|channels_last overrides the default (channels_last) so that
// scripts/gpu_bench.py can measure both; scales whose C is not a multiple of the vector width
// always run direct.
bool transpose_for_backward(at::TensorList feats) {
  const char* env = std::getenv("CROSSNET_FAST_WARP_BACKWARD");
  if (env != nullptr && std::string(env) == "direct") return false;
  const int64_t V = feats[0].element_size() > 0 ? 16 / feats[0].element_size() : 1;
  bool any_nchw = false;
  for (const auto& f : feats) {
    if (f.size(1) % V != 0 || f.size(1) < V) return false;
    any_nchw = any_nchw || !f.is_contiguous(at::MemoryFormat::ChannelsLast);
  }
  return any_nchw;
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> multiscale_warp_backward_cuda(
    at::TensorList grad_outs, at::TensorList feats, at::TensorList flows, c10::string_view padding,
    std::array<bool, 2> output_mask) {
  check_cuda_inputs(feats, flows);
  TORCH_CHECK_VALUE(grad_outs.size() == feats.size(), "grad_outs must have one tensor per scale");
  const Padding pad = parse_padding(padding);
  const bool need_feat = output_mask[0], need_flow = output_mask[1];
  std::vector<at::Tensor> grad_feats, grad_flows;
  if (feats.empty() || (!need_feat && !need_flow)) return {grad_feats, grad_flows};
  const c10::cuda::CUDAGuard guard(feats[0].device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  const bool to_channels_last = need_feat && !deterministic && transpose_for_backward(feats);
  Prepared prep;
  for (size_t s = 0; s < feats.size(); ++s) {
    TORCH_CHECK_VALUE(grad_outs[s].sizes() == feats[s].sizes(), "grad_outs[", s, "] must have the shape of feats[", s,
                      "]");
    TORCH_CHECK(grad_outs[s].device() == feats[s].device(), "grad_outs[", s, "] must be on the device of feats");
    prep.feat.push_back(to_channels_last ? feats[s].contiguous(at::MemoryFormat::ChannelsLast) : dense(feats[s]));
    prep.flow.push_back(flows[s]);
    prep.grad_out.push_back(to_channels_last
                                ? grad_outs[s].to(feats[s].scalar_type()).contiguous(at::MemoryFormat::ChannelsLast)
                                : grad_outs[s].to(feats[s].scalar_type()));
    if (need_feat) {
      // The gather path writes every element in the feature dtype. The atomic path accumulates
      // into zeros of the accumulate type (fp32 for fp16/bf16: 16-bit atomics lose contributions
      // once a sum is 256x one of them), cast once below; the buffer keeps the features' layout.
      const at::Tensor& f = prep.feat.back();
      prep.out.push_back(deterministic ? at::empty_like(f)
                                       : at::zeros_like(f, f.options().dtype(accumulate_type(f.scalar_type()))));
    }
    if (need_flow) prep.grad_flow.push_back(at::empty_like(flows[s]));
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feats[0].scalar_type(), "multiscale_warp_backward_cuda",
                                  [&] {
                                    const int64_t V = vec_width<scalar_t>();
                                    decide_layout_and_index(prep, V);
                                    if (prep.nhwc) {
                                      // grad_out must offer the same channel vectors; convert the ones that do not
                                      // (rare: the gradient of a channels_last output is normally channels_last).
                                      for (auto& g : prep.grad_out) {
                                        if (!channel_vectors_ok(g, V)) g = g.contiguous(at::MemoryFormat::ChannelsLast);
                                      }
                                      for (const auto& g : prep.grad_out)
                                        prep.nhwc = prep.nhwc && channel_vectors_ok(g, V);
                                    }
                                    for (const Chunk& chunk : chunks_of(static_cast<int64_t>(feats.size()))) {
                                      WarpParams p = params_for(prep, chunk, pad, prep.nhwc, V);
                                      p.need_feat = need_feat && !deterministic;
                                      p.need_flow = need_flow;
                                      if (p.need_feat || p.need_flow) {
                                        const int64_t blocks = assign_blocks(p, prep.nhwc ? -1 : kPixelsPerBlock);
                                        if (blocks > 0) {
                                          if (prep.index32) {
                                            launch_backward<scalar_t, int32_t>(p, blocks, prep.nhwc, stream);
                                          } else {
                                            launch_backward<scalar_t, int64_t>(p, blocks, prep.nhwc, stream);
                                          }
                                        }
                                      }
                                      if (need_feat && deterministic)
                                        deterministic_grad_feat<scalar_t>(prep, chunk, pad, stream);
                                    }
                                  });
  if (need_feat) {
    for (size_t s = 0; s < feats.size(); ++s) {
      grad_feats.push_back(like_input(prep.out[s].to(feats[s].scalar_type()), feats[s]));
    }
  }
  if (need_flow) grad_flows = prep.grad_flow;
  return {grad_feats, grad_flows};
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(crossnet_fast, CUDA, m) {
  m.impl("multiscale_warp", &cuda::multiscale_warp_cuda);
  m.impl("multiscale_warp_backward", &cuda::multiscale_warp_backward_cuda);
}

}  // namespace crossnet_fast
