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


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs are sampled in fp32, as every native backend does (fp32 accumulation).
    return torch.float64 if dtype == torch.float64 else torch.float32


def _taps(flow: torch.Tensor, h: int, w: int, padding: str):
    """The four bilinear taps of every sample point.

    flow (N, 2, H, W) in the compute dtype. Returns a list of four (index, weight, d weight/dx,
    d weight/dy): index (N, H*W) long into an (H*W) plane (clamped into it; where the tap is
    outside the image its weight and derivatives are 0), the others (N, H, W) compute dtype.
    """
    n = flow.shape[0]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    one = torch.ones_like(x)
    nan_point = torch.isnan(x) | torch.isnan(y)
    if padding == "border":
        # The derivative of a clamped coordinate is 0 (inclusive bounds, like torch.clamp).
        grad_x = torch.where((x >= 0) & (x <= w - 1), one, torch.zeros_like(x))
        grad_y = torch.where((y >= 0) & (y <= h - 1), one, torch.zeros_like(y))
        x = x.clamp(0, w - 1)  # clamp keeps NaN as NaN; +-inf lands on the border
        y = y.clamp(0, h - 1)
    elif padding == "zeros":
        grad_x, grad_y = one, one
    else:
        raise ValueError(f"padding must be 'border' or 'zeros', got {padding!r}")
    finite = torch.isfinite(x) & torch.isfinite(y)
    # Integer corners from a sanitised copy, so that NaN/inf never become indices.
    x0 = torch.floor(torch.where(finite, x, torch.zeros_like(x))).clamp(-2, w + 1)
    y0 = torch.floor(torch.where(finite, y, torch.zeros_like(y))).clamp(-2, h + 1)
    ax, ay = x - x0, y - y0
    taps = []
    for dy, wy, dwy in ((0, 1 - ay, -grad_y), (1, ay, grad_y)):
        for dx, wx, dwx in ((0, 1 - ax, -grad_x), (1, ax, grad_x)):
            xi, yi = x0 + dx, y0 + dy
            keep = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            if padding == "zeros":
                keep = keep & finite  # a non-finite point samples nothing: 0, gradient 0
            weight, d_x, d_y = wx * wy, dwx * wy, wx * dwy
            if padding == "border":
                # NaN in, NaN out: the NaN point's taps around pixel (0, 0) get NaN weights.
                nan = torch.full_like(weight, float("nan"))
                weight, d_x, d_y = (torch.where(nan_point, nan, v) for v in (weight, d_x, d_y))
            zero = torch.zeros_like(weight)
            weight, d_x, d_y = (torch.where(keep, v, zero) for v in (weight, d_x, d_y))
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().reshape(n, h * w)
            taps.append((index, weight, d_x, d_y))
    return taps


def _gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """flat (N, C, H*W), index (N, H*W) -> (N, C, H*W)."""
    n, c, hw = flat.shape
    return torch.gather(flat, 2, index.view(n, 1, hw).expand(n, c, hw))


def _weighted(coef: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """coef * values (broadcast, e.g. (N, 1, H*W) by (N, C, H*W)), but exactly 0 where coef is 0:
    the tap is not used, so an inf or NaN there does not become NaN. Also used by upsample_flow."""
    return torch.where(coef != 0, coef * values, torch.zeros_like(values))


class _BackwardWarp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feat, flow, padding):
        n, c, h, w = feat.shape
        compute = _compute_dtype(feat.dtype)
        flat = feat.to(compute).reshape(n, c, h * w)
        taps = _taps(flow.to(compute), h, w, padding)
        out = torch.zeros(n, c, h * w, dtype=compute, device=feat.device)
        for index, weight, _, _ in taps:
            out = out + _weighted(weight.reshape(n, 1, h * w), _gather(flat, index))
        ctx.save_for_backward(feat, flow)
        ctx.padding = padding
        return out.reshape(n, c, h, w).to(feat.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        feat, flow = ctx.saved_tensors
        n, c, h, w = feat.shape
        compute = _compute_dtype(feat.dtype)
        flat = feat.to(compute).reshape(n, c, h * w)
        g = grad_out.to(compute).reshape(n, c, h * w)
        taps = _taps(flow.to(compute), h, w, ctx.padding)
        grad_feat = grad_flow = None
        if ctx.needs_input_grad[0]:
            acc = torch.zeros(n, c, h * w, dtype=compute, device=feat.device)
            for index, weight, _, _ in taps:
                contrib = _weighted(weight.reshape(n, 1, h * w), g)
                acc.scatter_add_(2, index.view(n, 1, h * w).expand(n, c, h * w), contrib)
            grad_feat = acc.reshape(n, c, h, w).to(feat.dtype)
        if ctx.needs_input_grad[1]:
            gx = torch.zeros(n, 1, h * w, dtype=compute, device=feat.device)
            gy = torch.zeros_like(gx)
            for index, _, d_x, d_y in taps:
                # grad_out . tap per pixel, where either derivative reads the tap.
                reads = ((d_x != 0) | (d_y != 0)).reshape(n, 1, h * w)
                dot = torch.where(reads, g * _gather(flat, index), torch.zeros_like(g)).sum(1, keepdim=True)
                gx = gx + _weighted(d_x.reshape(n, 1, h * w), dot)
                gy = gy + _weighted(d_y.reshape(n, 1, h * w), dot)
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
