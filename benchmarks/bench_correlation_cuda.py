"""GPU correlation (CUDA and Triton kernels) against the pure-PyTorch shifted-product implementation
users fall back to (benchmarks/correlation_baseline.py, run on the GPU), forward + backward and
forward only. Skipped without a CUDA device.

Run: pytest benchmarks/bench_correlation_cuda.py --benchmark-only --benchmark-json=out/bench_correlation_cuda.json
then: python benchmarks/report.py out/bench_correlation_cuda.json   (ratios per group)
scripts/gpu_check.sh runs it in its ``correlation`` step.

Shapes: PWC-Net's five correlation levels for a 448x1024 pair (N=2, C = 32 .. 196, D = 4), a
FlowNetC-like call (N=4, C=256, 48x64, D = 10 with dilation 2) and the correlation flow
estimator's global search for one 512x512 x4 pair (N=1, C=32, 64x64, D=16). fp32 and bf16 (the
shifted product in bf16 too: that is what a user's autocast model runs). Each timed call is
followed by a device synchronisation, so the figures are device time plus launch overhead.
"""

from __future__ import annotations

import pytest
import torch
from correlation_baseline import PWC_LEVELS, shifted_product_correlation

import crossnet_fast as cf

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# name -> (N, C, H, W, D, dilation, stride)
CASES = {
    **PWC_LEVELS,
    "flownetc 4x256x48x64 D10 dil2": (4, 256, 48, 64, 10, 2, 1),
    "model global 1x32x32x32 D8": (1, 32, 32, 32, 8, 1, 1),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _available(backend: str) -> bool:
    return backend in cf.available_backends("cuda")


IMPLS = {
    "crossnet_fast_cuda": lambda a, b, d, dil, s: cf.correlation(a, b, d, dilation=dil, stride=s, backend="cuda"),
    "crossnet_fast_triton": lambda a, b, d, dil, s: cf.correlation(a, b, d, dilation=dil, stride=s, backend="triton"),
    "shifted_product": shifted_product_correlation,
}


def prepared_step(impl: str, case: str, dtype: torch.dtype, backward: bool = True):
    """A synchronised forward+backward (or forward-only, no autograd) step on the GPU."""
    n, c, h, w, d, dil, s = CASES[case]
    g = torch.Generator(device="cuda").manual_seed(0)
    f1 = torch.randn(n, c, h, w, generator=g, device="cuda").to(dtype).requires_grad_(backward)
    f2 = torch.randn(n, c, h, w, generator=g, device="cuda").to(dtype).requires_grad_(backward)
    grad = torch.randn(n, (2 * d + 1) ** 2, -(-h // s), -(-w // s), generator=g, device="cuda").to(dtype)
    fn = IMPLS[impl]

    def step():
        out = fn(f1, f2, d, dil, s)
        res = torch.autograd.grad(out, (f1, f2), grad)
        torch.cuda.synchronize()
        return res

    def forward():
        with torch.no_grad():
            out = fn(f1, f2, d, dil, s)
        torch.cuda.synchronize()
        return out

    return step if backward else forward


def _skip_unavailable(impl: str) -> None:
    backend = {"crossnet_fast_cuda": "cuda", "crossnet_fast_triton": "triton"}.get(impl)
    if backend is not None and not _available(backend):
        pytest.skip(f"backend {backend} not available here")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_correlation_cuda_forward_backward(benchmark, impl, case, dtype):
    _skip_unavailable(impl)
    benchmark.group = f"correlation cuda forward+backward, {case} {dtype}"
    step = prepared_step(impl, case, DTYPES[dtype])
    step()  # warm-up (Triton compiles and tunes here)
    benchmark(step)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_correlation_cuda_forward(benchmark, impl, case):
    _skip_unavailable(impl)
    benchmark.group = f"correlation cuda forward, {case} fp32"
    step = prepared_step(impl, case, torch.float32, backward=False)
    step()
    benchmark(step)
