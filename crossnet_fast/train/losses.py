"""Auxiliary training losses on CrossNet's flows (options of ``[optim]``; both off in the paper's
recipe). Both are in the units of the main loss (Charbonnier summed over C, H, W, divided by the
batch), so a weight of 1 gives an auxiliary term the size of the reconstruction loss.

- :func:`photometric_loss`: at every scale ``i`` the image the flow net compared the LR with,
  average-pooled by ``2^i`` and backward-warped by ``V_i``, against the bicubic LR pooled the same
  way. It teaches the flow net to align from the first step, where the reconstruction loss alone
  reaches it only through the decoder.
- :func:`smoothness_loss`: mean absolute difference of neighbouring flow vectors (px per px) at
  every scale, against flows that blow up where nothing constrains them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops import backward_warp, charbonnier


def photometric_loss(
    flows: list[torch.Tensor], lr_up: torch.Tensor, flow_ref: torch.Tensor, eps: float = 1e-3, backend: str = "auto"
) -> torch.Tensor:
    """Photometric alignment loss of a flow pyramid (fp32 scalar).

    Args:
        flows: ``[V0..V3]``, ``V_i`` (N, 2, H / 2^i, W / 2^i) float, pixels of scale ``i``.
        lr_up: (N, 3, H, W) the bicubic-upsampled LR image in [0, 1].
        flow_ref: (N, 3, H, W) the image the flow net warps towards ``lr_up`` (the reference, or
            the degraded reference with ``flow_ref="degraded"``).
        eps: Charbonnier epsilon.

    Returns ``sum_i mean_i(charbonnier) * 3 * H * W``: each scale weighs as much as a full-resolution
    image, summed over the scales.
    """
    n, c, h, w = lr_up.shape
    target, source = lr_up.float(), flow_ref.float()
    total = lr_up.new_zeros((), dtype=torch.float32)
    for i, v in enumerate(flows):
        if i:
            target = F.avg_pool2d(target, 2)
            source = F.avg_pool2d(source, 2)
        if tuple(v.shape[-2:]) != tuple(target.shape[-2:]):
            raise ValueError(f"flows[{i}] has size {tuple(v.shape[-2:])}, expected {tuple(target.shape[-2:])}")
        warped = backward_warp(source.contiguous(), v.float().contiguous(), padding="border", backend=backend)
        total = total + charbonnier(warped, target.contiguous(), eps=eps, reduction="mean")
    return total * (c * h * w)


def smoothness_loss(flows: list[torch.Tensor], numel_per_image: int) -> torch.Tensor:
    """``sum_i mean(|dV_i/dx| + |dV_i/dy|) * numel_per_image`` (fp32 scalar; flows as above)."""
    total = flows[0].new_zeros((), dtype=torch.float32)
    for v in flows:
        v = v.float()
        dx = (v[..., :, 1:] - v[..., :, :-1]).abs().mean() if v.shape[-1] > 1 else 0.0
        dy = (v[..., 1:, :] - v[..., :-1, :]).abs().mean() if v.shape[-2] > 1 else 0.0
        total = total + dx + dy
    return total * numel_per_image


def aux_weight(step: int, iterations: int, start: float, end_fraction: float) -> float:
    """Weight at ``step``: ``start`` falling linearly to ``start * end_fraction`` at the last step."""
    if start <= 0:
        return 0.0
    t = min(max(step / max(iterations - 1, 1), 0.0), 1.0)
    return float(start) * (1.0 - t * (1.0 - float(end_fraction)))


__all__ = ["photometric_loss", "smoothness_loss", "aux_weight"]
