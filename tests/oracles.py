"""Independent definitions the tests compare against: PyTorch's own grid_sample / interpolate and
the written Charbonnier formula, all in float64. Never the code under test."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def grid_sample_warp(
    feat: torch.Tensor, flow: torch.Tensor, padding: str, align_corners: bool = True, mode: str = "bilinear"
) -> torch.Tensor:
    """backward_warp expressed with F.grid_sample; flow (N, 2, H, W) in pixels, ch 0 = x.

    The grid is pixel + flow normalised by max(size - 1, 1) whatever ``align_corners`` (BasicSR's
    and MMagic's flow_warp do the same)."""
    n, c, h, w = feat.shape
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    gx = 2 * (xs + flow[:, 0]) / max(w - 1, 1) - 1
    gy = 2 * (ys + flow[:, 1]) / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], dim=-1).to(feat.dtype)
    return F.grid_sample(feat, grid, mode=mode, padding_mode=padding, align_corners=align_corners)


def interpolate_flow(flow: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=False) * scale


def charbonnier_formula(pred: torch.Tensor, target: torch.Tensor, eps: float, reduction: str) -> torch.Tensor:
    rho = torch.sqrt((pred - target) ** 2 + eps**2)
    if reduction == "none":
        return rho
    if reduction == "sum":
        return rho.sum()
    if reduction == "batch":
        return rho.sum() / pred.shape[0]
    return rho.mean()


def fractional_flow(n, h, w, max_disp=3.0, outside=0.0, generator=None, dtype=torch.float64):
    """Flow whose sample points have fractional parts in [0.2, 0.8] (away from bilinear kinks).

    With ``outside > 0`` that fraction of pixels is pushed out of the image by 1.5 to 3 image sizes,
    far from the clamp boundary, so finite differences do not straddle it.
    """
    g = generator
    whole = torch.randint(-int(max_disp), int(max_disp) + 1, (n, 2, h, w), generator=g).to(dtype)
    frac = 0.2 + 0.6 * torch.rand(n, 2, h, w, generator=g, dtype=dtype)
    flow = whole + frac
    if outside > 0:
        mask = torch.rand(n, 1, h, w, generator=g) < outside
        sign = torch.where(torch.rand(n, 2, h, w, generator=g) < 0.5, -1.0, 1.0).to(dtype)
        size = torch.tensor([w, h], dtype=dtype).view(1, 2, 1, 1)
        far = sign * size * (1.5 + 1.5 * torch.rand(n, 2, h, w, generator=g, dtype=dtype)) + frac
        flow = torch.where(mask, far, flow)
    return flow
