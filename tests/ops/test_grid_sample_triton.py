"""Triton ``grid_sample`` on the CPU interpreter, checked against ``F.grid_sample`` and the reference.

Runs like tests/ops/test_triton.py (see its docstring): ``TRITON_INTERPRET=1 pytest
tests/ops/test_grid_sample_triton.py`` executes the tests in-process; a plain ``pytest tests/`` collects
only :func:`test_suite_under_interpreter`, which re-runs this file in a child process with
``TRITON_INTERPRET=1``. A separate file so that the child runs only the grid_sample tests.

Expectations: ``F.grid_sample`` in fp64 (forward and autograd gradients) for finite grids, and
``crossnet_fast.reference.grid_sample`` for the non-finite rules it documents (NaN / inf grid
points), never another backend's kernels. Shapes are tiny: the interpreter runs each program in
NumPy, one after another.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast as cf
from crossnet_fast import reference as ref

from _deterministic import assert_backward_refused_when_deterministic
from _interpreter import in_process, keep_only_rerun, suite_under_interpreter

IN_PROCESS = in_process("crossnet_fast.triton._grid_sample_kernels", "_grid_sample_fwd_kernel")

PADDINGS = ["zeros", "border", "reflection"]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Relative tolerance of the outputs and gradients per input dtype (half precision: a few ulps of
# the result's magnitude, since the result is rounded once to that dtype).
TOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 4e-3, torch.bfloat16: 3e-2}


test_suite_under_interpreter = suite_under_interpreter(__file__, IN_PROCESS)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _input(n, c, h, w, dtype=torch.float32, seed=0):
    return torch.randn(n, c, h, w, generator=_gen(seed), dtype=torch.float64).to(dtype)


def _grid(n, ho, wo, dtype=torch.float32, spread=1.6, seed=1):
    """(n, ho, wo, 2) normalised points in [-spread, spread]: many outside [-1, 1] (padding)."""
    return ((torch.rand(n, ho, wo, 2, generator=_gen(seed), dtype=torch.float64) * 2 - 1) * spread).to(dtype)


def _ours(input, grid, padding, align_corners, grad_out):
    """Output and (grad_input, grad_grid) of the Triton backend through the public API."""
    x = input.detach().clone().requires_grad_()
    g = grid.detach().clone().requires_grad_()
    out = cf.grid_sample(x, g, "bilinear", padding, align_corners, backend="triton")
    out.backward(grad_out)
    return out, x.grad, g.grad


def _torch64(input, grid, padding, align_corners, grad_out):
    """F.grid_sample in fp64: output and autograd gradients (the oracle)."""
    x = input.detach().double().requires_grad_()
    g = grid.detach().double().requires_grad_()
    out = F.grid_sample(x, g, mode="bilinear", padding_mode=padding, align_corners=align_corners)
    out.backward(grad_out.double())
    return out, x.grad, g.grad


def _close(actual, expected, dtype, equal_nan=False):
    """actual (any dtype) vs fp64 expected, relative to the expected magnitude."""
    expected = expected.detach()
    scale = float(expected.abs().nan_to_num(0).max()) + 1.0 if expected.numel() else 1.0
    t = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=t, atol=t * scale, equal_nan=equal_nan)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
def test_matches_f_grid_sample(padding, align_corners, dtype):
    """Forward and both gradients; a grid of another size than the input, points outside it."""
    x = _input(2, 19, 5, 7, dtype)  # 19 channels: more than one interpreter chunk (16)
    g = _grid(2, 4, 6, torch.float64 if dtype == torch.float64 else torch.float32)
    go = torch.randn(2, 19, 4, 6, generator=_gen(3), dtype=torch.float64).to(dtype)
    out, gx, gg = _ours(x, g, padding, align_corners, go)
    want, wgx, wgg = _torch64(x, g, padding, align_corners, go)
    assert out.dtype == dtype and out.shape == (2, 19, 4, 6) and out.is_contiguous()
    assert gx.dtype == dtype and gg.dtype == g.dtype
    _close(out, want, dtype)
    _close(gx, wgx, dtype)
    _close(gg, wgg, dtype)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape", [(1, 2, 1, 4), (1, 3, 6, 1), (1, 1, 1, 1)])
def test_single_row_column_and_pixel(padding, align_corners, shape):
    """Size-1 axes: reflection with align_corners has nothing to reflect about (coordinate 0)."""
    x = _input(*shape, dtype=torch.float64)
    g = _grid(1, 3, 5, torch.float64, spread=2.5)
    go = torch.randn(1, shape[1], 3, 5, generator=_gen(4), dtype=torch.float64)
    for a, b in zip(_ours(x, g, padding, align_corners, go), _torch64(x, g, padding, align_corners, go)):
        _close(a, b, torch.float64)


@pytest.mark.parametrize("grid_dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_grid_dtype_differs_from_input(grid_dtype):
    """Computed in fp32 for an fp32 input whatever the grid holds; grad_grid in the grid's dtype."""
    x = _input(1, 3, 6, 5)
    g = _grid(1, 3, 4, grid_dtype)
    go = torch.randn(1, 3, 3, 4, generator=_gen(5))
    out, gx, gg = _ours(x, g, "reflection", False, go)
    want, wgx, wgg = _torch64(x, g.float(), "reflection", False, go)
    assert out.dtype == torch.float32 and gg.dtype == grid_dtype
    _close(out, want, torch.float32)
    _close(gx, wgx, torch.float32)
    # Computed in fp32, then rounded to the grid's dtype: the coarser of the two sets the tolerance.
    _close(gg.double(), wgg.to(grid_dtype).double(), torch.float32 if grid_dtype == torch.float64 else grid_dtype)


def test_layouts():
    """channels_last input, a non-contiguous grid and an expanded grad_out: read in place."""
    x = _input(2, 4, 5, 6).contiguous(memory_format=torch.channels_last)
    g = _grid(2, 5, 3).transpose(1, 2)  # (2, 3, 5, 2), not contiguous
    go = torch.randn(1, 4, 1, 1, generator=_gen(6)).expand(2, 4, 3, 5)
    out, gx, gg = _ours(x, g, "border", True, go)
    want, wgx, wgg = _torch64(x, g, "border", True, go)
    assert gx.stride() == x.stride(), "grad_input follows the input's layout"
    assert gg.stride() == torch.empty_like(g).stride()
    for a, b in ((out, want), (gx, wgx), (gg, wgg)):
        _close(a, b, torch.float32)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_grid_follows_the_reference(padding, value):
    """NaN (and +-inf except with border padding): NaN in every channel and NaN grid gradient,
    nothing in the input gradient; border clamps +-inf to the edge (the reference's rules)."""
    x = _input(1, 3, 4, 5, torch.float64)
    g = _grid(1, 3, 3, torch.float64)
    g[0, 0, 0, 0] = value  # x of one point
    g[0, 1, 2, 1] = value  # y of another
    go = torch.randn(1, 3, 3, 3, generator=_gen(7), dtype=torch.float64)
    out, gx, gg = _ours(x, g, padding, False, go)
    xr = x.clone().requires_grad_()
    gr = g.clone().requires_grad_()
    want = ref.grid_sample(xr, gr, padding, False)
    want.backward(go)
    undefined = value != value or padding != "border"
    assert bool(out[0, :, 0, 0].isnan().all()) == undefined
    assert bool(gg[0, 0, 0].isnan().all()) == undefined
    assert torch.isfinite(gx).all()
    torch.testing.assert_close(out, want, equal_nan=True, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, xr.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gg, gr.grad, equal_nan=True, rtol=1e-12, atol=1e-12)


def test_inf_input_is_not_read_through_zero_weights():
    """A point exactly on a pixel reads only that pixel: an inf next to it does not become NaN."""
    x = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    x[0, 0, 1, 2] = float("inf")
    g = torch.zeros(1, 1, 1, 2, dtype=torch.float64)  # the centre pixel (align_corners=True)
    out, gx, gg = _ours(x, g, "zeros", True, torch.ones(1, 1, 1, 1, dtype=torch.float64))
    assert out.item() == 0.0
    assert gx.sum().item() == 1.0 and gx[0, 0, 1, 1].item() == 1.0


@pytest.mark.parametrize(
    "shape,grid_shape", [((0, 3, 4, 4), (0, 2, 2, 2)), ((2, 3, 4, 4), (2, 0, 3, 2)), ((2, 0, 4, 4), (2, 2, 3, 2))]
)
def test_empty(shape, grid_shape):
    """Empty batch, empty grid, no channels: shapes as F.grid_sample's, zero gradients."""
    x = torch.randn(shape)
    g = torch.rand(grid_shape) * 2 - 1
    go = torch.randn(shape[0], shape[1], grid_shape[1], grid_shape[2])
    out, gx, gg = _ours(x, g, "zeros", False, go)
    want, wgx, wgg = _torch64(x, g, "zeros", False, go)
    assert out.shape == want.shape and gx.shape == x.shape and gg.shape == g.shape
    assert (gx == 0).all() and (gg == 0).all()


def test_output_mask_returns_empty_for_unrequested():
    from crossnet_fast.triton import ensure_registered

    ensure_registered()
    ops = torch.ops.crossnet_fast_triton
    x, g = _input(1, 2, 3, 4), _grid(1, 2, 2)
    go = torch.randn(1, 2, 2, 2, generator=_gen(8))
    gi, gg = ops.grid_sample_backward(go, x, g, "zeros", False, [True, False])
    assert gi.shape == x.shape and gg.shape == (0,)
    gi, gg = ops.grid_sample_backward(go, x, g, "zeros", False, [False, True])
    assert gi.shape == (0,) and gg.shape == g.shape
    with pytest.raises((ValueError, RuntimeError), match="padding"):
        ops.grid_sample(x, g, "mirror", False)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_many_contributions_on_one_pixel(dtype):
    """Every point samples pixel (1, 2) exactly: its gradient is the plain count (fp32 buffer; a
    16-bit accumulator would stop growing at 2048 in fp16, 256 in bf16)."""
    x = _input(1, 1, 3, 5, dtype)
    g = torch.zeros(1, 48, 64, 2)
    g[..., 0], g[..., 1] = 0.0, 0.0  # align_corners=True: the centre pixel (row 1, column 2)
    out, gx, gg = _ours(x, g, "zeros", True, torch.ones(1, 1, 48, 64, dtype=dtype))
    assert gx[0, 0, 1, 2].item() == 48 * 64
    assert gx.double().sum().item() == 48 * 64


def test_deterministic_mode_raises():
    """Atomics: under torch.use_deterministic_algorithms(True) the input gradient is refused."""
    x = _input(1, 2, 3, 4).requires_grad_()
    out = cf.grid_sample(x, _grid(1, 2, 2), "bilinear", "zeros", False, backend="triton")
    assert_backward_refused_when_deterministic(out)


@pytest.mark.parametrize("padding", PADDINGS)
def test_gradcheck(padding):
    x = _input(1, 2, 3, 4, torch.float64).requires_grad_()
    g = (_grid(1, 2, 3, torch.float64, spread=1.3)).requires_grad_()
    fn = lambda a, b: cf.grid_sample(a, b, "bilinear", padding, True, backend="triton")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, g), eps=1e-6, atol=1e-6)


if not IN_PROCESS:
    # As in tests/ops/test_triton.py: only test_suite_under_interpreter is collected here.
    keep_only_rerun(globals())
