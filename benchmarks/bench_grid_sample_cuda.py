"""pytest-benchmark of crossnet_fast.grid_sample (CUDA and Triton) vs F.grid_sample, forward + backward.

Run: pytest benchmarks/bench_grid_sample_cuda.py --benchmark-group-by=group
Input (4, 64, 128, 128) fp32 and bf16; grids of the input's size: "random" (uniform points in
[-1.1, 1.1]: scattered reads, atomics on random pixels) and "smooth" (identity plus a small
smooth displacement: the warp-like case with coherent reads). Skipped without a GPU and the CUDA
kernels.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast as cf
from crossnet_fast import _extension

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and _extension.has_cuda_kernels()),
    reason="needs a CUDA device and the CUDA kernels",
)

SHAPE = (4, 64, 128, 128)


def _grid(kind: str, n: int, h: int, w: int) -> torch.Tensor:
    """(n, h, w, 2) fp32 normalised grid on the GPU."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    if kind == "random":
        return torch.rand(n, h, w, 2, generator=gen, device="cuda") * 2.2 - 1.1
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, device="cuda"), torch.linspace(-1, 1, w, device="cuda"), indexing="ij"
    )
    base = torch.stack((xs, ys), -1).expand(n, h, w, 2)
    return base + 0.05 * torch.sin(3 * base.flip(-1))


def _impl(name: str, padding: str):
    if name == "torch":
        return lambda x, g: F.grid_sample(x, g, "bilinear", padding, False)
    return lambda x, g: cf.grid_sample(x, g, "bilinear", padding, False, backend=name)


@pytest.mark.parametrize("impl", ["cuda", "triton", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("grid_kind", ["random", "smooth"])
@pytest.mark.parametrize("padding", ["zeros", "reflection"])
def test_grid_sample_fwd_bwd(benchmark, impl, dtype, grid_kind, padding):
    if impl not in cf.available_backends() and impl != "torch":
        pytest.skip(f"backend {impl} not available")
    n, c, h, w = SHAPE
    x = torch.randn(SHAPE, device="cuda").to(dtype).requires_grad_()
    g = _grid(grid_kind, n, h, w).requires_grad_()
    go = torch.randn(n, c, h, w, device="cuda").to(dtype)
    fn = _impl(impl, padding)

    def step():
        x.grad = g.grad = None
        fn(x, g).backward(go)
        torch.cuda.synchronize()

    for _ in range(3):  # warm-up (Triton compilation)
        step()
    benchmark.group = f"grid_sample {grid_kind} {padding} {str(dtype).split('.')[-1]}"
    benchmark.name = impl
    benchmark.pedantic(step, rounds=20, iterations=1)
