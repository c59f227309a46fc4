"""Maps a resolved backend name to the op family that implements it."""

from __future__ import annotations

import torch

from .. import backend as _backend
from . import _registration


def native_or_triton_ops(backend: str):
    """``torch.ops.crossnet_fast`` for "cpu"/"cuda", ``torch.ops.crossnet_fast_triton`` for "triton"."""
    if backend == "triton":
        from .. import triton as _triton  # defines and registers the Triton ops on first use

        _triton.ensure_registered()
        return _registration.ops_of(_registration.TRITON)
    return _registration.ops_of(_registration.NATIVE)


def pick(op: str, device: torch.device, backend: str) -> str:
    return _backend.resolve(op, device, backend)
