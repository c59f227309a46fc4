"""Triton flow upsampling: bilinear x``scale`` (align_corners=False) with values times ``scale``.

Forward: one program per BLOCK output pixels of one (n, channel) plane; each output reads its 4
source taps. Programs are numbered along grid axis 0 only (plane-major: ``pid = plane * tiles +
tile``), since axes 1 and 2 stop at 65535 on a GPU and N * C can exceed that; positions inside a
plane are int64, so a plane may span more than 2^31 elements. Backward: a gather, not a scatter.
With an integer factor, source row ``i`` is read
only by output rows ``d`` whose source coordinate ``(d + 0.5)/s - 0.5`` lies in ``(i - 1, i + 1)``,
all inside ``[s*i - (s+1)//2, s*i - (s+1)//2 + 2s]``; so each input gradient sums a fixed window of
``(2s+1) x (2s+1)`` output gradients with the forward's weights recomputed (candidates that do
not read ``i`` get weight 0). No atomics: deterministic.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common
from ._rounding import LAUNCH_OPTIONS, div

# One elementwise configuration list for both flow resamplers.
from .resize_flow import _BLOCKS, _configs, bilinear_taps  # noqa: F401 (_BLOCKS: the compile check's)


@triton.jit
def _src(d, scale, size_in, ACC: tl.constexpr):
    """Source index pair and weight of output coordinate ``d`` along one axis (reference formula)."""
    # Correctly rounded (a plain fp32 '/' compiles to div.full, up to 2 ulp off).
    src = div(d.to(ACC) + 0.5, scale, ACC) - 0.5
    src = tl.maximum(src, 0.0)
    i0 = tl.minimum(tl.floor(src).to(tl.int64), size_in - 1)
    i1 = tl.minimum(i0 + 1, size_in - 1)
    frac = src - i0.to(ACC)
    return i0, i1, frac


@triton.jit
def _upsample_fwd_kernel(
    in_ptr, out_ptr, C, H, W, s_n, s_c, s_h, s_w, scale, tiles, ACC: tl.constexpr, BLOCK: tl.constexpr
):
    pid = tl.program_id(0).to(tl.int64)
    # tl.cast, not .to(): Triton compiles an integer argument equal to 1 (H or W) as a constexpr.
    plane = pid // tiles  # n * C + c
    n = plane // C
    c = plane - n * C
    HO = tl.cast(H, tl.int64) * scale
    WO = tl.cast(W, tl.int64) * scale
    q = (pid - plane * tiles) * BLOCK + tl.arange(0, BLOCK)
    mask = q < HO * WO
    oy = q // WO
    ox = q - oy * WO
    y0, y1, fy = _src(oy, scale, H, ACC)
    x0, x1, fx = _src(ox, scale, W, ACC)
    # Rows first, then columns, as the reference does.
    val = bilinear_taps(in_ptr + n * s_n + c * s_c, y0, y1, fy, x0, x1, fx, s_h, s_w, mask, ACC, ROWS_FIRST=True)
    val = val * scale
    out = out_ptr + plane * HO * WO
    tl.store(out + q, val.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _axis_weight(i, d, scale, size_in, ACC: tl.constexpr):
    """Weight with which output coordinate ``d`` reads source index ``i`` (0 when it does not)."""
    i0, i1, frac = _src(d, scale, size_in, ACC)
    # Both taps can be the same index at the far edge (i0 = i1 = size-1): weights then add to 1.
    return tl.where(i0 == i, 1 - frac, 0.0) + tl.where(i1 == i, frac, 0.0)


@triton.jit
def _upsample_bwd_kernel(
    gout_ptr, gin_ptr, C, H, W, g_n, g_c, g_h, g_w, scale, tiles, ACC: tl.constexpr, BLOCK: tl.constexpr
):
    pid = tl.program_id(0).to(tl.int64)
    plane = pid // tiles
    n = plane // C
    c = plane - n * C
    HO = tl.cast(H, tl.int64) * scale
    WO = tl.cast(W, tl.int64) * scale
    q = (pid - plane * tiles) * BLOCK + tl.arange(0, BLOCK)
    mask = q < tl.cast(H, tl.int64) * W
    iy = q // W
    ix = q - iy * W
    base = gout_ptr + n * g_n + c * g_c
    acc = tl.zeros([BLOCK], dtype=ACC)
    lo = (scale + 1) // 2
    for ky in range(0, 2 * scale + 1):
        dy = iy * scale - lo + ky
        wy = _axis_weight(iy, dy, scale, H, ACC)
        row_ok = mask & (dy >= 0) & (dy < HO)
        for kx in range(0, 2 * scale + 1):
            dx = ix * scale - lo + kx
            wx = _axis_weight(ix, dx, scale, W, ACC)
            ok = row_ok & (dx >= 0) & (dx < WO) & (wx * wy != 0)
            g = tl.load(base + dy * g_h + dx * g_w, mask=ok, other=0.0).to(ACC)
            acc += tl.where(ok, wx * wy * g, 0.0)
    out = gin_ptr + plane * H * W
    tl.store(out + q, (acc * scale).to(gin_ptr.dtype.element_ty), mask=mask)


def upsample_flow(flow: torch.Tensor, scale: int) -> torch.Tensor:
    """Triton implementation of ``crossnet_fast_triton::upsample_flow``.

    Args:
        flow: (N, C, H, W) float tensor (C is 2 for a flow), any strides, pixels of the input grid.
        scale: integer factor >= 1.

    Returns:
        (N, C, H*scale, W*scale) contiguous tensor of ``flow.dtype``, pixels of the output grid
        (interpolated in fp32, fp64 for fp64, then multiplied by ``scale``).
    """
    _common.check_device("upsample_flow", flow)
    n, c, h, w = flow.shape
    out = flow.new_empty((n, c, h * scale, w * scale))
    if out.numel() == 0:
        return out
    acc = _common.acc_dtype(flow.dtype)

    def launch(cfg):
        tiles = triton.cdiv(h * scale * w * scale, cfg["BLOCK"])
        _upsample_fwd_kernel[(n * c * tiles,)](
            flow,
            out,
            c,
            h,
            w,
            *flow.stride(),
            scale,
            tiles,
            ACC=acc,
            BLOCK=cfg["BLOCK"],
            num_warps=cfg["num_warps"],
            **LAUNCH_OPTIONS,
        )

    key = ("upsample_fwd", flow.device.index, flow.dtype, scale, _common.next_pow2(out.numel()))
    launch(_common.choose_config(key, _configs(), launch))
    return out


def upsample_flow_backward(grad_out: torch.Tensor, scale: int) -> torch.Tensor:
    """Triton implementation of ``crossnet_fast_triton::upsample_flow_backward`` (a gather).

    Args:
        grad_out: (N, C, H*scale, W*scale) float tensor, any strides: d(loss)/d(upsampled flow).
        scale: the forward's integer factor.

    Returns:
        (N, C, H, W) contiguous tensor of ``grad_out.dtype``: d(loss)/d(flow), summed in fp32.
    """
    _common.check_device("upsample_flow_backward", grad_out)
    n, c, ho, wo = grad_out.shape
    if ho % scale or wo % scale:
        raise ValueError(f"upsample_flow_backward: grad_out size {(ho, wo)} must be a multiple of scale={scale}")
    h, w = ho // scale, wo // scale
    gin = grad_out.new_empty((n, c, h, w))
    if gin.numel() == 0:
        return gin
    acc = _common.acc_dtype(grad_out.dtype)

    def launch(cfg):
        tiles = triton.cdiv(h * w, cfg["BLOCK"])
        _upsample_bwd_kernel[(n * c * tiles,)](
            grad_out,
            gin,
            c,
            h,
            w,
            *grad_out.stride(),
            scale,
            tiles,
            ACC=acc,
            BLOCK=cfg["BLOCK"],
            num_warps=cfg["num_warps"],
            **LAUNCH_OPTIONS,
        )

    key = ("upsample_bwd", grad_out.device.index, grad_out.dtype, scale, _common.next_pow2(gin.numel()))
    launch(_common.choose_config(key, _configs(), launch))
    return gin
