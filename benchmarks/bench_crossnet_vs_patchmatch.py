"""CrossNet against the patch-matching baseline on one real 512x512 pair, x4 and x8 (CPU).

Run (pause any background training first):
  pytest benchmarks/bench_crossnet_vs_patchmatch.py --benchmark-only \
      --benchmark-json=benchmarks/results/cpu-bench_crossnet_vs_patchmatch.json
  python benchmarks/bench_crossnet_vs_patchmatch.py --interleaved 5      (per-round ratios)

Pair: HCI "antinous" reference view (0, 0), LR from view (1, 1) (MATLAB bicubic), top-left 512x512
(a smooth random texture when ../shared/data is absent). Methods: ``patchmatch``
(``baselines.patchmatch_sr``, the baseline), ``crossnet`` (``super_resolve`` with the shipped weights
of the scale, or ``CROSSNET_BENCH_WEIGHTS_X4`` / ``_X8``: a .safetensors path), each on
``CROSSNET_BENCH_THREADS`` threads (default 2). The interleaved mode alternates the two methods
round by round and prints the median of the per-round ratios, which drifts less with the load of
a shared machine than two separate timings.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
from pathlib import Path

import pytest
import torch

from crossnet_fast import load_model, super_resolve
from crossnet_fast.baselines import patchmatch_sr
from crossnet_fast.benchmarking import interleaved_seconds
from crossnet_fast.degrade import degrade

SIZE = 512
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hci" / "antinous"
THREADS = int(os.environ.get("CROSSNET_BENCH_THREADS", 2))


def pair(scale: int, size: int = SIZE):
    """(lr (1, 3, size/scale, size/scale), ref (1, 3, size, size)) float32 in [0, 1]."""
    if (DATA / "input_Cam000.png").is_file():
        from crossnet_fast.data import load_image

        ref = load_image(DATA / "input_Cam000.png")[:, :size, :size]
        hr = load_image(DATA / "input_Cam010.png")[:, :size, :size]
    else:
        g = torch.Generator().manual_seed(0)
        tex = torch.nn.functional.avg_pool2d(torch.rand(1, 3, size + 2, size + 2, generator=g), 3, 1, 1)[0]
        ref, hr = tex[:, :size, :size], tex[:, 2:, 2:]
    return degrade(hr[None], scale), ref[None].contiguous()


def methods(scale: int) -> dict:
    """name -> callable(lr, ref) -> (1, 3, H, W)."""
    weights = os.environ.get(f"CROSSNET_BENCH_WEIGHTS_X{scale}") or f"crossnet-x{scale}"
    model = load_model(weights, scale=scale)
    return {
        "patchmatch": lambda lr, ref: patchmatch_sr(lr, ref, scale),
        "crossnet": lambda lr, ref: super_resolve(model, lr, ref),
    }


@pytest.mark.parametrize("scale", [4, 8])
@pytest.mark.parametrize("method", ["patchmatch", "crossnet"])
def test_crossnet_vs_patchmatch(benchmark, method, scale):
    torch.set_num_threads(THREADS)
    lr, ref = pair(scale)
    fn = methods(scale)[method]
    benchmark.group = f"crossnet-vs-patchmatch-cpu-{SIZE}px-x{scale}"
    benchmark.name = method
    benchmark.extra_info.update(device="cpu", hr_size=SIZE, scale=scale, threads=THREADS)

    def call():
        with torch.inference_mode():
            return fn(lr, ref)

    out = benchmark.pedantic(call, rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape[-2:] == (SIZE, SIZE)


def interleaved(rounds: int) -> None:
    torch.set_num_threads(THREADS)
    for scale in (4, 8):
        lr, ref = pair(scale)
        fns = {name: functools.partial(fn, lr, ref) for name, fn in methods(scale).items()}
        with torch.inference_mode():
            times = interleaved_seconds(fns, rounds)
        ratios = [p / c for p, c in zip(times["patchmatch"], times["crossnet"])]
        print(
            f"x{scale} {SIZE}x{SIZE}, {THREADS} threads, {rounds} rounds: patchmatch "
            f"{statistics.median(times['patchmatch']):.3f} s, crossnet {statistics.median(times['crossnet']):.3f} s, "
            f"median per-round ratio {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interleaved", type=int, default=5, metavar="ROUNDS")
    interleaved(parser.parse_args().interleaved)
