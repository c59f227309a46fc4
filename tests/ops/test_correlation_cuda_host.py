"""The correlation's CUDA kernel code, compiled for the CPU and run against the float64 oracle.

Most machines that run the tests have no GPU, so tests/ops/test_correlation_cuda.py skips there.
This file still checks the kernels' index math: the part of csrc/cuda/correlation_kernel.cu between
its ``[host-emulation begin]`` and ``[host-emulation end]`` markers (the geometry struct, the
grid-stride loop helper and the three ``__global__`` kernels, plain C++ apart from the CUDA
keywords) is compiled by the host C++ compiler with those keywords defined away and ``blockIdx`` /
``threadIdx`` / ``gridDim`` as globals, and each kernel is run as every thread of a grid, one
thread after another (one block, and several blocks, so that the grid-stride loops are exercised).
What this cannot see: anything specific to the device (launch errors, memory races, the host
wrappers); the GPU check runs those.

Oracle: tests/ops/test_correlation.py's ``F.unfold`` formulation in float64 (never the code under test).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import pytest
import torch
from test_correlation import CASES, assert_near, inputs, oracle
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "csrc", "cuda", "correlation_kernel.cu")
CXX = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")

pytestmark = pytest.mark.skipif(CXX is None, reason="no host C++ compiler")

# Host stand-ins for what the kernels use from CUDA, then the kernels, then one C entry per dtype.
PRELUDE = r"""
#include <cstdint>
#include <ATen/OpMathType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(x)
struct Dim { unsigned x; };
static Dim blockIdx, threadIdx, gridDim;
constexpr int kBlock = 256;
namespace emu {
"""
EPILOGUE = r"""
template <typename F> void launch(unsigned blocks, F f) {
  gridDim.x = blocks;
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < kBlock; ++t) { blockIdx.x = b; threadIdx.x = t; f(); }
}
template <typename T>
void run(const void* f1, const void* f2, const void* go, void* out, void* g1, void* g2, const int64_t* p,
         unsigned blocks) {
  const CorrGeometry g{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10]};
  const int64_t outputs = g.N * g.K * g.Ho * g.Wo, inputs = g.N * g.C * g.H * g.W;
  const T *a = static_cast<const T*>(f1), *b = static_cast<const T*>(f2), *u = static_cast<const T*>(go);
  launch(blocks, [&] { correlation_fwd<T>(a, b, static_cast<T*>(out), g, outputs); });
  launch(blocks, [&] { correlation_grad_f1<T>(u, b, static_cast<T*>(g1), g, inputs); });
  launch(blocks, [&] { correlation_grad_f2<T>(u, a, static_cast<T*>(g2), g, inputs); });
}
}  // namespace emu
#define ENTRY(name, T) extern "C" void name(const void* a, const void* b, const void* go, void* o, void* g1, \
    void* g2, const int64_t* p, unsigned blocks) { emu::run<T>(a, b, go, o, g1, g2, p, blocks); }
ENTRY(run_f64, double)
ENTRY(run_f32, float)
ENTRY(run_f16, c10::Half)
ENTRY(run_bf16, c10::BFloat16)
"""
ENTRIES = {torch.float64: "run_f64", torch.float32: "run_f32", torch.float16: "run_f16", torch.bfloat16: "run_bf16"}


def kernel_section(source: str) -> str:
    begin = source.index("// [host-emulation begin]")
    end = source.index("// [host-emulation end]")
    return source[begin:end]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    with open(SOURCE) as fh:
        code = PRELUDE + kernel_section(fh.read()) + EPILOGUE
    tmp = tmp_path_factory.mktemp("corr_host")
    src, so = tmp / "kernels.cpp", tmp / "kernels.so"
    src.write_text(code)
    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    libdir = os.path.join(os.path.dirname(torch.__file__), "lib")
    cmd = [
        CXX,
        "-std=c++20",
        "-O1",
        "-shared",
        "-fPIC",
        *includes,
        str(src),
        "-o",
        str(so),
        f"-L{libdir}",
        "-lc10",
        f"-Wl,-rpath,{libdir}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return ctypes.CDLL(str(so))


def run_kernels(lib, f1, f2, grad_out, d, dil, s, blocks):
    """Output and both gradients from the kernel code; unwritten elements would stay NaN."""
    n, c, h, w = f1.shape
    side = 2 * d + 1
    ho, wo = -(-h // s), -(-w // s)
    out = torch.full((n, side * side, ho, wo), float("nan"), dtype=f1.dtype)
    g1, g2 = torch.full_like(f1, float("nan")), torch.full_like(f2, float("nan"))
    params = torch.tensor([n, c, h, w, d, dil, s, ho, wo, side, side * side], dtype=torch.int64)
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    getattr(lib, ENTRIES[f1.dtype])(
        ptr(f1), ptr(f2), ptr(grad_out), ptr(out), ptr(g1), ptr(g2), ptr(params), ctypes.c_uint(blocks)
    )
    return out, g1, g2


# The host wrappers return early for empty inputs and C == 0: the kernels never see them.
HOST_CASES = [case for case in CASES if case[0] > 0 and case[1] > 0] + [
    (2, 6, 9, 11, 3, 2, 2),
    (1, 4, 12, 13, 5, 1, 3),
    (2, 3, 5, 40, 2, 3, 1),  # displacements reaching past the image
]


@pytest.mark.parametrize("blocks", [1, 3])
@pytest.mark.parametrize("dtype", list(ENTRIES))
@pytest.mark.parametrize("case", HOST_CASES)
def test_cuda_kernel_code_matches_oracle(lib, case, dtype, blocks):
    n, c, h, w, d, dil, s = case
    f1, f2 = inputs(n, c, h, w, dtype, seed=3)
    side = 2 * d + 1
    g = torch.randn(
        n, side * side, -(-h // s), -(-w // s), generator=torch.Generator().manual_seed(4), dtype=torch.float64
    ).to(dtype)
    got = run_kernels(lib, f1, f2, g, d, dil, s, blocks)
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, oracle(f1, f2, d, dil, s, g)):
        assert_near(x, y, dtype, f"{name} {case} {dtype} blocks={blocks}")


def test_cuda_kernel_code_keeps_nan_local(lib):
    """A NaN in f2 at P reaches exactly the outputs that read P (skipped terms are not 0 * NaN)."""
    f1, f2 = inputs(1, 3, 7, 8, torch.float32, seed=5)
    f2[0, 1, 2, 4] = float("nan")
    d, dil, s = 2, 1, 1
    g = torch.zeros(1, 25, 7, 8)
    out, _, _ = run_kernels(lib, f1, f2, g, d, dil, s, 1)
    reads = 0
    for k in range(25):
        dy, dx = k // 5 - d, k % 5 - d
        y, x = 2 - dy, 4 - dx  # the output point whose displaced point is (2, 4)
        if 0 <= y < 7 and 0 <= x < 8:
            assert out[0, k, y, x].isnan()
            reads += 1
    assert int(out.isnan().sum()) == reads == 25
