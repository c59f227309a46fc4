"""Triton flow resizing to any size: bilinear with either ``align_corners``, x and y scaled by their
own ratio (``crossnet_fast_triton::resize_flow`` and its backward).

Forward: one program per BLOCK output pixels of one (n, channel) plane (programs numbered along grid
axis 0 only, plane-major, as in ``upsample_flow.py``); each output reads its 4 source taps. The taps
follow ``csrc/upsample.h`` (``ResizeAxis``): source coordinate ``step * d`` with align_corners,
``step * (d + 0.5) - 0.5`` clamped at 0 without, ``step`` computed in the accumulation dtype from the
sizes. Backward: a gather, not a scatter. Input index ``i`` is read only by outputs whose source
coordinate lies in ``[i - 1, i + 1]``, a run of consecutive outputs starting at ``first(i)`` (one
sample of margin for rounding); every input gathers a window of ``FOOT_Y x FOOT_X`` candidates from
there (the longest run over the axis, computed on the host) with the forward's weights recomputed,
0 for candidates that do not read it. No atomics: deterministic.
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl

from . import _common
from ._rounding import LAUNCH_OPTIONS, div
from ._warp_kernels import _weighted


@triton.jit
def _step(size_in, size_out, ALIGN: tl.constexpr, ACC: tl.constexpr):
    """Input samples per output sample (F.interpolate's scale for an output size)."""
    # tl.cast, not .to(): Triton compiles an integer argument equal to 1 as a constexpr.
    if ALIGN:
        return tl.where(size_out > 1, div(size_in - 1, tl.maximum(size_out - 1, 1), ACC), 0.0)
    else:
        return div(size_in, size_out, ACC)


@triton.jit
def _src(d, step, size_in, ALIGN: tl.constexpr, ACC: tl.constexpr):
    """Source index pair and weight of the second of output coordinate ``d`` along one axis."""
    if ALIGN:
        src = step * d.to(ACC)
    else:
        src = tl.maximum(step * (d.to(ACC) + 0.5) - 0.5, 0.0)
    i0 = tl.minimum(tl.floor(src).to(tl.int64), size_in - 1)
    i1 = tl.minimum(i0 + 1, size_in - 1)
    return i0, i1, src - i0.to(ACC)


@triton.jit
def _factor(c, H, W, HO, WO, ACC: tl.constexpr):
    """Channel 1 (a flow's y) is scaled by HO / H, every other channel by WO / W."""
    return tl.where(c == 1, div(HO, H, ACC), div(WO, W, ACC))


@triton.jit
def bilinear_taps(base, y0, y1, fy, x0, x1, fx, s_h, s_w, mask, ACC: tl.constexpr, ROWS_FIRST: tl.constexpr):
    """The bilinear sum of the 4 taps (rows y0/y1, columns x0/x1, weights of the second ones fy/fx)
    of a plane at ``base`` with strides ``s_h``/``s_w``, in ACC. A tap of weight 0 is not used (an
    inf there must not become NaN). ROWS_FIRST blends along y first (the reference upsample's
    order), else along x first (the CPU and CUDA kernels' order)."""
    v00 = tl.load(base + y0 * s_h + x0 * s_w, mask=mask, other=0.0).to(ACC)
    v01 = tl.load(base + y0 * s_h + x1 * s_w, mask=mask, other=0.0).to(ACC)
    v10 = tl.load(base + y1 * s_h + x0 * s_w, mask=mask, other=0.0).to(ACC)
    v11 = tl.load(base + y1 * s_h + x1 * s_w, mask=mask, other=0.0).to(ACC)
    if ROWS_FIRST:
        left = _weighted(1 - fy, v00) + _weighted(fy, v10)
        right = _weighted(1 - fy, v01) + _weighted(fy, v11)
        return _weighted(1 - fx, left) + _weighted(fx, right)
    else:
        top = _weighted(1 - fx, v00) + _weighted(fx, v01)
        bot = _weighted(1 - fx, v10) + _weighted(fx, v11)
        return _weighted(1 - fy, top) + _weighted(fy, bot)


@triton.jit
def _resize_fwd_kernel(
    in_ptr,
    out_ptr,
    C,
    H,
    W,
    HO,
    WO,
    s_n,
    s_c,
    s_h,
    s_w,
    tiles,
    ALIGN: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    plane = pid // tiles  # n * C + c
    n = plane // C
    c = plane - n * C
    q = (pid - plane * tiles) * BLOCK + tl.arange(0, BLOCK)
    mask = q < tl.cast(HO, tl.int64) * WO
    oy = q // WO
    ox = q - oy * WO
    y0, y1, fy = _src(oy, _step(H, HO, ALIGN, ACC), H, ALIGN, ACC)
    x0, x1, fx = _src(ox, _step(W, WO, ALIGN, ACC), W, ALIGN, ACC)
    val = bilinear_taps(in_ptr + n * s_n + c * s_c, y0, y1, fy, x0, x1, fx, s_h, s_w, mask, ACC, ROWS_FIRST=False)
    val = val * _factor(c, H, W, HO, WO, ACC)
    out = out_ptr + plane * tl.cast(HO, tl.int64) * WO
    tl.store(out + q, val.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _first(i, step, ALIGN: tl.constexpr, ACC: tl.constexpr):
    """First output index that may read input index ``i`` (see the module docstring)."""
    if ALIGN:
        shift = 0.0
    else:
        shift = 0.5
    safe = tl.where(step > 0, step, 1.0)
    lo = tl.floor(div((i - 1).to(ACC) + shift, safe, ACC) - shift).to(tl.int64) - 1
    # Outputs of clamped coordinate 0 read indices 0 and 1; a single output (step 0) reads 0 and 1.
    lo = tl.where(i <= 1, 0, tl.maximum(lo, 0))
    return tl.where(step > 0, lo, 0)


@triton.jit
def _axis_weight(i, d, step, size_in, ALIGN: tl.constexpr, ACC: tl.constexpr):
    """Weight with which output coordinate ``d`` reads source index ``i`` (0 when it does not)."""
    i0, i1, frac = _src(d, step, size_in, ALIGN, ACC)
    # Both taps can be the same index at the far edge (i0 = i1 = size-1): weights then add to 1.
    return tl.where(i0 == i, 1 - frac, 0.0) + tl.where(i1 == i, frac, 0.0)


@triton.jit
def _resize_bwd_kernel(
    gout_ptr,
    gin_ptr,
    C,
    H,
    W,
    HO,
    WO,
    g_n,
    g_c,
    g_h,
    g_w,
    tiles,
    FOOT_Y,
    FOOT_X,
    ALIGN: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    plane = pid // tiles
    n = plane // C
    c = plane - n * C
    q = (pid - plane * tiles) * BLOCK + tl.arange(0, BLOCK)
    mask = q < tl.cast(H, tl.int64) * W
    iy = q // W
    ix = q - iy * W
    step_y = _step(H, HO, ALIGN, ACC)
    step_x = _step(W, WO, ALIGN, ACC)
    y_lo = _first(iy, step_y, ALIGN, ACC)
    x_lo = _first(ix, step_x, ALIGN, ACC)
    base = gout_ptr + n * g_n + c * g_c
    acc = tl.zeros([BLOCK], dtype=ACC)
    for ky in range(0, FOOT_Y):
        dy = y_lo + ky
        wy = _axis_weight(iy, dy, step_y, H, ALIGN, ACC)
        row_ok = mask & (dy < HO) & (wy != 0)
        along_x = tl.zeros([BLOCK], dtype=ACC)
        for kx in range(0, FOOT_X):
            dx = x_lo + kx
            wx = _axis_weight(ix, dx, step_x, W, ALIGN, ACC)
            ok = row_ok & (dx < WO) & (wx != 0)
            g = tl.load(base + dy * g_h + dx * g_w, mask=ok, other=0.0).to(ACC)
            along_x += tl.where(ok, wx * g, 0.0)
        acc += tl.where(row_ok, wy * along_x, 0.0)
    out = gin_ptr + plane * tl.cast(H, tl.int64) * W
    tl.store(out + q, (acc * _factor(c, H, W, HO, WO, ACC)).to(gin_ptr.dtype.element_ty), mask=mask)


@functools.lru_cache(maxsize=256)
def footprint(size_in: int, size_out: int, align_corners: bool) -> int:
    """The longest run of candidate outputs any input index of an axis gathers (``FOOT``), with
    one extra for the rounding of the kernel's start (computed in fp32 there, fp64 here), and never
    more than ``size_out``: the kernel's start is >= 0 and every candidate < size_out, so
    ``size_out`` candidates cover them all (an input axis of size 1 gathers every output; the
    extra one would be masked work in every program)."""
    if align_corners:
        step, shift = ((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0), 0.0
    else:
        step, shift = size_in / size_out, 0.5
    if step <= 0:
        return size_out
    longest = 0
    # The run only depends on i through floor(); its length is largest at i <= 1 (start clamped to
    # 0) or for some i >= 2: every i is checked, the axes are short.
    for i in range(size_in):
        lo = 0 if i <= 1 else max(math.floor((i - 1 + shift) / step - shift) - 1, 0)
        hi = min(math.floor((i + 1 + shift) / step - shift) + 2, size_out)
        longest = max(longest, hi - lo)
    return min(max(longest, 0) + 1, size_out)


_BLOCKS = [(256, 4), (512, 4), (1024, 8), (128, 4)]  # (BLOCK, num_warps); first = untimed default
_INTERP_BLOCK = 256


def _configs():
    if _common.interpreting():
        return [dict(BLOCK=_INTERP_BLOCK, num_warps=1)]
    return [dict(BLOCK=b, num_warps=w) for b, w in _BLOCKS]


def _check_sizes(op: str, name: str, t: torch.Tensor, height: int, width: int) -> None:
    if t.dim() != 4 or t.shape[-2] == 0 or t.shape[-1] == 0:
        raise ValueError(f"{op}: {name} must be (N, C, H, W) with H, W > 0, got shape {tuple(t.shape)}")
    if height <= 0 or width <= 0:
        raise ValueError(f"{op}: height, width must be positive, got {height}, {width}")


def resize_flow(flow: torch.Tensor, height: int, width: int, align_corners: bool) -> torch.Tensor:
    """Triton implementation of ``crossnet_fast_triton::resize_flow``.

    Args:
        flow: (N, C, H, W) float tensor, H, W > 0, any strides; pixels of the input grid.
        height, width: output size, positive.
        align_corners: ``F.interpolate``'s convention.

    Returns:
        (N, C, height, width) contiguous tensor of ``flow.dtype``: channel 1 times height / H, every
        other channel times width / W (interpolated and scaled in fp32, fp64 for fp64).
    """
    _common.check_device("resize_flow", flow)
    _check_sizes("resize_flow", "flow", flow, height, width)
    n, c, h, w = flow.shape
    out = flow.new_empty((n, c, height, width))
    if out.numel() == 0:
        return out
    acc = _common.acc_dtype(flow.dtype)

    def launch(cfg):
        tiles = triton.cdiv(height * width, cfg["BLOCK"])
        _resize_fwd_kernel[(n * c * tiles,)](
            flow,
            out,
            c,
            h,
            w,
            height,
            width,
            *flow.stride(),
            tiles,
            ALIGN=align_corners,
            ACC=acc,
            BLOCK=cfg["BLOCK"],
            num_warps=cfg["num_warps"],
            **LAUNCH_OPTIONS,
        )

    key = ("resize_fwd", flow.device.index, flow.dtype, align_corners, _common.next_pow2(out.numel()))
    launch(_common.choose_config(key, _configs(), launch))
    return out


def resize_flow_backward(grad_out: torch.Tensor, height: int, width: int, align_corners: bool) -> torch.Tensor:
    """Triton implementation of ``crossnet_fast_triton::resize_flow_backward`` (a gather).

    Args:
        grad_out: (N, C, Ho, Wo) float tensor, any strides: d(loss)/d(resized flow).
        height, width: the forward's input size (H, W).
        align_corners: the forward's convention.

    Returns:
        (N, C, height, width) contiguous tensor of ``grad_out.dtype``: d(loss)/d(flow), summed in
        fp32 (fp64 for fp64).
    """
    _common.check_device("resize_flow_backward", grad_out)
    _check_sizes("resize_flow_backward", "grad_out", grad_out, height, width)
    n, c, ho, wo = grad_out.shape
    gin = grad_out.new_empty((n, c, height, width))
    if gin.numel() == 0:
        return gin
    acc = _common.acc_dtype(grad_out.dtype)
    foot_y, foot_x = footprint(height, ho, align_corners), footprint(width, wo, align_corners)

    def launch(cfg):
        tiles = triton.cdiv(height * width, cfg["BLOCK"])
        _resize_bwd_kernel[(n * c * tiles,)](
            grad_out,
            gin,
            c,
            height,
            width,
            ho,
            wo,
            *grad_out.stride(),
            tiles,
            foot_y,
            foot_x,
            ALIGN=align_corners,
            ACC=acc,
            BLOCK=cfg["BLOCK"],
            num_warps=cfg["num_warps"],
            **LAUNCH_OPTIONS,
        )

    key = ("resize_bwd", grad_out.device.index, grad_out.dtype, align_corners, _common.next_pow2(gin.numel()))
    launch(_common.choose_config(key, _configs(), launch))
    return gin
