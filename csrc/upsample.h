// Index math of bilinear flow resampling, shared by CPU and CUDA kernels: x`scale` upsampling
// (align_corners=False, upsample_flow) and resizing to any size with either convention (resize_flow).
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>

#include "fp_rounding.h"

namespace crossnet_fast {

// The two source indices and the weight of the second one for output index `dst` along an axis of
// `size_in` input samples: source coordinate (dst + 0.5) / scale - 0.5, clamped at 0.
template <typename acc_t>
struct UpsampleTap {
  int64_t i0, i1;
  acc_t frac;
};

template <typename acc_t>
C10_HOST_DEVICE inline UpsampleTap<acc_t> upsample_tap(int64_t dst, int64_t scale, int64_t size_in) {
  acc_t src = (static_cast<acc_t>(dst) + acc_t(0.5)) / static_cast<acc_t>(scale) - acc_t(0.5);
  if (src < acc_t(0)) src = acc_t(0);
  int64_t i0 = static_cast<int64_t>(src);  // src >= 0: truncation is floor
  if (i0 > size_in - 1) i0 = size_in - 1;
  const int64_t i1 = i0 + 1 < size_in ? i0 + 1 : size_in - 1;
  return {i0, i1, src - static_cast<acc_t>(i0)};
}

// Output indices [*lo, *hi) that may read input index `src` (a superset: every output whose source
// coordinate lies within one input sample of `src`), clipped to [0, size_in * scale).
C10_HOST_DEVICE inline void upsample_footprint(int64_t src, int64_t scale, int64_t size_in, int64_t* lo, int64_t* hi) {
  const int64_t begin = (src - 1) * scale;
  const int64_t end = (src + 2) * scale;
  *lo = begin < 0 ? 0 : begin;
  *hi = end > size_in * scale ? size_in * scale : end;
}

// One axis of upsample_flow: output index d reads source coordinate (d + 0.5) / scale - 0.5.
template <typename acc_t>
struct UpsampleAxis {
  int64_t size_in, scale;
  C10_HOST_DEVICE UpsampleTap<acc_t> tap(int64_t dst) const { return upsample_tap<acc_t>(dst, scale, size_in); }
  C10_HOST_DEVICE void footprint(int64_t src, int64_t* lo, int64_t* hi) const {
    upsample_footprint(src, scale, size_in, lo, hi);
  }
};

// Input samples per output sample along an axis, as F.interpolate computes it for an output size
// (no scale_factor): (in - 1) / (out - 1) with align_corners (0 for a single output sample), in / out
// without; in acc_t, as PyTorch's upsample kernels do.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t resize_step(int64_t size_in, int64_t size_out, bool align_corners) {
  if (align_corners)
    return size_out > 1 ? static_cast<acc_t>(size_in - 1) / static_cast<acc_t>(size_out - 1) : acc_t(0);
  return static_cast<acc_t>(size_in) / static_cast<acc_t>(size_out);
}

// One axis of resize_flow: output index d reads source coordinate step * d (align_corners) or
// step * (d + 0.5) - 0.5 clamped at 0 (pixel centres), like F.interpolate(size=...).
template <typename acc_t>
struct ResizeAxis {
  int64_t size_in, size_out;
  acc_t step;
  bool align_corners;

  C10_HOST_DEVICE UpsampleTap<acc_t> tap(int64_t dst) const {
    // mul_rn/add_rn: rounded twice, as on the CPU (a fused multiply-add moves points off pixels).
    acc_t src = align_corners ? mul_rn(step, static_cast<acc_t>(dst))
                              : add_rn(mul_rn(step, static_cast<acc_t>(dst) + acc_t(0.5)), acc_t(-0.5));
    if (src < acc_t(0)) src = acc_t(0);
    int64_t i0 = static_cast<int64_t>(src);  // src >= 0: truncation is floor
    if (i0 > size_in - 1) i0 = size_in - 1;
    const int64_t i1 = i0 + 1 < size_in ? i0 + 1 : size_in - 1;
    return {i0, i1, src - static_cast<acc_t>(i0)};
  }

  // Output indices [*lo, *hi) that may read input index `src`: a superset of those whose source
  // coordinate lies in [src - 1, src + 1] (one sample of margin each side for rounding; every
  // output of clamped coordinate 0 for src <= 1), clipped to [0, size_out).
  C10_HOST_DEVICE void footprint(int64_t src, int64_t* lo, int64_t* hi) const {
    if (step <= acc_t(0)) {  // a single output sample (align_corners): it reads index 0 (and 1)
      *lo = 0;
      *hi = src <= 1 ? size_out : 0;
      return;
    }
    const acc_t shift = align_corners ? acc_t(0) : acc_t(0.5);
    const acc_t first = (static_cast<acc_t>(src - 1) + shift) / step - shift;
    const acc_t last = (static_cast<acc_t>(src + 1) + shift) / step - shift;
    int64_t begin = src <= 1 ? 0 : static_cast<int64_t>(first) - 1;  // first > 0 here: truncation is floor
    int64_t end = static_cast<int64_t>(last) + 2;
    *lo = begin < 0 ? 0 : begin;
    *hi = end > size_out ? size_out : end;
    if (*hi < *lo) *hi = *lo;
  }
};

// The weight with which output index `dst` reads input index `src` along `axis` (0 when it does
// not read it; both taps may be `src` at the clamped last sample, then the weights add up).
template <typename acc_t, typename Axis>
C10_HOST_DEVICE inline acc_t axis_weight(const Axis& axis, int64_t dst, int64_t src) {
  const UpsampleTap<acc_t> t = axis.tap(dst);
  acc_t w = acc_t(0);
  if (t.i0 == src) w += acc_t(1) - t.frac;
  if (t.i1 == src) w += t.frac;
  return w;
}

// Host-side axis descriptions: `as<acc_t>()` gives the UpsampleAxis / ResizeAxis of the
// accumulation type that the kernels' dtype dispatch picks (the CPU and CUDA launchers share them).
struct UpsampleAxisSpec {
  int64_t size_in, scale;
  template <typename acc_t>
  UpsampleAxis<acc_t> as() const {
    return {size_in, scale};
  }
};

struct ResizeAxisSpec {
  int64_t size_in, size_out;
  bool align_corners;
  template <typename acc_t>
  ResizeAxis<acc_t> as() const {
    return {size_in, size_out, resize_step<acc_t>(size_in, size_out, align_corners), align_corners};
  }
};

}  // namespace crossnet_fast
