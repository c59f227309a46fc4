"""Workloads shared by benchmarks/bench_ops_cuda.py (pytest-benchmark) and scripts/gpu_bench.py.

Each workload is a zero-argument callable that runs one timed iteration on the current stream, plus
the minimum bytes it must move (used for GB/s and the fraction of copy bandwidth). Shapes:

* warp pyramid: N images, C channels, square scales ``sizes`` (anchor: 4 x 64 x 512^2..64^2),
  features fp32 or bf16, flows fp32 (N, 2, H, W) in pixels, smooth, a few pixels in size.
* upsample_flow: (N, 2, H, W) fp32 flow, x``scale``.
* charbonnier: (4, 3, 512, 512) fp32 pred/target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import crossnet_fast
from crossnet_fast import reference
from crossnet_fast.benchmarking import time_ms  # noqa: F401  (re-exported for gpu_bench.py)

ANCHOR = dict(n=4, c=64, sizes=(512, 256, 128, 64))
LARGE = dict(n=4, c=64, sizes=(1024, 512, 256, 128))


@dataclass
class Workload:
    name: str
    fn: Callable[[], object]
    bytes_moved: int  # minimum DRAM traffic of one iteration (reads + writes), bytes


def smooth_flow(n: int, h: int, w: int, magnitude: float = 4.0, seed: int = 0) -> torch.Tensor:
    """(n, 2, h, w) fp32 CUDA flow: bilinear upsampling of 8x8 random vectors, |v| <= magnitude px."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    coarse = (torch.rand(n, 2, 8, 8, generator=g) * 2 - 1) * magnitude
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).cuda().contiguous()


def pyramid(n, c, sizes, dtype=torch.float32, channels_last=False, seed=0):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    feats = [torch.randn(n, c, s, s, device="cuda", dtype=dtype).contiguous(memory_format=fmt) for s in sizes]
    flows = [smooth_flow(n, s, s, seed=seed + i) for i, s in enumerate(sizes)]
    grads = [torch.randn_like(f) for f in feats]
    return feats, flows, grads


def warp_bytes(feats, flows, backward: bool) -> int:
    """Forward: read F + read f + write F. Backward adds read grad_out F, read F, read f, write F, write f."""
    big = sum(f.numel() * f.element_size() for f in feats)
    small = sum(v.numel() * v.element_size() for v in flows)
    fwd = 2 * big + small
    return fwd + (3 * big + 2 * small if backward else 0)


def grid_of(flow: torch.Tensor) -> torch.Tensor:
    """(n, h, w, 2) normalised grid (align_corners=True) of a pixel flow."""
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device), torch.arange(w, device=flow.device), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / (w - 1)) - 1
    gy = (ys + flow[:, 1]) * (2.0 / (h - 1)) - 1
    return torch.stack([gx, gy], dim=-1).contiguous()


def warp_workloads(n, c, sizes, dtype=torch.float32, channels_last=False, compile_baselines=False):
    """Forward and forward+backward callables of every warp implementation on one pyramid."""
    feats, flows, grads = pyramid(n, c, sizes, dtype, channels_last)
    grids = [grid_of(v).to(dtype) for v in flows]
    fb = warp_bytes(feats, flows, False)
    fbb = warp_bytes(feats, flows, True)
    leaves_f = [f.detach().requires_grad_(True) for f in feats]
    leaves_v = [v.detach().requires_grad_(True) for v in flows]
    leaves_g = [g.detach().requires_grad_(True) for g in grids]

    def ours():
        return crossnet_fast.multiscale_warp(feats, flows, "border", backend="cuda")

    def ours_fb():
        outs = crossnet_fast.multiscale_warp(leaves_f, leaves_v, "border", backend="cuda")
        return torch.autograd.grad(outs, leaves_f + leaves_v, grads)

    def gs_border(f, g):
        return torch.ops.aten.grid_sampler_2d(f, g, 0, 1, True)  # bilinear, border, native ATen

    def gs_zeros(f, g):
        return F.grid_sample(f, g, mode="bilinear", padding_mode="zeros", align_corners=True)  # cuDNN if eligible

    def many(fn, backward):
        def run():
            outs = [fn(f, g) for f, g in zip(leaves_f if backward else feats, leaves_g if backward else grids)]
            if backward:
                return torch.autograd.grad(outs, leaves_f + leaves_g, grads)
            return outs

        return run

    def official(backward):
        def run():
            fs, vs = (leaves_f, leaves_v) if backward else (feats, flows)
            outs = [reference.backward_warp(f, v, "border") for f, v in zip(fs, vs)]
            if backward:
                return torch.autograd.grad(outs, fs + vs, grads)
            return outs

        return run

    tag = f"{str(dtype).split('.')[-1]}/{'cl' if channels_last else 'nchw'}"
    out = [
        Workload(f"warp fwd ours {tag}", ours, fb),
        Workload(f"warp fwd+bwd ours {tag}", ours_fb, fbb),
        Workload(f"warp fwd grid_sample border {tag}", many(gs_border, False), fb),
        Workload(f"warp fwd+bwd grid_sample border {tag}", many(gs_border, True), fbb),
    ]
    if dtype != torch.bfloat16:  # cuDNN's sampler takes fp16/fp32/fp64 only
        out += [
            Workload(f"warp fwd grid_sample zeros(cudnn) {tag}", many(gs_zeros, False), fb),
            Workload(f"warp fwd+bwd grid_sample zeros(cudnn) {tag}", many(gs_zeros, True), fbb),
        ]
    if not channels_last and dtype == torch.float32:
        out += [
            Workload(f"warp fwd official-gather {tag}", official(False), fb),
            Workload(f"warp fwd+bwd official-gather {tag}", official(True), fbb),
        ]
    if compile_baselines:
        compiled = torch.compile(gs_border, dynamic=False)
        out += [
            Workload(f"warp fwd grid_sample border compiled {tag}", many(compiled, False), fb),
            Workload(f"warp fwd+bwd grid_sample border compiled {tag}", many(compiled, True), fbb),
        ]
    return out


def upsample_workloads(n=4, h=256, w=256, scale=2, compile_baselines=False):
    flow = torch.randn(n, 2, h, w, device="cuda").requires_grad_(True)
    g = torch.randn(n, 2, h * scale, w * scale, device="cuda")
    nbytes = 2 * (flow.numel() + g.numel()) * 4  # fwd read+write, bwd read+write

    def ours():
        return torch.autograd.grad(crossnet_fast.upsample_flow(flow, scale, backend="cuda"), flow, g)

    def interp(v):
        return F.interpolate(v, scale_factor=scale, mode="bilinear", align_corners=False) * scale

    def base(fn):
        return lambda: torch.autograd.grad(fn(flow), flow, g)

    out = [
        Workload("upsample_flow fwd+bwd ours", ours, nbytes),
        Workload("upsample_flow fwd+bwd F.interpolate*scale", base(interp), nbytes),
    ]
    if compile_baselines:
        out.append(Workload("upsample_flow fwd+bwd F.interpolate compiled", base(torch.compile(interp)), nbytes))
    return out


def charbonnier_workloads(shape=(4, 3, 512, 512), compile_baselines=False):
    pred = torch.rand(*shape, device="cuda").requires_grad_(True)
    target = torch.rand(*shape, device="cuda")
    numel = pred.numel()
    nbytes = 3 * numel * 4  # read pred, read target, write the gradient

    def ours():
        return torch.autograd.grad(crossnet_fast.charbonnier(pred, target, 1e-3, "mean", backend="cuda"), pred)

    def naive(p, t):
        return torch.sqrt((p - t) ** 2 + 1e-6).mean()

    def base(fn):
        return lambda: torch.autograd.grad(fn(pred, target), pred)

    out = [
        Workload("charbonnier fwd+bwd ours", ours, nbytes),
        Workload("charbonnier fwd+bwd eager formula", base(naive), nbytes),
    ]
    if compile_baselines:
        out.append(Workload("charbonnier fwd+bwd formula compiled", base(torch.compile(naive)), nbytes))
    return out


def copy_bandwidth_gbs(nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth (bytes read + written per second), in GB/s."""
    src = torch.empty(nbytes // 4, device="cuda", dtype=torch.float32)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), warmup=3, repeat=10)
    return 2 * nbytes / (ms * 1e-3) / 1e9
