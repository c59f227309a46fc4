"""The CrossNet U-Net fusion decoder (docs/DESIGN.md, section "Encoder and decoder")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .activations import SELU
from .refine import patch_cost


def _deconv_selu(cin: int, cout: int) -> nn.Sequential:
    """x2 upsampling: ConvTranspose2d(k4, s2, p1) + SELU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), SELU())


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
        self.fusion1 = nn.Sequential(nn.Conv2d(3 * c, c, 5, 1, 2), SELU())
        self.fusion2 = nn.Sequential(nn.Conv2d(c, c, 5, 1, 2), SELU())  # unused
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
    degraded ref``. The gate also sees the log of the local matching cost, ``log(mean over a
    patch x patch window of sum_c mismatch^2 + 1e-6)``: a linear layer cannot compute a magnitude
    from the signed mismatch, and the cost is what says where the warp can be trusted. Returns
    ``sigmoid(trust(cat(fused, detail, mismatch, log cost))) * detail`` (N, 3, H, W), fp32, with
    ``trust`` a 3x3 convolution.

    Initialised to ``c0 / (c0 + cost)`` with ``c0 = 1e-3`` (every weight 0 except -1 on the centre
    tap of the cost channel, bias log c0): the detail is taken where the degraded reference matches
    the LR image (an RGB difference of ~0.02) and left out where it does not.
    """

    C0 = 1e-3

    def __init__(self, channels: int, patch: int = 7) -> None:
        super().__init__()
        if patch < 1 or patch % 2 == 0:
            raise ValueError(f"patch must be odd and >= 1, got {patch}")
        self.patch = int(patch)
        self.trust = nn.Conv2d(channels + 7, 1, 3, 1, 1)
        with torch.no_grad():
            self.trust.weight.zero_()
            self.trust.weight[0, channels + 6, 1, 1] = -1.0
            self.trust.bias.fill_(math.log(self.C0))

    def forward(self, fused: torch.Tensor, detail: torch.Tensor, mismatch: torch.Tensor) -> torch.Tensor:
        mismatch = mismatch.float()
        cost = patch_cost(mismatch, self.patch)[:, None]
        parts = (fused.float(), detail, mismatch, torch.log(cost + 1e-6))
        if mismatch.device.type != "cpu":
            x = torch.cat(parts, 1)
        elif torch.is_grad_enabled():
            # oneDNN runs this one-output convolution 5x faster on channels-last input.
            x = torch.cat(parts, 1).contiguous(memory_format=torch.channels_last)
        else:
            # The same, concatenated straight into channels-last storage (one pass instead of two).
            n, _, h, w = mismatch.shape
            channels = sum(t.shape[1] for t in parts)
            x = torch.empty(n, channels, h, w, dtype=mismatch.dtype, memory_format=torch.channels_last)
            torch.cat(parts, 1, out=x)
        return torch.sigmoid(self.trust(x.to(self.trust.weight.dtype)).float()) * detail
