"""Reference bilinear backward warp with pixel-unit flow (the definition of the op).

Non-finite values (the semantics every backend follows, tested against ``F.grid_sample``):
a tap is read only where its coefficient is non-zero. The forward and the feature gradient use a
tap where its bilinear weight is non-zero; the flow gradient where the weight's derivative is.
So an inf or NaN in ``feat`` reaches exactly the samples that weight it, taps outside the image
are never read, and a zero flow is the identity even on non-finite values. (``F.grid_sample``
agrees everywhere except on sample points that lie exactly on a pixel row or column: it also reads
the neighbour of weight 0 there, so ``0 * inf`` makes NaN.)

Written as an autograd Function with explicit gradients: with autograd through ``weight * tap``,
a masked tap could not carry the derivative of its zero weight (which the flow gradient needs at
integer sample points) without turning ``0 * inf`` into NaN in the value.
"""

from __future__ import annotations

import torch

from ._bilinear import compute_dtype, coordinate_grads, corner_taps, sample, scatter_to_plane


def _taps(flow: torch.Tensor, h: int, w: int, padding: str):
    """The four bilinear taps of every pixel displaced by its flow.

    flow (N, 2, H, W) in the compute dtype. Returns :func:`corner_taps`'s list over P = H*W points.
    """
    n = flow.shape[0]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    x = (xs + flow[:, 0]).reshape(n, h * w)
    y = (ys + flow[:, 1]).reshape(n, h * w)
    one = torch.ones_like(x)
    nan_point = None
    if padding == "border":
        nan_point = torch.isnan(x) | torch.isnan(y)
        # The derivative of a clamped coordinate is 0 (inclusive bounds, like torch.clamp).
        grad_x = torch.where((x >= 0) & (x <= w - 1), one, torch.zeros_like(x))
        grad_y = torch.where((y >= 0) & (y <= h - 1), one, torch.zeros_like(y))
        x = x.clamp(0, w - 1)  # clamp keeps NaN as NaN; +-inf lands on the border
        y = y.clamp(0, h - 1)
        valid = torch.ones_like(nan_point)  # NaN in, NaN out: NaN weights around pixel (0, 0)
    elif padding == "zeros":
        grad_x, grad_y = one, one
        valid = torch.isfinite(x) & torch.isfinite(y)  # a non-finite point samples nothing: 0
    else:
        raise ValueError(f"padding must be 'border' or 'zeros', got {padding!r}")
    return corner_taps(x, y, grad_x, grad_y, h, w, valid, nan_point)


class _BackwardWarp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feat, flow, padding):
        n, c, h, w = feat.shape
        compute = compute_dtype(feat.dtype)
        taps = _taps(flow.to(compute), h, w, padding)
        out = sample(feat.to(compute).reshape(n, c, h * w), taps)
        ctx.save_for_backward(feat, flow)
        ctx.padding = padding
        return out.reshape(n, c, h, w).to(feat.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        feat, flow = ctx.saved_tensors
        n, c, h, w = feat.shape
        compute = compute_dtype(feat.dtype)
        g = grad_out.to(compute).reshape(n, c, h * w)
        taps = _taps(flow.to(compute), h, w, ctx.padding)
        grad_feat = grad_flow = None
        if ctx.needs_input_grad[0]:
            grad_feat = scatter_to_plane(g, taps, h * w).reshape(n, c, h, w).to(feat.dtype)
        if ctx.needs_input_grad[1]:
            gx, gy = coordinate_grads(feat.to(compute).reshape(n, c, h * w), g, taps)
            grad_flow = torch.cat((gx, gy), 1).reshape(n, 2, h, w).to(flow.dtype)
        return grad_feat, grad_flow, None


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
        ``"border"`` and 0 with ``"zeros"``; non-finite features: see the module docstring.
        Differentiable in ``feat`` and ``flow`` (first order).
    """
    if padding not in ("border", "zeros"):
        raise ValueError(f"padding must be 'border' or 'zeros', got {padding!r}")
    return _BackwardWarp.apply(feat, flow, padding)


def multiscale_warp(feats, flows, padding: str = "border"):
    """Apply :func:`backward_warp` at every scale of a pyramid; returns a list of warped tensors."""
    if len(feats) != len(flows):
        raise ValueError(f"feats and flows must have the same length, got {len(feats)} and {len(flows)}")
    return [backward_warp(f, v, padding) for f, v in zip(feats, flows)]
