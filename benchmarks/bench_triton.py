"""pytest-benchmark: the Triton backend against the PyTorch baselines (and the CUDA backend).

Run on a CUDA machine::

    pytest benchmarks/bench_triton.py --benchmark-group-by=group --benchmark-columns=median,iqr,rounds

Shape: the GPU anchor of docs/PERFORMANCE.md, N=4, C=64, pyramid 512^2..64^2, smooth flows of ~4 px; flow
upsampling 4x2x256^2 -> 512^2; Charbonnier 4x3x512x512. Each timed call ends with
``torch.cuda.synchronize()``; ``extra_info`` records the minimum bytes moved and the GB/s that
implies. Skips without CUDA (and under TRITON_INTERPRET).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast as cf

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"), reason="compiled Triton only"),
]

N, C, SIZES = 4, 64, (512, 256, 128, 64)
ROUNDS, WARMUP = 30, 5


def _has_cuda_backend() -> bool:
    return torch.cuda.is_available() and "cuda" in cf.available_backends("cuda")


def _run(benchmark, fn, group, bytes_moved):
    """Time ``fn`` (synchronised inside the timed call) and record bandwidth in extra_info."""

    def timed():
        fn()
        torch.cuda.synchronize()

    benchmark.group = group
    benchmark.pedantic(timed, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    benchmark.extra_info["bytes"] = bytes_moved
    median = benchmark.stats.stats.median
    benchmark.extra_info["GB/s"] = bytes_moved / median / 1e9 if median else None


def _pyramid(dtype, layout):
    g = torch.Generator(device="cuda").manual_seed(0)
    feats, flows = [], []
    for s in SIZES:
        f = torch.randn(N, C, s, s, device="cuda", generator=g).to(dtype)
        if layout == "channels_last":
            f = f.contiguous(memory_format=torch.channels_last)
        coarse = torch.randn(N, 2, s // 16, s // 16, device="cuda", generator=g)
        flows.append(F.interpolate(coarse, size=(s, s), mode="bilinear", align_corners=False) * 4.0)
        feats.append(f)
    return feats, flows


def _grid(flow, dtype):
    n, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device="cuda", dtype=torch.float32),
        torch.arange(w, device="cuda", dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([2 * (xs + flow[:, 0]) / (w - 1) - 1, 2 * (ys + flow[:, 1]) / (h - 1) - 1], -1).to(dtype)


def _warp_bytes(feats, flows, backward):
    """Minimum DRAM traffic: fwd reads F and f, writes F; bwd reads dF, F, f, writes dF, df (+ zero-fill)."""
    fb = sum(f.numel() * f.element_size() for f in feats)
    vb = sum(v.numel() * v.element_size() for v in flows)
    fwd = 2 * fb + vb
    return fwd + (3 * fb + 2 * vb if backward else 0)


WARP_CASES = [
    ("border", torch.float32, "nchw"),
    ("border", torch.float32, "channels_last"),
    ("zeros", torch.float32, "nchw"),
    ("border", torch.bfloat16, "channels_last"),
]
IMPLS = ["triton", "cuda", "grid_sample"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("padding,dtype,layout", WARP_CASES, ids=lambda v: str(v).replace("torch.", ""))
def test_warp(benchmark, impl, backward, padding, dtype, layout):
    if impl == "cuda" and not _has_cuda_backend():
        pytest.skip("CUDA backend not built")
    feats, flows = _pyramid(dtype, layout)
    k = len(feats)
    grads = [torch.randn_like(f) for f in feats]
    if impl == "grid_sample":
        inputs = [f.requires_grad_(backward) for f in feats] + [_grid(v, dtype).requires_grad_(backward) for v in flows]

        def op():
            return [
                F.grid_sample(f, gr, mode="bilinear", padding_mode=padding, align_corners=True)
                for f, gr in zip(inputs[:k], inputs[k:])
            ]
    else:
        inputs = [f.requires_grad_(backward) for f in feats] + [v.requires_grad_(backward) for v in flows]

        def op():
            return cf.multiscale_warp(inputs[:k], inputs[k:], padding, backend=impl)

    if backward:

        def fn():
            torch.autograd.grad(op(), inputs, grads)
    else:

        def fn():
            with torch.no_grad():
                op()

    group = f"warp {'fwd+bwd' if backward else 'fwd'} {padding} {str(dtype)[6:]} {layout}"
    _run(benchmark, fn, group, _warp_bytes(feats, flows, backward))


@pytest.mark.parametrize("impl", IMPLS[:2] + ["interpolate"])
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
def test_upsample_flow(benchmark, impl, backward):
    if impl == "cuda" and not _has_cuda_backend():
        pytest.skip("CUDA backend not built")
    flow = torch.randn(N, 2, 256, 256, device="cuda", requires_grad=backward)
    grad = torch.randn(N, 2, 512, 512, device="cuda")
    if impl == "interpolate":

        def op():
            return F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=False) * 2
    else:

        def op():
            return cf.upsample_flow(flow, 2, backend=impl)

    if backward:

        def fn():
            torch.autograd.grad(op(), flow, grad)
    else:

        def fn():
            with torch.no_grad():
                op()

    small, big = flow.numel() * 4, grad.numel() * 4
    _run(benchmark, fn, f"upsample_flow x2 {'fwd+bwd' if backward else 'fwd'}", (small + big) * (2 if backward else 1))


@pytest.mark.parametrize("impl", IMPLS[:2] + ["eager", "compiled"])
def test_charbonnier(benchmark, impl):
    if impl == "cuda" and not _has_cuda_backend():
        pytest.skip("CUDA backend not built")
    pred = torch.rand(N, 3, 512, 512, device="cuda", requires_grad=True)
    target = torch.rand(N, 3, 512, 512, device="cuda")

    def naive(p, t):
        return torch.sqrt((p - t) ** 2 + 1e-6).mean()

    if impl == "eager":
        loss_fn = naive
    elif impl == "compiled":
        loss_fn = torch.compile(naive)
    else:

        def loss_fn(p, t):
            return cf.charbonnier(p, t, 1e-3, "mean", backend=impl)

    def fn():
        torch.autograd.grad(loss_fn(pred, target), pred)

    # one pass reads pred and target and writes the gradient
    _run(benchmark, fn, "charbonnier mean fwd+bwd 4x3x512x512", 3 * pred.numel() * 4)
