// Where the AVX2 code paths exist and when they run: the compile-time switch, the run-time CPU
// check and the one predicate every call site of an AVX2 block uses.
//
// The extension is compiled for the baseline x86-64 ISA, so it loads on any x86-64 CPU; the AVX2
// functions carry their own target attribute and are called only after has_avx2() said yes. On
// other architectures or compilers CROSSNET_FAST_X86_DISPATCH is 0 and the AVX2 headers are empty,
// which is why their call sites sit inside `#if CROSSNET_FAST_X86_DISPATCH`.
//
// Every AVX2 block computes the portable loop's expressions operation for operation (no fused
// multiply-add: setup.py builds with -ffp-contract=off) and adds in the same order, so results are
// bit-identical whichever path ran (tests/ops/test_cpu_isa_paths.py).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#if !defined(CROSSNET_FAST_X86_DISPATCH)
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CROSSNET_FAST_X86_DISPATCH 1
#else
#define CROSSNET_FAST_X86_DISPATCH 0
#endif
#endif

#if CROSSNET_FAST_X86_DISPATCH
#include <immintrin.h>
// A function compiled for AVX2 and FMA (an entry point: called only where has_avx2()).
#define CROSSNET_FAST_TARGET_AVX2 __attribute__((target("avx2,fma")))
// An 8-lane building block (taps, pairs, transposes): always inlined into its caller, because it
// takes and returns structs of vectors, which an actual call would pass through memory; left to
// its own judgement GCC stops inlining them past a few call sites, and the one-channel lookups
// then run 1.9x slower.
#define CROSSNET_FAST_AVX2_BLOCK __attribute__((target("avx2,fma"), always_inline))
#endif

namespace crossnet_fast {
namespace cpu {

// Whether the CPU runs the AVX2 paths: AVX2 and FMA present, and CROSSNET_FAST_CPU_ISA is not
// "baseline" (which forces the portable loops, to compare the two or to rule the vector code out
// when debugging). Read once.
inline bool has_avx2() {
#if CROSSNET_FAST_X86_DISPATCH
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && [] {
    const char* isa = std::getenv("CROSSNET_FAST_CPU_ISA");
    return isa == nullptr || std::string(isa) != "baseline";
  }();
  return yes;
#else
  return false;
#endif
}

// The types of the vector path: fp32 data summed in fp32, with int32 plane offsets (the index
// width of AVX2 gathers). A compile-time test, so that `if constexpr` keeps the fp32-only calls
// out of the other instantiations.
template <typename scalar_t, typename acc_t, typename index_t = int32_t>
inline constexpr bool kAvx2Types =
    std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>;

// The vector-path predicate: the types above, on a CPU that runs AVX2. Call sites read
//   #if CROSSNET_FAST_X86_DISPATCH
//     if constexpr (kAvx2Types<scalar_t, acc_t, index_t>) {
//       if (has_avx2()) ... the AVX2 block ...
//     }
//   #endif
// (both halves of use_avx2, split because the block compiles only for the vector types); a test
// that needs only the answer calls use_avx2.
template <typename scalar_t, typename acc_t, typename index_t = int32_t>
inline bool use_avx2() {
  return CROSSNET_FAST_X86_DISPATCH && kAvx2Types<scalar_t, acc_t, index_t> && has_avx2();
}

}  // namespace cpu
}  // namespace crossnet_fast
