"""Build configuration: the default CUDA architectures and what the CUDA sources may use."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from build_support import default_arch_list  # noqa: E402

NVCC_13_0 = (
    "compute_75 compute_80 compute_86 compute_87 compute_88 compute_89 compute_90 compute_100 "
    "compute_110 compute_103 compute_120 compute_121"
).split()


def test_default_arch_list_covers_turing_to_the_newest_with_ptx():
    archs = default_arch_list(NVCC_13_0)
    assert archs == "7.5;8.0;8.6;8.7;8.9;9.0;10.0;10.3;11.0;12.0;12.1+PTX"  # 8.8: torch rejects it
    assert default_arch_list(["compute_70", "compute_75", "compute_90a"]) == "7.5+PTX"
    assert default_arch_list([]).endswith("+PTX")


def test_cuda_sources_use_no_16_bit_atomics():
    """Issue 10 item 2: half2/bfloat162 atomics lose a bf16 sum's contributions once it is 256x
    one of them (and bf16 atomics need sm_80, which breaks the Turing build)."""
    src = "\n".join(p.read_text() for p in sorted((ROOT / "csrc" / "cuda").glob("*.cu*")))
    assert not re.search(
        r"atomicAdd\s*\(\s*reinterpret_cast<\s*(__half2|__nv_bfloat162|__half|__nv_bfloat16)\s*\*", src
    )
    assert not re.search(r"gpuAtomicAdd\w*\(\s*gfeat[^;]*static_cast<scalar_t>", src)


def test_cpu_kernels_are_built_multithreaded():
    """at::parallel_for in the CPU kernels is parallel only when the extension is compiled with
    OpenMP; without it every kernel silently runs on one thread (as it did until the build said
    so). Where torch itself uses OpenMP on Linux, the build must too."""
    import pytest
    import torch

    import crossnet_fast as cf
    from crossnet_fast import _extension

    if not _extension.loaded or not sys.platform.startswith("linux") or not torch.backends.openmp.is_available():
        pytest.skip("needs the extension, Linux and an OpenMP build of torch")
    assert cf.build_info()["openmp"] is True
