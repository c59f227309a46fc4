"""The sampling helpers of the original RAFT (``core/utils/utils.py``), on this library's kernels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops import grid_sample
from ._pixels import normalise


def bilinear_sampler(
    img: torch.Tensor,
    coords: torch.Tensor,
    mode: str = "bilinear",
    mask: bool = False,
    *,
    backend: str = "auto",
):
    """Sample ``img`` at absolute pixel coordinates (RAFT's ``bilinear_sampler``).

    Pixel coordinates are normalised by ``W - 1`` and ``H - 1`` (as RAFT does: a 1-pixel-wide
    image gives a non-finite grid there too) and sampled with ``align_corners=True``, zeros padding.

    Args:
        img: (N, C, H, W) float tensor.
        coords: (N, Ho, Wo, 2) float tensor, (x, y) in pixels of ``img``; any Ho, Wo.
        mode: ``"bilinear"`` (this library). RAFT ignores this argument and always samples
            bilinearly; here ``"nearest"``/``"bicubic"`` are honoured through ``F.grid_sample``.
        mask: also return which points lie strictly inside the image.
        backend: crossnet_fast backend for the bilinear case.

    Returns:
        (N, C, Ho, Wo) tensor of ``img.dtype``, differentiable in ``img`` and ``coords``; with
        ``mask=True`` a tuple of it and an (N, Ho, Wo, 1) float32 mask, 1 where
        ``0 < x < W - 1`` and ``0 < y < H - 1`` (RAFT's strict inequalities), else 0.
    """
    h, w = img.shape[-2:]
    grid = normalise(coords, w - 1, h - 1)
    if mode == "bilinear":
        out = grid_sample(img, grid, "bilinear", "zeros", True, backend=backend)
    else:
        out = F.grid_sample(img, grid, mode=mode, align_corners=True)
    if not mask:
        return out
    inside = ((grid > -1) & (grid < 1)).all(-1, keepdim=True)
    return out, inside.float()


def coords_grid(batch: int, ht: int, wd: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Every pixel's own coordinate (RAFT's ``coords_grid``; torchvision's ``make_coords_grid``).

    Args:
        batch: N, the number of copies.
        ht, wd: H and W, in pixels.
        device: where to allocate (default: the current default device).

    Returns:
        (N, 2, H, W) float32 tensor, channel 0 the x (column) and channel 1 the y (row) coordinate
        in pixels; its own memory (not a broadcast view), as RAFT's callers may expect.
    """
    ys, xs = torch.meshgrid(
        torch.arange(ht, device=device, dtype=torch.float32),
        torch.arange(wd, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack((xs, ys)).unsqueeze(0).repeat(batch, 1, 1, 1)
