"""Triton ``correlation`` on the CPU interpreter, checked against the float64 oracle.

Runs like tests/ops/test_triton.py (see its docstring): ``TRITON_INTERPRET=1 pytest
tests/ops/test_correlation_triton.py`` executes the tests in-process; a plain ``pytest tests/``
collects only :func:`test_suite_under_interpreter`, which re-runs this file in a child process with
``TRITON_INTERPRET=1``. On a GPU, tests/ops/test_correlation_cuda.py runs the compiled kernels.

Expectations come from tests/ops/test_correlation.py's oracles (an ``F.unfold`` formulation in
float64, with autograd through unfold's backward for the gradients; checked there against a plain
loop over the definition), never from another backend's kernels. Shapes are tiny: the interpreter
runs each program in NumPy, one after another.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from test_correlation import (
    CASES,
    DTYPES,
    PLANT_SIZE,
    _layout,
    assert_near,
    check_case_against_oracle,
    check_nonfinite_stays_local,
    correlation_case,
    inputs,
    oracle,
    run,
)

import crossnet_fast as cf
from crossnet_fast.triton import ensure_registered

from _interpreter import in_process, keep_only_rerun, suite_under_interpreter

IN_PROCESS = in_process("crossnet_fast.triton.correlation", "_corr_fwd_kernel")


# slow: 30 s under the interpreter, a third of the inner loop (`pytest -m "not slow"`); CI runs it.
test_suite_under_interpreter = suite_under_interpreter(__file__, IN_PROCESS, require_passed=True)


def _grad(n, d, h, w, s, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, (2 * d + 1) ** 2, -(-h // s), -(-w // s), generator=g, dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_matches_oracle(case, dtype):
    n, c, h, w, d, dil, s = case
    f1, f2 = inputs(n, c, h, w, dtype, seed=2)
    g = _grad(n, d, h, w, s, dtype)
    got = run(f1, f2, d, dil, s, g, "triton")
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, oracle(f1, f2, d, dil, s, g)):
        assert_near(x, y, dtype, f"{name} {case} {dtype}")


@pytest.mark.parametrize("kind", ["channels_last", "columns", "transposed"])
@pytest.mark.parametrize("stride", [1, 2])
def test_triton_any_strides(kind, stride):
    """Inputs and grad_out of any strides are read in place; the gradients keep the inputs' layout."""
    f1, f2 = inputs(2, 5, 7, 8, torch.float32, seed=4)
    g = _grad(2, 2, 7, 8, stride, seed=5)
    a, b = _layout(f1, kind), _layout(f2, kind)
    got = run(a, b, 2, 1, stride, g.transpose(2, 3).contiguous().transpose(2, 3), "triton")
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, oracle(f1, f2, 2, 1, stride, g)):
        assert_near(x, y, torch.float32, name)
    assert got[0].is_contiguous()
    if kind == "channels_last":
        assert got[1].is_contiguous(memory_format=torch.channels_last)
        assert got[2].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("shape", [(0, 3, 5, 6), (2, 0, 5, 6), (1, 2, 0, 4), (1, 2, 3, 0)])
def test_triton_empty_inputs(shape):
    n, c, h, w = shape
    f1, f2 = inputs(*shape, torch.float32)
    out, ga, gb = run(f1, f2, 1, 1, 2, torch.randn(n, 9, -(-h // 2), -(-w // 2)), "triton")
    assert out.shape == (n, 9, -(-h // 2), -(-w // 2))
    assert (out == 0).all() and ga.shape == f1.shape and gb.shape == f2.shape
    assert (ga == 0).all() and (gb == 0).all()


def test_triton_backward_is_deterministic_and_honours_the_mask():
    f1, f2 = inputs(1, 6, 9, 11, torch.float32, seed=6)
    g = _grad(1, 2, 9, 11, 2, seed=7)
    first = run(f1, f2, 2, 2, 2, g, "triton")
    for x, y in zip(first, run(f1, f2, 2, 2, 2, g, "triton")):
        assert torch.equal(x, y)
    ensure_registered()
    ops = torch.ops.crossnet_fast_triton
    ga, gb = ops.correlation_backward(g, f1, f2, 2, 2, 2, [True, False])
    assert gb.numel() == 0 and torch.equal(ga, first[1])
    ga, gb = ops.correlation_backward(g, f1, f2, 2, 2, 2, [False, True])
    assert ga.numel() == 0 and torch.equal(gb, first[2])


@pytest.mark.parametrize("where", ["f1", "f2"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_triton_nonfinite_stays_local(where, value):
    """A value planted at P reaches only the outputs (and other-input gradient elements) that read
    P; everything else equals the oracle on the clean inputs (padding is never multiplied by it)."""
    d, dil, s = 1, 2, 2
    n, _, h, w = PLANT_SIZE
    check_nonfinite_stays_local("triton", where, value, d, dil, s, _grad(n, d, h, w, s, seed=8))


@settings(max_examples=40)  # the interpreter runs each program in NumPy: fewer examples than the CPU's
@given(correlation_case())
def test_property_triton_matches_oracle(case):
    """Random sizes (empty batches and C = 0 included), windows, dilations, strides, dtypes and layouts."""
    check_case_against_oracle(case, "triton")


def test_triton_gradcheck_fp64():
    f1, f2 = inputs(1, 2, 4, 5, torch.float64, seed=9)
    a, b = f1.requires_grad_(), f2.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, y: cf.correlation(x, y, 1, dilation=2, stride=2, backend="triton"), (a, b)
    )


def test_triton_opcheck():
    ensure_registered()
    f1, f2 = inputs(1, 3, 4, 5, torch.float32, seed=10)
    torch.library.opcheck(
        torch.ops.crossnet_fast_triton.correlation.default, (f1.requires_grad_(), f2.requires_grad_(), 1, 1, 1)
    )


def test_triton_direct_call_checks_its_inputs():
    ensure_registered()
    ops = torch.ops.crossnet_fast_triton
    f1, f2 = inputs(1, 2, 3, 4, torch.float32)
    with pytest.raises(Exception, match="max_displacement"):
        ops.correlation(f1, f2, -1, 1, 1)
    with pytest.raises(Exception, match="shape"):
        ops.correlation(f1, f2[:, :, :2], 1, 1, 1)


if not IN_PROCESS:
    # Without the interpreter from the start of this process, only test_suite_under_interpreter
    # runs here (its child process runs everything else); the other tests are not collected.
    keep_only_rerun(globals())
