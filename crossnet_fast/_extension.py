"""Loads the compiled extension ``crossnet_fast._C`` and remembers why it failed, if it did.

The failure is never swallowed: it is raised, with the reason and the fix, when a native backend
is asked for (see :mod:`crossnet_fast.backend`).
"""

from __future__ import annotations

import torch

REBUILD_HINT = (
    "rebuild it against the torch you run with: `pip install --no-build-isolation .` (or `bash scripts/install.sh`)"
)

load_error: str | None = None
built_with: dict = {}

try:
    from . import _build_info  # written by setup.py at build time

    built_with = dict(_build_info.BUILD_INFO)
except ImportError:  # a source checkout that was never built
    built_with = {}

try:
    if built_with and built_with.get("torch") != torch.__version__:
        raise ImportError(
            f"crossnet_fast._C was built against torch {built_with.get('torch')} "
            f"but torch {torch.__version__} is running"
        )
    from . import _C  # noqa: F401  (importing runs the TORCH_LIBRARY registrations)
except (ImportError, OSError) as exc:
    load_error = f"{type(exc).__name__}: {exc}"

loaded = load_error is None


def require() -> None:
    """Raise a RuntimeError that says why the extension is unusable and how to fix it."""
    if not loaded:
        raise RuntimeError(f"the crossnet_fast C++/CUDA extension is not available ({load_error}); {REBUILD_HINT}")


def has_cuda_kernels() -> bool:
    """True when the extension was compiled with its CUDA kernels."""
    return loaded and bool(built_with.get("cuda", False))
