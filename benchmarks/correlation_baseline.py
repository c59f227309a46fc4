"""The pure-PyTorch correlation that users fall back to without a compiled op (the baseline of the
correlation benchmarks): pad f2, then one multiply-mean over channels per displacement, autograd
for the backward. Same output as crossnet_fast.correlation for finite inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shifted_product_correlation(
    f1: torch.Tensor, f2: torch.Tensor, max_displacement: int, dilation: int = 1, stride: int = 1
) -> torch.Tensor:
    """f1, f2 (N, C, H, W) -> (N, (2D+1)^2, ceil(H/stride), ceil(W/stride)), dtype of the inputs."""
    h, w = f1.shape[-2:]
    pad = max_displacement * dilation
    f2p = F.pad(f2, (pad, pad, pad, pad))
    a = f1[:, :, ::stride, ::stride]
    planes = []
    for dy in range(-max_displacement, max_displacement + 1):
        for dx in range(-max_displacement, max_displacement + 1):
            oy, ox = pad + dy * dilation, pad + dx * dilation
            planes.append((a * f2p[:, :, oy : oy + h : stride, ox : ox + w : stride]).mean(1))
    return torch.stack(planes, 1)


# PWC-Net's pyramid levels at 448x1024 (1/4 to 1/64, D = 4, the channels of its feature pyramid):
# name -> (N, C, H, W, D, dilation, stride). Shared by the CPU and CUDA correlation benchmarks.
PWC_LEVELS = {
    "pwc 1/4 2x32x112x256 D4": (2, 32, 112, 256, 4, 1, 1),
    "pwc 1/8 2x64x56x128 D4": (2, 64, 56, 128, 4, 1, 1),
    "pwc 1/16 2x96x28x64 D4": (2, 96, 28, 64, 4, 1, 1),
    "pwc 1/32 2x128x14x32 D4": (2, 128, 14, 32, 4, 1, 1),
    "pwc 1/64 2x196x7x16 D4": (2, 196, 7, 16, 4, 1, 1),
}
