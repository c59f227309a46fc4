"""The correlation op (cost volume): reference and CPU kernel against independent formulas.

Oracles (never the code under test): a numpy float64 loop over every output and displacement
(tiny shapes), and an ``F.unfold`` formulation (patches of f2 around each read point, in float64,
differentiated by autograd through unfold's own backward, ``F.fold``). The loop checks the unfold
oracle too, so the two cannot agree in error.

Tolerances: an output or gradient of dtype ``d`` may differ from the float64 oracle (on the same
``d``-rounded inputs) by ``TOL[d] * (1 + max |oracle|)``: a few units in the last place of ``d``,
the result being rounded once from an fp32 (fp64) accumulator.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import NATIVE_CPU
from hypothesis import given
from hypothesis import strategies as st

import crossnet_fast as cf
from crossnet_fast import _extension, reference

import properties  # noqa: F401  (loads the project's hypothesis profile: example counts, no deadline)

OPS = torch.ops.crossnet_fast if _extension.loaded else None
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOL = {torch.float64: 1e-12, torch.float32: 4e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
# (N, C, H, W, D, dilation, stride): strides that divide the size and that do not, dilations that
# put displacements outside the image, a window wider than the image.
CASES = [
    (2, 3, 7, 9, 2, 1, 1),
    (1, 5, 8, 6, 1, 2, 1),
    (2, 4, 9, 10, 2, 1, 2),
    (1, 3, 10, 7, 3, 2, 3),
    (1, 2, 4, 5, 4, 1, 1),
    (1, 17, 5, 37, 1, 1, 1),  # a channel count past the kernel's channel blocks, 37 columns past its tiles
    (1, 1, 1, 1, 0, 1, 1),
]


# ---------------------------------------------------------------------------------------------
# Oracles


def loop_correlation(f1: np.ndarray, f2: np.ndarray, d: int, dil: int, s: int) -> np.ndarray:
    """The definition, written out: one output and one displacement at a time, float64."""
    n_, c_, h, w = f1.shape
    ho, wo, side = -(-h // s), -(-w // s), 2 * d + 1
    out = np.zeros((n_, side * side, ho, wo))
    for n, i, j, dy, dx in itertools.product(range(n_), range(ho), range(wo), range(-d, d + 1), range(-d, d + 1)):
        y, x = i * s, j * s
        yy, xx = y + dy * dil, x + dx * dil
        if 0 <= yy < h and 0 <= xx < w and c_ > 0:
            out[n, (dy + d) * side + dx + d, i, j] = float(np.dot(f1[n, :, y, x], f2[n, :, yy, xx])) / c_
    return out


def unfold_correlation(f1: torch.Tensor, f2: torch.Tensor, d: int, dil: int, s: int) -> torch.Tensor:
    """The cost volume from F.unfold's (2D+1)^2 patches of f2 (zero padded) at f1's read points."""
    n, c, h, w = f1.shape
    side = 2 * d + 1
    ho, wo = -(-h // s), -(-w // s)
    patches = F.unfold(f2, kernel_size=side, dilation=dil, padding=d * dil, stride=s)  # (N, C*K, Ho*Wo)
    a = f1[:, :, ::s, ::s].reshape(n, c, 1, ho * wo)
    return ((a * patches.view(n, c, side * side, ho * wo)).sum(1) / max(c, 1)).view(n, side * side, ho, wo)


def oracle(f1, f2, d, dil, s, grad_out=None):
    """Output and (with grad_out) both gradients of the unfold oracle, float64."""
    a = f1.detach().double().requires_grad_()
    b = f2.detach().double().requires_grad_()
    n, c, h, w = f1.shape
    if n == 0 or c == 0:  # F.unfold refuses these; nothing to sum: zeros
        out = torch.zeros(n, (2 * d + 1) ** 2, -(-h // s), -(-w // s), dtype=torch.float64)
        return out if grad_out is None else (out, torch.zeros_like(a), torch.zeros_like(b))
    out = unfold_correlation(a, b, d, dil, s)
    if grad_out is None:
        return out.detach()
    ga, gb = torch.autograd.grad(out, (a, b), grad_out.double())
    return out.detach(), ga, gb


def assert_near(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str = "") -> None:
    assert got.dtype == dtype, what
    assert got.shape == want.shape, what
    tol = TOL[dtype] * (1 + want.abs().max().item() if want.numel() else 1)
    torch.testing.assert_close(got.double(), want, atol=tol, rtol=0, msg=lambda m: f"{what}: {m}")


def inputs(n, c, h, w, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    f1 = torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype)
    f2 = torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype)
    return f1, f2


def run(f1, f2, d, dil, s, grad_out, backend):
    """Output and both gradients of crossnet_fast.correlation."""
    a, b = f1.clone().requires_grad_(), f2.clone().requires_grad_()
    out = cf.correlation(a, b, d, dilation=dil, stride=s, backend=backend)
    ga, gb = torch.autograd.grad(out, (a, b), grad_out)
    return out, ga, gb


# ---------------------------------------------------------------------------------------------
# The oracles and the reference


@pytest.mark.parametrize("case", CASES[:5] + CASES[6:])
def test_oracles_and_reference_match_the_loop(case):
    n, c, h, w, d, dil, s = case
    f1, f2 = inputs(n, c, h, w)
    want = loop_correlation(f1.numpy(), f2.numpy(), d, dil, s)
    np.testing.assert_allclose(unfold_correlation(f1, f2, d, dil, s).numpy(), want, rtol=0, atol=1e-13)
    np.testing.assert_allclose(reference.correlation(f1, f2, d, dil, s).numpy(), want, rtol=0, atol=1e-13)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_matches_oracle(case, dtype):
    n, c, h, w, d, dil, s = case
    f1, f2 = inputs(n, c, h, w, dtype)
    g = torch.randn(n, (2 * d + 1) ** 2, -(-h // s), -(-w // s), dtype=torch.float64).to(dtype)
    got = run(f1, f2, d, dil, s, g, "reference")
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, oracle(f1, f2, d, dil, s, g)):
        assert_near(x, y, dtype, name)


# ---------------------------------------------------------------------------------------------
# The CPU kernel


@NATIVE_CPU
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_matches_oracle(case, dtype):
    n, c, h, w, d, dil, s = case
    f1, f2 = inputs(n, c, h, w, dtype, seed=1)
    g = torch.randn(n, (2 * d + 1) ** 2, -(-h // s), -(-w // s), dtype=torch.float64).to(dtype)
    got = run(f1, f2, d, dil, s, g, "cpu")
    assert got[0].is_contiguous()
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, oracle(f1, f2, d, dil, s, g)):
        assert_near(x, y, dtype, name)


@NATIVE_CPU
@pytest.mark.parametrize(
    "case",
    [
        (2, 40, 12, 70, 4, 1, 1),
        (2, 9, 11, 45, 3, 2, 2),
        (1, 6, 9, 33, 2, 3, 3),
        (1, 5, 6, 131, 3, 3, 2),
        (1, 3, 4, 100, 9, 1, 1),
    ],
)
def test_cpu_matches_reference_at_larger_shapes(case):
    """Rows wide enough for the kernel's 32-column tiles (two displacements at a time) with
    8-column edges, 8- and 4-channel blocks, against the reference (itself checked against the
    oracles above)."""
    n, c, h, w, d, dil, s = case
    f1, f2 = inputs(n, c, h, w, torch.float32, seed=2)
    g = torch.randn(n, (2 * d + 1) ** 2, -(-h // s), -(-w // s))
    for name, x, y in zip(
        ("out", "grad_f1", "grad_f2"),
        run(f1, f2, d, dil, s, g, "cpu"),
        run(f1.double(), f2.double(), d, dil, s, g.double(), "reference"),
    ):
        assert_near(x, y, torch.float32, name)


@NATIVE_CPU
@pytest.mark.parametrize("case", [(1, 2, 5, 6, 1, 1, 1), (2, 3, 6, 5, 1, 2, 2), (1, 2, 7, 7, 2, 1, 3)])
def test_gradcheck_fp64(case):
    n, c, h, w, d, dil, s = case
    f1, f2 = inputs(n, c, h, w)
    fn = lambda a, b: cf.correlation(a, b, d, dilation=dil, stride=s, backend="cpu")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (f1.requires_grad_(), f2.requires_grad_()))


@NATIVE_CPU
@pytest.mark.parametrize("mask", [(True, True), (True, False), (False, True)])
def test_backward_output_mask(mask):
    """A gradient not asked for is an empty (0,) tensor of the input's dtype; autograd asks only for
    the inputs that require one."""
    f1, f2 = inputs(1, 3, 5, 6, torch.float32)
    g = torch.randn(1, 9, 5, 6)
    ga, gb = OPS.correlation_backward(g, f1, f2, 1, 1, 1, list(mask))
    want = oracle(f1, f2, 1, 1, 1, g)
    for asked, got, ref in zip(mask, (ga, gb), want[1:]):
        if asked:
            assert_near(got, ref, torch.float32)
        else:
            assert got.shape == (0,) and got.dtype == torch.float32
    a = f1.clone().requires_grad_(mask[0])
    b = f2.clone().requires_grad_(mask[1])
    cf.correlation(a, b, 1, backend="cpu").mul(g).sum().backward()
    assert (a.grad is not None) == mask[0] and (b.grad is not None) == mask[1]


@NATIVE_CPU
@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("params", [(1, 1, 1), (2, 2, 2), (0, 1, 3)])
def test_opcheck(requires_grad, params):
    d, dil, s = params
    f1, f2 = inputs(2, 3, 5, 7)
    torch.library.opcheck(
        OPS.correlation.default, (f1.requires_grad_(requires_grad), f2.requires_grad_(requires_grad), d, dil, s)
    )
    g = torch.randn(2, (2 * d + 1) ** 2, -(-5 // s), -(-7 // s), dtype=torch.float64)
    for mask in ([True, True], [True, False], [False, True]):
        torch.library.opcheck(OPS.correlation_backward.default, (g, f1.detach(), f2.detach(), d, dil, s, mask))


@NATIVE_CPU
def test_opcheck_channels_last():
    f1, f2 = (t.float().contiguous(memory_format=torch.channels_last) for t in inputs(1, 4, 5, 6))
    torch.library.opcheck(OPS.correlation.default, (f1.requires_grad_(), f2.requires_grad_(), 1, 1, 1))


def _cost_pipeline(f1, f2):
    cost = cf.correlation(f1, f2, 2, dilation=2, stride=2)
    return F.leaky_relu(cost, 0.1).square().mean() + cf.correlation(f1, f2, 1).sum()


@NATIVE_CPU
@pytest.mark.parametrize("compiler", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compile_fullgraph(compiler):
    torch._dynamo.reset()
    f1, f2 = (t.float().requires_grad_() for t in inputs(2, 4, 8, 9, seed=3))
    with cf.use_backend("cpu"):
        eager = _cost_pipeline(f1, f2)
        compiled = torch.compile(_cost_pipeline, fullgraph=True, backend=compiler)(f1, f2)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(torch.autograd.grad(compiled, (f1, f2)), torch.autograd.grad(eager, (f1, f2))):
        torch.testing.assert_close(a, b)
    # and against the oracle, so that agreement is not agreement in error
    a, b = f1.detach().double().requires_grad_(), f2.detach().double().requires_grad_()
    want = (
        F.leaky_relu(unfold_correlation(a, b, 2, 2, 2), 0.1).square().mean() + unfold_correlation(a, b, 1, 1, 1).sum()
    )
    torch.testing.assert_close(compiled.double(), want.detach(), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Layouts, empty inputs


def _layout(t: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if kind == "columns":  # every other column of a wider tensor
        big = torch.zeros(*t.shape[:3], 2 * t.shape[3], dtype=t.dtype)
        big[..., ::2] = t
        return big[..., ::2]
    if kind == "transposed":  # H and W swapped in memory
        return t.transpose(2, 3).contiguous().transpose(2, 3)
    return t


@NATIVE_CPU
@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("kind", ["channels_last", "columns", "transposed"])
@pytest.mark.parametrize("stride", [1, 2])
def test_any_strides(backend, kind, stride):
    f1, f2 = inputs(2, 5, 7, 8, torch.float32, seed=4)
    g = torch.randn(2, 25, -(-7 // stride), -(-8 // stride))
    got = run(
        _layout(f1, kind), _layout(f2, kind), 2, 1, stride, g.transpose(2, 3).contiguous().transpose(2, 3), backend
    )
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, oracle(f1, f2, 2, 1, stride, g)):
        assert_near(x, y, torch.float32, name)
    assert got[0].is_contiguous()
    if kind == "channels_last" and backend == "cpu":
        assert got[1].is_contiguous(memory_format=torch.channels_last)
        assert got[2].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("backend", [pytest.param("cpu", marks=NATIVE_CPU), "reference"])
@pytest.mark.parametrize("shape", [(0, 3, 5, 6), (2, 0, 5, 6), (1, 2, 0, 4), (1, 2, 3, 0)])
def test_empty_inputs(backend, shape):
    f1, f2 = inputs(*shape, torch.float32)
    n, c, h, w = shape
    g = torch.randn(n, 9, -(-h // 2), -(-w // 2))
    out, ga, gb = run(f1, f2, 1, 1, 2, g, backend)
    assert out.shape == (n, 9, -(-h // 2), -(-w // 2))
    assert (out == 0).all() and ga.shape == f1.shape and gb.shape == f2.shape
    assert (ga == 0).all() and (gb == 0).all()


# ---------------------------------------------------------------------------------------------
# Non-finite values stay local


def _reads(h, w, d, dil, s):
    """reads[k, i, j] = the f2 pixel (yy, xx) that output (k, i, j) reads, or None when outside."""
    side = 2 * d + 1
    out = {}
    for i, j, dy, dx in itertools.product(range(-(-h // s)), range(-(-w // s)), range(-d, d + 1), range(-d, d + 1)):
        yy, xx = i * s + dy * dil, j * s + dx * dil
        out[((dy + d) * side + dx + d, i, j)] = (yy, xx) if 0 <= yy < h and 0 <= xx < w else None
    return out


# (N, C, H, W) of the planted-value tests; the value is planted in channel 1 at PLANT_AT (y, x).
PLANT_SIZE = (1, 3, 7, 8)
PLANT_AT = (2, 4)  # a read point for stride 1 and 2


def check_nonfinite_stays_local(backend, where, value, d, dil, s, g):
    """A value planted in channel 1 of f2 at P reaches only the outputs that read P and the f1
    gradient (channel 1) of the points that read P; one planted in f1 at a read point P reaches
    only P's outputs whose displaced point is inside and the f2 gradient (channel 1) of the pixels P
    reads. Everything else, the planted input's own gradient included, equals the oracle on the
    inputs without the planted value (the padding is never multiplied by it).

    ``where``: "f1" or "f2"; ``g``: float32 grad_out of the output's shape for ``PLANT_SIZE``."""
    n, c, h, w = PLANT_SIZE
    f1, f2 = inputs(n, c, h, w, torch.float32, seed=5)
    py, px = PLANT_AT
    bad1, bad2 = f1.clone(), f2.clone()
    (bad1 if where == "f1" else bad2)[0, 1, py, px] = value
    out, ga, gb = run(bad1, bad2, d, dil, s, g, backend)
    want_out, want_ga, want_gb = oracle(f1, f2, d, dil, s, g)
    hit_out = torch.zeros_like(out, dtype=torch.bool)
    hit_other = torch.zeros(n, c, h, w, dtype=torch.bool)  # in the gradient of the other input
    for (k, i, j), p in _reads(h, w, d, dil, s).items():
        if p is None:
            continue
        if where == "f2" and p == (py, px):
            hit_out[0, k, i, j] = True
            hit_other[0, 1, i * s, j * s] = True
        if where == "f1" and (i * s, j * s) == (py, px):
            hit_out[0, k, i, j] = True
            hit_other[0, 1, p[0], p[1]] = True
    assert hit_out.any()
    assert not out[hit_out].isfinite().any()
    torch.testing.assert_close(out[~hit_out].double(), want_out[~hit_out], atol=1e-5, rtol=0)
    own, own_want = (ga, want_ga) if where == "f1" else (gb, want_gb)
    other, other_want = (gb, want_gb) if where == "f1" else (ga, want_ga)
    torch.testing.assert_close(own.double(), own_want, atol=1e-5, rtol=0)
    assert not other[hit_other].isfinite().any()
    torch.testing.assert_close(other[~hit_other].double(), other_want[~hit_other], atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", [pytest.param("cpu", marks=NATIVE_CPU), "reference"])
@pytest.mark.parametrize("where", ["f1", "f2"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
@pytest.mark.parametrize("params", [(2, 1, 1), (1, 2, 2)])
def test_nonfinite_stays_local(backend, where, value, params):
    """See :func:`check_nonfinite_stays_local`."""
    d, dil, s = params
    n, _, h, w = PLANT_SIZE
    side = 2 * d + 1
    g = torch.randn(n, side * side, -(-h // s), -(-w // s))
    check_nonfinite_stays_local(backend, where, value, d, dil, s, g)


# ---------------------------------------------------------------------------------------------
# Determinism


@NATIVE_CPU
def test_bit_identical_across_thread_counts():
    f1, f2 = inputs(2, 16, 24, 40, torch.float32, seed=6)
    g = torch.randn(2, 49, 12, 20)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(run(f1, f2, 3, 2, 2, g, "cpu"))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)
    again = run(f1, f2, 3, 2, 2, g, "cpu")
    for a, b in zip(results[1], again):
        assert torch.equal(a, b)


ISA_CHILD = r"""
import json, torch
import crossnet_fast as cf
torch.manual_seed(0)
res = {}
for (n, c, h, w, d, dil, s) in [(1, 13, 9, 45, 2, 1, 1), (2, 6, 10, 21, 3, 2, 2)]:
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        f1 = torch.randn(n, c, h, w).to(dtype).requires_grad_()
        f2 = torch.randn(n, c, h, w).to(dtype).requires_grad_()
        out = cf.correlation(f1, f2, d, dilation=dil, stride=s, backend="cpu")
        ga, gb = torch.autograd.grad(out, (f1, f2), torch.randn(out.shape).to(dtype))
        res[f"{n},{c},{h},{w},{d},{dil},{s},{dtype}"] = [t.double().flatten().tolist() for t in (out, ga, gb)]
print(json.dumps(res))
"""


@NATIVE_CPU
@pytest.mark.slow
def test_avx2_and_baseline_paths_bit_identical():
    """The AVX2 build of the loops and the baseline one (CROSSNET_FAST_CPU_ISA=baseline) sum every
    term in the same order without fused multiply-adds: identical results."""
    outs = []
    for isa in (None, "baseline"):
        env = {k: v for k, v in os.environ.items() if k != "CROSSNET_FAST_CPU_ISA"}
        if isa:
            env["CROSSNET_FAST_CPU_ISA"] = isa
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.run([sys.executable, "-c", ISA_CHILD], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout))
    assert outs[0] == outs[1]


# ---------------------------------------------------------------------------------------------
# Property tests


@st.composite
def correlation_case(draw):
    n = draw(st.integers(0, 2))
    c = draw(st.integers(0, 9))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 12))
    d = draw(st.integers(0, 3))
    dil = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(["nchw", "channels_last", "columns", "transposed"]))
    seed = draw(st.integers(0, 2**31 - 1))
    return n, c, h, w, d, dil, s, dtype, kind, seed


def check_case_against_oracle(case, backend: str) -> None:
    """One :func:`correlation_case` draw through ``backend``: output and both input gradients near
    the oracle's (also the Triton interpreter's property test, tests/ops/test_correlation_triton.py)."""
    n, c, h, w, d, dil, s, dtype, kind, seed = case
    f1, f2 = inputs(n, c, h, w, dtype, seed)
    g = torch.randn(
        n, (2 * d + 1) ** 2, -(-h // s), -(-w // s), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    ).to(dtype)
    got = run(_layout(f1, kind), _layout(f2, kind), d, dil, s, g, backend)
    for name, x, y in zip(("out", "grad_f1", "grad_f2"), got, oracle(f1, f2, d, dil, s, g)):
        assert_near(x, y, dtype, f"{name} {case}")


@NATIVE_CPU
@given(correlation_case())
def test_property_cpu_matches_oracle(case):
    check_case_against_oracle(case, "cpu")


@given(correlation_case())
def test_property_reference_matches_oracle(case):
    n, c, h, w, d, dil, s, dtype, kind, seed = case
    f1, f2 = inputs(n, c, h, w, dtype, seed)
    want = oracle(f1, f2, d, dil, s)
    assert_near(reference.correlation(_layout(f1, kind), _layout(f2, kind), d, dil, s), want, dtype, str(case))


# ---------------------------------------------------------------------------------------------
# Backend choice and bad inputs


@NATIVE_CPU
def test_auto_picks_the_cpu_kernel():
    assert cf.backend.resolve("correlation", torch.device("cpu")) == "cpu"
    f1, f2 = inputs(1, 2, 4, 5, torch.float32)
    torch.testing.assert_close(cf.correlation(f1, f2, 1), cf.correlation(f1, f2, 1, backend="reference"))


BAD = [
    (lambda a, b: cf.correlation(a[0], b[0], 1), ValueError, r"f1 must be a 4-D tensor \(N, C, H, W\)"),
    (lambda a, b: cf.correlation(a, b[:, :2], 1), ValueError, r"f2 must have the shape of f1"),
    (lambda a, b: cf.correlation(a, b.double(), 1), TypeError, r"f1 and f2 must have the same dtype"),
    (lambda a, b: cf.correlation(a.int(), b.int(), 1), TypeError, r"f1 must be float16, bfloat16, float32 or float64"),
    (lambda a, b: cf.correlation(a, b.to("meta"), 1), ValueError, r"f1 and f2 must be on the same device"),
    (lambda a, b: cf.correlation(a, b.numpy(), 1), TypeError, r"f2 must be a torch.Tensor"),
    (lambda a, b: cf.correlation(a, b, -1), ValueError, r"max_displacement must be an int >= 0, got -1"),
    (lambda a, b: cf.correlation(a, b, 1.5), TypeError, r"max_displacement must be an int >= 0, got float"),
    (lambda a, b: cf.correlation(a, b, True), TypeError, r"max_displacement must be an int >= 0, got bool"),
    (lambda a, b: cf.correlation(a, b, 1, dilation=0), ValueError, r"dilation must be an int >= 1, got 0"),
    (lambda a, b: cf.correlation(a, b, 1, dilation=True), TypeError, r"dilation must be an int >= 1, got bool"),
    (lambda a, b: cf.correlation(a, b, 1, stride=0), ValueError, r"stride must be an int >= 1, got 0"),
    (lambda a, b: cf.correlation(a, b, 1, stride=2.0), TypeError, r"stride must be an int >= 1, got float"),
    (lambda a, b: cf.correlation(a, b, 1, backend="gpu"), ValueError, r"backend must be one of"),
]


@pytest.mark.parametrize("call,exc,message", BAD)
def test_bad_inputs(call, exc, message):
    f1, f2 = inputs(1, 3, 4, 5, torch.float32)
    with pytest.raises(exc, match="correlation: " + message if "backend" not in message else message):
        call(f1, f2)


@NATIVE_CPU
def test_native_op_checks_its_inputs():
    f1, f2 = inputs(1, 3, 4, 5, torch.float32)
    with pytest.raises(ValueError, match="f2 must have the shape of f1"):
        OPS.correlation(f1, f2[:, :2], 1, 1, 1)
    with pytest.raises(TypeError, match="f1 and f2 must have the same dtype"):
        OPS.correlation(f1, f2.double(), 1, 1, 1)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        OPS.correlation(f1, f2, 1, 1, 0)
    with pytest.raises(ValueError, match="max_displacement must be >= 0"):
        OPS.correlation(f1, f2, -1, 1, 1)
    with pytest.raises(ValueError, match="grad_out must have the correlation's output shape"):
        OPS.correlation_backward(torch.zeros(1, 8, 4, 5), f1, f2, 1, 1, 1, [True, True])


def test_output_size_formula():
    for h, s in itertools.product(range(1, 9), range(1, 4)):
        f = torch.zeros(1, 1, h, h)
        assert reference.correlation(f, f, 0, 1, s).shape[-1] == math.ceil(h / s)


# Displacements that leave a narrow row on either side (|dx| * dilation > W): the CPU forward once
# zeroed such a row's columns [0, lo) with lo beyond the row and wrote past its buffer. glibc's
# MALLOC_CHECK_=3 turns that heap overflow into an abort of the child process.
HEAP_CHILD = r"""
import itertools, torch, crossnet_fast as cf
for w, d, dil, s, dtype in itertools.product((1, 2, 3), (1, 3), (1, 3), (1, 2), (torch.float32, torch.float64)):
    a = torch.randn(2, 3, 5, w, dtype=dtype, requires_grad=True)
    b = torch.randn(2, 3, 5, w, dtype=dtype, requires_grad=True)
    for _ in range(3):
        out = cf.correlation(a, b, d, dilation=dil, stride=s, backend="cpu")
        torch.autograd.grad(out, (a, b), torch.ones_like(out))
print("ok")
"""


@NATIVE_CPU
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MALLOC_CHECK_ is glibc's")
def test_cpu_displacements_beyond_narrow_rows_stay_inside_buffers():
    env = dict(os.environ, MALLOC_CHECK_="3", MALLOC_PERTURB_="165")
    proc = subprocess.run([sys.executable, "-c", HEAP_CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
