"""The networks the trainer can build from ``[model]``: CrossNet, the SISR baselines, a tiny RefSR.

CrossNet and the SISR networks themselves live in :mod:`crossnet_fast.models`; this file adds only
what training needs on top: :func:`build_model`, the SISR baselines behind the RefSR call signature
(:class:`SISRModel`) and a small network for smoke tests (:class:`TinyRefSR`).

Every one is called as ``model(lr, ref)`` with lr (N, 3, H/s, W/s) and ref (N, 3, H, W) float in
[0, 1] and returns (N, 3, H, W); each has an int ``scale`` (what ``super_resolve`` needs).
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import CrossNet
from ..models.sisr import build_sisr, upsample_bicubic_torch
from ..ops import backward_warp


class SISRModel(nn.Module):
    """An SISR baseline (``"srcnn"``, ``"vdsr"``, ``"mdsr"``) behind the RefSR call signature:
    the reference is ignored, so the same trainer and data train it (a fair comparison)."""

    def __init__(self, sisr: str = "mdsr", scale: int = 4):
        super().__init__()
        if sisr == "bicubic":
            raise ValueError("config model.sisr: 'bicubic' has no parameters to train")
        self.scale, self.sisr_name = int(scale), sisr
        self.net = build_sisr(sisr, self.scale)

    @property
    def config(self) -> dict:
        return {"name": "sisr", "sisr": self.sisr_name, "scale": self.scale}

    def forward(self, lr: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(lr)


class TinyRefSR(nn.Module):
    """A few-thousand-parameter RefSR network with CrossNet's structure in miniature, for smoke
    tests and CI (a training step takes milliseconds on a CPU).

    lr_up = bicubic(lr); flow (N, 2, H, W) px = convs(cat(lr_up, ref)) (zero-initialised, so it
    starts as the identity warp); warped = backward_warp(conv(ref), flow) (reference *features*,
    as in CrossNet); out = lr_up + convs(cat(lr_up, warped)). H and W: any size.
    """

    def __init__(self, scale: int = 4, channels: int = 8):
        super().__init__()
        self.scale = int(scale)
        c = int(channels)
        self.flow = nn.Sequential(nn.Conv2d(6, c, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(c, 2, 3, 1, 1))
        nn.init.zeros_(self.flow[-1].weight)
        nn.init.zeros_(self.flow[-1].bias)
        self.encode = nn.Conv2d(3, c, 3, 1, 1)
        self.fuse = nn.Sequential(nn.Conv2d(3 + c, c, 3, 1, 1), nn.SELU(), nn.Conv2d(c, 3, 3, 1, 1))
        # Zero residual at start: the untrained model is the bicubic upsampling (a sane baseline).
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)
        self.channels = c

    @property
    def config(self) -> dict:
        return {"name": "tiny", "scale": self.scale, "channels": self.channels}

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        lr_up = upsample_bicubic_torch(lr, self.scale)
        flow = self.flow(torch.cat((lr_up, ref), 1))
        feat = self.encode(ref)
        warped = backward_warp(feat.float().contiguous(), flow.float().contiguous(), padding="border").to(lr_up.dtype)
        return lr_up + self.fuse(torch.cat((lr_up, warped), 1))


def build_model(model_cfg) -> nn.Module:
    """The network described by a ``ModelConfig`` (randomly initialised from torch's RNG)."""
    if model_cfg.name == "crossnet":
        return CrossNet(
            scale=model_cfg.scale,
            config=model_cfg.config,
            sisr=model_cfg.sisr,
            backend=model_cfg.backend,
            freeze_sisr=model_cfg.freeze_sisr,
            **dict(model_cfg.options),
        )
    if model_cfg.name == "sisr":
        return SISRModel(model_cfg.sisr, model_cfg.scale)
    if model_cfg.name == "tiny":
        return TinyRefSR(model_cfg.scale)
    raise ValueError(f"config model.name: unknown model {model_cfg.name!r}")


__all__ = ["build_model", "SISRModel", "TinyRefSR"]
