"""Local-search refinement of CrossNet's full-resolution flow (the ``refine_radius`` option).

The flow net gets the coarse displacement right long before it gets sub-pixel detail right; patch
matching gets the detail right by explicit search. This module adds that search on top of V0: for
every integer offset d in [-r, r]^2 it warps the degraded reference by V0 + d, scores each pixel
by the patch-averaged squared difference to the bicubic LR (patch = scale + 3 px), and moves V0 by
the soft-argmin of the offsets (softmax of -cost / T, T learned). Repeated ``steps`` times, each
search starting from the last estimate. Differentiable: gradients reach V0 and T.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import backward_warp


def _inside_counts(n: int, half: int, like: torch.Tensor) -> torch.Tensor:
    """(n,) how many of the 2 * half + 1 positions around each index lie in [0, n)."""
    i = torch.arange(n, device=like.device)
    return ((i + half).clamp(max=n - 1) - (i - half).clamp(min=0) + 1).to(like.dtype)


def box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over the k x k window (k odd) around each pixel, counting only pixels inside the image
    (``avg_pool2d(x, k, 1, k // 2, count_include_pad=False)``, up to float rounding).

    x (..., H, W) float -> the same shape and dtype. Written as k shifted adds per axis: ATen's CPU
    ``avg_pool2d`` costs about 8 ns per output at k = 7 and few channels, 4x this (the refinement's
    and the detail gate's costs are the largest windows in the model). The window count is the
    product of the counts along each axis, so the border rule is exact.
    """
    half = k // 2
    h, w = x.shape[-2:]
    padded = F.pad(x, (half, half))
    rows = padded[..., 0:w].clone()
    for j in range(1, k):
        rows += padded[..., j : j + w]
    padded = F.pad(rows, (0, 0, half, half))
    total = padded[..., 0:h, :].clone()
    for j in range(1, k):
        total += padded[..., j : j + h, :]
    return total / (_inside_counts(h, half, x)[:, None] * _inside_counts(w, half, x)[None, :])


def patch_cost(diff: torch.Tensor, patch: int) -> torch.Tensor:
    """Local matching cost: ``sum_c diff^2`` averaged over a ``patch`` x ``patch`` window (odd
    side; windows at the border average only the pixels inside the image).

    diff (..., C, H, W) float image difference -> (..., H, W) in squared image units. Used by the
    search below and by the detail gate (decoder.py), so both judge a match the same way.
    """
    return box_mean(diff.square().sum(-3), patch)


class LocalSearchRefinement(nn.Module):
    """``forward(flow, lr_up, ref_low)`` -> refined flow.

    Args:
        radius: search radius r in pixels (integer offsets -r..r on each axis).
        steps: searches in sequence, each centred on the previous estimate.
        patch: side of the square window the squared differences are averaged over (odd).
        backend: warp backend.

    Shapes: flow (N, 2, H, W) px (x, y); lr_up and ref_low (N, 3, H, W) images in [0, 1]; the
    result is (N, 2, H, W) fp32 px. ``log_temperature`` (a scalar parameter) sets the softmax
    temperature in units of squared image difference (initially 0.01).
    """

    def __init__(self, radius: int, steps: int = 2, patch: int = 7, backend: str = "auto") -> None:
        super().__init__()
        if radius < 1 or steps < 1 or patch < 1 or patch % 2 == 0:
            raise ValueError(f"radius and steps must be >= 1 and patch odd, got {radius}, {steps}, {patch}")
        self.radius, self.steps, self.patch, self.backend = int(radius), int(steps), int(patch), backend
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.01)))

    def offsets(self, device) -> torch.Tensor:
        """(K, 2) fp32 integer offsets (x, y), K = (2r + 1)^2, row-major over (dy, dx). Made on
        the fly rather than kept as a buffer: a function of the radius, nothing to save or load."""
        r = torch.arange(-self.radius, self.radius + 1, dtype=torch.float32, device=device)
        dy, dx = torch.meshgrid(r, r, indexing="ij")
        return torch.stack((dx.reshape(-1), dy.reshape(-1)), 1)

    def costs(self, flow: torch.Tensor, lr_up: torch.Tensor, ref_low: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) patch-averaged squared difference for each offset (all K warps in one call)."""
        n, _, h, w = flow.shape
        offsets = self.offsets(flow.device)
        k = offsets.shape[0]
        cand = (flow[:, None] + offsets.view(1, k, 2, 1, 1)).reshape(n * k, 2, h, w)
        src = ref_low[:, None].expand(n, k, 3, h, w).reshape(n * k, 3, h, w)
        warped = backward_warp(src.contiguous(), cand.contiguous(), padding="border", backend=self.backend)
        diff = warped.view(n, k, 3, h, w)
        if torch.is_grad_enabled():
            return patch_cost(diff - lr_up[:, None], self.patch)
        # Inference: the same cost with the K warped images' storage reused (no K-image temporaries).
        return box_mean(diff.sub_(lr_up[:, None]).square_().sum(-3), self.patch)

    def forward(self, flow: torch.Tensor, lr_up: torch.Tensor, ref_low: torch.Tensor) -> torch.Tensor:
        flow, lr_up, ref_low = flow.float(), lr_up.float(), ref_low.float()
        temperature = self.log_temperature.float().exp()
        offsets = self.offsets(flow.device)
        for _ in range(self.steps):
            weights = torch.softmax(-self.costs(flow, lr_up, ref_low) / temperature, dim=1)
            flow = flow + torch.einsum("nkhw,kc->nchw", weights, offsets)
        return flow


__all__ = ["LocalSearchRefinement"]
