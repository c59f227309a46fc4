"""Reference correlation (cost volume) of two feature maps, by shifted products."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def correlation(
    f1: torch.Tensor, f2: torch.Tensor, max_displacement: int, dilation: int = 1, stride: int = 1
) -> torch.Tensor:
    """Cost volume ``out[n, k, i, j] = mean_c f1[n, c, y, x] * f2[n, c, y + dy*dilation, x + dx*dilation]``.

    ``y = i*stride``, ``x = j*stride``, ``k = (dy + D)*(2D + 1) + (dx + D)`` for ``dy, dx`` in
    ``[-D, D]``, ``D = max_displacement``. A displaced point outside f2's H x W contributes zero.

    Written simply: f2 is padded with zeros by ``D*dilation`` and each displacement is one
    multiply-mean over channels. The products at padded points are then replaced by zero (not
    computed as ``f1 * 0``), so an inf/NaN in f1 does not leak into outputs that read padding.
    Differentiable by ordinary autograd.

    Args:
        f1, f2: (N, C, H, W) float tensors of one shape, dtype and device.
        max_displacement: D >= 0, in pixels of f2 divided by ``dilation``.
        dilation: >= 1, pixel step between displacements.
        stride: >= 1, pixel step between output points.

    Returns:
        (N, (2D+1)^2, ceil(H/stride), ceil(W/stride)) tensor of ``f1.dtype``, accumulated in fp32
        (fp64 for fp64 inputs) and rounded once; zeros when C == 0.
    """
    n, c, h, w = f1.shape
    d, s = max_displacement, stride
    ho, wo = -(-h // s), -(-w // s)
    compute = torch.float64 if f1.dtype == torch.float64 else torch.float32
    pad = d * dilation
    a = f1.to(compute)[:, :, ::s, ::s]  # (N, C, Ho, Wo)
    b = F.pad(f2.to(compute), (pad, pad, pad, pad))
    rows = torch.arange(ho, device=f1.device) * s
    cols = torch.arange(wo, device=f1.device) * s
    planes = []
    for dy in range(-d, d + 1):
        oy = pad + dy * dilation
        row_ok = ((rows + dy * dilation >= 0) & (rows + dy * dilation < h)).view(ho, 1)
        for dx in range(-d, d + 1):
            ox = pad + dx * dilation
            col_ok = ((cols + dx * dilation >= 0) & (cols + dx * dilation < w)).view(1, wo)
            shifted = b[:, :, oy : oy + (ho - 1) * s + 1 : s, ox : ox + (wo - 1) * s + 1 : s]
            prod = torch.where(row_ok & col_ok, a * shifted, torch.zeros((), dtype=compute, device=f1.device))
            planes.append(prod.sum(1) / max(c, 1))  # C == 0: an empty sum, 0
    return torch.stack(planes, dim=1).to(f1.dtype)
