"""The CrossNet feature encoder (docs/DESIGN.md, section "Encoder and decoder"): 5 conv layers, 64 filters, SELU."""

from __future__ import annotations

import torch
from torch import nn

from .activations import SELU


def _conv_selu(cin: int, cout: int, stride: int) -> nn.Sequential:
    """5x5 conv (padding 2, bias) + SELU. The paper writes ReLU; both official codebases use SELU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 5, stride, 2), SELU())


class Encoder(nn.Module):
    """Four-scale feature pyramid of an image; 414,720 parameters.

    Input: (N, 3, H, W) float image in [0, 1], H and W multiples of 8.
    Output: list ``[F0, F1, F2, F3]``; ``F_i`` is (N, 64, H / 2^i, W / 2^i), input dtype.
    """

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.conv0 = _conv_selu(3, channels, 1)
        self.conv1 = _conv_selu(channels, channels, 1)  # F0, full resolution
        self.conv2 = _conv_selu(channels, channels, 2)  # F1, 1/2
        self.conv3 = _conv_selu(channels, channels, 2)  # F2, 1/4
        self.conv4 = _conv_selu(channels, channels, 2)  # F3, 1/8

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        if image.device.type == "cpu":
            # oneDNN's 5x5 convolutions at 16-64 channels run about 2x faster on channels-last
            # tensors (docs/PERFORMANCE.md); the layout carries through the decoder. Same values.
            image = image.contiguous(memory_format=torch.channels_last)
        f0 = self.conv1(self.conv0(image))
        f1 = self.conv2(f0)
        f2 = self.conv3(f1)
        f3 = self.conv4(f2)
        return [f0, f1, f2, f3]
