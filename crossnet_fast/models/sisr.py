"""Single-image super-resolution (SISR) front ends of CrossNet (docs/DESIGN.md, section "SISR front ends").

Every front end maps an LR image (N, 3, h, w) float in [0, 1] to an HR image (N, 3, h*s, w*s) of the
same dtype, values roughly in [0, 1]:

- :class:`Bicubic`: parameter-free bicubic upsampling (the released code's flow-net input and the
  cheap ``sisr="bicubic"`` option).
- :class:`MDSR`: multi-scale EDSR (Lim et al. 2017): residual blocks without batch norm, shared body,
  scale-specific pre-processing blocks and pixel-shuffle upsamplers for x2, x4 and x8.
- :class:`SRCNN` (Dong et al. 2014) and :class:`VDSR` (Kim et al. 2016): the paper's SISR
  baselines, both refining a bicubic upsampling. They run on RGB (the originals used luminance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._deprecated import renamed

SCALES = (2, 4, 8)


def _check_scale(scale: int, allowed: Sequence[int]) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in allowed:
        raise ValueError(f"scale must be one of {tuple(allowed)}, got {scale!r}")
    return scale


def upsample_bicubic_torch(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """PyTorch's bicubic x``scale`` upsampling (``F.interpolate``: a = -0.75, half-pixel centres, no
    antialiasing), clamped to [0, 1]: the model's flow-net input and bicubic front end.

    Not MATLAB's bicubic (a = -0.5, the literature's LR images and "bicubic" baseline): that is
    :func:`crossnet_fast.degrade.upsample_bicubic_matlab`.

    lr: (N, 3, h, w) float in [0, 1]. Returns (N, 3, h*scale, w*scale), same dtype. The clamp
    mirrors images that were stored as 8-bit files, as the released code's inputs were.
    """
    up = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


bicubic_upsample = renamed(upsample_bicubic_torch, "crossnet_fast.models.sisr.bicubic_upsample")


class Bicubic(nn.Module):
    """Parameter-free SISR front end: :func:`upsample_bicubic_torch` by a fixed ``scale``."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = _check_scale(scale, SCALES)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return upsample_bicubic_torch(lr, self.scale)


class ResBlock(nn.Module):
    """EDSR residual block: conv-ReLU-conv, no batch norm, output = x + res_scale * residual."""

    def __init__(self, channels: int, kernel: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel, 1, kernel // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel, 1, kernel // 2),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class PixelShuffleUpsampler(nn.Sequential):
    """x``scale`` (a power of two) as repeated [3x3 conv to 4C channels, PixelShuffle(2)]."""

    def __init__(self, channels: int, scale: int) -> None:
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(channels, 4 * channels, 3, 1, 1), nn.PixelShuffle(2)]
        super().__init__(*layers)


class MDSR(nn.Module):
    """Multi-scale deep SR network (EDSR family) with x2/x4/x8 heads.

    Args:
        scales: the upsampling factors to build heads for (subset of (2, 4, 8)).
        channels: feature width (64 as in MDSR).
        blocks: residual blocks in the shared body (16 = MDSR-baseline; the full MDSR has 80).
        res_scale: residual scaling inside blocks (1.0 for the 64-channel models).

    ``forward(lr, scale=None)``: lr (N, 3, h, w) float in [0, 1] -> (N, 3, h*scale, w*scale). The
    image is mean-shifted by 0.5 (inputs in [0, 1]) instead of EDSR's dataset RGB mean, so that the
    network starts centred whatever data it is trained on.
    """

    def __init__(
        self, scales: Sequence[int] = SCALES, channels: int = 64, blocks: int = 16, res_scale: float = 1.0
    ) -> None:
        super().__init__()
        scales = tuple(scales)
        if not scales:
            raise ValueError("scales must name at least one of (2, 4, 8)")
        for s in scales:
            _check_scale(s, SCALES)
        if blocks < 1 or channels < 1:
            raise ValueError(f"blocks and channels must be positive, got {blocks} and {channels}")
        self.scales = scales
        self.head = nn.Conv2d(3, channels, 3, 1, 1)
        # Scale-specific pre-processing: two 5x5 residual blocks per scale (as in MDSR).
        self.pre = nn.ModuleDict(
            {f"x{s}": nn.Sequential(ResBlock(channels, 5, res_scale), ResBlock(channels, 5, res_scale)) for s in scales}
        )
        self.body = nn.Sequential(
            *[ResBlock(channels, 3, res_scale) for _ in range(blocks)], nn.Conv2d(channels, channels, 3, 1, 1)
        )
        self.up = nn.ModuleDict({f"x{s}": PixelShuffleUpsampler(channels, s) for s in scales})
        self.tail = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward(self, lr: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        if scale is None:
            if len(self.scales) != 1:
                raise ValueError(f"scale must be given for a multi-scale MDSR (heads {self.scales})")
            scale = self.scales[0]
        _check_scale(scale, self.scales)
        x = self.pre[f"x{scale}"](self.head(lr - 0.5))
        x = x + self.body(x)  # long skip over the shared body
        return self.tail(self.up[f"x{scale}"](x)) + 0.5


class SRCNN(nn.Module):
    """SRCNN 9-1-5 (64, 32 filters) on the bicubic upsampling, padded to keep the size.

    ``forward(lr)``: (N, 3, h, w) -> (N, 3, h*scale, w*scale).
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = _check_scale(scale, SCALES)
        self.body = nn.Sequential(
            nn.Conv2d(3, 64, 9, 1, 4),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 32, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 3, 5, 1, 2),
        )

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.body(upsample_bicubic_torch(lr, self.scale))


class VDSR(nn.Module):
    """VDSR: ``depth`` 3x3 convs (64 filters, ReLU between) predicting the residual to bicubic.

    ``forward(lr)``: (N, 3, h, w) -> (N, 3, h*scale, w*scale) = bicubic + residual.
    """

    def __init__(self, scale: int, depth: int = 20, channels: int = 64) -> None:
        super().__init__()
        self.scale = _check_scale(scale, SCALES)
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels, 3, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        up = upsample_bicubic_torch(lr, self.scale)
        return up + self.body(up)


def build_sisr(name: str, scale: int) -> nn.Module:
    """The SISR front end ``name`` ("mdsr", "bicubic", "srcnn", "vdsr") for one ``scale``.

    Every returned module maps lr (N, 3, h, w) to (N, 3, h*scale, w*scale) when called with lr alone.
    """
    if name == "bicubic":
        return Bicubic(scale)
    if name == "mdsr":
        return MDSR(scales=(scale,))
    if name == "srcnn":
        return SRCNN(scale)
    if name == "vdsr":
        return VDSR(scale)
    raise ValueError(f"sisr must be one of ('mdsr', 'bicubic', 'srcnn', 'vdsr'), got {name!r}")
