"""Build-time helpers of setup.py (kept apart so that tests can import them without building)."""
from __future__ import annotations

import os
import subprocess

# Architectures torch's cpp_extension accepts in TORCH_CUDA_ARCH_LIST (2.14; it rejects others, such
# as 8.8, that nvcc 13.0 lists).
TORCH_KNOWN_ARCHS = {75, 80, 86, 87, 89, 90, 100, 103, 107, 110, 120, 121}


def default_arch_list(nvcc_archs: list[str]) -> str:
    """TORCH_CUDA_ARCH_LIST for the architectures nvcc lists (``compute_75``, ``compute_90``, ...):
    every plain one from 7.5 up that torch accepts (not the ``a``/``f`` feature variants), the
    newest also as PTX."""
    caps = sorted({int(a.split("_")[1]) for a in nvcc_archs
                   if a.startswith("compute_") and a.split("_")[1].isdigit()
                   and int(a.split("_")[1]) in TORCH_KNOWN_ARCHS})
    if not caps:
        return "7.5;8.0;9.0+PTX"
    names = [f"{c // 10}.{c % 10}" for c in caps]
    return ";".join(names[:-1] + [names[-1] + "+PTX"])


def nvcc_archs(cuda_home) -> list[str]:
    """What ``nvcc --list-gpu-arch`` prints (``compute_75`` ...), or [] when it cannot run."""
    nvcc = os.path.join(cuda_home or "", "bin", "nvcc")
    try:
        out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return out.split()
