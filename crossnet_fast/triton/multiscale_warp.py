"""Triton multiscale backward warp: every scale of a pyramid in one launch, forward and backward.

This file holds the launchers (layout handling, metadata table, config choice); the device code
is in :mod:`._warp_kernels`. Work split: one program owns BLOCK_P output pixels of one scale and loops over that scale's
channels in chunks of BLOCK_C. Programs are numbered across scales; a per-scale row of an int64
metadata table (sizes, strides, element offsets from one base pointer per tensor role) tells a
program which scale it serves, so the launch needs no per-scale pointer arguments.

Layouts: the tile is [BLOCK_P, BLOCK_C] with channels fastest for channels_last inputs (each tap is
a contiguous row of channels) and [BLOCK_C, BLOCK_P] with pixels fastest for NCHW (neighbouring
pixels are neighbours in memory). Any strides work; channels_last mode additionally relies on a
channel stride of 1, which the launcher guarantees (copying the odd tensor out).

Backward: the feature gradient is scattered with ``tl.atomic_add`` into a zeroed fp32 (fp64 for
fp64) buffer; the flow gradient is reduced over channels inside the program (one owner per pixel,
no atomics) and stored in the flow's dtype.
"""

from __future__ import annotations

import warnings

import torch
import triton

from . import _common
from ._warp_kernels import _warp_bwd_kernel, _warp_fwd_kernel

# (BLOCK_P, BLOCK_C, num_warps). channels_last tiles are channel-major rows; NCHW tiles are long
# pixel runs. The first entry is the untimed default.
# Kept short: every entry is one more compilation (1-3 s) per new shape/dtype/layout key.
# At most one NCHW pixel per thread in the backward: (256, 4, 4) held two and spilled ~1 KB per
# thread (ptxas, fp32/fp16; scripts/triton_compile_check.py), (256, 4, 8) does not.
_CONFIGS_CL = [(16, 64, 4), (32, 32, 4), (8, 64, 2), (32, 64, 8)]
_CONFIGS_NCHW = [(128, 8, 4), (256, 4, 8), (64, 16, 4), (256, 8, 8)]
_INTERP_CONFIG = (64, 16, 1)  # the interpreter runs programs one by one: few, wide ones are fastest


def _configs(max_c: int, cl: bool, dtype: torch.dtype = torch.float32) -> list[dict]:
    """The configurations to time for up to ``max_c`` channels. fp64 tiles take a quarter of the
    channels (twice the registers per value: full fp64 channels_last tiles spilled up to 1.9 KB
    per thread in ptxas, half-width ones 136 B; scripts/triton_compile_check.py)."""
    if _common.interpreting():
        bp, bc, nw = _INTERP_CONFIG
        return [dict(BLOCK_P=bp, BLOCK_C=min(bc, _common.next_pow2(max_c)), num_warps=nw)]
    cap = _common.next_pow2(max(max_c, 1))
    seen, out = set(), []
    for bp, bc, nw in _CONFIGS_CL if cl else _CONFIGS_NCHW:
        bc = min(bc if dtype != torch.float64 else max(bc // 4, 1), cap)
        if (bp, bc, nw) not in seen:
            seen.add((bp, bc, nw))
            out.append(dict(BLOCK_P=bp, BLOCK_C=bc, num_warps=nw))
    return out


def _is_cl(t: torch.Tensor) -> bool:
    return t.stride(1) == 1 or t.size(1) == 1


def _channels_last_mode(feats) -> bool:
    """Use channels-major tiles when the first scale is channels_last (and not also NCHW)."""
    f = feats[0]
    return f.size(1) > 1 and f.is_contiguous(memory_format=torch.channels_last) and not f.is_contiguous()


def _ready(t: torch.Tensor, cl: bool) -> torch.Tensor:
    """``t`` itself when the kernel can address it in this mode, else a copy it can."""
    if cl and not _is_cl(t):
        return t.contiguous(memory_format=torch.channels_last)
    return t


def _align(cl: bool, roles) -> int:
    """Largest of 8/4/2/1 dividing every channel count, offset and pixel stride of the channel-major
    roles (features, output/incoming gradient, feature gradient) in channels_last mode; 1 in NCHW
    mode. The kernels turn it into ``tl.multiple_of`` hints so that channel rows load as vectors.
    """
    if not cl or _common.interpreting():
        return 1
    for v in (8, 4, 2):
        ok = True
        for ts in roles:
            if not ts:
                continue
            for t, off in zip(ts, _common.element_offsets(ts[0], ts)):
                dims_ok = all(t.stride(d) % v == 0 for d in (0, 2, 3) if t.size(d) > 1)
                if not (dims_ok and off % v == 0 and t.size(1) % v == 0 and ts[0].data_ptr() % 16 == 0):
                    ok = False
                    break
            if not ok:
                break
        if ok:
            return v
    return 1


def _row_part(t: torch.Tensor, off: int) -> list[int]:
    return [t.stride(0), t.stride(1), t.stride(2), t.stride(3), off]


_META_CACHE_SIZE = 64
_meta_cache: dict = {}
_captured_tables: dict = {}  # tables a CUDA graph may replay: kept for the life of the process


def _meta(feats, flows, gouts, gfeats, gflows, device) -> torch.Tensor:
    """The int64 (S, 29) metadata table; absent roles (None lists) get zero columns."""

    def offsets(ts):
        return _common.element_offsets(ts[0], ts) if ts else None

    roles = [feats, flows, gouts, gfeats, gflows]
    offs = [offsets(ts) for ts in roles]
    rows = []
    for s, f in enumerate(feats):
        n, c, h, w = f.shape
        row = [n * h * w, c, h, w]
        for ts, off in zip(roles, offs):
            row += _row_part(ts[s], off[s]) if ts else [0] * 5
        rows.append(tuple(row))
    # The table depends on shapes, strides and relative addresses only; training loops meet the
    # same ones every step (the caching allocator reuses blocks), so reuse the device copy
    # instead of paying a host-to-device copy per launch. Tables are never written: sharing is safe.
    # Under CUDA-graph capture a replay reads the table long after this call, so a table used in
    # a capture moves to _captured_tables and is never evicted. One built during capture is copied
    # from pinned host memory (a capturable asynchronous copy; a pageable one is not), and the
    # pinned buffer is kept too: each replay repeats the copy from it.
    key = (device, tuple(rows))
    hit = _captured_tables.get(key)
    if hit is not None:
        return hit[0]
    table = _meta_cache.get(key)
    if _common.capturing():
        if table is None:
            host = torch.tensor(rows, dtype=torch.int64).pin_memory()
            table = host.to(device, non_blocking=True)
        else:
            host = None
            del _meta_cache[key]
        _captured_tables[key] = (table, host)
        return table
    if table is None:
        table = torch.tensor(rows, dtype=torch.int64).to(device)
        if len(_meta_cache) >= _META_CACHE_SIZE:
            _meta_cache.pop(next(iter(_meta_cache)))
        _meta_cache[key] = table
    return table


def _common_flows(flows):
    """Flows in one dtype (the first scale's), so one base pointer serves them all."""
    dt = flows[0].dtype
    return [v if v.dtype == dt else v.to(dt) for v in flows]


def _alert_not_deterministic(what: str) -> None:
    """Follow torch.use_deterministic_algorithms: raise (or warn when warn_only) for atomics."""
    if not torch.are_deterministic_algorithms_enabled():
        return
    msg = (
        f"{what} accumulates the feature gradient with atomic adds and is not deterministic; "
        "use another backend or call torch.use_deterministic_algorithms(False)"
    )
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(msg, stacklevel=3)
    else:
        raise RuntimeError(msg)


def multiscale_warp(feats: list[torch.Tensor], flows: list[torch.Tensor], padding: str) -> list[torch.Tensor]:
    """Triton implementation of ``crossnet_fast_triton::multiscale_warp``.

    Args:
        feats: S tensors (N, C_s, H_s, W_s), one float dtype, any layout.
        flows: S tensors (N, 2, H_s, W_s), float, pixel displacement (channel 0 = x).
        padding: "border" or "zeros".

    Returns:
        S tensors ``empty_like(feats[s])`` (same dtype and layout) holding the warped features.
    """
    if not feats:
        return []
    _common.check_device("multiscale_warp", *feats, *flows)
    outs = [torch.empty_like(f) for f in feats]
    cl = _channels_last_mode(feats)
    kfeats = [_ready(f, cl) for f in feats]
    kouts = [o if not cl or _is_cl(o) else torch.empty_like(k) for o, k in zip(outs, kfeats)]
    kflows = _common_flows(flows)
    meta = _meta(kfeats, kflows, kouts, None, None, feats[0].device)
    total = [f.size(0) * f.size(2) * f.size(3) for f in feats]
    max_c = max(f.size(1) for f in feats)
    acc = _common.acc_dtype(feats[0].dtype)
    align = _align(cl, [kfeats, kouts])

    def launch(cfg):
        grid = (sum(triton.cdiv(p, cfg["BLOCK_P"]) for p in total),)
        if grid[0] == 0:
            return
        _warp_fwd_kernel[grid](
            kfeats[0],
            kflows[0],
            kouts[0],
            meta,
            len(feats),
            BORDER=padding == "border",
            CL=cl,
            ACC=acc,
            ALIGN=align,
            BLOCK_P=cfg["BLOCK_P"],
            BLOCK_C=cfg["BLOCK_C"],
            num_warps=cfg["num_warps"],
        )

    key = (
        "warp_fwd",
        feats[0].device.index,
        feats[0].dtype,
        kflows[0].dtype,
        cl,
        align,
        padding,
        len(feats),
        _common.next_pow2(sum(total)),
        max_c,
    )
    launch(_common.choose_config(key, _configs(max_c, cl, feats[0].dtype), launch))
    for o, k in zip(outs, kouts):
        if o is not k:
            o.copy_(k)
    return outs


def multiscale_warp_backward(grad_outs, feats, flows, padding: str, output_mask):
    """Triton implementation of ``crossnet_fast_triton::multiscale_warp_backward``.

    Args:
        grad_outs: S tensors shaped like ``feats[s]`` (any layout), d(loss)/d(out[s]).
        feats, flows, padding: as in :func:`multiscale_warp`.
        output_mask: [need_grad_feats, need_grad_flows].

    Returns:
        (grad_feats, grad_flows): lists of ``empty_like(feats[s])`` / ``empty_like(flows[s])``
        tensors (an empty list for a gradient that is not needed). Feature gradients are
        accumulated in fp32 (fp64 for fp64) with atomics; flow gradients come back in each
        flow's own dtype.
    """
    need_feat, need_flow = bool(output_mask[0]), bool(output_mask[1])
    if not feats or not (need_feat or need_flow):
        return [], []
    _common.check_device("multiscale_warp_backward", *grad_outs, *feats, *flows)
    if need_feat:
        # fp32 atomics add in arrival order: raises under torch.use_deterministic_algorithms(True),
        # as grid_sample's backward does.
        _alert_not_deterministic("crossnet_fast_triton::multiscale_warp_backward")
    cl = _channels_last_mode(feats)
    kfeats = [_ready(f, cl) for f in feats]
    kgouts = [_ready(g, cl) for g in grad_outs]
    # Every incoming gradient in the features' dtype first (as every backend does; one base pointer
    # per role also needs one dtype).
    kgouts = [g if g.dtype == kfeats[0].dtype else g.to(kfeats[0].dtype) for g in kgouts]
    kflows = _common_flows(flows)
    acc_t = _common.acc_torch_dtype(feats[0].dtype)
    # The feature gradient is accumulated with atomics: zeroed buffers in the accumulation dtype.
    gbufs = [torch.zeros_like(f, dtype=acc_t) for f in kfeats] if need_feat else None
    gflows = [torch.empty_like(v) for v in kflows] if need_flow else None
    meta = _meta(kfeats, kflows, kgouts, gbufs, gflows, feats[0].device)
    total = [f.size(0) * f.size(2) * f.size(3) for f in feats]
    max_c = max(f.size(1) for f in feats)
    # Placeholders for the absent role: never dereferenced (NEED_* is False), any pointer will do.
    gfeat_arg = gbufs[0] if need_feat else torch.empty(1, dtype=acc_t, device=feats[0].device)
    gflow_arg = gflows[0] if need_flow else kflows[0]
    align = _align(cl, [kfeats, kgouts, gbufs])

    def launch(cfg):
        grid = (sum(triton.cdiv(p, cfg["BLOCK_P"]) for p in total),)
        if grid[0] == 0:
            return
        _warp_bwd_kernel[grid](
            kgouts[0],
            kfeats[0],
            kflows[0],
            gfeat_arg,
            gflow_arg,
            meta,
            len(feats),
            BORDER=padding == "border",
            CL=cl,
            ACC=_common.acc_dtype(feats[0].dtype),
            NEED_FEAT=need_feat,
            NEED_FLOW=need_flow,
            ALIGN=align,
            BLOCK_P=cfg["BLOCK_P"],
            BLOCK_C=cfg["BLOCK_C"],
            num_warps=cfg["num_warps"],
        )

    def reset():
        for b in gbufs or []:
            b.zero_()

    key = (
        "warp_bwd",
        feats[0].device.index,
        feats[0].dtype,
        kflows[0].dtype,
        cl,
        align,
        padding,
        need_feat,
        need_flow,
        len(feats),
        _common.next_pow2(sum(total)),
        max_c,
    )
    launch(_common.choose_config(key, _configs(max_c, cl, feats[0].dtype), launch, reset))

    # Hand the kernel's buffers out directly when they already are what the fake promises
    # (empty_like of the input: same dtype, same strides); otherwise one cast/relayout copy.
    grad_feats = []
    if need_feat:
        for f, kf, b in zip(feats, kfeats, gbufs):
            grad_feats.append(b if (b.dtype == f.dtype and kf is f) else torch.empty_like(f).copy_(b))
    grad_flows = []
    if need_flow:
        for v, kv, gv in zip(flows, kflows, gflows):
            grad_flows.append(gv if kv is v else torch.empty_like(v).copy_(gv))
    return grad_feats, grad_flows
