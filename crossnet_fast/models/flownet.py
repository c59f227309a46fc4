"""FlowNetS+: the flow estimator of CrossNet (docs/DESIGN.md, section "FlowNetS+"), 33,830,110 parameters.

FlowNetS (Dosovitskiy et al. 2015) stops at 1/4 resolution; the "+" adds two learned x2 stages with
skip connections so that flows come out at full, 1/2, 1/4 and 1/8 resolution (V0..V3).
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import SELU

# Every contracting/expanding activation is LeakyReLU(0.1); the full-resolution head uses SELU.
_SLOPE = 0.1


def _conv(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    """k x k conv with 'same'-style padding (k // 2) + LeakyReLU(0.1)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2), nn.LeakyReLU(_SLOPE, inplace=True))


def _deconv(cin: int, cout: int) -> nn.Sequential:
    """x2 learned upsampling: ConvTranspose2d(k4, s2, p1) + LeakyReLU(0.1)."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(_SLOPE, inplace=True))


def _flow_head(cin: int) -> nn.Conv2d:
    """3x3 conv to a 2-channel flow (x, y in pixels of its scale), linear."""
    return nn.Conv2d(cin, 2, 3, 1, 1)


def _flow_up() -> nn.ConvTranspose2d:
    """Learned x2 upsampling of a flow, linear; no magnitude rescaling (the network learns it)."""
    return nn.ConvTranspose2d(2, 2, 4, 2, 1)


class FlowNetSPlus(nn.Module):
    """Predicts four backward flows from the (upsampled) LR image to the reference.

    Input: ``lr_up`` and ``ref``, each (N, 3, H, W) float in [0, 1], H and W multiples of 64.
    Output: list ``[V0, V1, V2, V3]``; ``V_i`` is (N, 2, H / 2^i, W / 2^i), input dtype, a
    displacement in pixels of its own scale, channel 0 = x (columns), channel 1 = y (rows). Each is
    predicted independently at its resolution (no /20 scaling, no rescaling between scales).
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        # width scales every feature channel count (1.0 = the paper's network); flows stay 2-channel.
        c = {k: max(8, int(round(k * width))) for k in (64, 128, 256, 512, 1024)}
        self.conv1 = _conv(6, c[64], 7, 2)
        self.conv2 = _conv(c[64], c[128], 5, 2)
        self.conv3 = _conv(c[128], c[256], 5, 2)
        self.conv3_1 = _conv(c[256], c[256], 3, 1)
        self.conv4 = _conv(c[256], c[512], 3, 2)
        self.conv4_1 = _conv(c[512], c[512], 3, 1)
        self.conv5 = _conv(c[512], c[512], 3, 2)
        self.conv5_1 = _conv(c[512], c[512], 3, 1)
        self.conv6 = _conv(c[512], c[1024], 3, 2)
        self.conv6_1 = _conv(c[1024], c[1024], 3, 1)

        # Expanding part; the input channel counts are the concatenations of the spec table
        # (at width 1: 1024, 770, 770, 386, 194, 130).
        cat5 = c[512] + c[256] + 2
        cat4 = c[512] + c[256] + 2
        cat3 = c[256] + c[128] + 2
        cat2 = c[128] + c[64] + 2
        cat1 = c[64] + c[64] + 2
        self.flow6, self.flow6_up, self.deconv6 = _flow_head(c[1024]), _flow_up(), _deconv(c[1024], c[256])
        self.flow5, self.flow5_up, self.deconv5 = _flow_head(cat5), _flow_up(), _deconv(cat5, c[256])
        self.flow4, self.flow4_up, self.deconv4 = _flow_head(cat4), _flow_up(), _deconv(cat4, c[128])
        self.flow3, self.flow3_up, self.deconv3 = _flow_head(cat3), _flow_up(), _deconv(cat3, c[64])
        self.flow2, self.flow2_up, self.deconv2 = _flow_head(cat2), _flow_up(), _deconv(cat2, c[64])
        self.flow1, self.flow1_up, self.deconv1 = _flow_head(cat1), _flow_up(), _deconv(cat1, c[64])
        # Full-resolution head on ref (3) + deconv1 (64) + flow1_up (2) = 69 channels at width 1.
        self.flow0 = nn.Sequential(
            nn.Conv2d(3 + c[64] + 2, 16, 7, 1, 3),
            SELU(),
            nn.Conv2d(16, 16, 7, 1, 3),
            SELU(),
            nn.Conv2d(16, 2, 3, 1, 1),
        )

    def forward(self, lr_up: torch.Tensor, ref: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.conv1(torch.cat((lr_up, ref), 1))
        c2 = self.conv2(c1)
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))

        flow6 = self.flow6(c6)
        x = torch.cat((c5, self.deconv6(c6), self.flow6_up(flow6)), 1)
        flow5 = self.flow5(x)
        x = torch.cat((c4, self.deconv5(x), self.flow5_up(flow5)), 1)
        flow4 = self.flow4(x)
        x = torch.cat((c3, self.deconv4(x), self.flow4_up(flow4)), 1)
        v3 = self.flow3(x)
        x = torch.cat((c2, self.deconv3(x), self.flow3_up(v3)), 1)
        v2 = self.flow2(x)
        x = torch.cat((c1, self.deconv2(x), self.flow2_up(v2)), 1)
        v1 = self.flow1(x)
        x = torch.cat((ref, self.deconv1(x), self.flow1_up(v1)), 1)
        v0 = self.flow0(x)
        return [v0, v1, v2, v3]
