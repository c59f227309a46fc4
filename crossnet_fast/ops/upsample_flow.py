"""Public flow-resizing ops: ``upsample_flow`` (integer factor) and ``resize_flow`` (any size)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import reference
from . import _validation
from ._dispatch import native_or_triton_ops, pick


def upsample_flow(
    flow: torch.Tensor, scale: int = 2, align_corners: bool = False, backend: str = "auto"
) -> torch.Tensor:
    """Upsample a flow field and rescale its values to the new resolution.

    Equals ``F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=align_corners) * scale``.

    Args:
        flow: (N, 2, H, W) float tensor (any channel count works), displacement in input pixels.
        scale: integer factor >= 1.
        align_corners: ``False`` (pixel-centre sampling, CrossNet's convention) or ``True``
            (corner-aligned, RAFT's and SPyNet's: the kernels of :func:`resize_flow`); fused
            kernels on every backend either way.
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        (N, 2, H*scale, W*scale) contiguous tensor of ``flow.dtype``, in output pixels;
        differentiable w.r.t. ``flow`` (deterministic backward: a fixed order of summation on
        every backend, no atomics).
    """
    op = "upsample_flow"
    _validation.check_float_tensor(op, "flow", flow, 4, "(N, 2, H, W)")
    _validation.check_scale(op, scale)
    if not isinstance(align_corners, bool):
        raise TypeError(f"{op}: align_corners must be a bool, got {type(align_corners).__name__}")
    if align_corners:
        # Corner-aligned taps are not periodic in the output index: the any-size kernels serve it
        # (both ratios are `scale`, so any channel count is a uniform scale there).
        h, w = flow.shape[-2:]
        return _resize(flow, h * scale, w * scale, True, backend)
    chosen = pick(op, flow.device, backend)
    if chosen == "reference":
        return reference.upsample_flow(flow, scale)
    return native_or_triton_ops(chosen).upsample_flow(flow, scale)


def resize_flow(
    flow: torch.Tensor, size: Sequence[int], align_corners: bool = False, backend: str = "auto"
) -> torch.Tensor:
    """Resize a flow field to any (h, w) and rescale each component by its own axis ratio.

    ``out[:, 0] = interpolate(flow)[:, 0] * w / W`` and ``out[:, 1] = interpolate(flow)[:, 1] * h / H``
    with ``interpolate = F.interpolate(..., size=(h, w), mode="bilinear", align_corners=align_corners)``
    (SPyNet's and RAFT's convention: the ratio of the sizes, also with ``align_corners=True``).
    A fused separable kernel on every backend; the backward sums in a fixed order, without
    atomics (deterministic).

    Args:
        flow: (N, 2, H, W) float tensor, H, W > 0; displacement in input pixels, channel 0 = x,
            1 = y.
        size: (h, w) of the output, positive integers.
        align_corners: PyTorch's interpolation convention (see ``F.interpolate``).
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        (N, 2, h, w) contiguous tensor of ``flow.dtype`` in output pixels (interpolated and scaled
        in fp32, fp64 for fp64, rounded once), differentiable w.r.t. ``flow``.
    """
    op = "resize_flow"
    _validation.check_float_tensor(op, "flow", flow, 4, "(N, 2, H, W)")
    if flow.shape[1] != 2:
        raise ValueError(f"{op}: flow must have 2 channels (x, y displacement), got shape {tuple(flow.shape)}")
    if (
        not isinstance(size, (tuple, list, torch.Size))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ValueError(f"{op}: size must be (h, w), two positive integers, got {size!r}")
    if not isinstance(align_corners, bool):
        raise TypeError(f"{op}: align_corners must be a bool, got {type(align_corners).__name__}")
    return _resize(flow, int(size[0]), int(size[1]), align_corners, backend)


def _resize(flow: torch.Tensor, h: int, w: int, align_corners: bool, backend: str) -> torch.Tensor:
    """The checked call of the resize op of the chosen backend."""
    if flow.shape[-2] == 0 or flow.shape[-1] == 0:
        raise ValueError(f"resize_flow: flow must have a non-empty (H, W) plane, got shape {tuple(flow.shape)}")
    chosen = pick("resize_flow", flow.device, backend)
    if chosen == "reference":
        return reference.resize_flow(flow, (h, w), align_corners)
    return native_or_triton_ops(chosen).resize_flow(flow, h, w, align_corners)
