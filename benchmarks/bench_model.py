"""CrossNet inference: crossnet_fast (fused warp ops) vs the same network in plain PyTorch.

Run:  pytest benchmarks/bench_model.py --benchmark-only --benchmark-json=out/bench_model.json
then: python benchmarks/report.py out/bench_model.json   (per-group ratios vs grid_sample-eager)

Model: CrossNet, "official" configuration, bicubic SISR input (random weights; speed does not depend
on them), batch 1. Implementations, all with the same weights:
  grid_sample-eager      plain PyTorch (PlainCrossNet), eager                 <- baseline of each group
  grid_sample-compile    plain PyTorch through torch.compile (default mode)
  crossnet_fast          crossnet_fast.CrossNet, eager (channels_last on CUDA)
  crossnet_fast-graph    crossnet_fast.CrossNet, channels_last + CUDA graph (CUDA only)
  crossnet_fast-compile  crossnet_fast.CrossNet through torch.compile (CUDA only)
Precision fp32 or bf16 (autocast). Shapes: CPU one 128x128 HR window (runs in seconds); CUDA one
512x512 window and a full 1920x1080 frame (padded to 1920x1088). torch.compile on the CPU costs
minutes of compiling on a small machine, so it runs only with CROSSNET_BENCH_CPU_COMPILE=1.
Peak memory goes to extra_info (CUDA: max_memory_allocated; CPU: process max RSS, approximate).
"""

from __future__ import annotations

import os
import resource

import pytest
import torch
from plain_crossnet import plain_copy

import crossnet_fast
from crossnet_fast.fastpath import WindowRunner
from crossnet_fast.models import CrossNet

CUDA = torch.cuda.is_available()
IMPLS = ["grid_sample-eager", "grid_sample-compile", "crossnet_fast", "crossnet_fast-graph", "crossnet_fast-compile"]
CASES = [("cpu", 128, 128)] + [("cuda", 512, 512), ("cuda", 1088, 1920)]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

_models: dict = {}


def _model(device: str, scale: int) -> CrossNet:
    key = (device, scale)
    if key not in _models:
        _models.clear()  # one model (pair) alive at a time keeps peak memory honest
        torch.manual_seed(0)
        _models[key] = CrossNet(scale, "official", "bicubic").to(device).eval()
    return _models[key]


def _runner(impl: str, model: CrossNet, device: str, precision: str):
    on_cuda = device == "cuda"
    if impl.startswith("grid_sample"):
        return WindowRunner(plain_copy(model), precision=precision, compile=impl.endswith("compile"))
    return WindowRunner(
        model,
        precision=precision,
        channels_last=on_cuda,
        cuda_graph=impl.endswith("graph"),
        compile=impl.endswith("compile"),
    )


def _skip_reason(impl: str, device: str) -> str | None:
    if device == "cuda" and not CUDA:
        return "no CUDA device"
    if device == "cpu" and impl in ("crossnet_fast-graph", "crossnet_fast-compile"):
        return "CUDA-only variant"
    if device == "cpu" and impl.endswith("compile") and os.environ.get("CROSSNET_BENCH_CPU_COMPILE") != "1":
        return "torch.compile on the CPU takes minutes; set CROSSNET_BENCH_CPU_COMPILE=1"
    return None


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("precision", list(DTYPES))
@pytest.mark.parametrize("scale", [4, 8])
@pytest.mark.parametrize("device,height,width", CASES, ids=[f"{d}-{h}x{w}" for d, h, w in CASES])
def test_crossnet_inference(benchmark, device, height, width, scale, precision, impl):
    reason = _skip_reason(impl, device)
    if reason:
        pytest.skip(reason)
    benchmark.group = f"CrossNet x{scale} {device} {precision} 1x3x{height}x{width}"
    model = _model(device, scale)
    gen = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 3, height // scale, width // scale, generator=gen).to(device)
    ref = torch.rand(1, 3, height, width, generator=gen).to(device)
    runner = _runner(impl, model, device, precision)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run():
        runner(lr, ref)
        sync()  # time the GPU work, not the launch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    run()  # first call: compile / capture / cuDNN autotune, kept out of warm-up statistics
    rounds, warmup = (20, 3) if device == "cuda" else (3, 0)
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=warmup)
    if device == "cuda":
        benchmark.extra_info["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        benchmark.extra_info["process_max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    benchmark.extra_info["warp_backend"] = (
        "grid_sample"
        if impl.startswith("grid_sample")
        else crossnet_fast.backend.resolve("multiscale_warp", torch.device(device))
    )
    if impl.startswith("crossnet_fast") and device == "cuda":
        model.to(memory_format=torch.contiguous_format)  # leave the shared model as the next run expects
