"""``flow_warp`` with BasicSR's and MMagic's signature and results, sampling with this library."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops import grid_sample
from ._pixels import normalise, pixel_grid


def flow_warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    interp_mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
    *,
    interpolation: str | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Backward-warp ``x`` by a pixel-unit optical flow (BasicSR's/MMagic's ``flow_warp``).

    Output pixel (i, j) is ``x`` sampled at ``(j + flow[..., 0], i + flow[..., 1])``: the pixel
    position plus the flow, normalised by ``max(W - 1, 1)`` and ``max(H - 1, 1)`` and handed to
    ``grid_sample`` with ``align_corners`` (True by default, as in both libraries).

    Args:
        x: (N, C, H, W) float tensor, image or features.
        flow: (N, H, W, 2) float tensor, (dx, dy) displacement in pixels of ``x``.
        interp_mode: ``"bilinear"`` (this library's kernels) or ``"nearest"``/``"bicubic"``
            (``F.grid_sample``). BasicSR's keyword.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: ``grid_sample``'s convention for the normalised grid.
        interpolation: MMagic's name for ``interp_mode``; when given it wins.
        backend: crossnet_fast backend for the bilinear case (``"auto"`` picks the fastest).

    Returns:
        (N, C, H, W) tensor of ``x.dtype``, differentiable in ``x`` and ``flow``. The sampling grid
        is built in fp32 (fp64 for fp64 flows) even for fp16 flows, so large images keep sub-pixel
        precision; BasicSR does the same, MMagic rounds it to ``x``'s dtype.

    Raises:
        ValueError: ``x`` not 4-D, or ``flow`` not (N, H, W, 2) with ``x``'s N, H and W.
    """
    mode = interp_mode if interpolation is None else interpolation
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[-1] != 2:
        raise ValueError(
            f"flow_warp: expected x (N, C, H, W) and flow (N, H, W, 2), got {tuple(x.shape)} and {tuple(flow.shape)}"
        )
    n, _, h, w = x.shape
    if tuple(flow.shape[:3]) != (n, h, w):
        raise ValueError(
            f"flow_warp: flow {tuple(flow.shape)} does not match x {tuple(x.shape)} (expected ({n}, {h}, {w}, 2))"
        )
    coord_dtype = torch.promote_types(flow.dtype, torch.float32)
    coords = pixel_grid(h, w, coord_dtype, flow.device) + flow.to(coord_dtype)
    grid = normalise(coords, max(w - 1, 1), max(h - 1, 1))
    if mode != "bilinear":
        # Nearest/bicubic are not this library's; PyTorch wants the grid in the input's dtype.
        return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    return grid_sample(x, grid, "bilinear", padding_mode, align_corners, backend=backend)
