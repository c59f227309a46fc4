"""Public op ``correlation``: the cost volume of two feature maps over a window of displacements."""

from __future__ import annotations

import torch

from .. import reference
from . import _validation
from ._dispatch import native_or_triton_ops, pick


def correlation(
    f1: torch.Tensor,
    f2: torch.Tensor,
    max_displacement: int,
    *,
    dilation: int = 1,
    stride: int = 1,
    backend: str = "auto",
) -> torch.Tensor:
    """Cost volume of ``f1`` against ``f2`` displaced by every offset of a (2D+1) x (2D+1) window.

    ``out[n, (dy+D)*(2D+1) + (dx+D), i, j] = (1/C) sum_c f1[n, c, y, x] * f2[n, c, y + dy*dilation, x + dx*dilation]``
    with ``y = i*stride``, ``x = j*stride``, ``dy, dx`` in ``[-D, D]``, ``D = max_displacement``. A
    term whose displaced point lies outside f2's H x W is zero: it is skipped, never computed as a
    product with 0, so an inf/NaN in one input reaches only the outputs (and gradients) that read
    it. This is PWC-Net's and FlowNetC's correlation (kernel size 1, divided by C), and
    ``spatial_correlation_sampler``'s with ``patch_size = 2D+1``, ``dilation_patch = dilation``,
    divided by C (``crossnet_fast.compat`` has the drop-in adapter).

    Args:
        f1: (N, C, H, W) float16, bfloat16, float32 or float64 features of the first image, any
            strides (channels_last and non-contiguous views are accepted).
        f2: (N, C, H, W) features of the second image: the shape, dtype and device of ``f1``.
        max_displacement: D, an int >= 0: the window reaches D*dilation pixels of f2 each way.
        dilation: int >= 1, pixel step between neighbouring displacements.
        stride: int >= 1, pixel step between output points in f1 (f1 is read at ``i*stride, j*stride``).
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        (N, (2D+1)^2, ceil(H/stride), ceil(W/stride)) contiguous tensor of the inputs' dtype, in the
        units of f1 times f2 (a channel mean of products). Accumulated in fp32 (fp64 for fp64
        inputs) and rounded once; zeros when C == 0. Differentiable w.r.t. both inputs; the
        gradients have the inputs' dtype and layout.

    Determinism: every backend computes both gradients as gathers (each gradient element sums its
    terms in a fixed order, no atomics), so the backward is deterministic on every backend; the CPU
    kernel's results are also bit-identical for any thread count. The reference backend is
    autograd of PyTorch ops (pad, slice, multiply, sum), deterministic as those are.
    """
    op = "correlation"
    _validation.check_correlation(op, f1, f2, max_displacement, dilation, stride)
    chosen = pick(op, f1.device, backend)
    if chosen == "reference":
        return reference.correlation(f1, f2, max_displacement, dilation, stride)
    return native_or_triton_ops(chosen).correlation(f1, f2, max_displacement, dilation, stride)
