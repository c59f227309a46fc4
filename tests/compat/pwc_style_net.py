"""A small PWC-Net-style flow network that imports ``spatial_correlation_sampler`` as PWC-Net ports do.

Used by tests/compat/test_correlation_compat.py: the test puts a stand-in package (a NumPy oracle
of the package's documented semantics) in ``sys.modules`` before importing this module, and runs
the network once with it and once inside ``crossnet_fast.compat.patch_spatial_correlation_sampler``.

The correlation is called exactly as the public PWC-Net implementations built on the package
call it: ``kernel_size=1, patch_size=9`` (max displacement 4), ``stride=1, padding=0,
dilation_patch=1``; the (B, 9, 9, H, W) result is viewed as (B, 81, H, W), divided by the channel
count and passed through a leaky ReLU (slope 0.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from spatial_correlation_sampler import spatial_correlation_sample
from torch import nn


def correlate(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """PWC-Net's cost volume: (B, C, H, W) x2 -> (B, 81, H, W), channel mean, leaky ReLU."""
    corr = spatial_correlation_sample(f1, f2, kernel_size=1, patch_size=9, stride=1, padding=0, dilation_patch=1)
    b, ph, pw, h, w = corr.size()
    corr = corr.view(b, ph * pw, h, w) / f1.size(1)
    return F.leaky_relu(corr, 0.1)


def backwarp(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """feat (B, C, H, W) sampled at pixel + flow (B, 2, H, W; x then y, pixels), zeros outside."""
    b, _, h, w = feat.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=feat.dtype), torch.arange(w, dtype=feat.dtype), indexing="ij")
    gx = 2 * (xs + flow[:, 0]) / max(w - 1, 1) - 1
    gy = 2 * (ys + flow[:, 1]) / max(h - 1, 1) - 1
    return F.grid_sample(feat, torch.stack((gx, gy), -1), align_corners=True)


class PWCStyleNet(nn.Module):
    """Two pyramid levels (1/2: 8 channels, 1/4: 16 channels). At 1/4: cost volume -> flow; at 1/2:
    upsampled flow, warp the second image's features, cost volume -> residual flow.

    forward(img1, img2): (B, 3, H, W) each, H and W multiples of 4 -> flow (B, 2, H/2, W/2) in
    pixels of the 1/2 level.
    """

    def __init__(self):
        super().__init__()
        self.level1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.1))
        self.level2 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.LeakyReLU(0.1))
        self.flow2 = nn.Conv2d(81 + 16, 2, 3, 1, 1)
        self.flow1 = nn.Conv2d(81 + 8 + 2, 2, 3, 1, 1)

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        a1, b1 = self.level1(img1), self.level1(img2)
        a2, b2 = self.level2(a1), self.level2(b1)
        flow2 = self.flow2(torch.cat((correlate(a2, b2), a2), 1))
        up = F.interpolate(flow2, scale_factor=2, mode="bilinear", align_corners=False) * 2
        corr1 = correlate(a1, backwarp(b1, up))
        return up + self.flow1(torch.cat((corr1, a1, up), 1))
