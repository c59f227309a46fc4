"""Reference bilinear backward warp with pixel-unit flow (the definition of the op)."""
from __future__ import annotations

import torch


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs are sampled in fp32, as every native backend does (fp32 accumulation).
    return torch.float64 if dtype == torch.float64 else torch.float32


def backward_warp(feat: torch.Tensor, flow: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Sample ``feat`` at ``(x + flow_x, y + flow_y)`` with bilinear interpolation.

    Args:
        feat: (N, C, H, W) float tensor, any layout.
        flow: (N, 2, H, W) float tensor, displacement in pixels of this resolution; channel 0 is x
            (columns), channel 1 is y (rows).
        padding: ``"border"`` clamps the sample point into ``[0, W-1] x [0, H-1]``; ``"zeros"`` lets
            taps outside the image contribute 0.

    Returns:
        (N, C, H, W) tensor of ``feat.dtype``: the warped features. Pixel centres sit at integer
        coordinates (the ``align_corners=True`` convention). A NaN sample point gives NaN with
        ``"border"`` and 0 with ``"zeros"``.
    """
    n, c, h, w = feat.shape
    compute = _compute_dtype(feat.dtype)
    f = feat.to(compute)
    fl = flow.to(compute)
    ys = torch.arange(h, device=feat.device, dtype=compute).view(1, h, 1)
    xs = torch.arange(w, device=feat.device, dtype=compute).view(1, 1, w)
    x = xs + fl[:, 0]
    y = ys + fl[:, 1]
    if padding == "border":
        x = x.clamp(0, w - 1)  # clamp keeps NaN as NaN
        y = y.clamp(0, h - 1)
    elif padding != "zeros":
        raise ValueError(f"padding must be 'border' or 'zeros', got {padding!r}")
    finite = torch.isfinite(x) & torch.isfinite(y)
    # Integer corners are computed from a sanitised copy so that NaN/inf never become indices.
    x0 = torch.floor(torch.where(finite, x, torch.zeros_like(x))).clamp(-2, w + 1)
    y0 = torch.floor(torch.where(finite, y, torch.zeros_like(y))).clamp(-2, h + 1)
    ax = x - x0  # differentiable w.r.t. flow through x
    ay = y - y0
    flat = f.reshape(n, c, h * w)
    out = torch.zeros(n, c, h, w, dtype=compute, device=feat.device)
    for dy, wy in ((0, 1 - ay), (1, ay)):
        for dx, wx in ((0, 1 - ax), (1, ax)):
            xi = x0 + dx
            yi = y0 + dy
            inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            weight = wx * wy
            if padding == "zeros":
                weight = torch.where(inside & finite, weight, torch.zeros_like(weight))
            else:
                # After clamping, a tap is only outside when its weight is exactly 0 (x0 = W-1).
                weight = torch.where(inside, weight, torch.zeros_like(weight))
            idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().reshape(n, 1, h * w)
            tap = torch.gather(flat, 2, idx.expand(n, c, h * w)).reshape(n, c, h, w)
            out = out + weight.unsqueeze(1) * tap
    return out.to(feat.dtype)


def multiscale_warp(feats, flows, padding: str = "border"):
    """Apply :func:`backward_warp` at every scale of a pyramid; returns a list of warped tensors."""
    if len(feats) != len(flows):
        raise ValueError(f"feats and flows must have the same length, got {len(feats)} and {len(flows)}")
    return [backward_warp(f, v, padding) for f, v in zip(feats, flows)]
