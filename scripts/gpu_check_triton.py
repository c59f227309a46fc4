#!/usr/bin/env python
"""GPU check of the Triton backend: correctness against the reference at realistic shapes, then
timings against the PyTorch baselines (and the CUDA backend when it is built).

Run on a CUDA machine from the repository root::

    python scripts/gpu_check_triton.py            # GPU anchor shape (docs/PERFORMANCE.md), prints a table
    python scripts/gpu_check_triton.py --quick    # smaller shapes, fewer repetitions
    python scripts/gpu_check_triton.py --json out.json

Shapes (the GPU anchor of docs/PERFORMANCE.md): features N=4, C=64, pyramid 512^2, 256^2, 128^2, 64^2, flows ~4 px;
flow upsampling 4x2x256x256 -> 512x512; Charbonnier on 4x3x512x512. Times are medians of
CUDA-event timings in ms, measured in this process on this card (say which card when quoting).
Exit status: 0 when every check passed, 1 when one failed, 2 without a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import crossnet_fast as cf  # noqa: E402
from crossnet_fast import benchmarking  # noqa: E402
from crossnet_fast import reference as ref  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEVICE = "cuda"  # "cpu" only for --cpu-smoke (tiny shapes on the Triton interpreter)


# ---------------------------------------------------------------------------------------------
# Inputs


def pyramid(n, c, sizes, dtype, layout, seed=0, flow_px=4.0):
    """Features (N, C, s, s) and smooth pixel flows (N, 2, s, s) of about ``flow_px`` pixels."""
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    feats, flows = [], []
    for s in sizes:
        f = torch.randn(n, c, s, s, device=DEVICE, generator=g).to(dtype)
        if layout == "channels_last":
            f = f.contiguous(memory_format=torch.channels_last)
        coarse = torch.randn(n, 2, max(s // 16, 2), max(s // 16, 2), device=DEVICE, generator=g)
        v = F.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False) * flow_px
        v = v + 0.1 * torch.randn(n, 2, s, s, device=DEVICE, generator=g)  # fractional positions
        feats.append(f)
        flows.append(v)
    return feats, flows


def grid_from_flow(flow):
    """Normalised (N, H, W, 2) grid of grid_sample(align_corners=True) for a pixel flow."""
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    gx = 2 * (xs + flow[:, 0]) / (w - 1) - 1
    gy = 2 * (ys + flow[:, 1]) / (h - 1) - 1
    return torch.stack([gx, gy], dim=-1)


# ---------------------------------------------------------------------------------------------
# Timing


def time_ms(fn, reps, warmup=3):
    """Median CUDA-event time of ``fn()`` in ms (--cpu-smoke: one wall-clock call)."""
    if DEVICE == "cpu":
        return benchmarking.time_ms(fn, "cpu", repeat=1, warmup=0)
    return benchmarking.time_ms(fn, "cuda", repeat=reps, warmup=warmup)


def fwd_bwd(fn, inputs, grads):
    """A callable running forward then backward (torch.autograd.grad: no .grad accumulation)."""

    def run():
        outs = fn(*inputs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        torch.autograd.grad(outs, inputs, grads[: len(outs)])

    return run


# ---------------------------------------------------------------------------------------------
# Checks


class Report:
    def __init__(self):
        self.checks, self.timings = [], []

    def check(self, name, err, tol):
        ok = bool(err <= tol)  # False for NaN
        self.checks.append({"check": name, "err": float(err), "tol": float(tol), "ok": ok})
        print(f"  {'ok  ' if ok else 'FAIL'} {name:58s} err {err:.3e}  tol {tol:.3e}", flush=True)

    def time(self, op, variant, ms, baseline=None, base_ms=None, cuda_ms=None):
        row = {
            "op": op,
            "variant": variant,
            "triton_ms": ms,
            "baseline": baseline,
            "baseline_ms": base_ms,
            "cuda_ms": cuda_ms,
        }
        self.timings.append(row)


def rel_err(a, b):
    """max |a - b| / (max |b| + 1), NaN-aware (NaN anywhere gives inf)."""
    a, b = a.double(), b.double()
    d = (a - b).abs().max().item() if a.numel() else 0.0
    return float("inf") if d != d else d / (b.abs().max().item() + 1.0)


def grads_of(fn, inputs, grads):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    outs = fn(*inputs)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    return [o.detach() for o in outs], list(torch.autograd.grad(outs, inputs, grads[: len(outs)]))


def check_warp(rep, n, c, sizes, dtype_name, layout, padding):
    dtype = DTYPES[dtype_name]
    feats, flows = pyramid(n, c, sizes, dtype, layout)
    k = len(feats)
    g = torch.Generator(device=DEVICE).manual_seed(1)
    grads = [torch.randn(f.shape, device=DEVICE, generator=g).to(dtype) for f in feats]
    tri = lambda *xs: cf.multiscale_warp(list(xs[:k]), list(xs[k:]), padding, backend="triton")  # noqa: E731
    rf = lambda *xs: ref.multiscale_warp(list(xs[:k]), list(xs[k:]), padding)  # noqa: E731
    outs, gr = grads_of(tri, feats + flows, grads)
    routs, rgr = grads_of(rf, feats + flows, grads)
    tag = f"warp {padding} {dtype_name} {layout}"
    if dtype == torch.float32:
        rep.check(f"{tag} forward", max(rel_err(a, b) for a, b in zip(outs, routs)), 1e-5)
        rep.check(f"{tag} grad feats", max(rel_err(a, b) for a, b in zip(gr[:k], rgr[:k])), 1e-5)
        rep.check(f"{tag} grad flows", max(rel_err(a, b) for a, b in zip(gr[k:], rgr[k:])), 1e-4)
        return
    # Half precision: at most about the reference's own error against an fp64 evaluation.
    x64 = [t.double() for t in feats + flows]
    eouts, egr = grads_of(rf, x64, [gg.double() for gg in grads])
    for name, got, low, exact in (
        ("forward", outs, routs, eouts),
        ("grad feats", gr[:k], rgr[:k], egr[:k]),
        ("grad flows", gr[k:], rgr[k:], egr[k:]),
    ):
        err = max(rel_err(a, e) for a, e in zip(got, exact))
        ref_err = max(rel_err(a, e) for a, e in zip(low, exact))
        rep.check(f"{tag} {name} (vs fp64; ref err {ref_err:.1e})", err, 2 * ref_err + 1e-3)


def check_every_config(rep, n, c, sizes):
    """Issue 10 item 12: every launch configuration the timing may pick (not only the first),
    forced one at a time, against the reference (fp32 NCHW and channels_last, bf16 channels_last;
    the warp forward and both gradients, border padding)."""
    from crossnet_fast.triton import _common
    from crossnet_fast.triton import multiscale_warp as mw

    original = _common.choose_config
    try:
        for dtype_name, layout in (("fp32", "nchw"), ("fp32", "channels_last"), ("bf16", "channels_last")):
            dtype = DTYPES[dtype_name]
            for cfg in mw._configs(c, layout == "channels_last", dtype):
                _common.choose_config = lambda key, configs, launch, reset=None, _cfg=cfg: _cfg  # noqa: E731
                feats, flows = pyramid(n, c, sizes[:2], dtype, layout)
                k = len(feats)
                g = torch.Generator(device=DEVICE).manual_seed(2)
                grads = [torch.randn(f.shape, device=DEVICE, generator=g).to(dtype) for f in feats]
                tri = lambda *xs: cf.multiscale_warp(list(xs[:k]), list(xs[k:]), "border", backend="triton")  # noqa: E731
                rf = lambda *xs: ref.multiscale_warp(list(xs[:k]), list(xs[k:]), "border")  # noqa: E731
                outs, gr = grads_of(tri, feats + flows, grads)
                routs, rgr = grads_of(rf, feats + flows, grads)
                tol = 1e-4 if dtype == torch.float32 else 2e-2
                err = max(rel_err(a, b) for a, b in zip(outs + gr, routs + rgr))
                rep.check(f"warp {dtype_name} {layout} config {cfg}", err, tol)
    finally:
        _common.choose_config = original


def check_upsample(rep, n, size, scale, dtype_name):
    dtype = DTYPES[dtype_name]
    g = torch.Generator(device=DEVICE).manual_seed(2)
    flow = (4 * torch.randn(n, 2, size, size, device=DEVICE, generator=g)).to(dtype)
    grad = torch.randn(n, 2, size * scale, size * scale, device=DEVICE, generator=g).to(dtype)
    out, gr = grads_of(lambda f: cf.upsample_flow(f, scale, backend="triton"), [flow], [grad])
    rout, rgr = grads_of(lambda f: ref.upsample_flow(f, scale), [flow], [grad])
    interp = F.interpolate(flow.float(), scale_factor=scale, mode="bilinear", align_corners=False) * scale
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # half: about one ulp of the largest value
    rep.check(f"upsample x{scale} {dtype_name} forward", rel_err(out[0], rout[0]), tol)
    rep.check(f"upsample x{scale} {dtype_name} vs F.interpolate", rel_err(out[0], interp), tol)
    rep.check(f"upsample x{scale} {dtype_name} grad", rel_err(gr[0], rgr[0]), tol)
    rep.check(
        f"upsample x{scale} {dtype_name} backward deterministic",
        float(not torch.equal(*[torch.ops.crossnet_fast_triton.upsample_flow_backward(grad, scale) for _ in range(2)])),
        0.0,
    )


def check_resize(rep, n, size, out_size, dtype_name, align_corners):
    dtype = DTYPES[dtype_name]
    g = torch.Generator(device=DEVICE).manual_seed(5)
    flow = (4 * torch.randn(n, 2, size, size, device=DEVICE, generator=g)).to(dtype)
    grad = torch.randn(n, 2, *out_size, device=DEVICE, generator=g).to(dtype)
    run = lambda f: cf.resize_flow(f, out_size, align_corners=align_corners, backend="triton")  # noqa: E731
    out, gr = grads_of(run, [flow], [grad])
    rout, rgr = grads_of(lambda f: ref.resize_flow(f, out_size, align_corners), [flow], [grad])
    ratio = torch.tensor([out_size[1] / size, out_size[0] / size], device=DEVICE).view(1, 2, 1, 1)
    interp = F.interpolate(flow.float(), size=out_size, mode="bilinear", align_corners=align_corners) * ratio
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # half: about one ulp of the largest value
    tag = f"resize {size}->{out_size} align={align_corners} {dtype_name}"
    rep.check(f"{tag} forward", rel_err(out[0], rout[0]), tol)
    rep.check(f"{tag} vs F.interpolate", rel_err(out[0], interp), tol)
    rep.check(f"{tag} grad", rel_err(gr[0], rgr[0]), tol)
    rep.check(
        f"{tag} backward deterministic",
        float(
            not torch.equal(
                *[
                    torch.ops.crossnet_fast_triton.resize_flow_backward(grad, size, size, align_corners)
                    for _ in range(2)
                ]
            )
        ),
        0.0,
    )


def check_grid_sample(rep, n, c, size, dtype_name, padding, align_corners):
    """Compiled Triton grid_sample vs F.grid_sample in fp64 (forward, both gradients); the grid
    has another size than the input and points outside it."""
    dtype = DTYPES[dtype_name]
    g = torch.Generator(device=DEVICE).manual_seed(3)
    x = torch.randn(n, c, size, size, device=DEVICE, generator=g).to(dtype)
    grid = torch.rand(n, size // 2 + 3, size + 5, 2, device=DEVICE, generator=g) * 3 - 1.5
    grad = torch.randn(n, c, grid.shape[1], grid.shape[2], device=DEVICE, generator=g).to(dtype)
    out, gr = grads_of(
        lambda a, b: cf.grid_sample(a, b, "bilinear", padding, align_corners, backend="triton"), [x, grid], [grad]
    )
    want, wgr = grads_of(
        lambda a, b: F.grid_sample(a, b, "bilinear", padding, align_corners),
        [x.double(), grid.double()],
        [grad.double()],
    )
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    name = f"grid_sample {dtype_name} {padding} ac={align_corners}"
    rep.check(f"{name} forward", rel_err(out[0], want[0]), tol)
    rep.check(f"{name} grad input", rel_err(gr[0], wgr[0]), tol)
    rep.check(f"{name} grad grid", rel_err(gr[1], wgr[1]), 10 * tol)


def check_charbonnier(rep, shape, dtype_name):
    dtype = DTYPES[dtype_name]
    g = torch.Generator(device=DEVICE).manual_seed(3)
    pred = torch.rand(shape, device=DEVICE, generator=g).to(dtype)
    target = torch.rand(shape, device=DEVICE, generator=g).to(dtype)
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # half: about one ulp of the largest value
    for reduction in ("mean", "sum", "batch", "none"):
        gl = torch.ones(shape if reduction == "none" else (), device=DEVICE, dtype=dtype)
        out, gr = grads_of(lambda p, t: cf.charbonnier(p, t, 1e-3, reduction, backend="triton"), [pred, target], [gl])
        rout, rgr = grads_of(lambda p, t: ref.charbonnier(p, t, 1e-3, reduction), [pred, target], [gl])
        rep.check(f"charbonnier {reduction} {dtype_name} loss", rel_err(out[0], rout[0]), tol)
        rep.check(f"charbonnier {reduction} {dtype_name} grads", max(rel_err(a, b) for a, b in zip(gr, rgr)), tol)
    first = cf.charbonnier(pred, target, backend="triton")
    rep.check(
        f"charbonnier mean {dtype_name} deterministic",
        float(not torch.equal(first, cf.charbonnier(pred, target, backend="triton"))),
        0.0,
    )


# ---------------------------------------------------------------------------------------------
# Timings


def check_registration(rep):
    """opcheck on every Triton op and torch.compile(fullgraph=True) agreeing with eager, on DEVICE
    (issue 4 asks for both on a GPU; tests/ops/test_triton.py covers them under the CPU interpreter)."""
    ops = torch.ops.crossnet_fast_triton
    g = torch.Generator().manual_seed(3)

    def t(*shape, grad=True):
        return torch.randn(*shape, generator=g).to(DEVICE).requires_grad_(grad)

    feats, flows = [t(2, 8, 12, 10), t(2, 8, 6, 5)], [t(2, 2, 12, 10) * 2, t(2, 2, 6, 5)]
    flows = [v.detach().requires_grad_() for v in flows]
    pred, target = t(2, 3, 8, 8), t(2, 3, 8, 8)
    samples = [
        (ops.multiscale_warp.default, (feats, flows, "border")),
        (
            ops.multiscale_warp_backward.default,
            (
                [torch.ones_like(f) for f in feats],
                [f.detach() for f in feats],
                [v.detach() for v in flows],
                "zeros",
                [True, True],
            ),
        ),
        (ops.upsample_flow.default, (flows[0], 2)),
        (ops.upsample_flow_backward.default, (t(2, 2, 24, 20, grad=False), 2)),
        (ops.charbonnier.default, (pred, target, 1e-3, "batch", True)),
        (
            ops.charbonnier_backward.default,
            (torch.ones((), device=DEVICE), pred.detach(), target.detach(), 1e-3, "mean"),
        ),
    ]
    for op, args in samples:
        try:
            torch.library.opcheck(op, args)
            err = 0.0
        except Exception as exc:  # a failed opcheck is a failed check, with its reason printed
            print(f"  opcheck {op}: {type(exc).__name__}: {str(exc)[:200]}")
            err = float("inf")
        rep.check(f"opcheck {op.name()}", err, 0.0)

    def pipeline(fs, vs, p):
        w = cf.multiscale_warp(fs, vs, "border", backend="triton")
        up = cf.upsample_flow(vs[1], 2, backend="triton")
        return cf.charbonnier(w[0][:, :2] + up, p[:, :2, :12, :10].expand(2, 2, 12, 10), backend="triton")

    p_big = t(2, 3, 12, 10, grad=False)
    eager = pipeline(feats, flows, p_big)
    torch._dynamo.reset()
    compiled = torch.compile(pipeline, fullgraph=True)(feats, flows, p_big)
    ge = torch.autograd.grad(eager, feats + flows)
    gc = torch.autograd.grad(compiled, feats + flows)
    err = max([rel_err(compiled, eager)] + [rel_err(a, b) for a, b in zip(gc, ge)])
    rep.check("torch.compile(fullgraph=True) vs eager", err, 1e-5)


def _cuda_backend():
    return DEVICE == "cuda" and "cuda" in cf.available_backends("cuda")


def time_warp(rep, n, c, sizes, dtype_name, layout, padding, reps):
    dtype = DTYPES[dtype_name]
    feats, flows = pyramid(n, c, sizes, dtype, layout)
    k = len(feats)
    grads = [torch.randn_like(f) for f in feats]
    grids = [grid_from_flow(v).to(dtype) for v in flows]  # grid_sample wants the input's dtype
    pad_mode = padding
    tri = lambda *xs: cf.multiscale_warp(list(xs[:k]), list(xs[k:]), padding, backend="triton")  # noqa: E731
    cud = lambda *xs: cf.multiscale_warp(list(xs[:k]), list(xs[k:]), padding, backend="cuda")  # noqa: E731

    def gs(*xs):  # grid_sample baseline: the grid is precomputed (it is not part of the warp op)
        return [
            F.grid_sample(f, gr, mode="bilinear", padding_mode=pad_mode, align_corners=True)
            for f, gr in zip(xs[:k], xs[k:])
        ]

    x_tri = [t.detach().requires_grad_() for t in feats + flows]
    x_gs = [t.detach().requires_grad_() for t in feats + grids]
    variant = f"{padding} {dtype_name} {layout}"
    with torch.no_grad():
        t_f = time_ms(lambda: tri(*x_tri), reps)
        b_f = time_ms(lambda: gs(*x_gs), reps)
        c_f = time_ms(lambda: cud(*x_tri), reps) if _cuda_backend() else None
    rep.time("warp fwd", variant, t_f, "grid_sample", b_f, c_f)
    t_b = time_ms(fwd_bwd(tri, x_tri, grads), reps)
    b_b = time_ms(fwd_bwd(gs, x_gs, grads), reps)
    c_b = time_ms(fwd_bwd(cud, x_tri, grads), reps) if _cuda_backend() else None
    rep.time("warp fwd+bwd", variant, t_b, "grid_sample", b_b, c_b)


def time_upsample(rep, n, size, scale, reps):
    flow = torch.randn(n, 2, size, size, device=DEVICE, requires_grad=True)
    grad = torch.randn(n, 2, size * scale, size * scale, device=DEVICE)
    tri = lambda f: cf.upsample_flow(f, scale, backend="triton")  # noqa: E731
    base = lambda f: F.interpolate(f, scale_factor=scale, mode="bilinear", align_corners=False) * scale  # noqa: E731
    cud = lambda f: cf.upsample_flow(f, scale, backend="cuda")  # noqa: E731
    with torch.no_grad():
        rep.time(
            "upsample fwd",
            f"x{scale} fp32",
            time_ms(lambda: tri(flow), reps),
            "F.interpolate",
            time_ms(lambda: base(flow), reps),
            time_ms(lambda: cud(flow), reps) if _cuda_backend() else None,
        )
    rep.time(
        "upsample fwd+bwd",
        f"x{scale} fp32",
        time_ms(fwd_bwd(tri, [flow], [grad]), reps),
        "F.interpolate",
        time_ms(fwd_bwd(base, [flow], [grad]), reps),
        time_ms(fwd_bwd(cud, [flow], [grad]), reps) if _cuda_backend() else None,
    )


def time_charbonnier(rep, shape, reps):
    pred = torch.rand(shape, device=DEVICE, requires_grad=True)
    target = torch.rand(shape, device=DEVICE)
    one = torch.ones((), device=DEVICE)
    tri = lambda p: cf.charbonnier(p, target, 1e-3, "mean", backend="triton")  # noqa: E731
    naive = lambda p: torch.sqrt((p - target) ** 2 + 1e-6).mean()  # noqa: E731
    cud = lambda p: cf.charbonnier(p, target, 1e-3, "mean", backend="cuda")  # noqa: E731
    with torch.no_grad():
        rep.time(
            "charbonnier fwd",
            "mean fp32",
            time_ms(lambda: tri(pred), reps),
            "eager",
            time_ms(lambda: naive(pred), reps),
            time_ms(lambda: cud(pred), reps) if _cuda_backend() else None,
        )
    rep.time(
        "charbonnier fwd+bwd",
        "mean fp32",
        time_ms(fwd_bwd(tri, [pred], [one]), reps),
        "eager",
        time_ms(fwd_bwd(naive, [pred], [one]), reps),
        time_ms(fwd_bwd(cud, [pred], [one]), reps) if _cuda_backend() else None,
    )


def print_table(rep):
    print(
        f"\n{'op':22s} {'variant':28s} {'triton ms':>10s} {'baseline':>14s} {'base ms':>9s} "
        f"{'speedup':>8s} {'cuda ms':>9s} {'tri/cuda':>8s}"
    )
    for r in rep.timings:
        speed = r["baseline_ms"] / r["triton_ms"] if r["baseline_ms"] else float("nan")
        cuda = f"{r['cuda_ms']:9.3f}" if r["cuda_ms"] is not None else f"{'-':>9s}"
        ratio = f"{r['triton_ms'] / r['cuda_ms']:8.2f}" if r["cuda_ms"] else f"{'-':>8s}"
        print(
            f"{r['op']:22s} {r['variant']:28s} {r['triton_ms']:10.3f} {r['baseline']:>14s} "
            f"{r['baseline_ms']:9.3f} {speed:7.2f}x {cuda} {ratio}"
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller shapes and fewer repetitions")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per measurement (median)")
    ap.add_argument("--no-timing", action="store_true", help="only the correctness checks")
    ap.add_argument("--json", help="also write the checks and timings to this JSON file")
    ap.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="run this script's code paths on tiny CPU tensors (needs TRITON_INTERPRET=1); "
        "checks the script itself, not the GPU",
    )
    args = ap.parse_args(argv)

    global DEVICE
    if args.cpu_smoke:
        if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
            print("gpu_check_triton: --cpu-smoke needs TRITON_INTERPRET=1", file=sys.stderr)
            return 2
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("gpu_check_triton: no CUDA device visible; nothing checked", file=sys.stderr)
        return 2
    elif os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("gpu_check_triton: unset TRITON_INTERPRET (this checks the compiled kernels)", file=sys.stderr)
        return 2
    import triton

    device_name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (Triton interpreter smoke run)"
    print(
        f"device: {device_name}  torch {torch.__version__}  triton {triton.__version__}  "
        f"cuda backend: {'yes' if _cuda_backend() else 'no'}"
    )
    n, c = (2, 32) if args.quick else (4, 64)
    sizes = [128, 64, 32, 16] if args.quick else [512, 256, 128, 64]
    reps = min(args.reps, 5) if args.quick else args.reps
    if args.cpu_smoke:
        n, c, sizes, reps = 1, 3, [8, 4], 1
    rep = Report()

    print("correctness (vs crossnet_fast.reference):")
    # Default configs only while checking: autotuning compiles every config of every key.
    saved_autotune = os.environ.get("CROSSNET_FAST_TRITON_AUTOTUNE")
    os.environ["CROSSNET_FAST_TRITON_AUTOTUNE"] = "0"
    for padding in ("border", "zeros"):
        for layout in ("nchw", "channels_last"):
            for dt in ("fp32", "bf16") + (("fp16",) if layout == "nchw" else ()):
                check_warp(rep, n, c, sizes, dt, layout, padding)
                if DEVICE == "cuda":
                    torch.cuda.empty_cache()
    for dt in ("fp32", "bf16"):
        check_upsample(rep, n, sizes[1], 2, dt)
    check_upsample(rep, n, sizes[-2], 4, "fp32")
    for align_corners in (False, True):
        for dt in ("fp32", "bf16"):
            check_resize(rep, n, sizes[-2], (sizes[-2] * 8, sizes[-2] * 8), dt, align_corners)  # RAFT's x8
        check_resize(rep, n, sizes[1], (sizes[1] // 3 + 1, sizes[1] + 5), "fp32", align_corners)  # down and up
    for dt in ("fp32", "fp16", "bf16"):
        check_charbonnier(rep, (n, 3, sizes[0], sizes[0]), dt)
    for padding in ("zeros", "border", "reflection"):
        for align_corners in (False, True):
            for dt in ("fp32", "bf16"):
                check_grid_sample(rep, n, c, sizes[1], dt, padding, align_corners)
    check_registration(rep)
    check_every_config(rep, n, c, sizes)

    if saved_autotune is None:
        os.environ.pop("CROSSNET_FAST_TRITON_AUTOTUNE", None)
    else:
        os.environ["CROSSNET_FAST_TRITON_AUTOTUNE"] = saved_autotune
    if not args.no_timing:
        print("\ntiming (median of CUDA events; the first call of each key autotunes)...", flush=True)
        for padding, dt, layout in (
            ("border", "fp32", "nchw"),
            ("border", "fp32", "channels_last"),
            ("zeros", "fp32", "nchw"),
            ("border", "bf16", "channels_last"),
        ):
            time_warp(rep, n, c, sizes, dt, layout, padding, reps)
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
        time_upsample(rep, n, sizes[1], 2, reps)
        time_charbonnier(rep, (n, 3, sizes[0], sizes[0]), reps)
        print_table(rep)

    failed = [ch["check"] for ch in rep.checks if not ch["ok"]]
    print(
        f"\n{len(rep.checks) - len(failed)}/{len(rep.checks)} checks passed" + (f"; FAILED: {failed}" if failed else "")
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "device": device_name,
                    "torch": torch.__version__,
                    "triton": triton.__version__,
                    "checks": rep.checks,
                    "timings": rep.timings,
                },
                fh,
                indent=1,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
