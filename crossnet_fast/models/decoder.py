"""The CrossNet U-Net fusion decoder (CROSSNET.md section 4)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _deconv_selu(cin: int, cout: int) -> nn.Sequential:
    """x2 upsampling: ConvTranspose2d(k4, s2, p1) + SELU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.SELU(inplace=True))


class Decoder(nn.Module):
    """Fuses the LR feature pyramid with the warped reference pyramid into the HR image.

    Concatenation order at every step: decoder feature, LR feature, warped reference feature.
    ``fusion2`` exists (the released code computes it and throws it away) so that parameter counts
    and state dicts match the released model; it is not evaluated, which changes no output.
    """

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        c = channels
        self.deconv3 = _deconv_selu(2 * c, c)  # 1/8 -> 1/4
        self.deconv2 = _deconv_selu(3 * c, c)  # 1/4 -> 1/2
        self.deconv1 = _deconv_selu(3 * c, c)  # 1/2 -> 1
        self.fusion1 = nn.Sequential(nn.Conv2d(3 * c, c, 5, 1, 2), nn.SELU(inplace=True))
        self.fusion2 = nn.Sequential(nn.Conv2d(c, c, 5, 1, 2), nn.SELU(inplace=True))  # unused
        self.out = nn.Conv2d(c, 3, 5, 1, 2)  # linear, no global residual

    def features(self, lr_feats: Sequence[torch.Tensor], warped: Sequence[torch.Tensor]) -> torch.Tensor:
        """lr_feats, warped: lists of 4 tensors (N, 64, H / 2^i, W / 2^i), i = 0..3.

        Returns the fused full-resolution features (N, 64, H, W) that ``out`` maps to the image.
        """
        d = self.deconv3(torch.cat((lr_feats[3], warped[3]), 1))
        d = self.deconv2(torch.cat((d, lr_feats[2], warped[2]), 1))
        d = self.deconv1(torch.cat((d, lr_feats[1], warped[1]), 1))
        return self.fusion1(torch.cat((d, lr_feats[0], warped[0]), 1))

    def forward(self, lr_feats: Sequence[torch.Tensor], warped: Sequence[torch.Tensor]) -> torch.Tensor:
        """Returns (N, 3, H, W), the dtype of the features: the super-resolved image (values roughly
        in [0, 1]; not clamped, so that training sees the raw output)."""
        return self.out(self.features(lr_feats, warped))


class ReferenceDetailGate(nn.Module):
    """Gated transfer of the reference's aligned high frequencies (the ``ref_detail`` option).

    ``forward(fused, detail, mismatch)``: fused (N, C, H, W) decoder features; detail (N, 3, H, W)
    the warped ``ref - degraded ref`` (image units); mismatch (N, 3, H, W) ``bicubic LR - warped
    degraded ref`` (large where the warp is wrong or the view is occluded). Returns
    ``sigmoid(conv3x3(cat(...))) * detail`` (N, 3, H, W), fp32. The conv is zero-initialised, so
    every pixel starts by taking half the detail and the gate learns where the warp can be trusted.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(channels + 6, 1, 3, 1, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, fused: torch.Tensor, detail: torch.Tensor, mismatch: torch.Tensor) -> torch.Tensor:
        x = torch.cat((fused.float(), detail, mismatch), 1)
        return torch.sigmoid(self.gate(x.to(self.gate.weight.dtype)).float()) * detail
