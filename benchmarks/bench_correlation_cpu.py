"""CPU correlation (forward + backward for both inputs) against the pure-PyTorch shifted-product
implementation users fall back to (benchmarks/correlation_baseline.py), 2 threads.

Run: pytest benchmarks/bench_correlation_cpu.py --benchmark-only --benchmark-json=out/bench_correlation.json
then: python benchmarks/report.py out/bench_correlation.json   (ratios per group)
Interleaved A/B (ours and the baseline alternating, median of per-round ratios):
      python benchmarks/bench_correlation_cpu.py --interleaved 9

Shapes: PWC-Net's five correlation levels for a 448x1024 pair (N=2, 1/4 .. 1/64 resolution with
its feature widths C = 32, 64, 96, 128, 196, D = 4); CrossNet-like single-pair shapes (N=1, C=32,
64^2 and 128^2, D = 4 .. 8, dilation 1 and 2, stride 1 and 2); and the correlation flow
estimator's own calls for one 512x512 output at x4 or x8 (crossnet_fast/models/corrflow.py: 32
learned feature channels and 27 descriptor channels; the global search at 1/16 of the HR size
with D = 8, the step at 1/8 with D = 3, the steps at 1/4 with D = 4 and 2), also forward only
(inference). fp32.
"""

from __future__ import annotations

import statistics
import sys

import pytest
import torch
from correlation_baseline import PWC_LEVELS, shifted_product_correlation

import crossnet_fast as cf
from crossnet_fast.benchmarking import interleaved_seconds

THREADS = 2
# name -> (N, C, H, W, D, dilation, stride)
CASES = {
    **PWC_LEVELS,
    "crossnet 1x32x128x128 D4": (1, 32, 128, 128, 4, 1, 1),
    "crossnet 1x32x128x128 D4 dil2": (1, 32, 128, 128, 4, 2, 1),
    "crossnet 1x32x128x128 D4 stride2": (1, 32, 128, 128, 4, 1, 2),
    "crossnet 1x32x64x64 D8": (1, 32, 64, 64, 8, 1, 1),
    "crossnet 1x32x64x64 D8 dil2 stride2": (1, 32, 64, 64, 8, 2, 2),
    "model global 1x32x32x32 D8": (1, 32, 32, 32, 8, 1, 1),
    "model global descriptors 1x27x32x32 D8": (1, 27, 32, 32, 8, 1, 1),
    "model mid 1x32x64x64 D3": (1, 32, 64, 64, 3, 1, 1),
    "model local 1x32x128x128 D2": (1, 32, 128, 128, 2, 1, 1),
}
# The model's calls (its first 1/4-HR step, D = 4, is "crossnet 1x32x128x128 D4" above).
MODEL_CASES = [name for name in CASES if name.startswith("model")] + ["crossnet 1x32x128x128 D4"]
IMPLS = {
    "crossnet_fast_cpu": lambda a, b, d, dil, s: cf.correlation(a, b, d, dilation=dil, stride=s, backend="cpu"),
    "shifted_product": shifted_product_correlation,
}

pytestmark = pytest.mark.skipif("cpu" not in cf.available_backends(), reason="C++ extension not built")


def prepared_step(impl: str, case: str, backward: bool = True):
    """A forward+backward (or forward-only, no autograd) step of ``impl`` at ``case`` (inputs and
    upstream gradient made once)."""
    n, c, h, w, d, dil, s = CASES[case]
    g = torch.Generator().manual_seed(0)
    f1 = torch.randn(n, c, h, w, generator=g).requires_grad_(backward)
    f2 = torch.randn(n, c, h, w, generator=g).requires_grad_(backward)
    grad = torch.randn(n, (2 * d + 1) ** 2, -(-h // s), -(-w // s), generator=g)
    fn = IMPLS[impl]

    def step():
        out = fn(f1, f2, d, dil, s)
        return torch.autograd.grad(out, (f1, f2), grad)

    def forward():
        with torch.no_grad():
            return fn(f1, f2, d, dil, s)

    return step if backward else forward


@pytest.fixture(autouse=True, scope="module")
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_correlation_forward_backward(benchmark, case, impl):
    benchmark.group = f"correlation forward+backward, {case} fp32"
    benchmark.extra_info["threads"] = THREADS
    benchmark(prepared_step(impl, case))


@pytest.mark.parametrize("case", MODEL_CASES)
@pytest.mark.parametrize("impl", list(IMPLS))
def test_correlation_forward(benchmark, case, impl):
    benchmark.group = f"correlation forward, {case} fp32"
    benchmark.extra_info["threads"] = THREADS
    benchmark(prepared_step(impl, case, backward=False))


def interleaved(rounds: int) -> None:
    """Ours and the baseline alternating, round by round: this shared VM's speed drifts by more
    than a pytest-benchmark group's spread; the per-round ratio, and its median, does not."""
    torch.set_num_threads(THREADS)
    print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}, fp32")
    print(
        "| shape (N, C, H, W, D, dilation, stride) | pass | ours ms (median) | shifted product ms (median) "
        "| median per-round ratio | rounds |"
    )
    print("|---|---|---:|---:|---:|---:|")
    runs = [(case, True) for case in CASES] + [(case, False) for case in MODEL_CASES]
    for case, backward in runs:
        steps = {impl: prepared_step(impl, case, backward) for impl in IMPLS}
        seconds = interleaved_seconds(steps, rounds)
        times = {impl: [t * 1e3 for t in ts] for impl, ts in seconds.items()}
        ratios = [b / a for a, b in zip(times["crossnet_fast_cpu"], times["shifted_product"])]
        print(
            f"| {case} {CASES[case]} | {'fwd+bwd' if backward else 'fwd'} | "
            f"{statistics.median(times['crossnet_fast_cpu']):.2f} | "
            f"{statistics.median(times['shifted_product']):.2f} | {statistics.median(ratios):.2f}x | {rounds} |",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--interleaved":
        interleaved(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
