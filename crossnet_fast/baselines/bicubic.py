"""The bicubic baseline: MATLAB-style bicubic upsampling of the LR image."""

from __future__ import annotations

import torch

from ..degrade import upsample_bicubic_matlab


def bicubic(lr: torch.Tensor, scale: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Upsample ``lr`` by ``scale`` with MATLAB's bicubic ``imresize``.

    Args:
        lr: (N, 3, h, w) or (3, h, w) float tensor in [0, 1], any device.
        scale: integer factor >= 1.
        size: optional (H, W) to crop the (h*scale, w*scale) result to (top-left).

    Returns:
        (N, 3, H, W) (or (3, H, W)) float tensor in [0, 1], same dtype/device as ``lr``.
    """
    return upsample_bicubic_matlab(lr, scale, size=size)
