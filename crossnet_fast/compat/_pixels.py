"""Pixel <-> normalised coordinates, the one conversion every adapter in this package needs."""
from __future__ import annotations

import torch


def normalise(coords: torch.Tensor, w_span: float, h_span: float | None) -> torch.Tensor:
    """Absolute pixel coordinates -> ``grid_sample``'s normalised coordinates.

    ``g = 2 * p / span - 1`` per axis, so that with ``align_corners=True`` pixel 0 maps to -1 and
    pixel ``span`` to +1 (``span`` is ``size - 1`` for the callers here; BasicSR/MMagic clamp it to
    at least 1, RAFT does not, torchvision leaves y as it is for single-row images).

    Args:
        coords: (N, Ho, Wo, 2) float tensor, (x, y) in pixels of the sampled image.
        w_span: divisor of the x coordinate (pixels).
        h_span: divisor of the y coordinate (pixels), or None to pass y through unchanged.

    Returns:
        (N, Ho, Wo, 2) tensor of ``coords.dtype``, differentiable in ``coords``.
    """
    x, y = coords.unbind(-1)
    x = 2 * x / w_span - 1
    if h_span is not None:
        y = 2 * y / h_span - 1
    return torch.stack((x, y), -1)


def pixel_grid(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(H, W, 2) tensor of each pixel's own (x, y) coordinate, in pixels, of ``dtype``."""
    ys = torch.arange(h, dtype=dtype, device=device).view(h, 1).expand(h, w)
    xs = torch.arange(w, dtype=dtype, device=device).view(1, w).expand(h, w)
    return torch.stack((xs, ys), -1)
