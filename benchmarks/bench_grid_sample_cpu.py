"""CPU benchmarks of crossnet_fast.grid_sample against F.grid_sample, and of the warp against
grid_sample on incoherent flows, each ratio measured in the same run.

Run: pytest benchmarks/bench_grid_sample_cpu.py --benchmark-only --benchmark-json=out/bench_grid_cpu.json
then: python benchmarks/report.py out/bench_grid_cpu.json

grid_sample: input (4, 64, 128, 128) fp32, grids of the input's size, zeros padding,
align_corners=False: "random" (uniform points in [-1.1, 1.1]: reads and gradient adds anywhere in
the plane), "jitter" (the identity grid plus up to +-4 px of independent noise per point) and
"smooth" (the identity plus a small smooth displacement: the warp-like case).
warp: multiscale_warp with random flows of up to +-3 px per pixel (no spatial coherence), N=2,
C=64, 128^2..16^2, against F.grid_sample of the same points (align_corners=True, zeros).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast as cf
from crossnet_fast.benchmarking import flow_to_grid

pytestmark = pytest.mark.skipif("cpu" not in cf.available_backends(), reason="C++ extension not built")

SHAPE = (4, 64, 128, 128)
IMPLS = {
    "crossnet_fast_cpu": lambda x, g: cf.grid_sample(x, g, "bilinear", "zeros", False, backend="cpu"),
    "torch_grid_sample": lambda x, g: F.grid_sample(x, g, "bilinear", "zeros", False),
}


def _grid(kind: str, n: int, h: int, w: int) -> torch.Tensor:
    """(n, h, w, 2) fp32 normalised grid."""
    gen = torch.Generator().manual_seed(0)
    if kind == "random":
        return torch.rand(n, h, w, 2, generator=gen) * 2.2 - 1.1
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    base = torch.stack((xs, ys), -1).expand(n, h, w, 2)
    if kind == "jitter":
        return base + (torch.rand(n, h, w, 2, generator=gen) * 2 - 1) * (8.0 / w)
    return base + 0.05 * torch.sin(3 * base.flip(-1))


@pytest.fixture(scope="module")
def grid_inputs():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(*SHAPE, generator=gen)
    n, _, h, w = SHAPE
    return x, {kind: _grid(kind, n, h, w) for kind in ("random", "jitter", "smooth")}


@pytest.mark.parametrize("kind", ["random", "jitter", "smooth"])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_grid_sample_forward(benchmark, grid_inputs, kind, impl):
    benchmark.group = f"grid_sample forward, 4x64x128^2 fp32, {kind} grid"
    x, grids = grid_inputs
    with torch.no_grad():
        benchmark(IMPLS[impl], x, grids[kind])


@pytest.mark.parametrize("kind", ["random", "jitter", "smooth"])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_grid_sample_forward_backward(benchmark, grid_inputs, kind, impl):
    benchmark.group = f"grid_sample forward+backward, 4x64x128^2 fp32, {kind} grid"
    x0, grids = grid_inputs
    x = x0.clone().requires_grad_()
    g = grids[kind].clone().requires_grad_()
    fn = IMPLS[impl]

    def step():
        out = fn(x, g)
        torch.autograd.grad(out, (x, g), torch.ones_like(out))

    benchmark(step)


@pytest.fixture(scope="module")
def random_flow_pyramid():
    gen = torch.Generator().manual_seed(2)
    feats, flows = [], []
    for s in (128, 64, 32, 16):
        feats.append(torch.randn(2, 64, s, s, generator=gen))
        flows.append((torch.rand(2, 2, s, s, generator=gen) * 2 - 1) * 3)
    return feats, flows


WARP_IMPLS = {
    "crossnet_fast_cpu": lambda f, v: cf.multiscale_warp(f, v, "zeros", backend="cpu"),
    "torch_grid_sample": lambda f, v: [
        F.grid_sample(a, flow_to_grid(b), "bilinear", "zeros", True) for a, b in zip(f, v)
    ],
}


@pytest.mark.parametrize("impl", list(WARP_IMPLS))
def test_warp_random_flow_forward_backward(benchmark, random_flow_pyramid, impl):
    benchmark.group = "warp forward+backward, 2x64x128^2..16^2 fp32, random +-3 px flows"
    feats = [f.clone().requires_grad_() for f in random_flow_pyramid[0]]
    flows = [v.clone().requires_grad_() for v in random_flow_pyramid[1]]
    fn = WARP_IMPLS[impl]

    def step():
        outs = fn(feats, flows)
        torch.autograd.grad(outs, feats + flows, [torch.ones_like(o) for o in outs])

    benchmark(step)
