"""Builds crossnet_fast._C: the C++ CPU kernels always, the CUDA kernels when possible.

CUDA kernels are compiled when torch is a CUDA build and nvcc is found (no GPU needed), unless
CROSSNET_FAST_CUDA=0; CROSSNET_FAST_CUDA=1 makes a missing CUDA toolchain an error.
TORCH_CUDA_ARCH_LIST is respected; the default is every architecture from 7.5 (Turing) up that the
installed nvcc can build, plus PTX of the newest, so that a newer GPU JIT-compiles the PTX instead of
failing with "no kernel image" (with nvcc 13.0: 7.5;8.0;8.6;8.7;8.9;9.0;10.0;10.3;11.0;12.0;12.1+PTX). The decision is printed, and recorded with
the torch version in crossnet_fast/_build_info.py so the package can tell a stale build at import.
"""
from __future__ import annotations

import glob
import os
import sys

from setuptools import find_packages, setup

import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
from build_support import default_arch_list, nvcc_archs  # noqa: E402


def _want_cuda() -> tuple[bool, str]:
    switch = os.environ.get("CROSSNET_FAST_CUDA", "").strip()
    cuda_sources = glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu"))
    if switch == "0":
        return False, "CROSSNET_FAST_CUDA=0"
    problems = []
    if torch.version.cuda is None:
        problems.append(f"torch {torch.__version__} is not a CUDA build")
    if cpp_extension.CUDA_HOME is None:
        problems.append("nvcc not found (set CUDA_HOME)")
    if not cuda_sources:
        problems.append("no CUDA sources in csrc/cuda")
    if problems:
        if switch == "1":
            sys.exit("crossnet_fast setup: CROSSNET_FAST_CUDA=1 but " + "; ".join(problems))
        return False, "; ".join(problems)
    return True, f"torch CUDA {torch.version.cuda}, nvcc in {cpp_extension.CUDA_HOME}"


def _nvidia_include_dirs() -> list[str]:
    # pip's CUDA wheels keep the CUDA library headers (cuda_runtime.h for CUDA 13) in site-packages.
    dirs = []
    for base in sys.path:
        for sub in ("nvidia/cu13/include", "nvidia/cuda_runtime/include"):
            path = os.path.join(base, sub)
            if os.path.isdir(path):
                dirs.append(path)
    return dirs


def _extension():
    use_cuda, why = _want_cuda()
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # -fno-math-errno: sqrt need not set errno, so loops with it can be vectorised.
    # -ffp-contract=off: no fused multiply-adds unless written, so the AVX2+FMA code paths
    # (csrc/cpu/taps_avx2.h, sampling_loops.h) round exactly like the portable ones
    # (tests/ops/test_cpu_isa_paths.py checks they are bit-identical).
    cxx_flags = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-fdiagnostics-color=always"]
    # at::parallel_for (every CPU kernel's loop) is an inline template that runs in parallel only
    # when the extension is compiled with OpenMP, like torch's own kernels; without -fopenmp it
    # silently runs on one thread. The extension then uses the libgomp torch already loaded (same
    # soname), so torch.set_num_threads governs it too.
    link_flags = []
    if sys.platform.startswith("linux") and torch.backends.openmp.is_available():
        cxx_flags.append("-fopenmp")
        link_flags.append("-fopenmp")
    if use_cuda:
        if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = default_arch_list(nvcc_archs(cpp_extension.CUDA_HOME))
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        nvcc_flags = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
        ext = cpp_extension.CUDAExtension(
            "crossnet_fast._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")] + _nvidia_include_dirs(),
            define_macros=[("CROSSNET_FAST_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
            extra_link_args=link_flags,
        )
    else:
        ext = cpp_extension.CppExtension(
            "crossnet_fast._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=link_flags,
        )
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST") if use_cuda else None
    print(f"crossnet_fast setup: CUDA kernels {'ON' if use_cuda else 'OFF'} ({why}); "
          f"torch {torch.__version__}; arch list {arch}", flush=True)
    info = {"torch": torch.__version__, "cuda": use_cuda,
            "cuda_version": torch.version.cuda if use_cuda else None, "cuda_arch_list": arch,
            "openmp": "-fopenmp" in cxx_flags}
    with open(os.path.join(ROOT, "crossnet_fast", "_build_info.py"), "w") as fh:
        fh.write('"""Written by setup.py: how the extension was built."""\n')
        fh.write(f"BUILD_INFO = {info!r}\n")
    return ext


setup(
    packages=find_packages(include=["crossnet_fast", "crossnet_fast.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    package_data={
        "crossnet_fast": ["weights/*.safetensors", "weights/*.md", "examples/*", "train/configs/*.toml"]
    },
)
