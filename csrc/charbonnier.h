// The Charbonnier term rho = sqrt(d^2 + eps^2), shared by the CPU and CUDA kernels.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>

#include "fp_rounding.h"

namespace crossnet_fast {

// Beyond 2^60, eps^2 / d^2 is far below the rounding unit of fp32 and fp64 (for eps < 2^40), so
// rho = |d| to the last bit; and in fp32 d * d overflows a little further on (|d| > 1.8e19).
template <typename acc_t>
C10_HOST_DEVICE constexpr acc_t charbonnier_big() {
  return acc_t(1.152921504606847e18);  // 2^60
}

// sqrt(d^2 + eps2) without overflow for large finite d (the gradient d / rho is then +-1): where
// d * d overflowed, rho is inf and |d| is the exact answer (|d| > 1.8e19 in fp32 makes eps^2
// negligible); for d = +-inf, |d| is inf anyway. A select after the plain formula, so the hot
// loop keeps its vector sqrt.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t charbonnier_rho(acc_t d, acc_t eps2) {
  using std::sqrt;
  // d * d and the sum rounded one at a time on the GPU too (nvcc would fuse them), as on the CPU.
  const acc_t root = sqrt(add_rn(mul_rn(d, d), eps2));
  const acc_t ad = d < acc_t(0) ? -d : d;
  return root > charbonnier_big<acc_t>() ? ad : root;
}

}  // namespace crossnet_fast
