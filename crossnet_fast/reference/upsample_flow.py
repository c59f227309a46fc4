"""Reference bilinear flow upsampling (values scaled with the resolution)."""

from __future__ import annotations

import torch

from ._bilinear import weighted as _weighted


def upsample_flow(flow: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Bilinearly upsample a pixel-unit flow field by an integer factor.

    Args:
        flow: (N, 2, H, W) float tensor, displacement in pixels of the input resolution.
        scale: integer factor >= 1.

    Returns:
        (N, 2, H*scale, W*scale) tensor of ``flow.dtype``: displacement in pixels of the output
        resolution, i.e. the interpolated values multiplied by ``scale``. Sampling uses the
        pixel-centre convention (``align_corners=False``), source coordinate
        ``(dst + 0.5) / scale - 0.5`` clamped at 0, written out here instead of calling
        ``F.interpolate`` so that the tests can compare the two. Non-finite values reach only
        the outputs that weight them (see crossnet_fast/reference/multiscale_warp.py).
    """
    n, ch, h, w = flow.shape
    compute = torch.float64 if flow.dtype == torch.float64 else torch.float32
    f = flow.to(compute)

    def axis(size_in: int):
        dst = torch.arange(size_in * scale, device=flow.device, dtype=compute)
        src = ((dst + 0.5) / scale - 0.5).clamp(min=0)
        i0 = src.floor().long().clamp(max=size_in - 1)
        i1 = (i0 + 1).clamp(max=size_in - 1)
        frac = src - i0.to(compute)
        return i0, i1, frac

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    rows = _weighted((1 - fy).view(-1, 1), f[:, :, y0]) + _weighted(fy.view(-1, 1), f[:, :, y1])
    out = _weighted(1 - fx, rows[:, :, :, x0]) + _weighted(fx, rows[:, :, :, x1])
    return (out * scale).to(flow.dtype)
