"""Triton ``grid_sample`` (bilinear, 4-D): the launchers of :mod:`._grid_sample_kernels`.

Work split: one program owns BLOCK_P output points (flattened over N * Ho * Wo) and loops over the
channels in chunks of BLOCK_C. Input, grid and incoming gradient are read with their own strides
(any layout, grid in any float dtype); the output is contiguous (N, C, Ho, Wo) in the input's dtype.

Backward: the grid gradient is reduced over channels inside the program (one owner per point, no
atomics) and stored in the grid's dtype. The input gradient is scattered with ``tl.atomic_add``
into a zeroed contiguous fp32 (fp64 for fp64) buffer and cast once: the summation order depends on
the schedule, so, as for the Triton warp, it raises under ``torch.use_deterministic_algorithms(True)``
(warns with ``warn_only``); the CUDA and CPU backends have deterministic input gradients.

Launch configuration: fixed (no timing, hence nothing to synchronise or to re-tune per shape):
one point per thread with 8 channels per chunk (2 for fp64, whose registers are twice as wide).
"""

from __future__ import annotations

import torch
import triton

from . import _common
from ._grid_sample_kernels import _grid_sample_bwd_kernel, _grid_sample_fwd_kernel
from ._rounding import LAUNCH_OPTIONS
from .multiscale_warp import _alert_not_deterministic

PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}
# (BLOCK_P, BLOCK_C, num_warps) compiled; the interpreter runs programs one by one: few, wide ones.
CONFIG = (128, 8, 4)
CONFIG_FP64 = (128, 2, 4)
INTERP_CONFIG = (64, 16, 1)


def config(dtype: torch.dtype, channels: int) -> dict:
    """The launch configuration for an input of ``dtype`` with ``channels`` channels."""
    if _common.interpreting():
        bp, bc, nw = INTERP_CONFIG
    else:
        bp, bc, nw = CONFIG_FP64 if dtype == torch.float64 else CONFIG
    return dict(BLOCK_P=bp, BLOCK_C=min(bc, _common.next_pow2(max(channels, 1))), num_warps=nw)


def _pad_code(padding: str) -> int:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {tuple(PADDINGS)}, got {padding!r}")
    return PADDINGS[padding]


def _check(op: str, input: torch.Tensor, grid: torch.Tensor) -> None:
    if input.dim() != 4 or grid.dim() != 4 or grid.shape[3] != 2 or grid.shape[0] != input.shape[0]:
        raise ValueError(
            f"{op}: expected input (N, C, H, W) and grid (N, Ho, Wo, 2), got "
            f"{tuple(input.shape)} and {tuple(grid.shape)}"
        )
    if input.shape[2] == 0 or input.shape[3] == 0:
        raise ValueError(f"{op}: input must have non-empty spatial dimensions, got {tuple(input.shape)}")
    _common.check_device(op, input, grid)


def grid_sample(input: torch.Tensor, grid: torch.Tensor, padding: str, align_corners: bool) -> torch.Tensor:
    """Triton implementation of ``crossnet_fast_triton::grid_sample``.

    Args:
        input: (N, C, H, W) fp16/bf16/fp32/fp64, any strides.
        grid: (N, Ho, Wo, 2) any float dtype, any strides: normalised (x, y) sample points.
        padding: "zeros", "border" or "reflection".
        align_corners: F.grid_sample's convention.

    Returns:
        (N, C, Ho, Wo) contiguous tensor of ``input.dtype`` (computed in fp32, fp64 for fp64 input).
    """
    _check("grid_sample", input, grid)
    pad = _pad_code(padding)
    n, c, h, w = input.shape
    ho, wo = grid.shape[1], grid.shape[2]
    out = input.new_empty((n, c, ho, wo))
    points = n * ho * wo
    if out.numel() == 0:
        return out
    cfg = config(input.dtype, c)
    _grid_sample_fwd_kernel[(triton.cdiv(points, cfg["BLOCK_P"]),)](
        input,
        grid,
        out,
        points,
        c,
        h,
        w,
        ho * wo,
        wo,
        *input.stride(),
        *grid.stride(),
        PAD=pad,
        ALIGN_CORNERS=bool(align_corners),
        ACC=_common.acc_dtype(input.dtype),
        **cfg,
        **LAUNCH_OPTIONS,
    )
    return out


def grid_sample_backward(
    grad_out: torch.Tensor, input: torch.Tensor, grid: torch.Tensor, padding: str, align_corners: bool, output_mask
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton implementation of ``crossnet_fast_triton::grid_sample_backward``.

    Args:
        grad_out: (N, C, Ho, Wo) float, any strides: d(loss)/d(output); converted to input's
            dtype first when it differs (as every backend does).
        input, grid, padding, align_corners: as in :func:`grid_sample`.
        output_mask: [need grad_input, need grad_grid].

    Returns:
        (grad_input, grad_grid): ``empty_like(input)`` in input's dtype (accumulated in fp32, fp64
        for fp64, with atomics) and ``empty_like(grid)`` in grid's dtype; a gradient that was not
        asked for is an empty (0,) tensor.
    """
    _check("grid_sample_backward", input, grid)
    _common.check_device("grid_sample_backward", grad_out)
    pad = _pad_code(padding)
    need_input, need_grid = bool(output_mask[0]), bool(output_mask[1])
    n, c, h, w = input.shape
    ho, wo = grid.shape[1], grid.shape[2]
    if tuple(grad_out.shape) != (n, c, ho, wo):
        raise ValueError(f"grid_sample_backward: grad_out must be {(n, c, ho, wo)}, got {tuple(grad_out.shape)}")
    # grad_out in the input's dtype first, as the CPU and CUDA backends (and autograd, which hands
    # every backward a gradient of its output's dtype) do: one answer for a mismatched call too.
    if grad_out.dtype != input.dtype:
        grad_out = grad_out.to(input.dtype)
    acc_t = _common.acc_torch_dtype(input.dtype)
    if need_input:
        _alert_not_deterministic("crossnet_fast_triton::grid_sample_backward")
        gbuf = torch.zeros((n, c, h, w), dtype=acc_t, device=input.device)
    ggrid = torch.empty_like(grid) if need_grid else grid.new_empty((0,))
    points = n * ho * wo
    if points > 0 and (need_input or need_grid):
        cfg = config(input.dtype, c)
        # Placeholders for an absent role: never dereferenced (NEED_* is False).
        gin_arg = gbuf if need_input else torch.empty(1, dtype=acc_t, device=input.device)
        ggrid_arg = ggrid if need_grid else grid
        r_strides = ggrid.stride() if need_grid else (0, 0, 0, 0)
        _grid_sample_bwd_kernel[(triton.cdiv(points, cfg["BLOCK_P"]),)](
            grad_out,
            input,
            grid,
            gin_arg,
            ggrid_arg,
            points,
            c,
            h,
            w,
            ho * wo,
            wo,
            *input.stride(),
            *grad_out.stride(),
            *grid.stride(),
            *r_strides,
            PAD=pad,
            ALIGN_CORNERS=bool(align_corners),
            ACC=_common.acc_dtype(input.dtype),
            NEED_INPUT=need_input,
            NEED_GRID=need_grid,
            **cfg,
            **LAUNCH_OPTIONS,
        )
    if need_input:
        grad_input = (
            gbuf
            if gbuf.dtype == input.dtype and gbuf.stride() == input.stride()
            else torch.empty_like(input).copy_(gbuf)
        )
    else:
        grad_input = input.new_empty((0,))
    return grad_input, ggrid
