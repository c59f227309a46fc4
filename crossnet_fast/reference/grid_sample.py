"""Reference bilinear ``grid_sample`` (the definition of :func:`crossnet_fast.grid_sample`).

Same results and gradients as ``torch.nn.functional.grid_sample(input, grid, mode="bilinear",
padding_mode=padding, align_corners=align_corners)`` for 4-D input and finite grids, written out
(unnormalise, pad, bilinear taps) so that the tests can compare the two.

Coordinates, for an input of width W (rows the same with H):
  ``align_corners=True``:  x = (g + 1) / 2 * (W - 1)     (g = -1 and 1 are the corner pixels' centres)
  ``align_corners=False``: x = ((g + 1) * W - 1) / 2     (g = -1 and 1 are the corner pixels' outer edges)
Padding: ``zeros`` lets taps outside the image count as 0; ``border`` clamps x into [0, W-1];
``reflection`` reflects x about the image edges (the pixel centres with ``align_corners=True``, the
outer edges with ``False``; then clamps into [0, W-1]). The gradient of a clamped coordinate is 0,
and a coordinate exactly on the clamp bound counts as clamped (as in PyTorch).

Non-finite values. Grid: a NaN (or, except with ``border`` padding, +-inf) coordinate makes the
sample NaN in every channel and its grid gradient NaN; nothing of it reaches the input gradient.
``F.grid_sample`` on the CPU agrees with ``zeros`` padding and crashes on NaN with ``border`` or
``reflection``; +-inf with ``border`` clamps to the edge in both. Input: a tap is read only where its
coefficient is non-zero (see crossnet_fast/reference/multiscale_warp.py); ``F.grid_sample`` also
reads zero-weight neighbours of points exactly on a pixel row or column, so ``0 * inf`` is NaN there.
"""

from __future__ import annotations

import torch

from ._bilinear import compute_dtype, coordinate_grads, corner_taps, sample, scatter_to_plane

PADDINGS = ("zeros", "border", "reflection")


def _clip(x: torch.Tensor, size: int):
    """Clamp into [0, size-1]; the derivative is 0 on and beyond the bounds (PyTorch's rule)."""
    inside = (x > 0) & (x < size - 1)
    return x.clamp(0, size - 1), inside.to(x.dtype)


def _reflect(x: torch.Tensor, low: float, span: float):
    """Reflect x about ``low`` and ``low + span`` until it lies between them; returns (x, dx'/dx = +-1)."""
    if span <= 0:
        return torch.zeros_like(x), torch.zeros_like(x)
    d = x - low
    sign = torch.where(d < 0, -torch.ones_like(x), torch.ones_like(x))
    d = d.abs()
    flips = torch.floor(d / span)
    extra = torch.fmod(d, span)
    odd = torch.fmod(flips, 2) == 1
    reflected = torch.where(odd, span - extra + low, extra + low)
    return reflected, torch.where(odd, -sign, sign)


def source_coordinate(g: torch.Tensor, size: int, padding: str, align_corners: bool):
    """Normalised grid coordinate -> (pixel coordinate, d pixel / d g), both shaped like ``g``."""
    if align_corners:
        x = (g + 1) / 2 * (size - 1)
        factor = torch.full_like(x, (size - 1) / 2)
    else:
        x = ((g + 1) * size - 1) / 2
        factor = torch.full_like(x, size / 2)
    if padding == "border":
        x, inside = _clip(x, size)
        factor = factor * inside
    elif padding == "reflection":
        low, span = (0.0, size - 1) if align_corners else (-0.5, size)
        x, sign = _reflect(x, low, span)
        x, inside = _clip(x, size)  # a point reflected onto an edge counts as clamped
        factor = factor * sign * inside
    elif padding != "zeros":
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return x, factor


def _grid_taps(grid: torch.Tensor, h: int, w: int, padding: str, align_corners: bool):
    """grid (N, Ho, Wo, 2) in the compute dtype -> (taps over P = Ho*Wo, fx, fy, undefined (N, P))."""
    n, ho, wo = grid.shape[:3]
    g = grid.reshape(n, ho * wo, 2)
    x, fx = source_coordinate(g[..., 0], w, padding, align_corners)
    y, fy = source_coordinate(g[..., 1], h, padding, align_corners)
    defined = torch.isfinite(x) & torch.isfinite(y)
    one = torch.ones_like(x)
    return corner_taps(x, y, one, one, h, w, defined), fx, fy, ~defined


class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inp, grid, padding, align_corners):
        n, c, h, w = inp.shape
        ho, wo = grid.shape[1], grid.shape[2]
        compute = compute_dtype(inp.dtype)
        taps, _, _, undefined = _grid_taps(grid.to(compute), h, w, padding, align_corners)
        out = sample(inp.to(compute).reshape(n, c, h * w), taps)
        out = out.masked_fill(undefined.view(n, 1, ho * wo), float("nan"))
        ctx.save_for_backward(inp, grid)
        ctx.padding, ctx.align_corners = padding, align_corners
        return out.reshape(n, c, ho, wo).to(inp.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        inp, grid = ctx.saved_tensors
        n, c, h, w = inp.shape
        compute = compute_dtype(inp.dtype)
        g = grad_out.to(compute).reshape(n, c, grid.shape[1] * grid.shape[2])
        taps, fx, fy, undefined = _grid_taps(grid.to(compute), h, w, ctx.padding, ctx.align_corners)
        grad_inp = grad_grid = None
        if ctx.needs_input_grad[0]:
            grad_inp = scatter_to_plane(g, taps, h * w).reshape(n, c, h, w).to(inp.dtype)
        if ctx.needs_input_grad[1]:
            gx, gy = coordinate_grads(inp.to(compute).reshape(n, c, h * w), g, taps)
            # Chain rule through unnormalisation and padding; a clamped coordinate has factor 0,
            # which must not turn an inf in the dot product into NaN.
            gx = torch.where(fx.unsqueeze(1) != 0, gx * fx.unsqueeze(1), torch.zeros_like(gx))
            gy = torch.where(fy.unsqueeze(1) != 0, gy * fy.unsqueeze(1), torch.zeros_like(gy))
            grad_grid = torch.stack((gx[:, 0], gy[:, 0]), -1)
            grad_grid = grad_grid.masked_fill(undefined.unsqueeze(-1), float("nan"))
            grad_grid = grad_grid.reshape(grid.shape).to(grid.dtype)
        return grad_inp, grad_grid, None, None


def grid_sample(
    input: torch.Tensor, grid: torch.Tensor, padding_mode: str = "zeros", align_corners: bool = False
) -> torch.Tensor:
    """Bilinear sampling of ``input`` at normalised grid points.

    Args:
        input: (N, C, H, W) float tensor, any layout.
        grid: (N, Ho, Wo, 2) float tensor: normalised (x, y) sample points, (-1, -1) the top-left
            and (1, 1) the bottom-right of the image (corner centres or outer edges, per
            ``align_corners``). May differ in float dtype from ``input``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: PyTorch's convention (see the module docstring).

    Returns:
        (N, C, Ho, Wo) tensor of ``input.dtype``, computed in fp32 (fp64 for fp64 input);
        differentiable in ``input`` and ``grid`` (first order).
    """
    if padding_mode not in PADDINGS:
        raise ValueError(f"padding_mode must be one of {PADDINGS}, got {padding_mode!r}")
    return _GridSample.apply(input, grid, padding_mode, bool(align_corners))
