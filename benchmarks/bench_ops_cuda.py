"""pytest-benchmark of the CUDA kernels and their baselines (skipped without CUDA kernels or a GPU).

Run: pytest benchmarks/bench_ops_cuda.py --benchmark-group-by=group
Each benchmark synchronises inside the timed function and records in extra_info the minimum bytes
moved and the achieved GB/s. Workloads (shapes, dtypes, baselines): benchmarks/cuda_workloads.py.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

from crossnet_fast import _extension

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and _extension.has_cuda_kernels()),
    reason="needs a CUDA device and the CUDA kernels",
)


def _workloads():
    """(group, workload-factory key) pairs; workloads are built lazily inside the test (GPU only)."""
    cases = []
    for shape_name in ("anchor", "large"):
        for dtype in ("float32", "bfloat16"):
            for cl in (False, True):
                cases.append(("warp", shape_name, dtype, cl))
    cases += [("upsample_flow", None, "float32", False), ("charbonnier", None, "float32", False)]
    return cases


def _build(kind, shape_name, dtype, cl):
    import cuda_workloads as W

    if kind == "warp":
        shape = W.ANCHOR if shape_name == "anchor" else W.LARGE
        compile_baselines = shape_name == "anchor" and dtype == "float32" and not cl
        return W.warp_workloads(
            **shape, dtype=getattr(torch, dtype), channels_last=cl, compile_baselines=compile_baselines
        )
    if kind == "upsample_flow":
        return W.upsample_workloads(compile_baselines=True)
    return W.charbonnier_workloads(compile_baselines=True)


def _bench(benchmark, workload, group):
    def timed():
        workload.fn()
        torch.cuda.synchronize()

    for _ in range(3):  # warm-up (and compilation of the torch.compile baselines)
        timed()
    benchmark.group = group
    benchmark.extra_info["bytes_moved"] = workload.bytes_moved
    benchmark.pedantic(timed, rounds=20, iterations=1)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info["GB/s"] = workload.bytes_moved / seconds / 1e9


@pytest.mark.parametrize("case", _workloads(), ids=lambda c: "-".join(str(x) for x in c if x not in (None, False)))
@pytest.mark.parametrize("index", range(10))
def test_bench(benchmark, case, index):
    workloads = _build(*case)
    if index >= len(workloads):
        pytest.skip("no workload at this index")
    w = workloads[index]
    group = f"{case[0]} {case[1] or ''} {w.name.split(' ')[1]} {case[2]} {'cl' if case[3] else 'nchw'}"
    benchmark.name = w.name
    _bench(benchmark, w, group)
