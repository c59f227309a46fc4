"""Backend choice: which implementation of an op runs for a given device.

Order of precedence for the backend of one call: the ``backend=`` argument (when not ``"auto"``),
then :func:`use_backend` (a context manager), then the environment variable
``CROSSNET_FAST_BACKEND``, then the preference table below.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading

import torch

from . import _extension

BACKENDS = ("cuda", "triton", "cpu", "reference")
OPS = ("multiscale_warp", "grid_sample", "upsample_flow", "resize_flow", "charbonnier", "correlation")
ENV_VAR = "CROSSNET_FAST_BACKEND"

# What "auto" picks, per device type and op: the first available entry wins. Keep this table in
# step with the benchmark results in docs/PERFORMANCE.md (benchmarks/ measure every entry).
PREFERENCE = {
    "cpu": {op: ("cpu", "reference") for op in OPS},
    "cuda": {op: ("cuda", "triton", "reference") for op in OPS},
}

_local = threading.local()


def triton_interpret() -> bool:
    """True when Triton kernels are run by the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def unavailable_reason(backend: str, device: torch.device | None = None) -> str | None:
    """Why ``backend`` cannot run on ``device`` here, or None when it can."""
    if backend not in BACKENDS:
        return f"unknown backend {backend!r}; expected one of {BACKENDS + ('auto',)}"
    dev_type = None if device is None else torch.device(device).type
    if backend == "reference":
        return None
    if backend == "cpu":
        if not _extension.loaded:
            return f"the C++ extension failed to load ({_extension.load_error}); {_extension.REBUILD_HINT}"
        if dev_type not in (None, "cpu"):
            return f"backend 'cpu' runs on CPU tensors, got tensors on {dev_type}"
        return None
    if backend == "cuda":
        if not _extension.loaded:
            return f"the C++/CUDA extension failed to load ({_extension.load_error}); {_extension.REBUILD_HINT}"
        if not _extension.has_cuda_kernels():
            return (
                "the extension was built without CUDA kernels (CPU-only torch, no nvcc, or "
                "CROSSNET_FAST_CUDA=0); install the CUDA build of torch and rebuild with CROSSNET_FAST_CUDA=1"
            )
        if not torch.cuda.is_available():
            return "no CUDA device is visible"
        if dev_type not in (None, "cuda"):
            return f"backend 'cuda' runs on CUDA tensors, got tensors on {dev_type}"
        return None
    # triton
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (`pip install triton`; it comes with the CUDA build of torch)"
    if triton_interpret():
        if dev_type not in (None, "cpu", "cuda"):
            return f"backend 'triton' runs on CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), got {dev_type}"
        return None
    if not torch.cuda.is_available():
        return "no CUDA device is visible (set TRITON_INTERPRET=1 to run the Triton kernels on the CPU, slowly)"
    if dev_type not in (None, "cuda"):
        return f"backend 'triton' runs on CUDA tensors, got tensors on {dev_type} (set TRITON_INTERPRET=1 for CPU)"
    return None


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """Names of the backends usable here (for ``device`` when given), fastest-first."""
    return [b for b in BACKENDS if unavailable_reason(b, device) is None]


def default_backend() -> str:
    """The backend currently requested by :func:`use_backend` or the environment, else ``"auto"``."""
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    return os.environ.get(ENV_VAR, "auto") or "auto"


@contextlib.contextmanager
def use_backend(backend: str):
    """Run the ops inside the ``with`` block on ``backend`` (unless a call names its own)."""
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS + ('auto',)}, got {backend!r}")
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(backend)
    try:
        yield
    finally:
        stack.pop()


def resolve(op: str, device: torch.device, backend: str = "auto") -> str:
    """The backend that runs ``op`` on ``device``; raises RuntimeError/ValueError saying why not."""
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    if backend == "auto":
        backend = default_backend()
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS + ('auto',)}, got {backend!r}")
        reason = unavailable_reason(backend, device)
        if reason is not None:
            raise RuntimeError(f"{op}: backend {backend!r} is not available: {reason}")
        return backend
    # The first preference of the two common cases, without the general walk below (every op
    # call resolves its backend: a few microseconds that RAFT's hundreds of calls add up).
    if op in OPS and _extension.loaded:
        if device.type == "cpu":
            return "cpu"
        if device.type == "cuda" and _extension.has_cuda_kernels():
            return "cuda"
    for candidate in PREFERENCE.get(device.type, {}).get(op, ("reference",)):
        if unavailable_reason(candidate, device) is None:
            return candidate
    return "reference"
