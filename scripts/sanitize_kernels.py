#!/usr/bin/env python
"""Every CUDA and Triton kernel once on small inputs, for compute-sanitizer (scripts/gpu_check.sh).

    compute-sanitizer --tool memcheck  --error-exitcode 1 python scripts/sanitize_kernels.py
    compute-sanitizer --tool racecheck --error-exitcode 1 python scripts/sanitize_kernels.py --backward-only

Covers: the warp forward and backward (both gradients, each alone, atomic and deterministic
feature gradient) for fp32/fp16/bf16/fp64, NCHW and channels_last, both paddings, a three-scale
pyramid with odd sizes, NaN / inf / far flows and an inf feature at a corner; upsample_flow and
resize_flow forward and backward (down, up, one-row and one-column sizes, both conventions); the
Charbonnier loss (every reduction, fused and unfused gradient); grid_sample forward and backward
(every padding and align_corners, each gradient alone, atomic and, on CUDA,
deterministic input gradient, fp32/bf16/fp64, NaN / inf / far grid points, an empty grid); the
correlation forward and both gathers (each gradient alone too; fp32/fp16/bf16/fp64, NCHW and
channels_last, windows wider than the image, dilation and stride, an inf feature, empty batches). Exit status 0
when every call returned (the sanitizer's own exit code reports what it found).
"""

from __future__ import annotations

import argparse
import sys

import torch

sys.path.insert(0, __file__.rsplit("/scripts/", 1)[0])
import crossnet_fast as cf  # noqa: E402


def pyramid(dtype, layout, gen):
    sizes = [(2, 5, 9, 13), (2, 5, 5, 7), (2, 16, 3, 4)]
    feats, flows = [], []
    for n, c, h, w in sizes:
        f = torch.randn(n, c, h, w, generator=gen, device="cuda").to(dtype)
        v = torch.randn(n, 2, h, w, generator=gen, device="cuda") * 3
        if layout == "channels_last":
            f = f.contiguous(memory_format=torch.channels_last)
        feats.append(f)
        flows.append(v)
    flows[0][0, 0, 0, 0] = float("nan")
    flows[0][0, 1, 1, 1] = float("inf")
    flows[0][1, 0, 2, 2] = -1e30
    feats[0][0, 0, 0, 0] = float("inf")
    return feats, flows


def warp_calls(backend, backward_only):
    gen = torch.Generator(device="cuda").manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        for layout in ("nchw", "channels_last"):
            for padding in ("border", "zeros"):
                feats, flows = pyramid(dtype, layout, gen)
                for need in ((True, True), (True, False), (False, True)):
                    fs = [f.detach().requires_grad_(need[0]) for f in feats]
                    vs = [v.detach().requires_grad_(need[1]) for v in flows]
                    with torch.set_grad_enabled(True):
                        outs = cf.multiscale_warp(fs, vs, padding, backend=backend)
                        if not backward_only or any(need):
                            sum(o.float().nan_to_num().sum() for o in outs).backward()
                    if backend == "cuda" and need[0]:
                        torch.use_deterministic_algorithms(True)
                        try:
                            fs2 = [f.detach().requires_grad_() for f in feats]
                            outs = cf.multiscale_warp(fs2, flows, padding, backend=backend)
                            sum(o.float().nan_to_num().sum() for o in outs).backward()
                        finally:
                            torch.use_deterministic_algorithms(False)
    torch.cuda.synchronize()


def other_calls(backend):
    gen = torch.Generator(device="cuda").manual_seed(1)
    for dtype in (torch.float32, torch.bfloat16):
        flow = (torch.randn(3, 2, 5, 7, generator=gen, device="cuda") * 2).to(dtype).requires_grad_()
        for scale in (1, 2, 3):
            cf.upsample_flow(flow, scale, backend=backend).sum().backward()
        # resize_flow (and upsample_flow with align_corners=True): down, up, one row and one column.
        for size in ((2, 3), (11, 23), (1, 9), (6, 1)):
            for align_corners in (False, True):
                cf.resize_flow(flow, size, align_corners=align_corners, backend=backend).sum().backward()
        cf.upsample_flow(flow, 8, align_corners=True, backend=backend).sum().backward()
        row = (torch.randn(2, 2, 1, 6, generator=gen, device="cuda")).to(dtype).requires_grad_()
        cf.upsample_flow(row, 2, backend=backend).sum().backward()  # H = 1 (a Triton constexpr 1)
        pred = torch.rand(2, 3, 17, 19, generator=gen, device="cuda").to(dtype).requires_grad_()
        target = torch.rand(2, 3, 17, 19, generator=gen, device="cuda").to(dtype)
        for reduction in ("mean", "sum", "batch", "none"):
            cf.charbonnier(pred, target, 1e-3, reduction, backend=backend).sum().backward()
            t = target.clone().requires_grad_()  # the unfused backward (only target needs a gradient)
            cf.charbonnier(pred.detach(), t, 1e-3, reduction, backend=backend).sum().backward()
    torch.cuda.synchronize()


def grid_sample_calls(backend):
    gen = torch.Generator(device="cuda").manual_seed(2)
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        x = torch.randn(2, 5, 9, 13, generator=gen, device="cuda").to(dtype)
        grid = (torch.rand(2, 7, 11, 2, generator=gen, device="cuda") * 4 - 2).to(dtype)
        grid[0, 0, 0, 0] = float("nan")
        grid[0, 1, 1, 1] = float("inf")
        grid[1, 2, 2, 0] = -1e30
        for padding in ("zeros", "border", "reflection"):
            for align_corners in (False, True):
                for need in ((True, True), (True, False), (False, True)):
                    for deterministic in (False, True) if backend == "cuda" and need[0] else (False,):
                        torch.use_deterministic_algorithms(deterministic)
                        try:
                            xi = x.detach().requires_grad_(need[0])
                            gi = grid.detach().requires_grad_(need[1])
                            out = cf.grid_sample(xi, gi, "bilinear", padding, align_corners, backend=backend)
                            out.float().nan_to_num().sum().backward()
                        finally:
                            torch.use_deterministic_algorithms(False)
        empty = torch.zeros(2, 0, 3, 2, device="cuda", dtype=dtype)
        cf.grid_sample(x.detach().requires_grad_(), empty, "bilinear", "zeros", False, backend=backend).sum().backward()
    torch.cuda.synchronize()


def correlation_calls(backend):
    gen = torch.Generator(device="cuda").manual_seed(3)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        for layout in ("nchw", "channels_last"):
            f1 = torch.randn(2, 5, 9, 13, generator=gen, device="cuda").to(dtype)
            f2 = torch.randn(2, 5, 9, 13, generator=gen, device="cuda").to(dtype)
            f2[0, 1, 0, 0] = float("inf")
            if layout == "channels_last":
                f1, f2 = (t.contiguous(memory_format=torch.channels_last) for t in (f1, f2))
            for d, dil, s in ((4, 1, 1), (2, 3, 2), (7, 2, 3)):
                for need in ((True, True), (True, False), (False, True)):
                    a, b = f1.detach().requires_grad_(need[0]), f2.detach().requires_grad_(need[1])
                    out = cf.correlation(a, b, d, dilation=dil, stride=s, backend=backend)
                    out.float().nan_to_num().sum().backward()
        empty = torch.zeros(0, 5, 9, 13, device="cuda", dtype=dtype, requires_grad=True)
        cf.correlation(empty, empty, 2, backend=backend).sum().backward()
    torch.cuda.synchronize()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backward-only", action="store_true", help="only the calls with a backward (racecheck)")
    ap.add_argument("--backends", default="cuda,triton")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("sanitize_kernels: no CUDA device", file=sys.stderr)
        return 2
    for backend in args.backends.split(","):
        if backend not in cf.available_backends():
            print(f"sanitize_kernels: backend {backend} not available, skipped")
            continue
        warp_calls(backend, args.backward_only)
        other_calls(backend)
        grid_sample_calls(backend)
        correlation_calls(backend)
        print(f"sanitize_kernels: {backend} done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
