"""``crossnet-fast ops-bench``: time every op against its PyTorch baseline and print a table."""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from .. import backend as backend_mod
from .. import ops
from ..benchmarking import grid_sample_pyramid, naive_charbonnier, pyramid_inputs, time_ms


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ops-bench",
        help="time the fused ops against grid_sample / interpolate / the naive loss",
        description="Times forward and forward+backward of each op on a CrossNet-like pyramid "
        "(N x C x size^2 .. (size/8)^2) against its PyTorch baseline, on one device, and prints "
        "a table of medians and speed-ups. For the README's figures use benchmarks/.",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backend", default="auto", help="auto, cuda, triton, cpu or reference")
    p.add_argument("--batch", type=int, default=1, help="N (default 1)")
    p.add_argument("--channels", type=int, default=64, help="C (default 64)")
    p.add_argument("--size", type=int, default=128, help="finest pyramid level, pixels (default 128)")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    return p


def _fwd_bwd(fn, inputs):
    def step():
        outs = fn(*inputs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        torch.autograd.grad(outs, inputs_flat(inputs), [torch.ones_like(o) for o in outs])

    return step


def inputs_flat(inputs):
    flat = []
    for x in inputs:
        flat.extend(x if isinstance(x, list) else [x])
    return flat


def run(args) -> int:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but no CUDA device is visible")
    if args.size < 16 or args.size % 8:
        raise ValueError(f"--size must be a multiple of 8 and >= 16, got {args.size}")
    dtype = getattr(torch, args.dtype)
    chosen = backend_mod.resolve("multiscale_warp", device, args.backend)
    feats, flows = pyramid_inputs(args.batch, args.channels, args.size, 4, device=device, dtype=dtype)
    feats = [f.requires_grad_() for f in feats]
    flows = [v.requires_grad_() for v in flows]
    flow = torch.randn(4, 2, args.size, args.size, device=device, requires_grad=True)
    pred = torch.rand(4, 3, 2 * args.size, 2 * args.size, device=device, dtype=dtype, requires_grad=True)
    target = torch.rand_like(pred)

    rows = [
        (
            "multiscale_warp fwd",
            lambda: ops.multiscale_warp(feats, flows, backend=chosen),
            lambda: grid_sample_pyramid(feats, flows),
            "grid_sample border",
        ),
        (
            "multiscale_warp fwd+bwd",
            _fwd_bwd(lambda f, v: ops.multiscale_warp(f, v, backend=chosen), (feats, flows)),
            _fwd_bwd(grid_sample_pyramid, (feats, flows)),
            "grid_sample border",
        ),
        (
            "upsample_flow x2 fwd+bwd",
            _fwd_bwd(lambda v: ops.upsample_flow(v, 2, backend=chosen), (flow,)),
            _fwd_bwd(lambda v: F.interpolate(v, scale_factor=2, mode="bilinear") * 2, (flow,)),
            "F.interpolate x 2",
        ),
        (
            "charbonnier fwd+bwd",
            _fwd_bwd(lambda p: ops.charbonnier(p, target, backend=chosen), (pred,)),
            _fwd_bwd(lambda p: naive_charbonnier(p, target), (pred,)),
            "naive formula",
        ),
    ]
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"backend {chosen}, {args.dtype}, pyramid {args.batch}x{args.channels}x{args.size}^2..{args.size // 8}^2"
    )
    print("| op | crossnet_fast ms | baseline | baseline ms | speed-up |")
    print("|---|---|---|---|---|")
    for name, ours, base, base_name in rows:
        t_ours = time_ms(ours, device, args.repeat)
        t_base = time_ms(base, device, args.repeat)
        print(f"| {name} | {t_ours:.3f} | {base_name} | {t_base:.3f} | {t_base / t_ours:.2f}x |")
    return 0
