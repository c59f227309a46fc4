"""CPU op benchmarks against their PyTorch baselines, at a CrossNet-like shape that runs in seconds.

Run: pytest benchmarks/bench_ops_cpu.py --benchmark-only --benchmark-json=out/bench_cpu.json
then: python benchmarks/report.py out/bench_cpu.json   (ratios per group, for docs/PERFORMANCE.md)

Shape: N=1, C=64, pyramid 128^2, 64^2, 32^2, 16^2 (CrossNet's four warped scales at 1/4 of the
anchor resolution), flows of a few pixels; charbonnier and upsample at 4x3x256x256 and 4x2x128x128;
resize_flow at RAFT's x8 upsampling and a SPyNet-like resize.
"""

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast as cf
from crossnet_fast.benchmarking import grid_sample_pyramid, naive_charbonnier, pyramid_inputs, warp_bytes

pytestmark = pytest.mark.skipif("cpu" not in cf.available_backends(), reason="C++ extension not built")

WARP_IMPLS = {
    "crossnet_fast_cpu": lambda f, v: cf.multiscale_warp(f, v, "border", backend="cpu"),
    "grid_sample_border": lambda f, v: grid_sample_pyramid(f, v, "border"),
    "reference_gathers": lambda f, v: cf.multiscale_warp(f, v, "border", backend="reference"),
}


@pytest.fixture(scope="module")
def pyramid():
    return pyramid_inputs(1, 64, 128, 4)


@pytest.mark.parametrize("impl", list(WARP_IMPLS))
def test_warp_forward(benchmark, pyramid, impl):
    benchmark.group = "warp forward, 1x64x128^2..16^2 fp32"
    feats, flows = pyramid
    fn = WARP_IMPLS[impl]
    with torch.no_grad():
        benchmark(fn, feats, flows)
    benchmark.extra_info["bytes"] = warp_bytes(feats, flows)


@pytest.mark.parametrize("impl", list(WARP_IMPLS))
def test_warp_forward_backward(benchmark, pyramid, impl):
    benchmark.group = "warp forward+backward, 1x64x128^2..16^2 fp32"
    feats = [f.clone().requires_grad_() for f in pyramid[0]]
    flows = [v.clone().requires_grad_() for v in pyramid[1]]
    fn = WARP_IMPLS[impl]

    def step():
        outs = fn(feats, flows)
        torch.autograd.grad(outs, feats + flows, [torch.ones_like(o) for o in outs])

    benchmark(step)
    benchmark.extra_info["bytes"] = warp_bytes(feats, flows, backward=True)


UPSAMPLE_IMPLS = {
    "crossnet_fast_cpu": lambda v: cf.upsample_flow(v, 2, backend="cpu"),
    "interpolate_x_scale": lambda v: F.interpolate(v, scale_factor=2, mode="bilinear", align_corners=False) * 2,
}


@pytest.mark.parametrize("impl", list(UPSAMPLE_IMPLS))
def test_upsample_forward(benchmark, impl):
    benchmark.group = "upsample_flow x2 forward, 4x2x128x128 fp32"
    flow = torch.randn(4, 2, 128, 128)
    with torch.no_grad():
        benchmark(UPSAMPLE_IMPLS[impl], flow)


@pytest.mark.parametrize("impl", list(UPSAMPLE_IMPLS))
def test_upsample_forward_backward(benchmark, impl):
    benchmark.group = "upsample_flow x2 forward+backward, 4x2x128x128 fp32"
    flow = torch.randn(4, 2, 128, 128, requires_grad=True)
    fn = UPSAMPLE_IMPLS[impl]
    benchmark(lambda: torch.autograd.grad(fn(flow).sum(), flow))


def _interpolate_flow(v, size, align_corners):
    """The unfused baseline of resize_flow: F.interpolate, then x times w/W and y times h/H."""
    h, w = size
    ratio = torch.tensor([w / v.shape[-1], h / v.shape[-2]], dtype=v.dtype).view(1, 2, 1, 1)
    return F.interpolate(v, size=size, mode="bilinear", align_corners=align_corners) * ratio


# RAFT's bilinear x8 flow upsampling (1/8-resolution flow of a 440x1024 pair: 55x128 -> 440x1024,
# align_corners=True) and SPyNet's resize to an arbitrary size with per-axis ratios.
RESIZE_CASES = {
    "raft x8 align_corners, 1x2x55x128 -> 440x1024": ((1, 2, 55, 128), (440, 1024), True),
    "spynet resize, 4x2x64x64 -> 100x90": ((4, 2, 64, 64), (100, 90), False),
}
RESIZE_IMPLS = {
    "crossnet_fast_cpu": lambda v, size, ac: cf.resize_flow(v, size, align_corners=ac, backend="cpu"),
    "interpolate_x_ratio": _interpolate_flow,
}


@pytest.mark.parametrize("case", list(RESIZE_CASES))
@pytest.mark.parametrize("impl", list(RESIZE_IMPLS))
def test_resize_forward(benchmark, case, impl):
    shape, size, ac = RESIZE_CASES[case]
    benchmark.group = f"resize_flow forward, {case} fp32"
    flow = torch.randn(*shape)
    with torch.no_grad():
        benchmark(RESIZE_IMPLS[impl], flow, size, ac)


@pytest.mark.parametrize("case", list(RESIZE_CASES))
@pytest.mark.parametrize("impl", list(RESIZE_IMPLS))
def test_resize_forward_backward(benchmark, case, impl):
    shape, size, ac = RESIZE_CASES[case]
    benchmark.group = f"resize_flow forward+backward, {case} fp32"
    flow = torch.randn(*shape, requires_grad=True)
    fn = RESIZE_IMPLS[impl]
    benchmark(lambda: torch.autograd.grad(fn(flow, size, ac).sum(), flow))


CHARB_IMPLS = {
    "crossnet_fast_cpu": lambda p, t: cf.charbonnier(p, t, backend="cpu"),
    "naive_formula": naive_charbonnier,
}


@pytest.mark.parametrize("impl", list(CHARB_IMPLS))
def test_charbonnier_forward(benchmark, impl):
    benchmark.group = "charbonnier forward, 4x3x256x256 fp32"
    pred, target = torch.rand(4, 3, 256, 256), torch.rand(4, 3, 256, 256)
    with torch.no_grad():
        benchmark(CHARB_IMPLS[impl], pred, target)


@pytest.mark.parametrize("impl", list(CHARB_IMPLS))
def test_charbonnier_forward_backward(benchmark, impl):
    benchmark.group = "charbonnier forward+backward, 4x3x256x256 fp32"
    pred = torch.rand(4, 3, 256, 256, requires_grad=True)
    target = torch.rand(4, 3, 256, 256)
    fn = CHARB_IMPLS[impl]
    benchmark(lambda: torch.autograd.grad(fn(pred, target), pred))
