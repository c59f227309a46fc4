"""The GPU rounds the sample coordinates like the CPU (issue 24, items 1, 2 and 5), read from PTX.

No GPU is needed: nvcc 13.0 and Triton 3.8 compile for sm_90 here, and the PTX says how each
operation rounds. The CPU build is compiled with -ffp-contract=off (every product and sum rounded
on its own) and divides and takes square roots correctly rounded; on the GPU a fused multiply-add
(``fma``), an approximate division (``div.full``/``div.approx``) or an approximate square root
(``sqrt.approx``) in the coordinate or Charbonnier math moves a point that lands exactly on a pixel
a hair off it, so a different pair of taps is read (an inf in a row that should not be read leaks).

- CUDA: a small translation unit instantiates every coordinate routine of csrc/bilinear.h and
  csrc/upsample.h (float and double, every padding and convention) and the Charbonnier term of
  csrc/charbonnier.h in its own kernel; none may contain ``fma`` (reflection: only the device
  fmod's own, an exact algorithm).
- Triton: every coordinate-computing kernel (grid_sample, resize_flow, upsample_flow) and every
  Charbonnier kernel is compiled with the options its launcher passes (``LAUNCH_OPTIONS``); none may
  contain ``fma``, ``div.full``, ``div.approx`` or ``sqrt.approx``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda")
NVCC = os.path.join(CUDA_HOME, "bin", "nvcc")
HAS_NVCC = os.path.exists(NVCC) or shutil.which("nvcc") is not None
HAS_TRITON = importlib.util.find_spec("triton") is not None
APPROXIMATE = re.compile(r"\b(fma\.\w+|div\.full\.\w+|div\.approx\.\w+|sqrt\.approx\.\w+)")

# Each kernel computes one coordinate routine from loaded inputs (so nothing folds to a constant).
COORDINATE_TU = r"""
#include "bilinear.h"
#include "upsample.h"
#include "charbonnier.h"
using namespace crossnet_fast;

template <typename T>
__global__ void charbonnier_term(const T* d, T* out, T eps2) {
  out[threadIdx.x] = charbonnier_rho<T>(d[threadIdx.x], eps2);
}

template <typename T, int PAD, bool AC>
__global__ void grid_coordinate(const T* g, T* out, long long size) {
  const auto s = grid_source_coordinate<T>(g[threadIdx.x], size, static_cast<GridPadding>(PAD), AC);
  out[2 * threadIdx.x] = s.coord;
  out[2 * threadIdx.x + 1] = s.factor;
}

template <typename T, bool AC>
__global__ void resize_coordinate(const int64_t* sizes, T* out) {
  const ResizeAxis<T> a{sizes[0], sizes[1], resize_step<T>(sizes[0], sizes[1], AC), AC};
  const auto t = a.tap(sizes[2] + threadIdx.x);
  int64_t lo, hi;
  a.footprint(sizes[2] + threadIdx.x, &lo, &hi);
  out[threadIdx.x] = t.frac + static_cast<T>(t.i0 + t.i1 + lo + hi);
}

template <typename T>
__global__ void upsample_coordinate(const int64_t* sizes, T* out) {
  const auto t = upsample_tap<T>(sizes[0] + threadIdx.x, sizes[1], sizes[2]);
  out[threadIdx.x] = t.frac + static_cast<T>(t.i0 + t.i1);
}

template <typename T>
__global__ void grid_taps_kernel(const T* g, T* out, int h, int w, int pad, bool ac) {
  const auto r = grid_taps_strided<T, int>(g[0], g[1], h, w, w, 1, static_cast<GridPadding>(pad), ac);
  for (int k = 0; k < 4; ++k) {
    out[4 * k] = r.taps.weight[k];
    out[4 * k + 1] = r.taps.dweight_dx[k];
    out[4 * k + 2] = r.taps.dweight_dy[k];
    out[4 * k + 3] = static_cast<T>(r.taps.offset[k]);
  }
}

// The two fmod calls of the reflection alone: the device fmodf is an exact algorithm that uses
// fma internally; a reflection kernel may contain these and no other.
template <typename T>
__global__ void reflection_fmods(const T* a, T* out) {
  out[0] = ::fmod(a[0], a[1]);
  out[1] = ::fmod(::floor(a[0] / a[1]), T(2));
}

#define GRID(T, P, A) template __global__ void grid_coordinate<T, P, A>(const T*, T*, long long);
GRID(float, 0, false) GRID(float, 0, true) GRID(float, 1, false) GRID(float, 1, true)
GRID(float, 2, false) GRID(float, 2, true)
GRID(double, 0, false) GRID(double, 0, true) GRID(double, 1, false) GRID(double, 1, true)
GRID(double, 2, false) GRID(double, 2, true)
template __global__ void resize_coordinate<float, false>(const int64_t*, float*);
template __global__ void resize_coordinate<float, true>(const int64_t*, float*);
template __global__ void resize_coordinate<double, false>(const int64_t*, double*);
template __global__ void resize_coordinate<double, true>(const int64_t*, double*);
template __global__ void upsample_coordinate<float>(const int64_t*, float*);
template __global__ void upsample_coordinate<double>(const int64_t*, double*);
template __global__ void grid_taps_kernel<float>(const float*, float*, int, int, int, bool);
template __global__ void grid_taps_kernel<double>(const double*, double*, int, int, int, bool);
template __global__ void charbonnier_term<float>(const float*, float*, float);
template __global__ void charbonnier_term<double>(const double*, double*, double);
template __global__ void reflection_fmods<float>(const float*, float*);
template __global__ void reflection_fmods<double>(const double*, double*);
"""


def ptx_functions(ptx: str) -> dict[str, str]:
    """{entry name: its body} of a PTX module (each ``.entry`` up to the next one)."""
    parts = re.split(r"^\s*\.(?:visible\s+)?\.entry\s+", ptx, flags=re.M)
    return {p.split("(", 1)[0].strip(): p for p in parts[1:]}


@pytest.mark.skipif(not HAS_NVCC, reason="nvcc not found")
def test_cuda_coordinate_routines_have_no_fused_multiply_add(tmp_path):
    """csrc/bilinear.h and csrc/upsample.h coordinates (and csrc/charbonnier.h's d^2 + eps^2) compile
    without fma for sm_90 (item 1)."""
    from torch.utils.cpp_extension import include_paths

    src = tmp_path / "coordinates.cu"
    src.write_text(COORDINATE_TU)
    out = tmp_path / "coordinates.ptx"
    nvcc = NVCC if os.path.exists(NVCC) else shutil.which("nvcc")
    cmd = [
        nvcc,
        "-arch=sm_90",
        "-ptx",
        "-O3",
        "-std=c++17",
        "--expt-relaxed-constexpr",
        "-I",
        os.path.join(ROOT, "csrc"),
        *[a for p in include_paths() for a in ("-I", p)],
        str(src),
        "-o",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    functions = ptx_functions(out.read_text())
    assert len(functions) == 24, sorted(functions)

    def fmas(name):
        return len(re.findall(r"\bfma\.\w+", functions[name]))

    # Reflection (padding 2) calls fmod, which may keep the fmas of its own exact algorithm: a
    # reflection coordinate is allowed those of reflection_fmods, grid_taps_kernel (two axes, any
    # padding) twice as many; nothing else may have any.
    fmod_fmas = {re.search(r"I([fd])E", n).group(1): fmas(n) for n in functions if "reflection_fmods" in n}
    allowed = {}
    for name in functions:
        if "reflection_fmods" in name:
            continue
        t = re.search(r"I([fd])[EL]", name).group(1)
        allowed[name] = fmod_fmas[t] * (2 if "grid_taps" in name else 1 if "Li2E" in name else 0)
    bad = {name: f"{fmas(name)} fma (allowed {allowed[name]})" for name in allowed if fmas(name) > allowed[name]}
    assert not bad, f"fused multiply-adds in coordinate routines: {bad}"


# ----------------------------------------------------------------------------------------------
# Triton: compile exactly what the launchers launch


def _record_launches(monkeypatch, module, names):
    """Replace ``module``'s kernels by recorders: returns a list receiving (kernel, args, kwargs)."""
    launches = []

    class Recorder:
        def __init__(self, fn):
            self.fn = fn

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append((self.fn, args, kwargs))

    for name in names:
        monkeypatch.setattr(module, name, Recorder(getattr(module, name)))
    return launches


def _compile_recorded(fn, args, kwargs):
    """PTX of ``fn`` compiled for sm_90 as the recorded launch would compile it: tensors as pointers
    of their dtype, Python ints and floats typed as Triton types them, keyword constexprs, and
    the launch options (num_warps, enable_fp_fusion, ...)."""
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import mangle_type

    names = fn.arg_names
    tdt = {
        torch.float32: "fp32",
        torch.float64: "fp64",
        torch.float16: "fp16",
        torch.bfloat16: "bf16",
        torch.int64: "i64",
        torch.int32: "i32",
    }
    options = {k: v for k, v in kwargs.items() if k not in names}
    consts = {k: v for k, v in kwargs.items() if k in names}
    signature, attrs = {}, {}
    for i, name in enumerate(names):
        if name in consts:
            signature[name] = "constexpr"
            continue
        a = args[i]
        if isinstance(a, torch.Tensor):
            signature[name] = "*" + tdt[a.dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = mangle_type(a)
    src = ASTSource(fn, signature=signature, constexprs={(names.index(k),): v for k, v in consts.items()}, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]


def _launch_all(monkeypatch):
    """Every coordinate and Charbonnier kernel launch of the Triton launchers (fp32 and fp64,
    every grid_sample padding and convention, both resize conventions), recorded, not run."""
    import torch

    from crossnet_fast.triton import _common
    from crossnet_fast.triton import charbonnier as ch
    from crossnet_fast.triton import grid_sample as gs
    from crossnet_fast.triton import resize_flow as rs
    from crossnet_fast.triton import upsample_flow as up

    monkeypatch.setattr(_common, "check_device", lambda *a, **k: None)
    monkeypatch.setattr(_common, "interpreting", lambda: False)
    monkeypatch.setenv(_common.AUTOTUNE_ENV, "0")
    launches = _record_launches(monkeypatch, gs, ["_grid_sample_fwd_kernel", "_grid_sample_bwd_kernel"])
    rs_l = _record_launches(monkeypatch, rs, ["_resize_fwd_kernel", "_resize_bwd_kernel"])
    up_l = _record_launches(monkeypatch, up, ["_upsample_fwd_kernel", "_upsample_bwd_kernel"])
    ch_l = _record_launches(monkeypatch, ch, ["_charbonnier_kernel", "_finish_kernel", "_charbonnier_bwd_kernel"])
    for dt in (torch.float32, torch.float64):
        inp = torch.zeros(1, 3, 5, 7, dtype=dt)
        grid = torch.zeros(1, 4, 6, 2, dtype=dt)
        for pad in ("zeros", "border", "reflection"):
            for ac in (False, True):
                gs.grid_sample(inp, grid, pad, ac)
                gs.grid_sample_backward(torch.zeros(1, 3, 4, 6, dtype=dt), inp, grid, pad, ac, [True, True])
        flow = torch.zeros(1, 2, 5, 7, dtype=dt)
        for ac in (False, True):
            rs.resize_flow(flow, 13, 9, ac)
            rs.resize_flow_backward(torch.zeros(1, 2, 13, 9, dtype=dt), 5, 7, ac)
        up.upsample_flow(flow, 3)
        up.upsample_flow_backward(torch.zeros(1, 2, 15, 21, dtype=dt), 3)
        pred = torch.zeros(2, 3, 4, 5, dtype=dt)
        for red in ("mean", "none"):
            ch.charbonnier(pred, pred, 1e-3, red, True)
            ch.charbonnier_backward(
                torch.ones((), dtype=dt) if red != "none" else torch.ones_like(pred), pred, pred, 1e-3, red
            )
    return launches + rs_l + up_l + ch_l


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
def test_triton_coordinate_and_charbonnier_kernels_round_like_the_cpu(monkeypatch):
    """No fma, approximate division or approximate square root in what the launchers launch
    (items 1, 2, 5): enable_fp_fusion=False, tl.div_rn and tl.sqrt_rn where fp32 needs them."""
    launches = _launch_all(monkeypatch)
    assert len(launches) >= 40
    bad, seen = {}, set()
    for fn, args, kwargs in launches:
        key = (
            fn.__name__,
            tuple(sorted((k, str(v)) for k, v in kwargs.items())),
            tuple(str(a.dtype) if hasattr(a, "dtype") else type(a).__name__ for a in args),
        )
        if key in seen:
            continue
        seen.add(key)
        found = sorted(set(APPROXIMATE.findall(_compile_recorded(fn, args, kwargs))))
        if found:
            bad[f"{fn.__name__} {dict(kwargs)}"] = found
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
def test_fp64_charbonnier_gets_no_python_float_arguments(monkeypatch):
    """Triton types a Python float argument as fp32 (item 5): eps^2 = 0.01 and 1/numel reach an
    fp64 loss rounded to fp32 (eps = 0.1, zero difference: 0.09999999888). The launchers must
    pass their constants in the accumulation dtype (a tensor), never as Python floats."""
    import torch
    from triton.runtime.jit import mangle_type

    assert mangle_type(0.01) == "fp32"  # why
    launches = [
        launch
        for launch in _launch_all(monkeypatch)
        if "charbonnier" in launch[0].__name__ or "finish" in launch[0].__name__
    ]
    floats = {
        (fn.__name__, fn.arg_names[i]) for fn, args, _ in launches for i, a in enumerate(args) if isinstance(a, float)
    }
    assert not floats, f"Python float arguments (typed fp32): {sorted(floats)}"
    assert any(
        isinstance(a, torch.Tensor) and a.dtype == torch.float64 and a.numel() == 2
        for fn, args, _ in launches
        for a in args
    )
