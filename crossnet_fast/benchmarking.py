"""Inputs, PyTorch baselines and a timer shared by benchmarks/ and `crossnet-fast ops-bench`."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F


def pyramid_inputs(n, c, top, levels, device="cpu", dtype=torch.float32, disp=4.0, seed=0):
    """A CrossNet-like pyramid: features (n, c, top/2^s, top/2^s), smooth flows of ~``disp`` px."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    feats, flows = [], []
    for s in range(levels):
        size = top >> s
        feats.append(torch.randn(n, c, size, size, generator=g).to(device=device, dtype=dtype))
        coarse = torch.randn(n, 2, 4, 4, generator=g) * disp / (2**s)
        flows.append(F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).to(device))
    return feats, flows


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """Pixel flow (N, 2, H, W) -> grid_sample grid (N, H, W, 2) for align_corners=True."""
    n, _, h, w = flow.shape
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    return torch.stack([2 * (xs + flow[:, 0]) / (w - 1) - 1, 2 * (ys + flow[:, 1]) / (h - 1) - 1], dim=-1)


def grid_sample_pyramid(feats, flows, padding="border"):
    """The baseline: one F.grid_sample per scale (grid built from the pixel flow, as models do)."""
    return [
        F.grid_sample(f, flow_to_grid(v).to(f.dtype), mode="bilinear", padding_mode=padding, align_corners=True)
        for f, v in zip(feats, flows)
    ]


def naive_charbonnier(pred, target, eps=1e-3):
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def warp_bytes(feats, flows, backward=False):
    """Minimum DRAM traffic: read feat + flow, write out (forward); backward adds grad_out, grads."""
    fb = sum(f.numel() * f.element_size() for f in feats)
    vb = sum(v.numel() * v.element_size() for v in flows)
    fwd = 2 * fb + vb
    return fwd + (3 * fb + 2 * vb if backward else 0)


def interleaved_seconds(fns: dict, rounds: int) -> dict:
    """CPU wall-clock seconds of each ``fns[name]()`` per round: every function once to warm up,
    then ``rounds`` rounds calling each in turn. Returns {name: [seconds of round 0, ...]}.

    Alternating round by round lets a per-round ratio cancel the drift of a shared machine's speed,
    which a back-to-back timing of one function after the other does not.
    """
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def time_ms(fn, device: torch.device | str | None = None, repeat: int = 15, warmup: int = 3) -> float:
    """Median time of ``fn()`` in milliseconds over ``repeat`` runs after ``warmup`` runs.

    On a CUDA device each run is timed with CUDA events on the current stream and synchronised;
    on the CPU with ``time.perf_counter``. ``device`` defaults to CUDA when one is visible.
    """
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
