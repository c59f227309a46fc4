"""torchvision's RAFT helpers (``torchvision.models.optical_flow._utils``) on this library's ops."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..ops import grid_sample as _grid_sample
from ..ops import upsample_flow as _upsample_flow
from ._pixels import normalise
from ._rebind import rebind, with_backend

TORCHVISION_UTILS = "torchvision.models.optical_flow._utils"


def grid_sample(
    img: torch.Tensor,
    absolute_grid: torch.Tensor,
    mode: str = "bilinear",
    align_corners: bool | None = None,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """``grid_sample`` with absolute pixel coordinates (torchvision's RAFT helper of that name).

    x is normalised by ``W - 1``; y by ``H - 1`` only when H > 1 (torchvision leaves y as it is for
    single-row images, which RAFT-Stereo samples). Zeros padding.

    Args:
        img: (N, C, H, W) float tensor; RAFT passes its correlation volumes, (N*H1*W1, 1, h, w).
        absolute_grid: (N, Ho, Wo, 2) float tensor, (x, y) in pixels of ``img``.
        mode: ``"bilinear"`` (this library) or ``"nearest"``/``"bicubic"`` (``F.grid_sample``).
        align_corners: as in ``F.grid_sample`` (RAFT passes True; None means False).
        backend: crossnet_fast backend for the bilinear case.

    Returns:
        (N, C, Ho, Wo) tensor of ``img.dtype``, differentiable in ``img`` and ``absolute_grid``.
    """
    h, w = img.shape[-2:]
    grid = normalise(absolute_grid, w - 1, h - 1 if h > 1 else None)
    if mode != "bilinear":
        return F.grid_sample(img, grid, mode=mode, align_corners=align_corners)
    return _grid_sample(img, grid, "bilinear", "zeros", align_corners, backend=backend)


def _convex_upsample(flow: torch.Tensor, up_mask: torch.Tensor, factor: int) -> torch.Tensor:
    """RAFT's learned upsampling (paper, appendix B): each output pixel is a softmax-weighted mix of
    its coarse pixel's 3x3 neighbourhood of ``factor * flow``. Pure PyTorch: no sampling in it."""
    n, c, h, w = flow.shape
    weights = torch.softmax(up_mask.view(n, 9, factor, factor, h, w), dim=1)
    neighbours = F.unfold(factor * flow, kernel_size=3, padding=1).view(n, c, 9, h, w)
    # k: the 9 neighbours; a, b: the row and column offset inside each factor x factor block.
    fine = torch.einsum("nkabhw,nckhw->nchawb", weights, neighbours)
    return fine.reshape(n, c, h * factor, w * factor)


def upsample_flow(
    flow: torch.Tensor, up_mask: torch.Tensor | None = None, factor: int = 8, *, backend: str = "auto"
) -> torch.Tensor:
    """Upsample a coarse flow ``factor`` times (torchvision's RAFT helper of that name).

    Args:
        flow: (N, 2, H, W) float tensor, displacement in pixels of the coarse grid.
        up_mask: None (bilinear, ``align_corners=True``, on this library's ``upsample_flow``) or
            (N, 9 * factor * factor, H, W) logits of the convex upsampling (PyTorch ops).
        factor: integer upsampling factor.
        backend: crossnet_fast backend for the bilinear case.

    Returns:
        (N, 2, H*factor, W*factor) tensor of ``flow.dtype``, in pixels of the fine grid.
    """
    if up_mask is None:
        # factor * interpolate(size=(H*factor, W*factor), align_corners=True): the same points.
        return _upsample_flow(flow, factor, align_corners=True, backend=backend)
    return _convex_upsample(flow, up_mask, factor)


@contextlib.contextmanager
def patch_torchvision_raft(backend: str = "auto") -> Iterator[dict[str, object]]:
    """Run torchvision's RAFT (``raft_large``/``raft_small``) on crossnet_fast inside the block.

    Rebinds ``grid_sample`` and ``upsample_flow`` of ``torchvision.models.optical_flow._utils`` in
    every loaded torchvision module holding them (``raft.py`` imports them by name); restores the
    originals on exit, also on an exception.

    Args:
        backend: crossnet_fast backend the patched helpers use.

    Yields:
        dict name -> original function.

    Raises:
        ImportError: torchvision is not installed.
    """
    replacements = {
        "grid_sample": with_backend(grid_sample, backend),
        "upsample_flow": with_backend(upsample_flow, backend),
    }
    with rebind("torchvision", TORCHVISION_UTILS, replacements) as originals:
        yield originals
