"""Triton answers that do not depend on the launch and constants that keep their precision
(issue 24, items 3, 5, 6 and 7), on the CPU interpreter.

Runs like tests/ops/test_triton.py: in-process under ``TRITON_INTERPRET=1``, else one test re-runs
this file in a child with the interpreter on. Expectations come from the reference ops, exact
integer arithmetic or the CPU backend's kernels (fp64), never from the Triton code under test.
The rounding of the compiled kernels (fma, approximate division and square root) is read from
their PTX in tests/ops/test_gpu_rounding.py; the GPU runs tests/ops/test_gpu_review.py.
"""

from __future__ import annotations

import pytest
import torch

import crossnet_fast as cf
from crossnet_fast import reference as ref

from _interpreter import in_process, keep_only_rerun, suite_under_interpreter

IN_PROCESS = in_process("crossnet_fast.triton.charbonnier", "_charbonnier_kernel")


test_suite_under_interpreter = suite_under_interpreter(__file__, IN_PROCESS, slow=False)


# ----------------------------------------------------------------------------------------------
# Item 5: fp64 Charbonnier constants


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_charbonnier_fp64_keeps_eps_and_norm_in_fp64(reduction):
    """eps = 0.1 with a zero difference is 0.1 in fp64 (0.09999999888 when eps^2 was typed fp32),
    and the mean's 1/numel is not rounded to fp32 either: bit-equal to the CPU kernels (fp64)."""
    pred = torch.zeros(3, 1, 2, 5, dtype=torch.float64)
    pred[0, 0, 0, :3] = torch.tensor([0.0, 1e-3, -2.5])
    target = torch.zeros_like(pred)
    loss = cf.charbonnier(pred, target, 0.1, reduction, backend="triton")
    expected = cf.charbonnier(pred, target, 0.1, reduction, backend="cpu")
    assert loss.dtype == torch.float64
    if reduction == "none":
        assert loss[1, 0, 0, 0].item() == 0.1
    if reduction == "none":
        assert torch.equal(loss, expected), (loss - expected).abs().max().item()
    else:  # summed in another order: a few ulps (fp32 constants: 1e-8 off)
        torch.testing.assert_close(loss, expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(loss, ref.charbonnier(pred, target, 0.1, reduction), rtol=1e-14, atol=0)


def test_charbonnier_fp64_gradient_uses_fp64_norm():
    """The backward's 1/numel and eps^2 in fp64: gradient equal to the CPU kernel's within 1 ulp."""
    gen = torch.Generator().manual_seed(3)
    pred = torch.randn(2, 3, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.randn(2, 3, 7, dtype=torch.float64, generator=gen)
    grads = []
    for backend in ("triton", "cpu"):
        p = pred.detach().clone().requires_grad_(True)
        cf.charbonnier(p, target, 0.3, "mean", backend=backend).backward()
        grads.append(p.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=4e-16, atol=0)


# ----------------------------------------------------------------------------------------------
# Item 3: one configuration per answer


def test_reduced_charbonnier_has_one_gpu_configuration(monkeypatch):
    """tl.sum's order inside a program follows num_warps: a reduced loss must not be timed over
    several (it was 8 vs 4), or its bits depend on the process."""
    from crossnet_fast.triton import _common as common
    from crossnet_fast.triton import charbonnier as tc

    monkeypatch.setattr(common, "interpreting", lambda: False)  # the GPU's configuration list
    assert tc._configs(reduce=True) == [dict(BLOCK=tc.PARTIAL, num_warps=tc.REDUCE_WARPS)]


def test_deterministic_mode_uses_the_first_configuration_untimed(monkeypatch):
    """Under torch.use_deterministic_algorithms(True) choose_config neither times nor caches: the
    first configuration, whichever would have won (the warp's flow gradient sums BLOCK_C channels
    at a time, so its bits follow the configuration; with need_feat=False nothing else alerts)."""
    from crossnet_fast.triton import _common as common

    monkeypatch.setattr(common, "interpreting", lambda: False)
    monkeypatch.setattr(common, "_time_ms", lambda fn, reps=10: 1.0 if fn() == "b" else 2.0)
    configs = [dict(name="a"), dict(name="b")]
    launched = []

    def launch(cfg):
        launched.append(cfg["name"])
        return cfg["name"]

    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        assert common.choose_config(("test-det", 1), configs, launch) == configs[0]
        assert launched == []  # nothing timed
        torch.use_deterministic_algorithms(False)
        assert common.choose_config(("test-det", 2), configs, launch) == configs[1]  # timed: b wins
    finally:
        torch.use_deterministic_algorithms(deterministic)


@pytest.mark.skipif(not IN_PROCESS, reason="runs under the interpreter")
def test_warp_flow_gradient_depends_on_block_c_so_the_config_must_be_fixed():
    """Why item 3 matters: the same flow gradient summed in channel chunks of 16 and of 4 differs in
    its last bits (fp32), so a timed BLOCK_C would give different answers in different processes."""
    from crossnet_fast.triton import multiscale_warp as mw

    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(1, 64, 5, 6, generator=gen)]
    flows = [torch.randn(1, 2, 5, 6, generator=gen) * 2]
    gouts = [torch.randn(1, 64, 5, 6, generator=gen)]
    results = []
    for bc in (16, 4):
        orig = mw._configs
        mw._configs = lambda max_c, cl, dtype=torch.float32, bc=bc: [dict(BLOCK_P=64, BLOCK_C=bc, num_warps=1)]
        try:
            results.append(mw.multiscale_warp_backward(gouts, feats, flows, "border", [False, True])[1][0])
        finally:
            mw._configs = orig
    assert not torch.equal(results[0], results[1])
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Item 6: int64 before multiplying sizes


def _run_one_program(monkeypatch, pid: int):
    """Make the interpreter run program ``pid`` of a large grid as its only program (grid (1,))."""
    from triton.runtime import interpreter

    b = interpreter.interpreter_builder
    set_idx, set_dim = b.set_grid_idx, b.set_grid_dim
    monkeypatch.setattr(b, "set_grid_dim", lambda nx, ny, nz: set_dim(nx + pid, ny, nz))
    monkeypatch.setattr(b, "set_grid_idx", lambda x, y, z: set_idx(x + pid, y, z))


if IN_PROCESS:
    import triton
    import triton.language as tl

    from crossnet_fast.triton import _warp_kernels as wk

    @triton.jit
    def _pixels_probe(meta, out, S, BLOCK_P: tl.constexpr):
        """Stores (n, y, x) of this program's pixels as the warp kernels split them."""
        _row, _c, _h, _w, n, y, x, _m = wk._pixels(meta, S, BLOCK_P, 1)
        o = tl.arange(0, BLOCK_P)
        tl.store(out + o * 3, n)
        tl.store(out + o * 3 + 1, y.to(tl.int64))
        tl.store(out + o * 3 + 2, x.to(tl.int64))


@pytest.mark.skipif(not IN_PROCESS, reason="runs under the interpreter")
def test_warp_pixel_split_of_a_46341_square_plane(monkeypatch):
    """H = W = 46341: H * W = 2,147,488,281 passes 2^31. The warp kernels' (n, y, x) of pixels in
    the second image (flat index > 2^31) must be exact (int32 H * W wrapped to a negative)."""
    h = w = 46341
    block = 4
    meta = torch.zeros(1, 29, dtype=torch.int64)
    meta[0, :4] = torch.tensor([2 * h * w, 1, h, w])
    last = (2 * h * w) // block - 1  # the last full block: pixels of image 1, last row
    out = torch.full((block * 3,), -7, dtype=torch.int64)
    _run_one_program(monkeypatch, last)
    _pixels_probe[(1,)](meta, out, 1, BLOCK_P=block)
    expected = []
    for p in range(last * block, last * block + block):
        n, r = divmod(p, h * w)
        expected += [n, r // w, r % w]
    assert out.tolist() == expected


@pytest.mark.skipif(not IN_PROCESS, reason="runs under the interpreter")
def test_grid_sample_input_gradient_addresses_in_a_46341_square_plane(monkeypatch):
    """grid_sample's input-gradient atomics land at n*C*H*W + c*H*W + y*W + x in 64 bits for a
    46341 x 46341 plane (int32 H * W wrapped). The atomics are recorded, not executed."""
    from triton.runtime import interpreter

    from crossnet_fast.triton import _grid_sample_kernels as gk

    h = w = 46341
    c = 2
    recorded = []

    def record(op, ptr, val, mask, sem, scope):
        recorded.extend(int(a) for a in ptr.data[mask.data].ravel())
        return interpreter.TensorHandle(val.data * 0, val.dtype.scalar)

    monkeypatch.setattr(interpreter.interpreter_builder, "create_atomic_rmw", record)
    grid = torch.tensor([[[[1.0, 1.0], [-1.0, 1.0]]]])  # points (x, y) = (W-1, H-1) and (0, H-1)
    gout = torch.ones(1, c, 1, 2)
    dummy = torch.zeros(1)  # never written (atomics recorded); input is not read (NEED_GRID=False)
    gk._grid_sample_bwd_kernel[(1,)](
        gout,
        dummy,
        grid,
        dummy,
        grid,
        2,
        c,
        h,
        w,
        2,
        2,
        0,
        0,
        0,
        0,
        *gout.stride(),
        *grid.stride(),
        0,
        0,
        0,
        0,
        PAD=1,
        ALIGN_CORNERS=True,
        ACC=gk.tl.float32,
        NEED_INPUT=True,
        NEED_GRID=False,
        BLOCK_P=2,
        BLOCK_C=2,
    )
    base = dummy.data_ptr()
    offsets = sorted((a - base) // 4 for a in recorded)
    expected = sorted(ch * h * w + (h - 1) * w + x for ch in range(c) for x in (w - 1, 0))
    assert offsets == expected


# ----------------------------------------------------------------------------------------------
# Item 7: reflection padding for huge coordinates


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reflection_of_huge_coordinates_matches_the_reference(dtype, align_corners):
    """Reflection of points far beyond 2^24 spans (up to 3e38 in fp32, 1e300 in fp64) lands where the
    reference's exact torch.fmod puts it: bit-equal samples. Before the integer remainder, the
    Triton remainder d - floor(d / span) * span was off beyond about 2^24 spans (W = 6, fp32: 13
    of the 18 huge points here sampled another pixel)."""
    big = [1e8, 3.3e9, 1e12, 7.77e20, 1e30, -1e30, 3e38] + ([1e300, -2.5e200] if dtype == torch.float64 else [])
    gx = torch.tensor(big + [0.3, -0.7], dtype=dtype)
    for w in (1, 2, 5, 6, 7, 11, 640):
        gy = torch.linspace(-3, 3, gx.numel(), dtype=dtype)
        grid = torch.stack([gx, gy], -1).view(1, 1, -1, 2)
        inp = torch.arange(3 * w, dtype=dtype).view(1, 1, 3, w) * 1.5 + 0.25
        out = cf.grid_sample(inp, grid, padding_mode="reflection", align_corners=align_corners, backend="triton")
        expected = ref.grid_sample(inp, grid, padding_mode="reflection", align_corners=align_corners)
        diff = ~((out == expected) | (out.isnan() & expected.isnan()))
        assert not diff.any(), (w, gx[diff.view(-1)].tolist(), out[diff].tolist(), expected[diff].tolist())


# ----------------------------------------------------------------------------------------------
# Item 8: every backend converts grad_out the same way; no masked footprint iteration


@pytest.mark.parametrize("backend", ["triton", "cpu"])
def test_grid_sample_backward_converts_grad_out_to_the_input_dtype_first(backend):
    """An fp32 grad_out for fp16 input (a direct op call; autograd always hands the output's
    dtype) gives the gradients of grad_out.half(), as the CPU and CUDA kernels compute them."""
    from crossnet_fast.triton import grid_sample as tg

    gen = torch.Generator().manual_seed(5)
    inp = torch.randn(1, 3, 4, 5, generator=gen).half()
    grid = (torch.rand(1, 3, 4, 2, generator=gen) * 2.2 - 1.1).half()
    gout = torch.randn(1, 3, 3, 4, generator=gen) * (1 + 2.0**-12)  # not representable in fp16
    if backend == "triton":
        call = tg.grid_sample_backward
    else:
        call = torch.ops.crossnet_fast.grid_sample_backward
    a = call(gout, inp, grid, "zeros", False, [True, True])
    b = call(gout.half(), inp, grid, "zeros", False, [True, True])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_resize_footprint_never_exceeds_the_output_size():
    """The gather window of an input axis covers at most size_out candidates (an input axis of size
    1 looped size_out + 1 times, the last masked in every program); the windows still cover every
    output that reads each input (exact fp64 check of the kernel's start)."""
    from crossnet_fast.triton import resize_flow as rs

    for ac in (False, True):
        for size_in in (1, 2, 3, 7):
            for size_out in (1, 2, 5, 16):
                foot = rs.footprint(size_in, size_out, ac)
                assert 1 <= foot <= size_out, (size_in, size_out, ac, foot)
    assert rs.footprint(1, 9, True) == 9 and rs.footprint(1, 9, False) == 9


if not IN_PROCESS:
    keep_only_rerun(globals())
