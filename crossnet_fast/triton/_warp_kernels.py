"""Device code of the Triton multiscale warp (launchers: :mod:`.multiscale_warp`).

One program owns BLOCK_P output pixels of one scale and loops over that scale's channels in
chunks of BLOCK_C; a per-scale row of an int64 metadata table (below) says which scale a program
serves and where that scale's tensors are, as element offsets from one base pointer per role.

Tiles are [BLOCK_P, BLOCK_C] (channels fastest) when CL, else [BLOCK_C, BLOCK_P] (pixels
fastest); the helpers _px/_ch/_sum_ch hide the orientation. ALIGN > 1 promises (launcher-checked)
that channel counts, offsets and pixel strides of the channel-major roles are multiples of ALIGN,
which lets the compiler use 16-byte loads and vector atomics on channels_last rows.

Sampling math mirrors crossnet_fast/reference/multiscale_warp.py step by step (clamp, sanitised
corners, where-masked weights), including its NaN behaviour.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Columns of the per-scale metadata table (int64), one row per scale:
#   0..3   P = N*H*W, C, H, W
#   4..8   features: strides n, c, h, w, then element offset from the features' base pointer
#   9..13  flow (same five columns)
#   14..18 forward: the output; backward: the incoming gradient
#   19..23 backward: the feature-gradient buffer
#   24..28 backward: the flow gradient
# The kernels name a role by its first column (4, 9, 14, 19, 24).
NCOL = tl.constexpr(29)
INF = tl.constexpr(float("inf"))


# --------------------------------------------------------------------------------------------
# Device helpers


@triton.jit
def _locate(meta_ptr, S, BLOCK_P: tl.constexpr):
    """(scale index, block index inside that scale) of this program; scales are laid end to end."""
    pid = tl.program_id(0).to(tl.int64)
    start = pid * 0
    scale = tl.program_id(0) * 0
    local = pid
    for i in range(S):
        p = tl.load(meta_ptr + i * NCOL)
        hit = pid >= start
        scale = tl.where(hit, i, scale)
        local = tl.where(hit, pid - start, local)
        start += tl.cdiv(p, BLOCK_P)
    return scale, local


@triton.jit
def _px(v, CL: tl.constexpr):
    """A per-pixel vector as a 2-D tile operand (pixels on axis 0 for channels_last, else axis 1)."""
    if CL:
        return v[:, None]
    else:
        return v[None, :]


@triton.jit
def _ch(v, CL: tl.constexpr):
    """A per-channel vector as a 2-D tile operand."""
    if CL:
        return v[None, :]
    else:
        return v[:, None]


@triton.jit
def _sum_ch(t, CL: tl.constexpr):
    """Sum a tile over its channel axis: one value per pixel."""
    if CL:
        return tl.sum(t, axis=1)
    else:
        return tl.sum(t, axis=0)


@triton.jit
def _tensor(row, COL: tl.constexpr, n, y, x, ALIGN: tl.constexpr = 1):
    """(base offset of scale + n, y, x part of the address, channel stride) of one tensor role.

    ALIGN > 1 (channels_last only) promises that offset and strides n, h, w are multiples of
    ALIGN, so that rows of channels can be read with vector loads.
    """
    # The hints go on the loaded scalars; the axis analysis derives the sum's divisibility.
    sn = _load_aligned(row + COL, ALIGN)
    sc = tl.load(row + COL + 1)
    sh = _load_aligned(row + COL + 2, ALIGN)
    sw = _load_aligned(row + COL + 3, ALIGN)
    off = _load_aligned(row + COL + 4, ALIGN)
    return off + n * sn + y * sh + x * sw, sc


@triton.jit
def _load_aligned(ptr, ALIGN: tl.constexpr):
    """Load an int64 scalar and promise the compiler it is a multiple of ALIGN (launcher-checked).

    The hint must be attached where the load is (inside this function): a hint on a value passed
    into another jit function, or on an arithmetic result, does not survive to the axis analysis.
    """
    v = tl.load(ptr)
    if ALIGN > 1:
        v = tl.multiple_of(v, ALIGN)
    return v


@triton.jit
def _chan_off(c, sc, CL: tl.constexpr):
    # channels_last tensors have channel stride 1 (launcher's guarantee); saying so literally lets
    # the compiler see contiguous rows.
    if CL:
        return _ch(c, CL)
    else:
        return _ch(c, CL) * sc


@triton.jit
def _geometry(x, y, fx, fy, H, W, BORDER: tl.constexpr, ACC: tl.constexpr):
    """Sample point, corner and bilinear weights of each pixel, as the reference computes them.

    Returns x0, y0 (int32 top-left corner), ax, ay (fractional parts, ACC; NaN for a NaN point),
    mask_x, mask_y (False where border padding clamped the point: no flow gradient on that axis),
    finite (the sample point is finite).
    """
    wm1 = (W - 1).to(ACC)
    hm1 = (H - 1).to(ACC)
    sx = x.to(ACC) + fx
    sy = y.to(ACC) + fy
    if BORDER:
        # Comparisons are False for NaN, so the clamp keeps NaN (as torch.clamp does).
        mask_x = (sx >= 0) & (sx <= wm1)
        mask_y = (sy >= 0) & (sy <= hm1)
        sx = tl.where(sx < 0, 0.0, tl.where(sx > wm1, wm1, sx)).to(ACC)
        sy = tl.where(sy < 0, 0.0, tl.where(sy > hm1, hm1, sy)).to(ACC)
    else:
        mask_x = sx == sx
        mask_y = sy == sy
    finite = (tl.abs(sx) < INF) & (tl.abs(sy) < INF)  # False for NaN and +-inf
    # Corners from a sanitised copy so NaN/inf never become indices; clamped to a small margin.
    x0f = tl.floor(tl.where(finite, sx, 0.0).to(ACC))
    y0f = tl.floor(tl.where(finite, sy, 0.0).to(ACC))
    x0f = tl.minimum(tl.maximum(x0f, -2.0), (W + 1).to(ACC))
    y0f = tl.minimum(tl.maximum(y0f, -2.0), (H + 1).to(ACC))
    ax = sx - x0f
    ay = sy - y0f
    return x0f.to(tl.int32), y0f.to(tl.int32), ax, ay, mask_x, mask_y, finite


@triton.jit
def _tap(x0, y0, DX: tl.constexpr, DY: tl.constexpr, H, W, finite, pmask, BORDER: tl.constexpr):
    """Clamped tap coordinates and validity (inside the image; finite point for zeros padding)."""
    xi = x0 + DX
    yi = y0 + DY
    valid = (xi >= 0) & (xi <= W - 1) & (yi >= 0) & (yi <= H - 1) & pmask
    if not BORDER:
        valid = valid & finite
    xi = tl.minimum(tl.maximum(xi, 0), W - 1)
    yi = tl.minimum(tl.maximum(yi, 0), H - 1)
    return xi, yi, valid


@triton.jit
def _weighted(coef, value):
    """coef * value, but exactly 0 where coef is 0 (the tap is not read: 0 * inf would be NaN)."""
    return tl.where(coef != 0, coef * value, 0.0)


@triton.jit
def _pixels(meta_ptr, S, BLOCK_P: tl.constexpr, ALIGN: tl.constexpr):
    """Scale row, sizes and per-pixel indices (n, y, x) of this program's pixels."""
    scale, local = _locate(meta_ptr, S, BLOCK_P)
    row = meta_ptr + scale * NCOL
    P = tl.load(row + 0)
    C = _load_aligned(row + 1, ALIGN)  # channel count: a multiple of ALIGN (launcher-checked)
    H = tl.load(row + 2).to(tl.int32)
    W = tl.load(row + 3).to(tl.int32)
    p = local * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < P
    # int64 before multiplying: H * W in int32 wraps past 2^31 (a 46341 x 46341 plane); the
    # position inside the plane stays int64 too, only y < H and x < W are narrowed.
    hw = H.to(tl.int64) * W
    n = p // hw
    rem = p - n * hw
    y = (rem // W).to(tl.int32)
    x = (rem - y.to(tl.int64) * W).to(tl.int32)
    return row, C, H, W, n, y, x, pmask


@triton.jit
def _load_flow(flow_base, row, n, y, x, pmask, ACC: tl.constexpr):
    base, sc = _tensor(row, 9, n, y, x)
    fx = tl.load(flow_base + base, mask=pmask, other=0.0).to(ACC)
    fy = tl.load(flow_base + base + sc, mask=pmask, other=0.0).to(ACC)
    return fx, fy


# --------------------------------------------------------------------------------------------
# Kernels


@triton.jit
def _warp_fwd_kernel(
    feat_base,
    flow_base,
    out_base,
    meta_ptr,
    S,
    BORDER: tl.constexpr,
    CL: tl.constexpr,
    ACC: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    row, C, H, W, n, y, x, pmask = _pixels(meta_ptr, S, BLOCK_P, ALIGN)
    fx, fy = _load_flow(flow_base, row, n, y, x, pmask, ACC)
    x0, y0, ax, ay, _mx, _my, finite = _geometry(x, y, fx, fy, H, W, BORDER, ACC)
    x0i, y0i, v00 = _tap(x0, y0, 0, 0, H, W, finite, pmask, BORDER)
    x1i, _y, v01 = _tap(x0, y0, 1, 0, H, W, finite, pmask, BORDER)
    _x, y1i, v10 = _tap(x0, y0, 0, 1, H, W, finite, pmask, BORDER)
    _x2, _y2, v11 = _tap(x0, y0, 1, 1, H, W, finite, pmask, BORDER)
    # Masked weights (where, not multiply): an invalid tap contributes exactly 0 even when the
    # weight itself is huge or NaN.
    w00 = _px(tl.where(v00, (1 - ax) * (1 - ay), 0.0), CL)
    w01 = _px(tl.where(v01, ax * (1 - ay), 0.0), CL)
    w10 = _px(tl.where(v10, (1 - ax) * ay, 0.0), CL)
    w11 = _px(tl.where(v11, ax * ay, 0.0), CL)
    a00, sfc = _tensor(row, 4, n, y0i, x0i, ALIGN)
    a01, _s1 = _tensor(row, 4, n, y0i, x1i, ALIGN)
    a10, _s2 = _tensor(row, 4, n, y1i, x0i, ALIGN)
    a11, _s3 = _tensor(row, 4, n, y1i, x1i, ALIGN)
    ao, soc = _tensor(row, 14, n, y, x, ALIGN)
    m00 = _px(v00, CL)
    m01 = _px(v01, CL)
    m10 = _px(v10, CL)
    m11 = _px(v11, CL)
    mp = _px(pmask, CL)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = _ch(c < C, CL)
        fc = _chan_off(c, sfc, CL)
        acc = _weighted(w00, tl.load(feat_base + _px(a00, CL) + fc, mask=m00 & cm, other=0.0).to(ACC))
        acc += _weighted(w01, tl.load(feat_base + _px(a01, CL) + fc, mask=m01 & cm, other=0.0).to(ACC))
        acc += _weighted(w10, tl.load(feat_base + _px(a10, CL) + fc, mask=m10 & cm, other=0.0).to(ACC))
        acc += _weighted(w11, tl.load(feat_base + _px(a11, CL) + fc, mask=m11 & cm, other=0.0).to(ACC))
        tl.store(out_base + _px(ao, CL) + _chan_off(c, soc, CL), acc.to(out_base.dtype.element_ty), mask=mp & cm)


@triton.jit
def _warp_bwd_kernel(
    gout_base,
    feat_base,
    flow_base,
    gfeat_base,
    gflow_base,
    meta_ptr,
    S,
    BORDER: tl.constexpr,
    CL: tl.constexpr,
    ACC: tl.constexpr,
    NEED_FEAT: tl.constexpr,
    NEED_FLOW: tl.constexpr,
    ALIGN: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    row, C, H, W, n, y, x, pmask = _pixels(meta_ptr, S, BLOCK_P, ALIGN)
    fx, fy = _load_flow(flow_base, row, n, y, x, pmask, ACC)
    x0, y0, ax, ay, mask_x, mask_y, finite = _geometry(x, y, fx, fy, H, W, BORDER, ACC)
    x0i, y0i, v00 = _tap(x0, y0, 0, 0, H, W, finite, pmask, BORDER)
    x1i, _y, v01 = _tap(x0, y0, 1, 0, H, W, finite, pmask, BORDER)
    _x, y1i, v10 = _tap(x0, y0, 0, 1, H, W, finite, pmask, BORDER)
    _x2, _y2, v11 = _tap(x0, y0, 1, 1, H, W, finite, pmask, BORDER)
    m00 = _px(v00, CL)
    m01 = _px(v01, CL)
    m10 = _px(v10, CL)
    m11 = _px(v11, CL)
    mp = _px(pmask, CL)
    ag, sgc = _tensor(row, 14, n, y, x, ALIGN)
    a00, sfc = _tensor(row, 4, n, y0i, x0i, ALIGN)
    a01, _s1 = _tensor(row, 4, n, y0i, x1i, ALIGN)
    a10, _s2 = _tensor(row, 4, n, y1i, x0i, ALIGN)
    a11, _s3 = _tensor(row, 4, n, y1i, x1i, ALIGN)
    b00, sbc = _tensor(row, 19, n, y0i, x0i, ALIGN)
    b01, _s5 = _tensor(row, 19, n, y0i, x1i, ALIGN)
    b10, _s6 = _tensor(row, 19, n, y1i, x0i, ALIGN)
    b11, _s7 = _tensor(row, 19, n, y1i, x1i, ALIGN)
    w00 = _px(tl.where(v00, (1 - ax) * (1 - ay), 0.0), CL)
    w01 = _px(tl.where(v01, ax * (1 - ay), 0.0), CL)
    w10 = _px(tl.where(v10, (1 - ax) * ay, 0.0), CL)
    w11 = _px(tl.where(v11, ax * ay, 0.0), CL)
    # Per-tap dot products sum_c grad_out[c] * feat_tap[c]; the flow gradient combines them.
    d00 = tl.zeros_like(ax)
    d01 = tl.zeros_like(ax)
    d10 = tl.zeros_like(ax)
    d11 = tl.zeros_like(ax)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = _ch(c < C, CL)
        g = tl.load(gout_base + _px(ag, CL) + _chan_off(c, sgc, CL), mask=mp & cm, other=0.0).to(ACC)
        if NEED_FEAT:
            bc = _chan_off(c, sbc, CL)
            tl.atomic_add(gfeat_base + _px(b00, CL) + bc, _weighted(w00, g), mask=m00 & cm, sem="relaxed")
            tl.atomic_add(gfeat_base + _px(b01, CL) + bc, _weighted(w01, g), mask=m01 & cm, sem="relaxed")
            tl.atomic_add(gfeat_base + _px(b10, CL) + bc, _weighted(w10, g), mask=m10 & cm, sem="relaxed")
            tl.atomic_add(gfeat_base + _px(b11, CL) + bc, _weighted(w11, g), mask=m11 & cm, sem="relaxed")
        if NEED_FLOW:
            fc = _chan_off(c, sfc, CL)
            d00 += _sum_ch(g * tl.load(feat_base + _px(a00, CL) + fc, mask=m00 & cm, other=0.0).to(ACC), CL)
            d01 += _sum_ch(g * tl.load(feat_base + _px(a01, CL) + fc, mask=m01 & cm, other=0.0).to(ACC), CL)
            d10 += _sum_ch(g * tl.load(feat_base + _px(a10, CL) + fc, mask=m10 & cm, other=0.0).to(ACC), CL)
            d11 += _sum_ch(g * tl.load(feat_base + _px(a11, CL) + fc, mask=m11 & cm, other=0.0).to(ACC), CL)
    if NEED_FLOW:
        # d(weight)/d(ax) and d(weight)/d(ay) per tap; an invalid tap has weight 0 everywhere,
        # and a tap whose derivative is 0 is not used (its dot product may be inf or NaN).
        gx = _weighted(tl.where(v00, -(1 - ay), 0.0), d00) + _weighted(tl.where(v01, 1 - ay, 0.0), d01)
        gx += _weighted(tl.where(v10, -ay, 0.0), d10) + _weighted(tl.where(v11, ay, 0.0), d11)
        gy = _weighted(tl.where(v00, -(1 - ax), 0.0), d00) + _weighted(tl.where(v01, -ax, 0.0), d01)
        gy += _weighted(tl.where(v10, 1 - ax, 0.0), d10) + _weighted(tl.where(v11, ax, 0.0), d11)
        if BORDER:
            # The clamp has zero derivative where it clamped; a NaN point has a NaN gradient on
            # both axes (NaN in, NaN out, as csrc/bilinear.h and the reference define it).
            nan_point = (fx != fx) | (fy != fy)
            nan = (fx - fx) + (fy - fy)  # NaN exactly where nan_point holds
            gx = tl.where(nan_point, nan, tl.where(mask_x, gx, 0.0))
            gy = tl.where(nan_point, nan, tl.where(mask_y, gy, 0.0))
        af, sfl = _tensor(row, 24, n, y, x)
        ty = gflow_base.dtype.element_ty
        tl.store(gflow_base + af, gx.to(ty), mask=pmask)
        tl.store(gflow_base + af + sfl, gy.to(ty), mask=pmask)
