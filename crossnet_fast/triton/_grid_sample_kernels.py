"""Device code of the Triton ``grid_sample`` (launchers: :mod:`.grid_sample`).

One program owns BLOCK_P output points (flattened over N * Ho * Wo) and loops over the channels in
chunks of BLOCK_C; tiles are [BLOCK_C, BLOCK_P], points fastest (the output and the incoming
gradient are (N, C, Ho, Wo) rows of points). Integer arguments are element strides.

The math mirrors ``grid_source_coordinate``/``grid_taps_strided`` of csrc/bilinear.h and the
reference (crossnet_fast/reference/grid_sample.py): unnormalise, pad (PAD 0 zeros, 1 border,
2 reflection), then bilinear taps with the zeros rule; a point whose coordinate is not finite
after padding is "undefined": NaN sample in every channel, NaN grid gradient, no taps.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._warp_kernels import _weighted

INF = tl.constexpr(float("inf"))


@triton.jit
def _int_fmod(d, span, ACC: tl.constexpr):
    """fmod(d, span) exactly for an integer-valued d >= 0 and an integer span >= 1 (both ACC).

    d = m * 2^e with an integer mantissa m (24 bits fp32, 53 bits fp64) and e >= 0 for the d this is
    used for, so d mod span = (m mod span) * (2^e mod span) mod span, in int64 (every factor is
    below span < 2^31, every product below 2^62); 2^e mod span by square-and-multiply over e's
    10 bits (e <= 104 in fp32, 971 in fp64).
    """
    s = span.to(tl.int64)
    if ACC == tl.float64:
        bits = d.to(tl.int64, bitcast=True)
        m = (bits & 0xFFFFFFFFFFFFF) | 0x10000000000000
        e = ((bits >> 52) & 0x7FF) - 1075
    else:
        bits = d.to(tl.int32, bitcast=True).to(tl.int64)
        m = (bits & 0x7FFFFF) | 0x800000
        e = ((bits >> 23) & 0xFF) - 150
    e = tl.maximum(e, 0)
    r = tl.zeros_like(s) + 1
    r = r % s
    base = 2 % s
    for b in tl.static_range(10):
        r = tl.where(((e >> b) & 1) != 0, (r * base) % s, r)
        base = (base * base) % s
    return (((m % s) * r) % s).to(ACC)


@triton.jit
def _fmod_pos(d, span, ACC: tl.constexpr):
    """fmod(d, span) for d >= 0 and an integer-valued span > 0, with the quotient's floor as the
    reference takes it.

    Returns (floor(d / span) as rounded, fmod(d, span) exactly). Triton has no exact fmod that
    also runs on the interpreter. Below 2^23 (fp32; 2^52 fp64) d - k * span is exact for the
    true quotient k (k * span is an integer below 2^24: exact; Sterbenz for the difference), and
    the rounded floor is off by at most one; from there on d is an integer and :func:`_int_fmod`
    takes the remainder in integer arithmetic (the reference's torch.fmod is exact at any size).
    """
    # Correctly rounded division, as the reference's (fp32 "/" compiles to an approximate divide).
    if ACC == tl.float64:
        q = d / span
        limit = 4503599627370496.0  # 2^52
    else:
        q = tl.div_rn(d, span)
        limit = 8388608.0  # 2^23
    flips = tl.floor(q)
    extra = d - flips * span
    extra = tl.where(extra < 0, d - (flips - 1) * span, extra)
    extra = tl.where(extra >= span, d - (flips + 1) * span, extra)
    big = (d >= limit) & (d < INF)
    # Rare (points more than 2^23 pixels out): the integer path runs only when a point needs it.
    if tl.max(big.to(tl.int32), 0) > 0:
        extra = tl.where(big, _int_fmod(tl.where(big, d, 0.0).to(ACC), span, ACC), extra)
    return flips, extra


@triton.jit
def _source(g, size, PAD: tl.constexpr, ALIGN_CORNERS: tl.constexpr, ACC: tl.constexpr):
    """Normalised coordinate g -> (pixel coordinate, d coordinate / d g); 0 derivative where clamped."""
    n = tl.cast(size, ACC)  # size may be the constant 1 (Triton specialises it): no .to()
    if ALIGN_CORNERS:
        x = (g + 1) * 0.5 * (n - 1)
        factor = tl.zeros_like(x) + (n - 1) * 0.5
    else:
        x = ((g + 1) * n - 1) * 0.5
        factor = tl.zeros_like(x) + n * 0.5
    if PAD != 0:
        if PAD == 2:
            # Reflect about the corner pixels' centres (align_corners) or their outer edges.
            if ALIGN_CORNERS:
                low = 0.0
                span = n - 1
            else:
                low = -0.5
                span = n
            d = x - low
            sign = tl.where(d < 0, -1.0, 1.0)
            d = tl.abs(d)
            safe_span = tl.where(span > 0, span, 1.0)
            flips, extra = _fmod_pos(d, safe_span, ACC)
            odd = (flips - 2 * tl.floor(flips * 0.5)) == 1
            x = tl.where(odd, safe_span - extra + low, extra + low)
            factor = factor * tl.where(odd, -sign, sign)
            # A single pixel with align_corners has nothing to reflect about: coordinate 0, no gradient.
            x = tl.where(span > 0, x, 0.0)
            factor = tl.where(span > 0, factor, 0.0)
        # Clamp into [0, size-1]; on or beyond a bound the derivative is 0. NaN stays NaN.
        hi = n - 1
        factor = tl.where((x > 0) & (x < hi), factor, 0.0)
        x = tl.where(x <= 0, 0.0, tl.where(x >= hi, hi, x))
    return x.to(ACC), factor.to(ACC)


@triton.jit
def _points(grid_ptr, P, HWo, Wo, q_n, q_h, q_w, q_k, BLOCK_P: tl.constexpr, ACC: tl.constexpr):
    """This program's points: (n, index inside the image's Ho*Wo, in range, gx, gy in ACC)."""
    q = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = q < P
    n = q // HWo
    r = q - n * HWo
    oy = r // Wo
    ox = r - oy * Wo
    g = grid_ptr + n * q_n + oy * q_h + ox * q_w
    gx = tl.load(g, mask=pmask, other=0.0).to(ACC)
    gy = tl.load(g + q_k, mask=pmask, other=0.0).to(ACC)
    return n, r, oy, ox, pmask, gx, gy


@triton.jit
def _taps(gx, gy, H, W, pmask, PAD: tl.constexpr, ALIGN_CORNERS: tl.constexpr, ACC: tl.constexpr):
    """Bilinear taps of each point after padding.

    Returns x0, y0 (int32 top-left corner, sanitised), ax, ay (ACC fractions), fx, fy (d pixel /
    d grid per axis), undefined (bool).
    """
    x, fx = _source(gx, W, PAD, ALIGN_CORNERS, ACC)
    y, fy = _source(gy, H, PAD, ALIGN_CORNERS, ACC)
    defined = (tl.abs(x) < INF) & (tl.abs(y) < INF)  # False for NaN and +-inf
    # Corners from a sanitised copy so NaN/inf never become indices; clamped to a small margin
    # (a point far outside then has no tap inside the image).
    x0f = tl.floor(tl.where(defined, x, 0.0))
    y0f = tl.floor(tl.where(defined, y, 0.0))
    x0f = tl.minimum(tl.maximum(x0f, -2.0), tl.cast(W + 1, ACC))
    y0f = tl.minimum(tl.maximum(y0f, -2.0), tl.cast(H + 1, ACC))
    undefined = (~defined) & pmask
    return x0f.to(tl.int32), y0f.to(tl.int32), (x - x0f).to(ACC), (y - y0f).to(ACC), fx, fy, undefined


@triton.jit
def _tap(x0, y0, DX: tl.constexpr, DY: tl.constexpr, ax, ay, H, W, undefined, pmask):
    """One tap: clamped (xi, yi), validity, weight and d weight / d ax, d weight / d ay (0 when invalid)."""
    xi = x0 + DX
    yi = y0 + DY
    valid = (xi >= 0) & (xi <= W - 1) & (yi >= 0) & (yi <= H - 1) & pmask & (~undefined)
    if DX == 1:
        wx = ax
        dwx = 1.0
    else:
        wx = 1 - ax
        dwx = -1.0
    if DY == 1:
        wy = ay
        dwy = 1.0
    else:
        wy = 1 - ay
        dwy = -1.0
    w = tl.where(valid, wx * wy, 0.0)
    dw_dx = tl.where(valid, dwx * wy, 0.0)
    dw_dy = tl.where(valid, wx * dwy, 0.0)
    # int64: row * row stride can pass 2^31 in an input of more than 2^31 elements.
    xi = tl.minimum(tl.maximum(xi, 0), W - 1).to(tl.int64)
    yi = tl.minimum(tl.maximum(yi, 0), H - 1).to(tl.int64)
    return xi, yi, valid, w, dw_dx, dw_dy


@triton.jit
def _point_taps(
    grid_ptr,
    P,
    H,
    W,
    HWo,
    Wo,
    q_n,
    q_h,
    q_w,
    q_k,
    PAD: tl.constexpr,
    ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """This program's points and their four taps (order (x0,y0), (x1,y0), (x0,y1), (x1,y1), each a
    tuple from :func:`_tap`): n, r, oy, ox, pmask, fx, fy, undefined, then the taps."""
    n, r, oy, ox, pmask, gx, gy = _points(grid_ptr, P, HWo, Wo, q_n, q_h, q_w, q_k, BLOCK_P, ACC)
    x0, y0, ax, ay, fx, fy, undefined = _taps(gx, gy, H, W, pmask, PAD, ALIGN_CORNERS, ACC)
    ta = _tap(x0, y0, 0, 0, ax, ay, H, W, undefined, pmask)
    tb = _tap(x0, y0, 1, 0, ax, ay, H, W, undefined, pmask)
    tc = _tap(x0, y0, 0, 1, ax, ay, H, W, undefined, pmask)
    td = _tap(x0, y0, 1, 1, ax, ay, H, W, undefined, pmask)
    return n, r, oy, ox, pmask, fx, fy, undefined, ta, tb, tc, td


@triton.jit
def _grid_sample_fwd_kernel(
    in_ptr,
    grid_ptr,
    out_ptr,
    P,
    C,
    H,
    W,
    HWo,
    Wo,
    s_n,
    s_c,
    s_h,
    s_w,
    q_n,
    q_h,
    q_w,
    q_k,
    PAD: tl.constexpr,
    ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    n, r, oy, ox, pmask, fx, fy, undefined, ta, tb, tc, td = _point_taps(
        grid_ptr, P, H, W, HWo, Wo, q_n, q_h, q_w, q_k, PAD, ALIGN_CORNERS, ACC, BLOCK_P
    )
    xa, ya, va, wa, _a1, _a2 = ta
    xb, yb, vb, wb, _b1, _b2 = tb
    xc, yc, vc, wc, _c1, _c2 = tc
    xd, yd, vd, wd, _d1, _d2 = td
    base = in_ptr + n * s_n
    pa = (base + ya * s_h + xa * s_w)[None, :]
    pb = (base + yb * s_h + xb * s_w)[None, :]
    pc = (base + yc * s_h + xc * s_w)[None, :]
    pd = (base + yd * s_h + xd * s_w)[None, :]
    out = out_ptr + (n * C * HWo + r)[None, :]
    nan = tl.where(undefined, float("nan"), 0.0)[None, :]
    und = undefined[None, :]
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = (c < C)[:, None]
        cs = c.to(tl.int64)[:, None] * s_c
        acc = _weighted(wa[None, :], tl.load(pa + cs, mask=va[None, :] & cm, other=0.0).to(ACC))
        acc += _weighted(wb[None, :], tl.load(pb + cs, mask=vb[None, :] & cm, other=0.0).to(ACC))
        acc += _weighted(wc[None, :], tl.load(pc + cs, mask=vc[None, :] & cm, other=0.0).to(ACC))
        acc += _weighted(wd[None, :], tl.load(pd + cs, mask=vd[None, :] & cm, other=0.0).to(ACC))
        acc = tl.where(und, nan, acc)
        tl.store(out + c.to(tl.int64)[:, None] * HWo, acc.to(out_ptr.dtype.element_ty), mask=pmask[None, :] & cm)


@triton.jit
def _grid_sample_bwd_kernel(
    gout_ptr,
    in_ptr,
    grid_ptr,
    gin_ptr,
    ggrid_ptr,
    P,
    C,
    H,
    W,
    HWo,
    Wo,
    s_n,
    s_c,
    s_h,
    s_w,
    g_n,
    g_c,
    g_h,
    g_w,
    q_n,
    q_h,
    q_w,
    q_k,
    r_n,
    r_h,
    r_w,
    r_k,
    PAD: tl.constexpr,
    ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr,
    NEED_INPUT: tl.constexpr,
    NEED_GRID: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """gin_ptr: (N, C, H, W) contiguous ACC buffer (atomics); ggrid_ptr: strides r_*."""
    n, r, oy, ox, pmask, fx, fy, undefined, ta, tb, tc, td = _point_taps(
        grid_ptr, P, H, W, HWo, Wo, q_n, q_h, q_w, q_k, PAD, ALIGN_CORNERS, ACC, BLOCK_P
    )
    xa, ya, va, wa, dxa, dya = ta
    xb, yb, vb, wb, dxb, dyb = tb
    xc, yc, vc, wc, dxc, dyc = tc
    xd, yd, vd, wd, dxd, dyd = td
    go = gout_ptr + (n * g_n + oy * g_h + ox * g_w)[None, :]
    HW = tl.cast(H, tl.int64) * W  # widened first: H * W in int32 wraps past 2^31
    # Per-tap dot products sum_c grad_out[c] * input_tap[c]; the grid gradient combines them.
    da = tl.zeros_like(fx)
    db = tl.zeros_like(fx)
    dc = tl.zeros_like(fx)
    dd = tl.zeros_like(fx)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = (c < C)[:, None]
        c64 = c.to(tl.int64)[:, None]
        g = tl.load(go + c64 * g_c, mask=pmask[None, :] & cm, other=0.0).to(ACC)
        if NEED_INPUT:
            # A zero-weight tap adds nothing and is not touched (an inf gradient stays out of it).
            gb = gin_ptr + (n * C * HW)[None, :] + c64 * HW
            tl.atomic_add(
                gb + (ya * W + xa)[None, :],
                _weighted(wa[None, :], g),
                mask=(va & (wa != 0))[None, :] & cm,
                sem="relaxed",
            )
            tl.atomic_add(
                gb + (yb * W + xb)[None, :],
                _weighted(wb[None, :], g),
                mask=(vb & (wb != 0))[None, :] & cm,
                sem="relaxed",
            )
            tl.atomic_add(
                gb + (yc * W + xc)[None, :],
                _weighted(wc[None, :], g),
                mask=(vc & (wc != 0))[None, :] & cm,
                sem="relaxed",
            )
            tl.atomic_add(
                gb + (yd * W + xd)[None, :],
                _weighted(wd[None, :], g),
                mask=(vd & (wd != 0))[None, :] & cm,
                sem="relaxed",
            )
        if NEED_GRID:
            base = in_ptr + (n * s_n)[None, :] + c64 * s_c
            da += tl.sum(
                g * tl.load(base + (ya * s_h + xa * s_w)[None, :], mask=va[None, :] & cm, other=0.0).to(ACC), 0
            )
            db += tl.sum(
                g * tl.load(base + (yb * s_h + xb * s_w)[None, :], mask=vb[None, :] & cm, other=0.0).to(ACC), 0
            )
            dc += tl.sum(
                g * tl.load(base + (yc * s_h + xc * s_w)[None, :], mask=vc[None, :] & cm, other=0.0).to(ACC), 0
            )
            dd += tl.sum(
                g * tl.load(base + (yd * s_h + xd * s_w)[None, :], mask=vd[None, :] & cm, other=0.0).to(ACC), 0
            )
    if NEED_GRID:
        # A tap whose derivative is 0 is not used (its dot product may be inf or NaN); the padding
        # factor multiplies the same way, so a clamped axis gets exactly 0.
        sx = _weighted(dxa, da) + _weighted(dxb, db) + _weighted(dxc, dc) + _weighted(dxd, dd)
        sy = _weighted(dya, da) + _weighted(dyb, db) + _weighted(dyc, dc) + _weighted(dyd, dd)
        nan = float("nan")
        sx = tl.where(undefined, nan, _weighted(fx, sx))
        sy = tl.where(undefined, nan, _weighted(fy, sy))
        ty = ggrid_ptr.dtype.element_ty
        o = ggrid_ptr + n * r_n + oy * r_h + ox * r_w
        tl.store(o, sx.to(ty), mask=pmask)
        tl.store(o + r_k, sy.to(ty), mask=pmask)
