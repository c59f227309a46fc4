"""Reference flow resizing to any size, with x and y values scaled by their own axis ratio."""

from __future__ import annotations

import torch

from ._bilinear import compute_dtype
from ._bilinear import weighted as _weighted


def _axis(size_in: int, size_out: int, align_corners: bool, dtype: torch.dtype, device):
    """Taps of one axis: (i0, i1, frac), each (size_out,), as ``F.interpolate(size=...)`` places them.

    Source coordinate of output index d: ``d * (size_in - 1) / (size_out - 1)`` with align_corners
    (0 for a single output), ``(d + 0.5) * size_in / size_out - 0.5`` clamped at 0 without; the step is
    rounded to ``dtype`` first, as PyTorch's kernels do.
    """
    d = torch.arange(size_out, device=device, dtype=dtype)
    if align_corners:
        step = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        src = d * torch.tensor(step, dtype=dtype, device=device)
    else:
        step = torch.tensor(size_in / size_out, dtype=dtype, device=device)
        src = (step * (d + 0.5) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=size_in - 1)
    i1 = (i0 + 1).clamp(max=size_in - 1)
    return i0, i1, src - i0.to(dtype)


def resize_flow(flow: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Bilinearly resize a pixel-unit flow field to ``size`` and rescale its values.

    Written out with index arithmetic instead of calling ``F.interpolate``, so that the tests can
    compare the two. Non-finite values reach only the outputs that weight them (see
    crossnet_fast/reference/multiscale_warp.py).

    Args:
        flow: (N, C, H, W) float tensor, H, W > 0; displacement in pixels of the input grid,
            channel 0 = x, channel 1 = y.
        size: (h, w) of the output, positive integers.
        align_corners: ``F.interpolate``'s convention.

    Returns:
        (N, C, h, w) tensor of ``flow.dtype``: channel 1 times ``h / H``, every other channel times
        ``w / W`` (so a flow is in pixels of the output grid), computed in fp32 (fp64 for fp64).
    """
    n, ch, h_in, w_in = flow.shape
    h, w = size
    compute = compute_dtype(flow.dtype)
    f = flow.to(compute)
    y0, y1, fy = _axis(h_in, h, align_corners, compute, flow.device)
    x0, x1, fx = _axis(w_in, w, align_corners, compute, flow.device)
    rows = _weighted((1 - fy).view(-1, 1), f[:, :, y0]) + _weighted(fy.view(-1, 1), f[:, :, y1])
    out = _weighted(1 - fx, rows[:, :, :, x0]) + _weighted(fx, rows[:, :, :, x1])
    factor = torch.full((ch,), w / w_in, dtype=compute, device=flow.device)
    if ch > 1:
        factor[1] = h / h_in
    return (out * factor.view(1, ch, 1, 1)).to(flow.dtype)
