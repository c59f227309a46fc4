"""Builds crossnet_fast._C: the C++ CPU kernels always, the CUDA kernels when wanted (docs/BUILD.md).

What to compile is decided by build_support.plan_build: with a visible GPU, its architectures plus
PTX (unless TORCH_CUDA_ARCH_LIST is set); with none, the CPU kernels only, unless
CROSSNET_FAST_CUDA=1 (7.5;9.0+PTX, or TORCH_CUDA_ARCH_LIST) or CROSSNET_FAST_CUDA_ARCHS=all (every
architecture nvcc supports, for a wheel); CROSSNET_FAST_CUDA=0 never compiles them. The decision is
printed and recorded with the torch version in crossnet_fast/_build_info.py so the package can tell a
stale build at import. After a successful build the digest of its inputs is stored beside the
library (_C.digest.json) so that scripts/install.sh can skip an identical rebuild.
"""

from __future__ import annotations

import glob
import os
import sys

import torch
from setuptools import find_packages, setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
import build_support  # noqa: E402


def _plan():
    tools = build_support.probe_toolchain()
    try:
        plan = build_support.plan_build(os.environ, tools)
    except build_support.BuildConfigError as exc:
        sys.exit(f"crossnet_fast setup: {exc}")
    return plan, build_support.build_inputs(plan, tools, os.environ)


def _nvidia_include_dirs() -> list[str]:
    # pip's CUDA wheels keep the CUDA library headers (cuda_runtime.h for CUDA 13) in site-packages.
    dirs = []
    for base in sys.path:
        for sub in ("nvidia/cu13/include", "nvidia/cuda_runtime/include"):
            path = os.path.join(base, sub)
            if os.path.isdir(path):
                dirs.append(path)
    return dirs


def _extension(plan):
    use_cuda = plan.cuda
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # -fno-math-errno: sqrt need not set errno, so loops with it can be vectorised.
    # -ffp-contract=off: no fused multiply-adds unless written, so the AVX2+FMA code paths
    # (csrc/cpu/avx2/, correlation_kernel.cpp) round exactly like the portable ones
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
        # torch's cpp_extension reads the architectures from here.
        os.environ["TORCH_CUDA_ARCH_LIST"] = plan.arch_list
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
    arch = plan.arch_list
    for note in plan.notes:
        print(f"crossnet_fast setup: {note}", flush=True)
    print(
        f"crossnet_fast setup: CUDA kernels {'ON' if use_cuda else 'OFF'} ({plan.why}); "
        f"torch {torch.__version__}; arch list {arch}",
        flush=True,
    )
    info = {
        "torch": torch.__version__,
        "cuda": use_cuda,
        "cuda_version": torch.version.cuda if use_cuda else None,
        "cuda_arch_list": arch,
        "openmp": "-fopenmp" in cxx_flags,
    }
    with open(os.path.join(ROOT, "crossnet_fast", "_build_info.py"), "w") as fh:
        fh.write('"""Written by setup.py: how the extension was built."""\n')
        fh.write(f"BUILD_INFO = {info!r}\n")
    return ext


class _BuildExt(cpp_extension.BuildExtension):
    """torch's build_ext, then the digest of the build's inputs beside the built library (only once
    the build succeeded: a failed build leaves no digest that would let install.sh skip it)."""

    def run(self):
        directories = {os.path.dirname(self.get_ext_fullpath(ext.name)) for ext in self.extensions}
        for directory in directories:
            stale = os.path.join(directory, build_support.DIGEST_FILE)
            if os.path.exists(stale):
                os.remove(stale)
        super().run()
        for directory in directories:
            os.makedirs(directory, exist_ok=True)
            build_support.write_digest(directory, DIGEST, INPUTS)


PLAN, INPUTS = _plan()
DIGEST = build_support.build_digest(INPUTS)

setup(
    packages=find_packages(include=["crossnet_fast", "crossnet_fast.*"]),
    ext_modules=[_extension(PLAN)],
    cmdclass={"build_ext": _BuildExt},
    package_data={"crossnet_fast": ["weights/*.safetensors", "weights/*.md", "examples/*", "train/configs/*.toml"]},
)
