"""Public op ``upsample_flow``: bilinear x``scale`` upsampling of a pixel-unit flow."""
from __future__ import annotations

import torch

from .. import reference
from . import _validation
from ._dispatch import native_or_triton_ops, pick


def upsample_flow(flow: torch.Tensor, scale: int = 2, backend: str = "auto") -> torch.Tensor:
    """Upsample a flow field and rescale its values to the new resolution.

    Equals ``F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=False) * scale``.

    Args:
        flow: (N, 2, H, W) float tensor (any channel count works), displacement in input pixels.
        scale: integer factor >= 1.
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        (N, 2, H*scale, W*scale) contiguous tensor of ``flow.dtype``, in output pixels;
        differentiable w.r.t. ``flow`` (the backward is a fixed-footprint gather, deterministic).
    """
    op = "upsample_flow"
    _validation.check_float_tensor(op, "flow", flow, 4, "(N, 2, H, W)")
    _validation.check_scale(op, scale)
    chosen = pick(op, flow.device, backend)
    if chosen == "reference":
        return reference.upsample_flow(flow, scale)
    return native_or_triton_ops(chosen).upsample_flow(flow, scale)
