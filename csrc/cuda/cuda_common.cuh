// Device helpers shared by the CUDA kernels: runtime-dtype scalar access (so flows of any float
// dtype need no extra template instantiation), 16-byte vectors, and vector atomics.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <ATen/cuda/Atomic.cuh>

#include <cstdint>

namespace crossnet_fast {
namespace cuda {

constexpr int kBlock = 256;  // threads per block of every kernel here

// The float dtype of a tensor that is read or written through a void pointer. The switch is
// uniform across a launch, so it costs a few instructions, not a template instantiation.
enum class FloatKind : int { F32 = 0, F64 = 1, F16 = 2, BF16 = 3 };

inline FloatKind float_kind(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return FloatKind::F32;
    case at::kDouble:
      return FloatKind::F64;
    case at::kHalf:
      return FloatKind::F16;
    case at::kBFloat16:
      return FloatKind::BF16;
    default:
      TORCH_CHECK_TYPE(false, "expected a float16, bfloat16, float32 or float64 tensor, got ", t);
  }
}

template <typename acc_t>
__device__ __forceinline__ acc_t load_as(const void* base, int64_t i, FloatKind kind) {
  switch (kind) {
    case FloatKind::F32:
      return static_cast<acc_t>(static_cast<const float*>(base)[i]);
    case FloatKind::F64:
      return static_cast<acc_t>(static_cast<const double*>(base)[i]);
    case FloatKind::F16:
      return static_cast<acc_t>(static_cast<float>(static_cast<const c10::Half*>(base)[i]));
    default:
      return static_cast<acc_t>(static_cast<float>(static_cast<const c10::BFloat16*>(base)[i]));
  }
}

template <typename acc_t>
__device__ __forceinline__ void store_as(void* base, int64_t i, acc_t v, FloatKind kind) {
  switch (kind) {
    case FloatKind::F32:
      static_cast<float*>(base)[i] = static_cast<float>(v);
      break;
    case FloatKind::F64:
      static_cast<double*>(base)[i] = static_cast<double>(v);
      break;
    case FloatKind::F16:
      static_cast<c10::Half*>(base)[i] = c10::Half(static_cast<float>(v));
      break;
    default:
      static_cast<c10::BFloat16*>(base)[i] = c10::BFloat16(static_cast<float>(v));
      break;
  }
}

// Elements of scalar_t in one 16-byte vector: 4 fp32, 8 fp16/bf16, 2 fp64.
template <typename scalar_t>
constexpr int vec_width() {
  return static_cast<int>(16 / sizeof(scalar_t));
}

template <typename scalar_t, int V>
struct alignas(sizeof(scalar_t) * V) Vec {
  scalar_t v[V];
};

// dst[0..V) += val[0..V) with as few atomic instructions as the architecture allows. dst is
// 16-byte aligned (the host checks it before choosing the vector path).
// Used for the fp32 gradient buffers of fp32, fp16 and bf16 features (V = 4 or 8 values): there
// are no 16-bit atomics in the library, so nothing needs sm_80 (bf16 atomics) to build.
template <typename acc_t, int V>
__device__ __forceinline__ void atomic_add_vec(float* dst, const acc_t (&val)[V]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr bool kVector4 = V % 4 == 0;  // sm_90 has 16-byte float4 atomics: one per 4 values
#else
  constexpr bool kVector4 = false;
#endif
  if constexpr (kVector4) {
#pragma unroll
    for (int i = 0; i < V; i += 4) {
      atomicAdd(reinterpret_cast<float4*>(dst + i), make_float4(val[i], val[i + 1], val[i + 2], val[i + 3]));
    }
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) atomicAdd(dst + i, static_cast<float>(val[i]));
  }
}

template <typename acc_t, int V>
__device__ __forceinline__ void atomic_add_vec(double* dst, const acc_t (&val)[V]) {
#pragma unroll
  for (int i = 0; i < V; ++i) gpuAtomicAddNoReturn(dst + i, static_cast<double>(val[i]));
}

// Index of the scale that owns block `block` given each scale's first block (ascending; scales
// without blocks repeat the next one's start). At most a handful of scales: a linear scan.
template <typename Params>
__device__ __forceinline__ int scale_of_block(const Params& p, int64_t block) {
  int s = 0;
  while (s + 1 < p.num_scales && block >= p.scale[s + 1].block_begin) ++s;
  return s;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace cuda
}  // namespace crossnet_fast
