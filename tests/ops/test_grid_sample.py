"""crossnet_fast.grid_sample on the CPU backends against torch.nn.functional.grid_sample.

Every expectation is F.grid_sample's (float64), never another backend of this library. The Triton
kernels are checked the same way in tests/ops/test_grid_sample_triton.py, CUDA in tests/ops/test_cuda.py.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import NATIVE_CPU
from test_warp import _forward_and_grads  # (out, grad of both inputs) of fn(a, b)

import crossnet_fast as cf

BACKENDS = [pytest.param("cpu", marks=NATIVE_CPU), "reference"]
PADDINGS = ["zeros", "border", "reflection"]
OPS = torch.ops.crossnet_fast


def _random_grid(gen, n, ho, wo, spread=1.6, dtype=torch.float64):
    """Normalised points in [-spread, spread]^2: about a third of them outside the image."""
    return (torch.rand(n, ho, wo, 2, generator=gen, dtype=torch.float64) * 2 - 1).mul(spread).to(dtype)


def _edge_grid(h, w):
    """Points on and around every special coordinate: corners, clamp bounds, reflection edges,
    the -1 / size tap limits of zeros padding (both align_corners), far outside."""
    special = [-3.0, -1.5, -1.25, -1.0, -0.75, -0.5, 0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 3.0]
    special += [-1 - 2 / max(w - 1, 1), -1 - 1 / w, 1 + 1 / w, 1 + 2 / max(w - 1, 1), 0.3333333]
    vals = torch.tensor(special, dtype=torch.float64)
    gx, gy = torch.meshgrid(vals, vals, indexing="xy")
    return torch.stack((gx, gy), -1)[None]


def _torch(inp, grid, padding, align_corners, grad_out):
    """F.grid_sample in fp64 on the same (rounded) inputs: (out, grad_input, grad_grid), fp64."""

    def fn(i, g):
        return F.grid_sample(i, g, padding_mode=padding, align_corners=align_corners)

    return _forward_and_grads(fn, inp.double(), grid.double(), grad_out.double())


def _ours(backend, inp, grid, padding, align_corners, grad_out):
    def fn(i, g):
        return cf.grid_sample(i, g, padding_mode=padding, align_corners=align_corners, backend=backend)

    return _forward_and_grads(fn, inp, grid, grad_out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(2, 3, 7, 9, 5, 11), (1, 2, 1, 6, 3, 3), (2, 1, 6, 1, 4, 2), (1, 4, 8, 8, 16, 16)])
def test_matches_torch(backend, padding, align_corners, dtype, shape, gen):
    """Forward and both gradients; grids of another size than the input, points outside it."""
    n, c, h, w, ho, wo = shape
    inp = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64).to(dtype)
    grid = _random_grid(gen, n, ho, wo, dtype=dtype)
    grad_out = torch.randn(n, c, ho, wo, generator=gen, dtype=torch.float64)
    got = _ours(backend, inp, grid, padding, align_corners, grad_out)
    want = _torch(inp, grid, padding, align_corners, grad_out)
    # fp32: the coordinates are computed in fp32 (as F.grid_sample does), about 1e-6 pixel off.
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    for name, a, b in zip(("out", "grad_input", "grad_grid"), got, want):
        assert a.dtype == dtype, name
        torch.testing.assert_close(a.double(), b, atol=tol, rtol=tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding,align_corners", list(itertools.product(PADDINGS, [False, True])))
def test_matches_torch_on_edges(backend, padding, align_corners, gen):
    """Exactly on the clamp bounds, reflection edges and tap limits (where the gradient's
    conventions differ most easily)."""
    inp = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    grid = _edge_grid(4, 5).expand(2, -1, -1, -1)
    grad_out = torch.randn(2, 3, *grid.shape[1:3], generator=gen, dtype=torch.float64)
    got = _ours(backend, inp, grid, padding, align_corners, grad_out)
    want = _torch(inp, grid, padding, align_corners, grad_out)
    for name, a, b in zip(("out", "grad_input", "grad_grid"), got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("padding", PADDINGS)
def test_low_precision_accumulates_in_fp32(backend, dtype, padding, gen):
    """fp16/bf16 input with an fp32 grid (the usual mix): within the rounding of the inputs and of
    one output store of F.grid_sample computed in fp64 on the same rounded inputs."""
    inp = torch.randn(2, 8, 9, 10, generator=gen).to(dtype)
    grid = _random_grid(gen, 2, 6, 7, dtype=torch.float32)
    grad_out = torch.randn(2, 8, 6, 7, generator=gen).to(dtype)
    got = _ours(backend, inp, grid, padding, False, grad_out)
    want = _torch(inp, grid, padding, False, grad_out.double())
    assert got[0].dtype == dtype and got[1].dtype == dtype and got[2].dtype == torch.float32
    eps = torch.finfo(dtype).eps
    for name, a, b in zip(("out", "grad_input", "grad_grid"), got, want):
        scale = b.abs().max().item()
        # grad_grid sums C products of two rounded values: allow a few ulps of the largest term.
        bound = (8 if name == "grad_grid" else 2) * eps * scale + 1e-6
        assert (a.double() - b).abs().max().item() <= bound, name


@pytest.mark.parametrize("backend", BACKENDS)
def test_layouts_and_views(backend, gen):
    """channels_last input and a non-contiguous grid give the contiguous results; the output
    follows the op's layout rule (contiguous: a new shape)."""
    inp = torch.randn(2, 5, 8, 9, generator=gen)
    grid = _random_grid(gen, 2, 12, 6, dtype=torch.float32)
    want = F.grid_sample(inp, grid, align_corners=False)
    cl = inp.contiguous(memory_format=torch.channels_last)
    strided_grid = grid.transpose(1, 2).contiguous().transpose(1, 2)  # non-contiguous, same values
    assert not strided_grid.is_contiguous()
    got = cf.grid_sample(cl, strided_grid, align_corners=False, backend=backend)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    g = cf.grid_sample(cl.requires_grad_(), grid, align_corners=False, backend=backend)
    (gi,) = torch.autograd.grad(g.sum(), cl)
    (gw,) = torch.autograd.grad(F.grid_sample(inp.requires_grad_(), grid, align_corners=False).sum(), inp)
    torch.testing.assert_close(gi, gw, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(0, 3, 4, 5, 2, 2), (2, 3, 4, 5, 0, 3), (2, 0, 4, 5, 2, 2)])
def test_empty(backend, shape):
    n, c, h, w, ho, wo = shape
    inp = torch.randn(n, c, h, w, requires_grad=True)
    grid = torch.zeros(n, ho, wo, 2, requires_grad=True)
    out = cf.grid_sample(inp, grid, align_corners=False, backend=backend)
    assert out.shape == (n, c, ho, wo)
    gi, gg = torch.autograd.grad(out.sum(), (inp, grid), allow_unused=True)
    assert gi is None or (gi.shape == inp.shape and not gi.any())
    assert gg is None or (gg.shape == grid.shape and not gg.any())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
def test_non_finite_grid(backend, padding, align_corners, gen):
    """NaN (and +-inf except with border padding) -> NaN sample and NaN grid gradient at that
    point only; nothing of it reaches the input gradient. With zeros padding that is also what
    F.grid_sample gives on the CPU (which crashes on NaN with border or reflection), and with
    border padding +-inf clamps to the edge in both."""
    inp = torch.randn(1, 3, 5, 6, generator=gen, dtype=torch.float64)
    grid = _random_grid(gen, 1, 4, 4, spread=0.9)
    bad = [(0, 0, 0, float("nan")), (1, 1, 1, float("nan")), (2, 2, 0, float("inf")), (3, 3, 1, float("-inf"))]
    for i, j, k, v in bad:
        grid[0, i, j, k] = v
    grad_out = torch.randn(1, 3, 4, 4, generator=gen, dtype=torch.float64)
    out, g_inp, g_grid = _ours(backend, inp, grid, padding, align_corners, grad_out)
    finite = torch.isfinite(grid).all(-1)[0]
    undefined = ~finite if padding != "border" else torch.isnan(grid).any(-1)[0]
    assert torch.isnan(out[0][:, undefined]).all()
    assert torch.isnan(g_grid[0][undefined]).all()
    assert torch.isfinite(out[0][:, ~undefined]).all() and torch.isfinite(g_grid[0][~undefined]).all()
    assert torch.isfinite(g_inp).all()
    # Every finite point (and border's clamped infinities) as F.grid_sample gives it.
    clean = torch.where(undefined[None, ..., None], torch.zeros_like(grid), grid)
    if padding == "border":
        clean = torch.where(torch.isnan(grid), torch.zeros_like(grid), grid)
    keep = ~undefined[None, None]
    want = _torch(inp, clean, padding, align_corners, grad_out * keep)
    torch.testing.assert_close(out[keep.expand_as(out)], want[0][keep.expand_as(out)], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(g_inp, want[1], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(g_grid[0][~undefined], want[2][0][~undefined], atol=1e-12, rtol=1e-12)
    if padding == "zeros":  # where F.grid_sample is defined on non-finite grids
        torch_out = F.grid_sample(inp, grid, padding_mode=padding, align_corners=align_corners)
        torch.testing.assert_close(out, torch_out, atol=1e-12, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inf_input_reaches_only_weighting_samples(backend):
    """A sample exactly on a pixel (zero-weight neighbours) stays finite next to an inf pixel."""
    inp = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    inp[0, 0, 1, 2] = float("inf")
    grid = torch.tensor([[[[0.0, 0.0], [-1.0, -1.0]]]], dtype=torch.float64)  # pixel (1, 1) and (0, 0)
    out = cf.grid_sample(inp, grid, align_corners=True, backend=backend)
    assert out.flatten().tolist() == [0.0, 0.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", PADDINGS)
def test_gradcheck_fp64(backend, padding, gen):
    inp = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    # Away from the bilinear kinks (integer coordinates) and clamp bounds, where the derivative jumps.
    grid = (torch.rand(1, 3, 4, 2, generator=gen, dtype=torch.float64) * 1.2 - 0.6).requires_grad_()
    for ac in (False, True):
        assert torch.autograd.gradcheck(
            lambda i, g: cf.grid_sample(i, g, padding_mode=padding, align_corners=ac, backend=backend), (inp, grid)
        )


@NATIVE_CPU
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(padding, requires_grad, gen):
    inp = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64, requires_grad=requires_grad)
    grid = _random_grid(gen, 2, 4, 7).requires_grad_(requires_grad)
    for ac in (False, True):
        torch.library.opcheck(OPS.grid_sample.default, (inp, grid, padding, ac))
        go = torch.randn(2, 3, 4, 7, generator=gen, dtype=torch.float64)
        for mask in ([True, True], [True, False], [False, True]):
            torch.library.opcheck(
                OPS.grid_sample_backward.default, (go, inp.detach(), grid.detach(), padding, ac, mask)
            )
    cl = inp.detach().contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(OPS.grid_sample.default, (cl, grid.detach(), padding, False))


@NATIVE_CPU
@pytest.mark.parametrize("compiler", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compile_fullgraph_agrees_with_eager(compiler, gen):
    torch._dynamo.reset()
    inp = torch.randn(2, 3, 8, 8, generator=gen, requires_grad=True)
    grid = _random_grid(gen, 2, 5, 6, dtype=torch.float32).requires_grad_()

    def step(i, g):
        return (cf.grid_sample(i, g, padding_mode="border", align_corners=True) ** 2).sum()

    with cf.use_backend("cpu"):
        eager = step(inp, grid)
        compiled = torch.compile(step, fullgraph=True, backend=compiler)(inp, grid)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(eager, (inp, grid)), torch.autograd.grad(compiled, (inp, grid))):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@NATIVE_CPU
def test_backward_is_deterministic_and_independent_of_threads(gen):
    """Many points on one pixel (every sample clamped into a corner): the input gradient is summed
    in one fixed order, bit-identical across runs and thread counts, and accurate in fp16."""
    inp = torch.randn(1, 4, 6, 6, generator=gen).half().requires_grad_()
    grid = torch.full((1, 64, 64, 2), -5.0)
    grid[..., :32, :] = _random_grid(gen, 1, 64, 32, dtype=torch.float32)
    grads = []
    threads = torch.get_num_threads()
    try:
        for t in (1, max(2, threads), 1):
            torch.set_num_threads(t)
            out = cf.grid_sample(inp, grid, padding_mode="border", align_corners=False, backend="cpu")
            grads.append(torch.autograd.grad(out.float().sum(), inp)[0])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(grads[0], g) for g in grads[1:])
    ref_inp = inp.detach().double().requires_grad_()
    want = torch.autograd.grad(
        F.grid_sample(ref_inp, grid.double(), padding_mode="border", align_corners=False).sum(), ref_inp
    )[0]
    # 2048 contributions into the corner pixel: fp32 accumulation keeps fp16's output rounding.
    torch.testing.assert_close(grads[0].double(), want, atol=0, rtol=2 * torch.finfo(torch.float16).eps)


def test_other_modes_and_5d_delegate_to_torch(gen):
    inp = torch.randn(1, 2, 5, 6, generator=gen)
    grid = _random_grid(gen, 1, 3, 4, dtype=torch.float32)
    for mode in ("nearest", "bicubic"):
        torch.testing.assert_close(
            cf.grid_sample(inp, grid, mode=mode, align_corners=True),
            F.grid_sample(inp, grid, mode=mode, align_corners=True),
            atol=0,
            rtol=0,
        )
    vol = torch.randn(1, 2, 3, 4, 5, generator=gen)
    grid5 = torch.rand(1, 2, 2, 2, 3, generator=gen) * 2 - 1
    torch.testing.assert_close(
        cf.grid_sample(vol, grid5, align_corners=False), F.grid_sample(vol, grid5, align_corners=False), atol=0, rtol=0
    )


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(grid=torch.zeros(1, 3, 4, 3)), ValueError, "grid must have shape"),
        (dict(grid=torch.zeros(1, 3, 4)), ValueError, "grid must be a 4-D"),
        (dict(grid=torch.zeros(2, 3, 4, 2)), ValueError, "batch size"),
        (dict(grid=torch.zeros(1, 3, 4, 2, dtype=torch.int64)), TypeError, "grid must be float"),
        (dict(input=torch.zeros(1, 2, 5, 6, dtype=torch.int32)), TypeError, "input must be float"),
        (dict(padding_mode="circular"), ValueError, "padding_mode must be one of"),
        (dict(mode="lanczos"), ValueError, "mode must be"),
        (dict(align_corners="yes"), TypeError, "align_corners must be a bool"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = dict(input=torch.zeros(1, 2, 5, 6), grid=torch.zeros(1, 3, 4, 2))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        cf.grid_sample(**args)


@NATIVE_CPU
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("align_corners", [False, True])
def test_vectorised_taps_and_flat_batches_match_torch(padding, align_corners, gen):
    """fp32 tiles of multiples of 8 points take the AVX2 tap fill, and one channel with few points
    per image runs as one long image (RAFT's lookups): both against F.grid_sample, with points on
    the edges, outside, and NaN (NaN where the reference puts it)."""
    inp = torch.randn(64, 1, 9, 11, generator=gen)
    grid = _random_grid(gen, 64, 4, 10, spread=1.3, dtype=torch.float32)
    # Corners and points outside; not exactly on a reflection or clamp kink, where fp32 and fp64
    # coordinates may fall on either side (test_matches_torch_on_edges covers those in fp64).
    grid[3, 0, :6] = torch.tensor(
        [[-1.0, -1.0], [1.0, 1.0], [-1.0 - 0.5 / 11, 0.2], [1.0 + 0.3 / 11, 0.0], [0.0, 3.0], [-5.0, -5.0]]
    )
    grid[5, 1, 2, 0] = float("nan")
    grad_out = torch.randn(64, 1, 4, 10, generator=gen, dtype=torch.float64)
    got = _ours("cpu", inp, grid, padding, align_corners, grad_out)
    nan_point = torch.isnan(grid).any(-1)
    clean = torch.where(nan_point[..., None], torch.zeros_like(grid), grid)
    want = _torch(inp, clean, padding, align_corners, grad_out.masked_fill(nan_point[:, None], 0))
    assert torch.isnan(got[0][5, 0, 1, 2]) and torch.isnan(got[2][5, 1, 2]).all()
    keep = ~nan_point
    torch.testing.assert_close(got[0].double()[:, 0][keep], want[0][:, 0][keep], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1].double(), want[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[2].double()[keep], want[2][keep], atol=1e-4, rtol=1e-4)
