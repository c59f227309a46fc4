// Argument parsing and checks shared by the CPU and CUDA entry points.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/string_view.h>

#include "bilinear.h"

namespace crossnet_fast {

enum class Reduction : int { Mean = 0, Sum = 1, Batch = 2, None = 3 };

inline Padding parse_padding(c10::string_view padding) {
  if (padding == "border") return Padding::Border;
  if (padding == "zeros") return Padding::Zeros;
  TORCH_CHECK_VALUE(false, "padding must be 'border' or 'zeros', got '", std::string(padding), "'");
}

inline Reduction parse_reduction(c10::string_view reduction) {
  if (reduction == "mean") return Reduction::Mean;
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "batch") return Reduction::Batch;
  if (reduction == "none") return Reduction::None;
  TORCH_CHECK_VALUE(false, "reduction must be 'mean', 'sum', 'batch' or 'none', got '", std::string(reduction), "'");
}

// Factor that turns the sum of per-element losses into the reduced loss.
inline double reduction_scale(Reduction reduction, const at::Tensor& pred) {
  switch (reduction) {
    case Reduction::Mean:
      return pred.numel() > 0 ? 1.0 / static_cast<double>(pred.numel()) : 0.0;
    case Reduction::Batch:
      return pred.dim() > 0 && pred.size(0) > 0 ? 1.0 / static_cast<double>(pred.size(0)) : 0.0;
    default:
      return 1.0;
  }
}

inline bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// feats[s] (N, C, H, W) with flows[s] (N, 2, H, W): the checks the Python layer also does, repeated
// here because the ops can be called directly through torch.ops.
inline void check_warp_inputs(at::TensorList feats, at::TensorList flows) {
  TORCH_CHECK_VALUE(feats.size() == flows.size(), "feats and flows must have the same length, got ", feats.size(),
                    " and ", flows.size());
  for (size_t s = 0; s < feats.size(); ++s) {
    const auto& f = feats[s];
    const auto& v = flows[s];
    TORCH_CHECK_VALUE(f.dim() == 4, "feats[", s, "] must be (N, C, H, W), got ", f.sizes());
    TORCH_CHECK_VALUE(v.dim() == 4 && v.size(1) == 2, "flows[", s, "] must be (N, 2, H, W), got ", v.sizes());
    TORCH_CHECK_VALUE(v.size(0) == f.size(0) && v.size(2) == f.size(2) && v.size(3) == f.size(3), "flows[", s, "] ",
                      v.sizes(), " does not match feats[", s, "] ", f.sizes());
    TORCH_CHECK_TYPE(is_supported_float(f.scalar_type()) && is_supported_float(v.scalar_type()),
                     "feats and flows must be float16, bfloat16, float32 or float64");
    TORCH_CHECK(f.device() == v.device() && f.device() == feats[0].device(),
                "feats and flows must all be on one device");
    TORCH_CHECK_TYPE(f.scalar_type() == feats[0].scalar_type(), "every scale must have one dtype");
  }
}

// pred and target of the Charbonnier ops: same shape, same float dtype, same device.
inline void check_loss_inputs(const at::Tensor& pred, const at::Tensor& target) {
  TORCH_CHECK_VALUE(pred.sizes() == target.sizes(), "target must have the shape of pred ", pred.sizes(), ", got ",
                    target.sizes());
  TORCH_CHECK_TYPE(pred.scalar_type() == target.scalar_type(), "pred and target must have the same dtype");
  TORCH_CHECK_TYPE(is_supported_float(pred.scalar_type()), "pred must be a float tensor");
  TORCH_CHECK(target.device() == pred.device(), "pred and target must be on one device");
}

// The (N, C, H, W) float input of the upsample ops and an integer scale >= 1.
inline void check_upsample_input(const at::Tensor& t, int64_t scale, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 4, name, " must be (N, C, H, W), got ", t.sizes());
  TORCH_CHECK_VALUE(scale >= 1, "scale must be >= 1, got ", scale);
  TORCH_CHECK_TYPE(is_supported_float(t.scalar_type()), name, " must be a float tensor");
}

// The (N, C, H, W) float input of the resize ops (H, W > 0: there is nothing to interpolate from
// an empty plane) and the positive size (`sizes`: its name in the message) of the other side.
inline void check_resize_input(const at::Tensor& t, int64_t height, int64_t width, const char* name,
                               const char* sizes) {
  TORCH_CHECK_VALUE(t.dim() == 4, name, " must be (N, C, H, W), got ", t.sizes());
  TORCH_CHECK_VALUE(t.size(2) > 0 && t.size(3) > 0, name, " must have a non-empty (H, W) plane, got ", t.sizes());
  TORCH_CHECK_VALUE(height > 0 && width > 0, sizes, " must be positive, got ", height, ", ", width);
  TORCH_CHECK_TYPE(is_supported_float(t.scalar_type()), name, " must be a float tensor");
}

// padding of grid_sample (F.grid_sample's padding_mode strings).
inline GridPadding parse_grid_padding(c10::string_view padding) {
  if (padding == "zeros") return GridPadding::Zeros;
  if (padding == "border") return GridPadding::Border;
  if (padding == "reflection") return GridPadding::Reflection;
  TORCH_CHECK_VALUE(false, "padding must be 'zeros', 'border' or 'reflection', got '", std::string(padding), "'");
}

// input (N, C, H, W) with H, W > 0 (F.grid_sample refuses empty planes: there is nothing to pad
// from) and grid (N, Ho, Wo, 2), both float, one device.
inline void check_grid_sample_inputs(const at::Tensor& input, const at::Tensor& grid) {
  TORCH_CHECK_VALUE(input.dim() == 4, "input must be (N, C, H, W), got ", input.sizes());
  TORCH_CHECK_VALUE(grid.dim() == 4 && grid.size(3) == 2, "grid must be (N, Ho, Wo, 2), got ", grid.sizes());
  TORCH_CHECK_VALUE(grid.size(0) == input.size(0), "grid ", grid.sizes(), " must have the batch size of input ",
                    input.sizes());
  TORCH_CHECK_VALUE(input.size(2) > 0 && input.size(3) > 0, "input must have non-empty spatial dimensions, got ",
                    input.sizes());
  TORCH_CHECK_TYPE(is_supported_float(input.scalar_type()) && is_supported_float(grid.scalar_type()),
                   "input and grid must be float16, bfloat16, float32 or float64");
  TORCH_CHECK(input.device() == grid.device(), "input and grid must be on one device");
}

// f1, f2 (N, C, H, W) of the correlation ops: one shape, float dtype and device; the window's
// integer arguments (crossnet_fast/ops/_validation.py repeats these checks with longer messages).
inline void check_correlation_inputs(const at::Tensor& f1, const at::Tensor& f2, int64_t max_displacement,
                                     int64_t dilation, int64_t stride) {
  TORCH_CHECK_VALUE(f1.dim() == 4, "f1 must be (N, C, H, W), got ", f1.sizes());
  TORCH_CHECK_VALUE(f2.sizes() == f1.sizes(), "f2 must have the shape of f1 ", f1.sizes(), ", got ", f2.sizes());
  TORCH_CHECK_TYPE(is_supported_float(f1.scalar_type()), "f1 must be float16, bfloat16, float32 or float64, got ",
                   f1.scalar_type());
  TORCH_CHECK_TYPE(f2.scalar_type() == f1.scalar_type(), "f1 and f2 must have the same dtype, got ", f1.scalar_type(),
                   " and ", f2.scalar_type());
  TORCH_CHECK(f1.device() == f2.device(), "f1 and f2 must be on one device");
  TORCH_CHECK_VALUE(max_displacement >= 0, "max_displacement must be >= 0, got ", max_displacement);
  TORCH_CHECK_VALUE(dilation >= 1, "dilation must be >= 1, got ", dilation);
  TORCH_CHECK_VALUE(stride >= 1, "stride must be >= 1, got ", stride);
}

// The dtype the kernels compute in: fp64 for fp64 features, fp32 otherwise.
inline at::ScalarType accumulate_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// Outputs with an input's shape follow its layout (empty_like), as the fake kernels promise.
inline at::Tensor like_input(const at::Tensor& computed_contiguous, const at::Tensor& input) {
  if (computed_contiguous.strides() == input.strides()) return computed_contiguous;
  at::Tensor out = at::empty_like(input, computed_contiguous.options());
  out.copy_(computed_contiguous);
  return out;
}

}  // namespace crossnet_fast
