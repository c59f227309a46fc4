"""CUDA kernels of the correlation vs the float64 oracle and the reference backend.

Skipped like tests/ops/test_cuda.py (no GPU, or no compiled CUDA kernels) unless
CROSSNET_FAST_REQUIRE_CUDA=1 (scripts/gpu_check.sh), which turns that into a failure.

Oracles (never the code under test): the ``F.unfold`` formulation of tests/ops/test_correlation.py
in float64 on the CPU (forward, and both gradients by autograd through unfold's backward), and
``crossnet_fast.reference.correlation`` (autograd of PyTorch ops) run on the same CUDA tensors.
Tolerances are test_correlation's: a few units in the last place of the dtype, relative to the
largest oracle value.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
from test_correlation import CASES, DTYPES, _layout, _reads, assert_near, inputs, oracle
from test_cuda import REASON, REQUIRE

import crossnet_fast as cf

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None and not REQUIRE, reason=str(REASON))]

DEV = "cuda"
# The compiled Triton kernels run on the GPU too (not under the interpreter, which is CPU-only).
COMPILED_TRITON = pytest.param(
    "triton",
    marks=pytest.mark.skipif(
        importlib.util.find_spec("triton") is None or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
        reason="Triton missing, or interpreted (CPU tensors only)",
    ),
)


@pytest.fixture(autouse=True)
def _need_cuda():
    if REASON is not None:
        pytest.fail(f"CROSSNET_FAST_REQUIRE_CUDA=1 but {REASON}")


def _run_cuda(f1, f2, d, dil, s, grad_out, backend="cuda"):
    """Output and both gradients on the GPU, returned on the CPU."""
    a = f1.to(DEV).requires_grad_()
    b = f2.to(DEV).requires_grad_()
    out = cf.correlation(a, b, d, dilation=dil, stride=s, backend=backend)
    ga, gb = torch.autograd.grad(out, (a, b), grad_out.to(DEV, out.dtype))
    return out.cpu(), ga.cpu(), gb.cpu()


def _grad(n, d, h, w, s, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, (2 * d + 1) ** 2, -(-h // s), -(-w // s), generator=g, dtype=torch.float64).to(dtype)


def test_correlation_registered_for_cuda():
    for name in ("correlation", "correlation_backward"):
        assert "CUDA" in torch._C._dispatch_dump(f"crossnet_fast::{name}")


@pytest.mark.parametrize("backend", ["cuda", COMPILED_TRITON])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_oracle(case, dtype, backend):
    n, c, h, w, d, dil, s = case
    f1, f2 = inputs(n, c, h, w, dtype, seed=2)
    g = _grad(n, d, h, w, s, dtype)
    got = _run_cuda(f1, f2, d, dil, s, g, backend)
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, oracle(f1, f2, d, dil, s, g)):
        assert_near(x, y, dtype, f"{name} {case} {dtype}")


@pytest.mark.parametrize("backend", ["cuda", COMPILED_TRITON])
@pytest.mark.parametrize("params", [(4, 1, 1), (3, 2, 2), (2, 1, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_reference_backend_at_model_shapes(params, dtype, backend):
    """PWC-Net-like level sizes (C in 32..96) against the reference backend on the same GPU tensors."""
    d, dil, s = params
    f1, f2 = inputs(2, 48, 28, 64, dtype, seed=3)
    g = _grad(2, d, 28, 64, s, dtype, seed=4)
    got = _run_cuda(f1, f2, d, dil, s, g, backend)
    want = _run_cuda(f1, f2, d, dil, s, g, backend="reference")
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, want):
        # The reference rounds the same fp32 sums once to dtype: equal up to the summation order.
        assert_near(x, y.double(), dtype, f"{name} {params}")


@pytest.mark.parametrize("kind", ["channels_last", "columns", "transposed"])
@pytest.mark.parametrize("stride", [1, 2])
def test_cuda_any_strides(kind, stride):
    f1, f2 = inputs(2, 5, 7, 8, torch.float32, seed=4)
    g = _grad(2, 2, 7, 8, stride, torch.float32, seed=5)
    a = _layout(f1.to(DEV), kind) if kind != "columns" else _columns_cuda(f1)
    b = _layout(f2.to(DEV), kind) if kind != "columns" else _columns_cuda(f2)
    a.requires_grad_()
    b.requires_grad_()
    out = cf.correlation(a, b, 2, dilation=1, stride=stride, backend="cuda")
    ga, gb = torch.autograd.grad(out, (a, b), g.to(DEV).transpose(2, 3).contiguous().transpose(2, 3))
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), (out, ga, gb), oracle(f1, f2, 2, 1, stride, g)):
        assert_near(x.cpu(), y, torch.float32, name)
    assert out.is_contiguous()
    if kind == "channels_last":
        assert ga.is_contiguous(memory_format=torch.channels_last)
        assert gb.is_contiguous(memory_format=torch.channels_last)


def _columns_cuda(t):
    """Every other column of a wider CUDA tensor (a non-contiguous view)."""
    big = torch.zeros(*t.shape[:3], 2 * t.shape[3], dtype=t.dtype, device=DEV)
    big[..., ::2] = t.to(DEV)
    return big[..., ::2]


@pytest.mark.parametrize("shape", [(0, 3, 5, 6), (2, 0, 5, 6), (1, 2, 0, 4), (1, 2, 3, 0)])
def test_cuda_empty_inputs(shape):
    n, c, h, w = shape
    f1, f2 = inputs(*shape, torch.float32)
    out, ga, gb = _run_cuda(f1, f2, 1, 1, 2, torch.randn(n, 9, -(-h // 2), -(-w // 2)))
    assert out.shape == (n, 9, -(-h // 2), -(-w // 2))
    assert (out == 0).all() and ga.shape == f1.shape and gb.shape == f2.shape
    assert (ga == 0).all() and (gb == 0).all()


def test_cuda_backward_is_deterministic_and_honours_the_mask():
    f1, f2 = inputs(2, 16, 24, 40, torch.float32, seed=6)
    g = _grad(2, 3, 24, 40, 2, torch.float32, seed=7)
    first = _run_cuda(f1, f2, 3, 2, 2, g)
    for _ in range(3):
        for x, y in zip(first, _run_cuda(f1, f2, 3, 2, 2, g)):
            assert torch.equal(x, y)
    ops = torch.ops.crossnet_fast
    a, b, go = f1.to(DEV), f2.to(DEV), g.to(DEV)
    ga, gb = ops.correlation_backward(go, a, b, 3, 2, 2, [True, False])
    assert gb.numel() == 0 and torch.equal(ga.cpu(), first[1])
    ga, gb = ops.correlation_backward(go, a, b, 3, 2, 2, [False, True])
    assert ga.numel() == 0 and torch.equal(gb.cpu(), first[2])


@pytest.mark.parametrize("where", ["f1", "f2"])
def test_cuda_nonfinite_stays_local(where):
    """A NaN planted at P reaches only the outputs (and other-input gradient elements) that read P."""
    d, dil, s = 2, 1, 1
    n, c, h, w = 1, 3, 7, 8
    f1, f2 = inputs(n, c, h, w, torch.float32, seed=5)
    py, px = 2, 4
    bad1, bad2 = f1.clone(), f2.clone()
    (bad1 if where == "f1" else bad2)[0, 1, py, px] = float("nan")
    g = _grad(n, d, h, w, s, torch.float32, seed=8)
    out, ga, gb = _run_cuda(bad1, bad2, d, dil, s, g)
    want_out, want_ga, want_gb = oracle(f1, f2, d, dil, s, g)
    hit = torch.zeros_like(out, dtype=torch.bool)
    for (k, i, j), p in _reads(h, w, d, dil, s).items():
        if p is not None and ((where == "f2" and p == (py, px)) or (where == "f1" and (i, j) == (py, px))):
            hit[0, k, i, j] = True
    assert out[hit].isnan().all()
    torch.testing.assert_close(out[~hit].double(), want_out[~hit], atol=1e-5, rtol=0)
    own, own_want = (ga, want_ga) if where == "f1" else (gb, want_gb)
    torch.testing.assert_close(own.double(), own_want, atol=1e-5, rtol=0)


def test_cuda_gradcheck_fp64():
    f1, f2 = inputs(1, 3, 5, 6, torch.float64, seed=9)
    a = f1.to(DEV).requires_grad_()
    b = f2.to(DEV).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: cf.correlation(x, y, 2, dilation=1, stride=2, backend="cuda"), (a, b))


def test_cuda_opcheck():
    f1, f2 = inputs(2, 4, 6, 7, torch.float32, seed=10)
    a = f1.to(DEV).requires_grad_()
    b = f2.to(DEV).requires_grad_()
    torch.library.opcheck(torch.ops.crossnet_fast.correlation.default, (a, b, 2, 1, 1))
