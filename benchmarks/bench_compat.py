"""Other projects' models on crossnet_fast through crossnet_fast.compat, patched vs unpatched, CPU.

Run: pytest benchmarks/bench_compat.py --benchmark-only --benchmark-json=out/bench_compat.json
then: python benchmarks/report.py out/bench_compat.json
Share of time in sampling: python benchmarks/bench_compat.py   (profiler, one run of each)
Interleaved A/B (unpatched and patched alternating): python benchmarks/bench_compat.py --interleaved 30
Time inside the patched helpers, in the running model: python benchmarks/bench_compat.py --helpers 30
Time inside the sampling functions themselves (raft_small): python benchmarks/bench_compat.py --ops 30

Workloads (random weights, fp32): torchvision raft_small, 1x3x128x128 pairs, 12 flow updates,
forward; BasicSR BasicVSR(num_feat=16, num_block=2), 1 clip of 3 frames 3x64x64 (x4 output),
forward and forward+backward (input gradient).
"""

from __future__ import annotations

import contextlib
import importlib
import statistics
import time

import pytest
import torch

from crossnet_fast import compat

IMPLS = ["pytorch_unpatched", "crossnet_fast_patched"]
# Profiler events that count as "sampling": PyTorch's grid_sample and bilinear interpolate ops
# (forward and backward) and this library's ops. Their inclusive time is counted, outermost event
# only: PyTorch's grid_sample copies a non-contiguous grid in a child op (not in its self-time),
# while this library's kernels read it in place.
PYTORCH_SAMPLING = (
    "aten::grid_sampler",
    "aten::upsample_bilinear2d",
    "GridSampler2DBackward",
    "UpsampleBilinear2DBackward",
)
OURS = ("crossnet_fast",)


def raft_workload():
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    model = raft_small(weights=None).eval()
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.rand(1, 3, 128, 128, generator=gen) * 2 - 1 for _ in range(2))
    return lambda: model(a, b, num_flow_updates=12)[-1], compat.patch_torchvision_raft


def basicvsr_workload():
    compat.install_functional_tensor_alias()
    from basicsr.archs.basicvsr_arch import BasicVSR

    torch.manual_seed(0)
    model = BasicVSR(num_feat=16, num_block=2, spynet_path=None)
    clip = torch.rand(1, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return lambda: model(clip), compat.patch_basicsr


def with_backward(forward):
    """Forward, then the gradient of the output's sum w.r.t. the model's parameters."""

    def step():
        out = forward()
        out.sum().backward()
        return out

    return step


def _context(impl, patch):
    return patch() if impl == "crossnet_fast_patched" else contextlib.nullcontext()


def sampling_share(step) -> dict:
    """One profiled run of ``step`` -> time in PyTorch's vs this library's sampling ops: inclusive
    CPU time of the outermost such events (ms), and as a share of the run's total self-time."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    events = prof.events()
    total = sum(e.self_cpu_time_total for e in events)

    def outermost(prefixes):
        def matches(e):
            return any(p in e.name for p in prefixes)

        def nested(e):
            parent = e.cpu_parent
            while parent is not None:
                if matches(parent):
                    return True
                parent = parent.cpu_parent
            return False

        return sum(e.cpu_time_total for e in events if matches(e) and not nested(e))

    pytorch, ours = outermost(PYTORCH_SAMPLING), outermost(OURS)
    return {
        "pytorch_sampling_ms": pytorch / 1e3,
        "crossnet_fast_ms": ours / 1e3,
        "pytorch_sampling_share": pytorch / total,
        "crossnet_fast_share": ours / total,
        "profiled_total_ms": total / 1e3,
    }


def _bench(benchmark, workload, impl, backward):
    pytest.importorskip("torchvision", reason="torchvision not installed")
    if workload is basicvsr_workload:
        compat.install_functional_tensor_alias()
        pytest.importorskip("basicsr", reason="basicsr not installed")
    forward, patch = workload()
    step = with_backward(forward) if backward else forward
    grad = contextlib.nullcontext() if backward else torch.no_grad()
    with _context(impl, patch), grad:
        benchmark.pedantic(step, rounds=15, iterations=1, warmup_rounds=2)
        benchmark.extra_info.update(sampling_share(step))


@pytest.mark.parametrize("impl", IMPLS)
def test_raft_small_forward(benchmark, impl):
    benchmark.group = "torchvision raft_small forward, 1x3x128x128, 12 updates, fp32"
    _bench(benchmark, raft_workload, impl, backward=False)


@pytest.mark.parametrize("impl", IMPLS)
def test_basicvsr_forward(benchmark, impl):
    benchmark.group = "BasicSR BasicVSR(16 feat, 2 blocks) forward, 1x3x3x64x64, fp32"
    _bench(benchmark, basicvsr_workload, impl, backward=False)


@pytest.mark.parametrize("impl", IMPLS)
def test_basicvsr_forward_backward(benchmark, impl):
    benchmark.group = "BasicSR BasicVSR(16 feat, 2 blocks) forward+backward, 1x3x3x64x64, fp32"
    _bench(benchmark, basicvsr_workload, impl, backward=True)


WORKLOADS = [
    ("raft_small forward", raft_workload, False),
    ("BasicVSR forward", basicvsr_workload, False),
    ("BasicVSR forward+backward", basicvsr_workload, True),
]


def _prepared_workloads():
    """(name, step, patch, grad context) of each workload: the step with its backward where timed."""
    for name, workload, backward in WORKLOADS:
        forward, patch = workload()
        step = with_backward(forward) if backward else forward
        yield name, step, patch, (contextlib.nullcontext() if backward else torch.no_grad())


def interleaved(rounds: int) -> None:
    """Unpatched and patched runs alternating, round by round: this VM's speed drifts by more than
    the few percent at stake between pytest-benchmark's back-to-back groups; a ratio taken within
    each round, and its median over the rounds, does not drift with it."""
    print("| workload | unpatched ms (median) | patched ms (median) | median per-round ratio | rounds |")
    print("|---|---:|---:|---:|---:|")
    for name, step, patch, grad in _prepared_workloads():
        times = {impl: [] for impl in IMPLS}
        with grad:
            for impl in IMPLS:  # warm-up
                with _context(impl, patch):
                    step()
            for _ in range(rounds):
                for impl in IMPLS:
                    with _context(impl, patch):
                        start = time.perf_counter()
                        step()
                        times[impl].append((time.perf_counter() - start) * 1e3)
        ratios = [u / p for u, p in zip(times["pytorch_unpatched"], times["crossnet_fast_patched"])]
        print(
            f"| {name} | {statistics.median(times['pytorch_unpatched']):.1f} | "
            f"{statistics.median(times['crossnet_fast_patched']):.1f} | {statistics.median(ratios):.3f}x | {rounds} |"
        )


class _Stopwatch:
    """Wall time (s) and call count per name of the functions wrapped by :meth:`wrap`."""

    def __init__(self, names):
        self.seconds = {n: 0.0 for n in names}
        self.calls = {n: 0 for n in names}

    def wrap(self, name, fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            self.seconds[name] += time.perf_counter() - start
            self.calls[name] += 1
            return out

        return run


# The helpers each patch rebinds, per workload: (package, defining module, names).
HELPERS = {
    "raft_small forward": ("torchvision", "torchvision.models.optical_flow._utils", ("grid_sample", "upsample_flow")),
    "BasicVSR forward": ("basicsr", "basicsr.archs.arch_util", ("flow_warp",)),
}


def helper_times(rounds: int) -> None:
    """Wall time spent inside the patched helpers per forward (their calls timed in place, in the
    running model, with whatever the model left in the caches), unpatched and patched alternating
    round by round; medians over the rounds. Forward only: a helper's backward runs elsewhere."""
    from crossnet_fast.compat._rebind import rebind

    print("| workload | helper | calls per forward | unpatched ms (median) | patched ms (median) | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for name, step, patch, grad in _prepared_workloads():
        if name not in HELPERS:
            continue
        package, owner, names = HELPERS[name]
        spent = {impl: {n: [] for n in names} for impl in IMPLS}
        calls = {}
        for r in range(rounds + 1):  # round 0: warm-up
            for impl in IMPLS:
                watch = _Stopwatch(names)
                with _context(impl, patch), grad:
                    module = importlib.import_module(owner)
                    with rebind(package, owner, {n: watch.wrap(n, getattr(module, n)) for n in names}):
                        step()
                if r:
                    for n in names:
                        spent[impl][n].append(watch.seconds[n] * 1e3)
                calls = watch.calls
        for n in names:
            u, p = (
                statistics.median(spent["pytorch_unpatched"][n]),
                statistics.median(spent["crossnet_fast_patched"][n]),
            )
            print(f"| {name} | `{n}` | {calls[n]} | {u:.2f} | {p:.2f} | {u / p:.2f}x |")


def op_times(rounds: int) -> None:
    """raft_small: wall time per forward in the sampling functions themselves, timed in place in the
    running model (arms alternating, medians over the rounds): unpatched, the ``F.grid_sample`` and
    ``F.interpolate`` that torchvision's helpers call; patched, the ``crossnet_fast.grid_sample``
    and ``crossnet_fast.upsample_flow`` that the compat helpers call (each with its Python
    wrapper). The helpers' own work (pixel normalisation, scaling) is left out: see --helpers."""
    import torch.nn.functional as F

    from crossnet_fast.compat import torchvision_raft

    step, patch = raft_workload()
    targets = {
        "pytorch_unpatched": [(F, "grid_sample"), (F, "interpolate")],
        "crossnet_fast_patched": [(torchvision_raft, "_grid_sample"), (torchvision_raft, "_upsample_flow")],
    }
    spent = {impl: {name: [] for _, name in targets[impl]} for impl in IMPLS}
    calls = {}
    for r in range(rounds + 1):  # round 0: warm-up
        for impl in IMPLS:
            watch = _Stopwatch([name for _, name in targets[impl]])
            saved = [(owner, name, getattr(owner, name)) for owner, name in targets[impl]]
            try:
                for owner, name, fn in saved:
                    setattr(owner, name, watch.wrap(name, fn))
                with _context(impl, patch), torch.no_grad():
                    step()
            finally:
                for owner, name, fn in saved:
                    setattr(owner, name, fn)
            if r:
                for name, seconds in watch.seconds.items():
                    spent[impl][name].append(seconds * 1e3)
            calls.update({(impl, name): c for name, c in watch.calls.items()})
    print("| raft_small forward | function | calls per forward | ms per forward (median) |")
    print("|---|---|---:|---:|")
    for impl in IMPLS:
        for _, name in targets[impl]:
            label = ("F." if impl == "pytorch_unpatched" else "crossnet_fast.") + name.lstrip("_")
            print(f"| {impl} | `{label}` | {calls[(impl, name)]} | {statistics.median(spent[impl][name]):.2f} |")


def main() -> None:
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--interleaved":
        interleaved(int(sys.argv[2]))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--ops":
        op_times(int(sys.argv[2]))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--helpers":
        helper_times(int(sys.argv[2]))
        return
    print("| workload | run | PyTorch sampling ops | crossnet_fast ops | profiled total ms |")
    print("|---|---|---|---|---:|")
    for name, step, patch, grad in _prepared_workloads():
        for impl in IMPLS:
            with _context(impl, patch), grad:
                step()  # warm-up
                share = sampling_share(step)
            print(
                f"| {name} | {impl} | {share['pytorch_sampling_ms']:.2f} ms ({share['pytorch_sampling_share']:.1%}) | "
                f"{share['crossnet_fast_ms']:.2f} ms ({share['crossnet_fast_share']:.1%}) | "
                f"{share['profiled_total_ms']:.0f} |"
            )


if __name__ == "__main__":
    main()
