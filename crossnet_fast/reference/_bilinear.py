"""Bilinear taps, gather and scatter in plain PyTorch: the sampling math of the reference ops.

Shared by the reference warp (sample points = pixel + flow) and the reference ``grid_sample``
(sample points from a normalised grid); the native kernels share ``csrc/bilinear.h`` the same way.
Sample points are in pixels of the sampled plane, pixel centres at integers. Every tensor here is in
the compute dtype (fp32, or fp64 for fp64 inputs); ``P`` is the number of sample points per image.
"""

from __future__ import annotations

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are sampled in fp32, as every native backend does (fp32 accumulation)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def corner_taps(x, y, grad_x, grad_y, h: int, w: int, valid, nan_point=None):
    """The four bilinear taps of every sample point.

    Args:
        x, y: (N, P) sample coordinates in pixels (columns, rows); may be non-finite where
            ``valid`` is False.
        grad_x, grad_y: (N, P) d x / d (the caller's coordinate), d y / d (...): 1 for a free
            coordinate, 0 for a clamped one.
        h, w: size of the sampled plane.
        valid: (N, P) bool; False makes every tap of that point 0 (it reads nothing).
        nan_point: optional (N, P) bool; True gives the point NaN weights on its in-image taps
            (the warp's "NaN in, NaN out" rule with border padding).

    Returns:
        list of four ``(index, weight, d_x, d_y)`` in the order (x0,y0), (x1,y0), (x0,y1), (x1,y1):
        index (N, P) long into the (h*w) plane (clamped into it; where a tap is outside the image
        its weight and derivatives are 0), weight and d weight / d x, d weight / d y (N, P).
    """
    safe = valid & torch.isfinite(x) & torch.isfinite(y)
    # Integer corners from a sanitised copy, so that NaN/inf never become indices.
    x0 = torch.floor(torch.where(safe, x, torch.zeros_like(x))).clamp(-2, w + 1)
    y0 = torch.floor(torch.where(safe, y, torch.zeros_like(y))).clamp(-2, h + 1)
    ax, ay = x - x0, y - y0
    taps = []
    for dy, wy, dwy in ((0, 1 - ay, -grad_y), (1, ay, grad_y)):
        for dx, wx, dwx in ((0, 1 - ax, -grad_x), (1, ax, grad_x)):
            xi, yi = x0 + dx, y0 + dy
            keep = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1) & valid
            weight, d_x, d_y = wx * wy, dwx * wy, wx * dwy
            if nan_point is not None:
                nan = torch.full_like(weight, float("nan"))
                weight, d_x, d_y = (torch.where(nan_point, nan, v) for v in (weight, d_x, d_y))
            zero = torch.zeros_like(weight)
            weight, d_x, d_y = (torch.where(keep, v, zero) for v in (weight, d_x, d_y))
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()
            taps.append((index, weight, d_x, d_y))
    return taps


def gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """flat (N, C, HW), index (N, P) -> (N, C, P): ``flat[n, c, index[n, p]]``."""
    n, c, _ = flat.shape
    p = index.shape[1]
    return torch.gather(flat, 2, index.view(n, 1, p).expand(n, c, p))


def weighted(coef: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """coef * values (broadcast, e.g. (N, 1, P) by (N, C, P)), but exactly 0 where coef is 0:
    the tap is not used, so an inf or NaN there does not become NaN."""
    return torch.where(coef != 0, coef * values, torch.zeros_like(values))


def sample(flat: torch.Tensor, taps) -> torch.Tensor:
    """Bilinear samples: flat (N, C, HW) -> (N, C, P), sum of weighted taps."""
    n, c, _ = flat.shape
    p = taps[0][0].shape[1]
    out = torch.zeros(n, c, p, dtype=flat.dtype, device=flat.device)
    for index, weight, _, _ in taps:
        out = out + weighted(weight.view(n, 1, p), gather(flat, index))
    return out


def scatter_to_plane(grad: torch.Tensor, taps, hw: int) -> torch.Tensor:
    """Adjoint of :func:`sample` for the sampled values: grad (N, C, P) -> (N, C, HW)."""
    n, c, p = grad.shape
    acc = torch.zeros(n, c, hw, dtype=grad.dtype, device=grad.device)
    for index, weight, _, _ in taps:
        acc.scatter_add_(2, index.view(n, 1, p).expand(n, c, p), weighted(weight.view(n, 1, p), grad))
    return acc


def coordinate_grads(flat: torch.Tensor, grad: torch.Tensor, taps):
    """d loss / d (x, y) of every sample point: grad (N, C, P) -> two (N, 1, P) tensors.

    A tap is read where either weight derivative is non-zero (so 0 * inf never makes NaN).
    """
    n, _, p = grad.shape
    gx = torch.zeros(n, 1, p, dtype=grad.dtype, device=grad.device)
    gy = torch.zeros_like(gx)
    for index, _, d_x, d_y in taps:
        reads = ((d_x != 0) | (d_y != 0)).view(n, 1, p)
        dot = torch.where(reads, grad * gather(flat, index), torch.zeros_like(grad)).sum(1, keepdim=True)
        gx = gx + weighted(d_x.view(n, 1, p), dot)
        gy = gy + weighted(d_y.view(n, 1, p), dot)
    return gx, gy
