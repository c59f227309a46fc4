"""The CPU layer choices of the model (models/activations.py, corrflow._aggregate, the detail gate).

Run (pause any background training first):
  pytest benchmarks/bench_cpu_layers.py --benchmark-only
  python benchmarks/bench_cpu_layers.py --interleaved 9      (median per-round ratios)

Cases, at the shapes of the x8 model on a 512x512 output, fp32, ``CROSSNET_BENCH_THREADS`` threads
(default 2), no autograd. Each compares ours with its baseline:
- ``selu``: ``models.activations.selu`` against ``torch.nn.functional.selu`` (ATen's expm1
  kernel), (2, 16, 512, 512) channels-last (the encoder's full-resolution layers);
- ``cost_pool``: 3x3 ``avg_pool2d`` (count_include_pad=False) of a (1, 81, 128, 128) cost volume,
  channels-last against contiguous;
- ``gate_conv``: the detail gate's 23 -> 1 3x3 convolution at (1, 23, 512, 512), channels-last
  against contiguous input.
"""

from __future__ import annotations

import argparse
import os
import statistics

import pytest
import torch
import torch.nn.functional as F

from crossnet_fast.benchmarking import interleaved_seconds
from crossnet_fast.models.activations import selu

THREADS = int(os.environ.get("CROSSNET_BENCH_THREADS", 2))
CHANNELS_LAST = torch.channels_last


def cases() -> dict:
    """case -> {"ours": fn, "baseline": fn}; each fn() runs one call on fresh inputs' copies."""
    g = torch.Generator().manual_seed(0)
    act = (torch.randn(2, 16, 512, 512, generator=g) - 0.5).contiguous(memory_format=CHANNELS_LAST)
    cost = torch.randn(1, 81, 128, 128, generator=g)
    cost_cl = cost.contiguous(memory_format=CHANNELS_LAST)
    gate_in = torch.randn(1, 23, 512, 512, generator=g)
    gate_cl = gate_in.contiguous(memory_format=CHANNELS_LAST)
    weight, bias = torch.randn(1, 23, 3, 3, generator=g), torch.randn(1, generator=g)
    return {
        # selu overwrites its input: both sides copy it first, so both pay the same copy.
        "selu": {"ours": lambda: selu(act.clone()), "baseline": lambda: F.selu(act.clone(), inplace=True)},
        "cost_pool": {
            "ours": lambda: F.avg_pool2d(cost_cl, 3, 1, 1, count_include_pad=False),
            "baseline": lambda: F.avg_pool2d(cost, 3, 1, 1, count_include_pad=False),
        },
        "gate_conv": {
            "ours": lambda: F.conv2d(gate_cl, weight, bias, 1, 1),
            "baseline": lambda: F.conv2d(gate_in, weight, bias, 1, 1),
        },
    }


@pytest.mark.parametrize("case", ["selu", "cost_pool", "gate_conv"])
@pytest.mark.parametrize("side", ["baseline", "ours"])
def test_cpu_layer(benchmark, case, side):
    torch.set_num_threads(THREADS)
    fn = cases()[case][side]
    benchmark.group = f"cpu-layers-{case}"
    benchmark.name = side
    benchmark.extra_info.update(device="cpu", threads=THREADS)
    with torch.inference_mode():
        benchmark.pedantic(fn, rounds=9, iterations=1, warmup_rounds=2)


def interleaved(rounds: int) -> None:
    torch.set_num_threads(THREADS)
    with torch.inference_mode():
        for case, fns in cases().items():
            times = interleaved_seconds(fns, rounds)
            ratios = [b / o for b, o in zip(times["baseline"], times["ours"])]
            base_ms, ours_ms = (statistics.median(times[side]) * 1e3 for side in ("baseline", "ours"))
            print(
                f"{case}: {THREADS} threads, {rounds} rounds: baseline {base_ms:.2f} ms, ours {ours_ms:.2f} ms, "
                f"median per-round ratio {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interleaved", type=int, default=9, metavar="ROUNDS")
    interleaved(parser.parse_args().interleaved)
