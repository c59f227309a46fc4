"""Public flow-resizing ops: ``upsample_flow`` (integer factor) and ``resize_flow`` (any size)."""
from __future__ import annotations

import functools
from typing import Sequence

import torch

from .. import reference
from . import _validation
from ._dispatch import native_or_triton_ops, pick
from .grid_sample import grid_sample


def upsample_flow(flow: torch.Tensor, scale: int = 2, align_corners: bool = False, backend: str = "auto") -> torch.Tensor:
    """Upsample a flow field and rescale its values to the new resolution.

    Equals ``F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=align_corners) * scale``.

    Args:
        flow: (N, 2, H, W) float tensor (any channel count works), displacement in input pixels.
        scale: integer factor >= 1.
        align_corners: ``False`` (pixel-centre sampling, CrossNet's convention: a fused kernel on
            every backend) or ``True`` (corner-aligned, RAFT's and SPyNet's: computed by
            :func:`resize_flow`).
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        (N, 2, H*scale, W*scale) contiguous tensor of ``flow.dtype``, in output pixels;
        differentiable w.r.t. ``flow`` (the ``align_corners=False`` backward is a fixed-footprint
        gather, deterministic).
    """
    op = "upsample_flow"
    _validation.check_float_tensor(op, "flow", flow, 4, "(N, 2, H, W)")
    _validation.check_scale(op, scale)
    if not isinstance(align_corners, bool):
        raise TypeError(f"{op}: align_corners must be a bool, got {type(align_corners).__name__}")
    if align_corners:
        h, w = flow.shape[-2:]
        return resize_flow(flow, (h * scale, w * scale), align_corners=True, backend=backend)
    chosen = pick(op, flow.device, backend)
    if chosen == "reference":
        return reference.upsample_flow(flow, scale)
    return native_or_triton_ops(chosen).upsample_flow(flow, scale)


def _axis_grid(size_out: int, align_corners: bool, dtype: torch.dtype, device) -> torch.Tensor:
    """Normalised coordinates of the output pixels of one axis, (size_out,): the points that
    ``F.interpolate`` samples (corner centres at -1/1 with ``align_corners=True``, pixel centres
    of a [-1, 1] span without)."""
    i = torch.arange(size_out, dtype=dtype, device=device)
    if align_corners:
        return i * (2.0 / max(size_out - 1, 1)) - 1
    return (2 * i + 1) / size_out - 1


def resize_flow(flow: torch.Tensor, size: Sequence[int], align_corners: bool = False, backend: str = "auto") -> torch.Tensor:
    """Resize a flow field to any (h, w) and rescale each component by its own axis ratio.

    ``out[:, 0] = interpolate(flow)[:, 0] * w / W`` and ``out[:, 1] = interpolate(flow)[:, 1] * h / H``
    with ``interpolate = F.interpolate(..., size=(h, w), mode="bilinear", align_corners=align_corners)``
    (SPyNet's and RAFT's convention: the ratio of the sizes, also with ``align_corners=True``).
    Computed as a :func:`grid_sample` with border padding at the points ``F.interpolate`` samples,
    so it runs on every backend with that op's kernels and deterministic backward.

    Args:
        flow: (N, 2, H, W) float tensor, displacement in input pixels; channel 0 = x, 1 = y.
        size: (h, w) of the output, positive integers.
        align_corners: PyTorch's interpolation convention (see ``F.interpolate``).
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        (N, 2, h, w) tensor of ``flow.dtype`` in output pixels, differentiable w.r.t. ``flow``.
    """
    op = "resize_flow"
    _validation.check_float_tensor(op, "flow", flow, 4, "(N, 2, H, W)")
    if flow.shape[1] != 2:
        raise ValueError(f"{op}: flow must have 2 channels (x, y displacement), got shape {tuple(flow.shape)}")
    if (not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"{op}: size must be (h, w), two positive integers, got {size!r}")
    if not isinstance(align_corners, bool):
        raise TypeError(f"{op}: align_corners must be a bool, got {type(align_corners).__name__}")
    n, _, h_in, w_in = flow.shape
    h, w = int(size[0]), int(size[1])
    coord = torch.float64 if flow.dtype == torch.float64 else torch.float32
    if torch.compiler.is_compiling():
        grid = _sample_points(h, w, align_corners, coord, flow.device)
    else:  # RAFT upsamples the same size every iteration: build the points once
        grid = _cached_sample_points(h, w, align_corners, coord, flow.device)
    resized = grid_sample(flow, grid.expand(n, h, w, 2), padding_mode="border", align_corners=align_corners,
                          backend=backend)
    if w * h_in == h * w_in:  # one ratio for both axes (any integer upsampling): a scalar multiply
        return resized * (w / w_in)
    ratio = torch.tensor([w / w_in, h / h_in], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
    return resized * ratio


def _sample_points(h: int, w: int, align_corners: bool, dtype: torch.dtype, device) -> torch.Tensor:
    """(1, h, w, 2) normalised (x, y) points that ``F.interpolate`` samples for an (h, w) output."""
    gx = _axis_grid(w, align_corners, dtype, device).view(1, 1, w).expand(1, h, w)
    gy = _axis_grid(h, align_corners, dtype, device).view(1, h, 1).expand(1, h, w)
    return torch.stack((gx, gy), -1)


@functools.lru_cache(maxsize=32)
def _cached_sample_points(h: int, w: int, align_corners: bool, dtype: torch.dtype, device) -> torch.Tensor:
    # Never written to: the ops only read the grid, and it is expanded, not copied, per call.
    return _sample_points(h, w, align_corners, dtype, device)
