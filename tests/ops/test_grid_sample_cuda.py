"""CUDA kernels of grid_sample vs F.grid_sample (fp64) and the reference's non-finite rules.

Skipped like tests/ops/test_cuda.py (no GPU, or no compiled CUDA kernels) unless
CROSSNET_FAST_REQUIRE_CUDA=1 (scripts/gpu_check.sh), which turns that into a failure.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_cuda import REASON, REQUIRE

import crossnet_fast as cf
from crossnet_fast import reference

pytestmark = pytest.mark.skipif(REASON is not None and not REQUIRE, reason=str(REASON))

DEV = "cuda"
PADDINGS = ["zeros", "border", "reflection"]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


@pytest.fixture(autouse=True)
def _need_cuda():
    if REASON is not None:
        pytest.fail(f"CROSSNET_FAST_REQUIRE_CUDA=1 but {REASON}")


def _data(n, c, h, w, ho, wo, dtype, grid_dtype=torch.float32, spread=1.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    grid = (torch.rand(n, ho, wo, 2, generator=g, dtype=torch.float64) * 2 - 1) * spread
    go = torch.randn(n, c, ho, wo, generator=g, dtype=torch.float64)
    return x.to(DEV, dtype), grid.to(DEV, grid_dtype), go.to(DEV, dtype)


def _run(fn, x, grid, go):
    x = x.detach().clone().requires_grad_()
    grid = grid.detach().clone().requires_grad_()
    out = fn(x, grid)
    out.backward(go)
    return out, x.grad, grid.grad


def _close(actual, expected, dtype, equal_nan=False):
    scale = float(expected.abs().nan_to_num(0).max()) + 1.0 if expected.numel() else 1.0
    torch.testing.assert_close(
        actual.double(), expected.double(), rtol=TOL[dtype], atol=TOL[dtype] * scale, equal_nan=equal_nan
    )


def _ours(padding, align_corners):
    return lambda x, g: cf.grid_sample(x, g, "bilinear", padding, align_corners, backend="cuda")


def _torch64(padding, align_corners):
    return lambda x, g: F.grid_sample(x.double(), g.double(), "bilinear", padding, align_corners)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
def test_matches_f_grid_sample(padding, align_corners, dtype, deterministic):
    x, grid, go = _data(2, 19, 9, 13, 7, 5, dtype, torch.float64 if dtype == torch.float64 else torch.float32)
    torch.use_deterministic_algorithms(deterministic)
    try:
        out, gx, gg = _run(_ours(padding, align_corners), x, grid, go)
    finally:
        torch.use_deterministic_algorithms(False)
    want, wgx, wgg = _run(_torch64(padding, align_corners), x, grid, go)
    assert out.dtype == dtype and out.is_contiguous() and gx.dtype == dtype and gg.dtype == grid.dtype
    for a, b in ((out, want), (gx, wgx), (gg, wgg)):
        _close(a, b, dtype)


def test_layouts_and_grid_dtype():
    x, grid, go = _data(2, 8, 6, 7, 4, 5, torch.float32, torch.float16)
    x = x.contiguous(memory_format=torch.channels_last)
    grid = grid.transpose(1, 2).contiguous().transpose(1, 2)  # same shape, other strides
    out, gx, gg = _run(_ours("reflection", False), x, grid, go)
    want, wgx, wgg = _run(_torch64("reflection", False), x, grid, go)
    assert gx.stride() == x.stride() and gg.dtype == torch.float16
    _close(out, want, torch.float32)
    _close(gx, wgx, torch.float32)
    _close(gg, wgg.half(), torch.float16)


@pytest.mark.parametrize("padding", PADDINGS)
def test_non_finite_grid_follows_the_reference(padding):
    x, grid, go = _data(1, 3, 5, 6, 4, 4, torch.float64, torch.float64)
    grid[0, 0, 0, 0] = float("nan")
    grid[0, 1, 1, 1] = float("inf")
    grid[0, 2, 2, 0] = -1e30
    out, gx, gg = _run(_ours(padding, False), x, grid, go)
    want, wgx, wgg = _run(lambda a, b: reference.grid_sample(a, b, padding, False), x, grid, go)
    torch.testing.assert_close(out, want, equal_nan=True)
    torch.testing.assert_close(gx, wgx)
    torch.testing.assert_close(gg, wgg, equal_nan=True)


@pytest.mark.parametrize(
    "shape,grid_shape", [((0, 3, 4, 4), (0, 2, 2, 2)), ((2, 3, 4, 4), (2, 0, 3, 2)), ((2, 0, 4, 4), (2, 2, 3, 2))]
)
@pytest.mark.parametrize("deterministic", [False, True])
def test_empty(shape, grid_shape, deterministic):
    x = torch.randn(shape, device=DEV, requires_grad=True)
    g = (torch.rand(grid_shape, device=DEV) * 2 - 1).requires_grad_()
    torch.use_deterministic_algorithms(deterministic)
    try:
        out = cf.grid_sample(x, g, "bilinear", "zeros", False, backend="cuda")
        out.sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)
    assert out.shape == (shape[0], shape[1], grid_shape[1], grid_shape[2])
    assert (x.grad == 0).all() and (g.grad == 0).all()


def test_deterministic_grad_input_is_bitwise_repeatable():
    """Many points on few pixels (where atomic order shows): two runs give identical bits."""
    x, grid, go = _data(2, 16, 8, 8, 64, 64, torch.float32, spread=1.2)
    torch.use_deterministic_algorithms(True)
    try:
        first = _run(_ours("border", True), x, grid, go)[1]
        second = _run(_ours("border", True), x, grid, go)[1]
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(first, second)
    _close(first, _run(_torch64("border", True), x, grid, go)[1], torch.float32)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_many_contributions_on_one_pixel(dtype, deterministic):
    """128 x 128 points on pixel (2, 2): the gradient is the exact count 16384 (fp32 sums; 16-bit
    atomics would stop growing at 2048 in fp16 and 256 in bf16)."""
    x = torch.randn(1, 2, 5, 5, device=DEV).to(dtype).requires_grad_()
    grid = torch.zeros(1, 128, 128, 2, device=DEV)  # align_corners=True: the centre pixel exactly
    torch.use_deterministic_algorithms(deterministic)
    try:
        cf.grid_sample(x, grid, "bilinear", "zeros", True, backend="cuda").backward(
            torch.ones(1, 2, 128, 128, device=DEV, dtype=dtype)
        )
    finally:
        torch.use_deterministic_algorithms(False)
    assert x.grad[0, :, 2, 2].tolist() == [16384.0, 16384.0]
    assert x.grad.double().sum().item() == 2 * 16384.0


def test_gradcheck():
    x, grid, _ = _data(1, 2, 4, 5, 3, 3, torch.float64, torch.float64, spread=1.3)
    fn = lambda a, b: cf.grid_sample(a, b, "bilinear", "reflection", False, backend="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x.requires_grad_(), grid.requires_grad_()), eps=1e-6, atol=1e-6)
