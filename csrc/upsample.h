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

}  // namespace crossnet_fast
