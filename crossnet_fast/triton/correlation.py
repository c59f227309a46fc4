"""Triton correlation (cost volume): forward and both gradients, accumulated in fp32 (fp64 for fp64).

``out[n, k, i, j] = (sum_c f1[n, c, i*s, j*s] * f2[n, c, i*s + dy*dil, j*s + dx*dil]) / C`` with
``k = (dy + D)*(2D + 1) + (dx + D)``; a displaced point outside the image gives 0 (the definition
and its argument rules are in :func:`crossnet_fast.ops.correlation.correlation`).

Forward: one program per ``BLOCK_P`` output points of one (n, k) plane, summing the channels one
at a time (c = 0..C-1, the CPU kernel's order). Both gradients are gathers, one program per
``BLOCK_C`` channels x ``BLOCK_P`` pixels of one image, each element summing over the
displacements k = 0..K-1 in order: no atomics, and the order of every sum is the same whatever
configuration the tuner picks, so results are bit-identical from run to run. Programs are numbered
along grid axis 0 only (axes 1 and 2 stop at 65535). Any input strides are read directly (no
copies); the gradients have the inputs' layout (``empty_like``), as the fake kernels promise.
Terms whose displaced point lies outside the image are masked out, not multiplied by a zero, so
an inf/NaN reaches only the outputs and gradient elements that read it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _common

# (BLOCK_P, num_warps) of the forward; (BLOCK_P, BLOCK_C, num_warps) of the gradients. The first
# entry is what the interpreter and CROSSNET_FAST_TRITON_AUTOTUNE=0 use (and the compile check's).
_FWD_CONFIGS = [dict(BLOCK_P=128, num_warps=4), dict(BLOCK_P=256, num_warps=4), dict(BLOCK_P=512, num_warps=8)]
_BWD_CONFIGS = [
    dict(BLOCK_P=64, BLOCK_C=8, num_warps=4),
    dict(BLOCK_P=128, BLOCK_C=8, num_warps=4),
    dict(BLOCK_P=64, BLOCK_C=16, num_warps=4),
    dict(BLOCK_P=256, BLOCK_C=4, num_warps=8),
]


@triton.jit
def _corr_fwd_kernel(
    f1_ptr,
    f2_ptr,
    out_ptr,
    C,
    H,
    W,
    Ho,
    Wo,
    D,
    DIL,
    STRIDE,
    a_n,
    a_c,
    a_h,
    a_w,
    b_n,
    b_c,
    b_h,
    b_w,
    tiles,
    ACC: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    side = 2 * D + 1
    K = side * side
    plane = pid // tiles  # n * K + k
    tile = pid - plane * tiles
    n = plane // K
    k = plane - n * K
    dy = k // side - D
    dx = k - (k // side) * side - D
    # tl.cast, not .to(): Triton compiles an integer argument equal to 1 as a constexpr.
    P = tl.cast(Ho, tl.int64) * Wo
    q = tile * BLOCK_P + tl.arange(0, BLOCK_P)
    qmask = q < P
    i = q // Wo
    j = q - i * Wo
    y = i * STRIDE
    x = j * STRIDE
    yy = y + dy * DIL
    xx = x + dx * DIL
    valid = qmask & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
    a_ptrs = f1_ptr + n * a_n + y * a_h + x * a_w
    b_ptrs = f2_ptr + n * b_n + yy * b_h + xx * b_w
    acc = tl.zeros([BLOCK_P], dtype=ACC)
    for c in range(0, C):
        a = tl.load(a_ptrs + c * a_c, mask=valid, other=0.0).to(ACC)
        b = tl.load(b_ptrs + c * b_c, mask=valid, other=0.0).to(ACC)
        acc += a * b
    res = tl.where(valid, acc / C, 0.0)
    tl.store(out_ptr + plane * P + q, res.to(out_ptr.dtype.element_ty), mask=qmask)


@triton.jit
def _gather_tile(pid, C, H, W, ctiles, tiles, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """The tile of gradient program ``pid`` (int64), one numbering for both gathers (ctiles channel
    tiles of ``tiles`` pixel tiles per image): (n; y, x: the BLOCK_P pixels' rows and columns,
    int64; pmask: pixel inside the H x W image; c: the BLOCK_C channels; cmask: channel below C).
    The caller reads pid first: that keeps the compiled instruction order of the kernels as it was
    before this helper (same PTX)."""
    per_n = ctiles * tiles
    n = pid // per_n
    rem = pid - n * per_n
    ct = rem // tiles
    tile = rem - ct * tiles
    p = tile * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < tl.cast(H, tl.int64) * W
    y = p // W
    x = p - y * W
    c = ct * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    return n, y, x, pmask, c, cmask


@triton.jit
def _store_gather(grad_ptr, acc, C, n, y, x, pmask, c, cmask, o_n, o_c, o_h, o_w):
    """Divide a gather's (BLOCK_C, BLOCK_P) sums ``acc`` by C and store them, rounded once to the
    gradient's dtype, at channels c and pixels (y, x) of image n (strides o_*)."""
    acc = acc / C
    out = grad_ptr + n * o_n + c[:, None] * o_c + (y * o_h + x * o_w)[None, :]
    tl.store(out, acc.to(grad_ptr.dtype.element_ty), mask=cmask[:, None] & pmask[None, :])


@triton.jit
def _corr_bwd_f1_kernel(
    gout_ptr,
    f2_ptr,
    gf1_ptr,
    C,
    H,
    W,
    D,
    DIL,
    STRIDE,
    g_n,
    g_k,
    g_h,
    g_w,
    b_n,
    b_c,
    b_h,
    b_w,
    o_n,
    o_c,
    o_h,
    o_w,
    ctiles,
    tiles,
    ACC: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    side = 2 * D + 1
    K = side * side
    n, y, x, pmask, c, cmask = _gather_tile(pid, C, H, W, ctiles, tiles, BLOCK_P, BLOCK_C)
    # Only the read points (multiples of the stride) have a gradient; the others get 0.
    read = pmask & (y % STRIDE == 0) & (x % STRIDE == 0)
    i = y // STRIDE
    j = x // STRIDE
    g_ptrs = gout_ptr + n * g_n + i * g_h + j * g_w
    b_base = f2_ptr + n * b_n + c[:, None] * b_c
    acc = tl.zeros([BLOCK_C, BLOCK_P], dtype=ACC)
    for k in range(0, K):
        yy = y + (k // side - D) * DIL
        xx = x + (k % side - D) * DIL
        ok = read & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        g = tl.load(g_ptrs + k * g_k, mask=ok, other=0.0).to(ACC)
        m2 = cmask[:, None] & ok[None, :]
        b = tl.load(b_base + (yy * b_h + xx * b_w)[None, :], mask=m2, other=0.0).to(ACC)
        acc += tl.where(m2, g[None, :] * b, 0.0)
    _store_gather(gf1_ptr, acc, C, n, y, x, pmask, c, cmask, o_n, o_c, o_h, o_w)


@triton.jit
def _corr_bwd_f2_kernel(
    gout_ptr,
    f1_ptr,
    gf2_ptr,
    C,
    H,
    W,
    D,
    DIL,
    STRIDE,
    g_n,
    g_k,
    g_h,
    g_w,
    a_n,
    a_c,
    a_h,
    a_w,
    o_n,
    o_c,
    o_h,
    o_w,
    ctiles,
    tiles,
    ACC: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    side = 2 * D + 1
    K = side * side
    n, yy, xx, pmask, c, cmask = _gather_tile(pid, C, H, W, ctiles, tiles, BLOCK_P, BLOCK_C)
    a_base = f1_ptr + n * a_n + c[:, None] * a_c
    g_base = gout_ptr + n * g_n
    acc = tl.zeros([BLOCK_C, BLOCK_P], dtype=ACC)
    for k in range(0, K):
        # The f1 point that reads (yy, xx) at displacement k: inside the image and a read point.
        y = yy - (k // side - D) * DIL
        x = xx - (k % side - D) * DIL
        ok = pmask & (y >= 0) & (y < H) & (x >= 0) & (x < W) & (y % STRIDE == 0) & (x % STRIDE == 0)
        g = tl.load(g_base + k * g_k + (y // STRIDE) * g_h + (x // STRIDE) * g_w, mask=ok, other=0.0).to(ACC)
        m2 = cmask[:, None] & ok[None, :]
        a = tl.load(a_base + (y * a_h + x * a_w)[None, :], mask=m2, other=0.0).to(ACC)
        acc += tl.where(m2, g[None, :] * a, 0.0)
    _store_gather(gf2_ptr, acc, C, n, yy, xx, pmask, c, cmask, o_n, o_c, o_h, o_w)


def correlation(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int, dilation: int, stride: int) -> torch.Tensor:
    """Triton implementation of ``crossnet_fast_triton::correlation``.

    Args:
        f1, f2: (N, C, H, W) float tensors of one shape, dtype and device, any strides.
        max_displacement: D >= 0; dilation >= 1; stride >= 1 (see the public op).

    Returns:
        (N, (2D+1)^2, ceil(H/stride), ceil(W/stride)) contiguous tensor of ``f1.dtype``: channel
        means of products, summed in fp32 (fp64 for fp64) and rounded once.
    """
    _common.check_device("correlation", f1, f2)
    _check(f1, f2, max_displacement, dilation, stride)
    n, c, h, w = f1.shape
    side = 2 * max_displacement + 1
    ho, wo = -(-h // stride), -(-w // stride)
    out = f1.new_empty((n, side * side, ho, wo))
    if out.numel() == 0:
        return out
    if c == 0:
        return out.zero_()
    acc = _common.acc_dtype(f1.dtype)

    def launch(cfg):
        tiles = triton.cdiv(ho * wo, cfg["BLOCK_P"])
        _corr_fwd_kernel[(n * side * side * tiles,)](
            f1,
            f2,
            out,
            c,
            h,
            w,
            ho,
            wo,
            max_displacement,
            dilation,
            stride,
            *f1.stride(),
            *f2.stride(),
            tiles,
            ACC=acc,
            BLOCK_P=cfg["BLOCK_P"],
            num_warps=cfg["num_warps"],
        )

    key = ("correlation_fwd", f1.device.index, f1.dtype, c, side, _common.next_pow2(ho * wo))
    launch(_common.choose_config(key, _FWD_CONFIGS, launch))
    return out


def correlation_backward(
    grad_out: torch.Tensor,
    f1: torch.Tensor,
    f2: torch.Tensor,
    max_displacement: int,
    dilation: int,
    stride: int,
    output_mask,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton implementation of ``crossnet_fast_triton::correlation_backward`` (two gathers).

    Args:
        grad_out: (N, (2D+1)^2, Ho, Wo) d(loss)/d(cost volume), any strides.
        f1, f2, max_displacement, dilation, stride: the forward's arguments.
        output_mask: [need grad_f1, need grad_f2].

    Returns:
        (grad_f1, grad_f2): each ``empty_like`` its input (its layout) in the inputs' dtype, or an
        empty (0,) tensor when not asked for. grad_f1 is 0 off the read points (stride > 1).
    """
    _common.check_device("correlation_backward", grad_out, f1, f2)
    _check(f1, f2, max_displacement, dilation, stride)
    n, c, h, w = f1.shape
    side = 2 * max_displacement + 1
    ho, wo = -(-h // stride), -(-w // stride)
    if tuple(grad_out.shape) != (n, side * side, ho, wo):
        raise ValueError(
            f"correlation_backward: grad_out must have the output shape {(n, side * side, ho, wo)}, "
            f"got {tuple(grad_out.shape)}"
        )
    grad_out = grad_out.to(f1.dtype)
    grad1 = torch.empty_like(f1) if output_mask[0] else f1.new_empty((0,))
    grad2 = torch.empty_like(f2) if output_mask[1] else f2.new_empty((0,))
    if f1.numel() == 0:  # C == 0, or an empty batch or plane: nothing to write
        return grad1, grad2
    acc = _common.acc_dtype(f1.dtype)
    jobs = []
    if output_mask[0]:
        jobs.append((_corr_bwd_f1_kernel, f2, grad1, "correlation_bwd_f1"))
    if output_mask[1]:
        jobs.append((_corr_bwd_f2_kernel, f1, grad2, "correlation_bwd_f2"))
    for kernel, other, grad, name in jobs:

        def launch(cfg, kernel=kernel, other=other, grad=grad):
            tiles = triton.cdiv(h * w, cfg["BLOCK_P"])
            ctiles = triton.cdiv(c, cfg["BLOCK_C"])
            kernel[(n * ctiles * tiles,)](
                grad_out,
                other,
                grad,
                c,
                h,
                w,
                max_displacement,
                dilation,
                stride,
                *grad_out.stride(),
                *other.stride(),
                *grad.stride(),
                ctiles,
                tiles,
                ACC=acc,
                BLOCK_P=cfg["BLOCK_P"],
                BLOCK_C=cfg["BLOCK_C"],
                num_warps=cfg["num_warps"],
            )

        key = (name, f1.device.index, f1.dtype, _common.next_pow2(c), side, stride, _common.next_pow2(h * w))
        # Every element is overwritten by each launch: timing needs no reset.
        launch(_common.choose_config(key, _BWD_CONFIGS, launch))
    return grad1, grad2


def _check(f1, f2, max_displacement, dilation, stride):
    """The checks of the native kernels, for direct torch.ops calls (the public op checks first)."""
    if f1.dim() != 4 or f2.shape != f1.shape:
        raise ValueError(
            f"correlation: f1 and f2 must be (N, C, H, W) of one shape, got {tuple(f1.shape)} and {tuple(f2.shape)}"
        )
    if f1.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64) or f2.dtype != f1.dtype:
        raise TypeError(f"correlation: f1 and f2 must have one float dtype, got {f1.dtype} and {f2.dtype}")
    if max_displacement < 0 or dilation < 1 or stride < 1:
        raise ValueError(
            "correlation: need max_displacement >= 0, dilation >= 1, stride >= 1, got "
            f"{max_displacement}, {dilation}, {stride}"
        )
