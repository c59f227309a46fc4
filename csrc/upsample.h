// Index math of bilinear x`scale` upsampling (align_corners=False), shared by CPU and CUDA kernels.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>

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

// The weight with which output index `dst` reads input index `src` along one axis (0 when it does
// not read it; both taps may be `src` at the clamped last sample, then the weights add up).
template <typename acc_t>
C10_HOST_DEVICE inline acc_t upsample_weight(int64_t dst, int64_t src, int64_t scale, int64_t size_in) {
  const UpsampleTap<acc_t> t = upsample_tap<acc_t>(dst, scale, size_in);
  acc_t w = acc_t(0);
  if (t.i0 == src) w += acc_t(1) - t.frac;
  if (t.i1 == src) w += t.frac;
  return w;
}

// Output indices [*lo, *hi) that may read input index `src` (a superset: every output whose source
// coordinate lies within one input sample of `src`), clipped to [0, size_in * scale).
C10_HOST_DEVICE inline void upsample_footprint(int64_t src, int64_t scale, int64_t size_in, int64_t* lo, int64_t* hi) {
  const int64_t begin = (src - 1) * scale;
  const int64_t end = (src + 2) * scale;
  *lo = begin < 0 ? 0 : begin;
  *hi = end > size_in * scale ? size_in * scale : end;
}

}  // namespace crossnet_fast
