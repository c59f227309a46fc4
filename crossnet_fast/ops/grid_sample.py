"""Public op ``grid_sample``: a drop-in for ``torch.nn.functional.grid_sample`` (4-D, bilinear)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import reference
from . import _validation
from ._dispatch import native_or_triton_ops, pick


def grid_sample(
    input: torch.Tensor,
    grid: torch.Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool | None = None,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """Sample ``input`` at normalised ``grid`` points: ``F.grid_sample``'s results and gradients.

    Same signature and semantics as ``torch.nn.functional.grid_sample``; the bilinear 4-D case runs
    on this library's kernels (CPU, CUDA, Triton, or the reference), with fp32 accumulation for
    fp16/bf16 and no zero-weight reads (an inf in ``input`` does not leak NaN into neighbouring
    samples). The backward is deterministic on the CPU (each input pixel's gradient is summed in a
    fixed order, whatever the thread count) and on CUDA under
    ``torch.use_deterministic_algorithms(True)`` (sorted, no atomics); the Triton backward uses
    atomics and raises under deterministic mode.
    ``mode="nearest"``/``"bicubic"`` and 5-D inputs are passed to ``F.grid_sample`` unchanged.

    Args:
        input: (N, C, H, W) float16/bfloat16/float32/float64 tensor, any layout (or 5-D: delegated).
        grid: (N, Ho, Wo, 2) float tensor of normalised (x, y) sample points in [-1, 1] (points
            outside are padded); any float dtype (it need not match ``input``'s).
        mode: ``"bilinear"`` (this library) or ``"nearest"``/``"bicubic"`` (delegated to PyTorch).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: ``True``: -1 and 1 are the centres of the corner pixels; ``False`` (the
            default, like PyTorch's, which warns when it is left as None): their outer edges.
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        (N, C, Ho, Wo) tensor of ``input.dtype``, differentiable in ``input`` and ``grid``. A NaN
        grid point (or +-inf, except with ``"border"`` padding) gives NaN in every channel and a
        NaN grid gradient (``F.grid_sample`` agrees for ``"zeros"`` and crashes for the others).
    """
    op = "grid_sample"
    if align_corners is None:
        align_corners = False
    if mode != "bilinear" or (isinstance(input, torch.Tensor) and input.dim() == 5):
        if mode not in ("bilinear", "nearest", "bicubic"):
            raise ValueError(f"{op}: mode must be 'bilinear', 'nearest' or 'bicubic', got {mode!r}")
        # Documented fallback: PyTorch's own kernel (it checks its own arguments).
        return F.grid_sample(input, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    _validation.check_grid_sample(op, input, grid, padding_mode, align_corners)
    chosen = pick(op, input.device, backend)
    if chosen == "reference":
        return reference.grid_sample(input, grid, padding_mode, align_corners)
    return native_or_triton_ops(chosen).grid_sample(input, grid, padding_mode, align_corners)
