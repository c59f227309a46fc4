// Products and sums rounded one at a time, on the GPU as on the CPU.
//
// nvcc contracts a * b + c into one fused multiply-add (rounded once) by default; the CPU build is
// compiled with -ffp-contract=off (two roundings). Where a sample point lands exactly on a pixel,
// that difference moves it a hair off the pixel and changes which taps are read (issue 24 item 1).
// The coordinate math therefore multiplies and adds through these helpers: __fmul_rn/__fadd_rn
// (and the double versions) are never contracted. On the host they are the plain operators (the
// flags already keep them apart there). Everything else (weights, sums) may still be contracted.
#pragma once

#include <c10/macros/Macros.h>

namespace crossnet_fast {

// acc_t is float or double (the kernels' accumulation types).
C10_HOST_DEVICE inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

C10_HOST_DEVICE inline float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

C10_HOST_DEVICE inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

C10_HOST_DEVICE inline double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

}  // namespace crossnet_fast
