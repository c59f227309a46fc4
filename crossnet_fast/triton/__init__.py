"""Triton variants of the ops (``backend="triton"``): the ``crossnet_fast_triton`` op family.

The ops are defined here from the same schema strings as the native ``crossnet_fast`` ops
(:data:`crossnet_fast.ops._registration.SCHEMAS`), implemented by the Triton launchers of this
package for CUDA tensors (and for CPU tensors when ``TRITON_INTERPRET=1``, which runs the kernels
on the Triton CPU interpreter), and given the shared fake and autograd registrations by
``register_family``. They are plain ``torch.library`` ops (opaque to ``torch.compile``), not
``triton_op``: only plain ops pass ``opcheck`` and ``torch.compile`` under the interpreter.

Importing this package never imports Triton; :func:`ensure_registered` does, on first use, and
raises a RuntimeError that says how to get Triton when it is missing. ``TRITON_INTERPRET`` is read
when the kernels are first imported (Triton decides then whether a kernel is compiled or
interpreted), so set it before the first ``backend="triton"`` call of the process.
"""

from __future__ import annotations

import threading

import torch

_lock = threading.Lock()
_library = None  # the torch.library.Library holding the definitions, once registered


def _implementations() -> dict:
    """op name -> Python implementation (imports Triton and the kernels)."""
    from . import charbonnier, correlation, grid_sample, multiscale_warp, resize_flow, upsample_flow

    return {
        "multiscale_warp": multiscale_warp.multiscale_warp,
        "multiscale_warp_backward": multiscale_warp.multiscale_warp_backward,
        "grid_sample": grid_sample.grid_sample,
        "grid_sample_backward": grid_sample.grid_sample_backward,
        "upsample_flow": upsample_flow.upsample_flow,
        "upsample_flow_backward": upsample_flow.upsample_flow_backward,
        "resize_flow": resize_flow.resize_flow,
        "resize_flow_backward": resize_flow.resize_flow_backward,
        "charbonnier": charbonnier.charbonnier,
        "charbonnier_backward": charbonnier.charbonnier_backward,
        "correlation": correlation.correlation,
        "correlation_backward": correlation.correlation_backward,
    }


def _first_tensor(args):
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (list, tuple)):
            t = _first_tensor(a)
            if t is not None:
                return t
    return None


def _cuda_entry(fn):
    """The CUDA kernel slot: launch on the inputs' GPU (Triton launches on the current device)."""

    def run(*args):
        t = _first_tensor(args)
        if t is None or t.device.type != "cuda":
            return fn(*args)
        with torch.cuda.device(t.device):
            return fn(*args)

    return run


def _cpu_entry(name: str, fn):
    """The CPU kernel slot: the interpreter when TRITON_INTERPRET=1, else a clear error."""
    from ._common import interpreting

    def run(*args):
        if not interpreting():
            raise RuntimeError(
                f"crossnet_fast_triton::{name}: backend 'triton' runs on CUDA tensors; got CPU tensors "
                "(set TRITON_INTERPRET=1 before the first Triton call to run the kernels on the CPU interpreter)"
            )
        return fn(*args)

    return run


def ensure_registered() -> None:
    """Define the ``crossnet_fast_triton`` ops and register their kernels, fakes and autograd.

    Idempotent and thread-safe. Raises RuntimeError when Triton cannot be imported.
    """
    global _library
    if _library is not None:
        return
    with _lock:
        if _library is not None:
            return
        try:
            import triton  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                f"backend 'triton' needs Triton, which failed to import ({exc}); "
                "`pip install triton` (it ships with the CUDA build of torch)"
            ) from exc
        from ..ops import _registration

        impls = _implementations()
        lib = torch.library.Library(_registration.TRITON, "DEF")
        for name, schema in _registration.SCHEMAS.items():
            lib.define(name + schema)
            if name not in impls:  # no Triton kernel (yet): the op exists, calls to it fail
                continue
            lib.impl(name, _cuda_entry(impls[name]), "CUDA")
            lib.impl(name, _cpu_entry(name, impls[name]), "CPU")
        _registration.register_family(_registration.TRITON)
        _library = lib


__all__ = ["ensure_registered"]
