"""Synthetic training pairs: a reference made by warping a real HR image.

``ref(y, x) = hr(y + V_y(y, x), x + V_x(y, x))`` (backward warp, bilinear, border clamp) with
``V`` = a random smooth flow (Gaussian control points, bicubically interpolated) plus a constant
parallax shift. The model then learns to undo a known, dense, smooth-plus-global displacement: a
cheap pretraining task before the real view pairs (the final evaluation uses real pairs only).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops import backward_warp
from .augment import draw_shift, random_crop_box, shifted_crop


def smooth_flow(gen: torch.Generator, h: int, w: int, amplitude: float, grid: int) -> torch.Tensor:
    """(2, h, w) float32 flow in pixels: ``grid`` x ``grid`` N(0, amplitude) control points per
    channel, bicubically interpolated to (h, w) (corners aligned)."""
    ctrl = torch.randn((1, 2, max(grid, 2), max(grid, 2)), generator=gen) * float(amplitude)
    return F.interpolate(ctrl, size=(h, w), mode="bicubic", align_corners=True)[0]


def synthetic_reference(hr_full: torch.Tensor, top: int, left: int, h: int, w: int,
                        gen: torch.Generator, flow_amplitude: float = 4.0, flow_grid: int = 4,
                        parallax: int = 15, margin: int = 32) -> torch.Tensor:
    """A (3, h, w) reference for the (h, w) crop at (top, left) of ``hr_full`` (3, H, W).

    The warp samples a window ``margin`` px larger on every side (real pixels where the image has
    them, edge replication beyond), so displacements up to ``margin`` never read a clamped border.
    """
    m = int(margin)
    window = shifted_crop(hr_full, top - m, left - m, h + 2 * m, w + 2 * m)
    dx, dy = draw_shift(gen, parallax)
    flow = smooth_flow(gen, h + 2 * m, w + 2 * m, flow_amplitude, flow_grid)
    flow[0] += dx
    flow[1] += dy
    ref = backward_warp(window[None].float(), flow[None].contiguous(), padding="border")[0]
    return ref[:, m:m + h, m:m + w].clamp(0.0, 1.0).contiguous()


def random_synthetic_pair(hr_full: torch.Tensor, crop, gen: torch.Generator, **kw):
    """(hr, ref), each (3, h, w): a random crop of ``hr_full`` and its synthetic reference."""
    h, w = crop
    top, left = random_crop_box(hr_full.shape[-2:], crop, gen)
    hr = hr_full[:, top:top + h, left:left + w].contiguous()
    return hr, synthetic_reference(hr_full, top, left, h, w, gen, **kw)


__all__ = ["smooth_flow", "synthetic_reference", "random_synthetic_pair"]
