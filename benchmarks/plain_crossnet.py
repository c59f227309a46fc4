"""The benchmark baseline: CrossNet written in plain PyTorch, warping with ``F.grid_sample``.

Same modules, same weights (load the fused model's state dict), only the warp differs: one
``grid_sample(border, align_corners=True)`` per scale with the grid built from the pixel flow, as
RefSR code built on PyTorch usually does it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crossnet_fast.models import CrossNet


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """Pixel flow (N, 2, H, W), channel 0 = x -> grid_sample grid (N, H, W, 2) for align_corners=True."""
    _, _, h, w = flow.shape
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    return torch.stack((2 * (xs + flow[:, 0]) / (w - 1) - 1, 2 * (ys + flow[:, 1]) / (h - 1) - 1), dim=-1)


class PlainCrossNet(CrossNet):
    """CrossNet whose warp is ``F.grid_sample`` (see module docstring); same constructor arguments."""

    def warp(self, feats: list[torch.Tensor], flows: list[torch.Tensor]) -> list[torch.Tensor]:
        # feats: 4 x (N, 64, H_i, W_i); flows: 4 x (N, 2, H_i, W_i) in pixels. grid_sample wants one
        # dtype for input and grid: under autocast the flows are already half precision.
        return [
            F.grid_sample(f, flow_to_grid(v).to(f.dtype), mode="bilinear", padding_mode="border", align_corners=True)
            for f, v in zip(feats, flows)
        ]


def plain_copy(model: CrossNet) -> PlainCrossNet:
    """A :class:`PlainCrossNet` with ``model``'s configuration, weights, device and dtype."""
    cfg = model.cfg
    plain = PlainCrossNet(cfg.scale, cfg.config, cfg.sisr)
    plain.load_state_dict(model.state_dict())
    p = next(model.parameters())
    return plain.to(device=p.device, dtype=p.dtype).eval()
