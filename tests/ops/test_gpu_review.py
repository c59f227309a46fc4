"""Issue 24 on the GPU: the CUDA and compiled Triton kernels round like the CPU kernels, give one
answer per input, and handle the sizes the docs state. Skipped without CUDA; scripts/gpu_check.sh
runs it in its ``review`` step (docs/GPU.md). The same properties are checked without a GPU in
tests/ops/test_gpu_rounding.py (PTX) and tests/ops/test_triton_exactness.py (interpreter).

The two large tests (item 4) need about 40 GB of GPU memory; set CROSSNET_FAST_GPU_LARGE=0 to skip them.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast as cf
from crossnet_fast import reference as ref

CUDA = torch.cuda.is_available()


def _has_cuda_kernels() -> bool:
    if not CUDA:
        return False
    from crossnet_fast import _extension

    return bool(_extension.has_cuda_kernels())


BACKENDS = [
    pytest.param("cuda", marks=pytest.mark.skipif(not _has_cuda_kernels(), reason="no CUDA kernels")),
    pytest.param(
        "triton",
        marks=pytest.mark.skipif(
            not CUDA or importlib.util.find_spec("triton") is None, reason="no CUDA device or Triton"
        ),
    ),
]
pytestmark = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
LARGE = os.environ.get("CROSSNET_FAST_GPU_LARGE", "1") != "0"


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_2_to_6_rows_reads_only_row_0_for_output_row_1(backend):
    """Item 1: step * (d + 0.5) - 0.5 = 0 exactly for output row 1; a fused multiply-add made it
    a hair positive, so the inf in input row 1 leaked into output row 1."""
    flow = torch.tensor([[1.0, 2.0], [float("inf"), 3.0]]).view(1, 1, 2, 2).repeat(1, 2, 1, 1)
    gpu = cf.resize_flow(flow.cuda(), (6, 2), align_corners=False, backend=backend).cpu()
    cpu = cf.resize_flow(flow, (6, 2), align_corners=False, backend="cpu")
    assert torch.isfinite(gpu[:, :, 1]).all()
    assert torch.equal(gpu, cpu)


@pytest.mark.parametrize("backend", BACKENDS)
def test_identity_affine_grid_lands_on_pixels(backend):
    """Item 1: an identity affine_grid (align_corners=False) lands exactly on pixel centres for
    every W in 2..256 (W = 11, pixel 2: 1.9999999 with fma); samples and the x-gradient side equal
    the CPU kernels'."""
    for w in range(2, 257):
        theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
        grid = F.affine_grid(theta, (1, 1, 2, w), align_corners=False)
        inp = (torch.arange(2 * w, dtype=torch.float32) ** 2 * 0.5).view(1, 1, 2, w)
        outs, grads = [], []
        for dev, be in (("cuda", backend), ("cpu", "cpu")):
            g = grid.to(dev).requires_grad_(True)
            out = cf.grid_sample(inp.to(dev), g, padding_mode="border", align_corners=False, backend=be)
            out.sum().backward()
            outs.append(out.cpu())
            grads.append(g.grad.cpu())
        assert torch.equal(outs[0], outs[1]), w
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-5, msg=f"W={w}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("align_corners", [True, False])
def test_resampling_reads_the_taps_the_cpu_reads(backend, align_corners):
    """Items 1 and 2: x2..x8 upsampling and resizing read the same taps as the CPU kernels (an inf in
    one input row reaches exactly the same output rows) for H <= 40."""
    for h in range(1, 41):
        for s in range(2, 9):
            flow = torch.zeros(1, 2, h, 1)
            for i in range(h):
                probe = flow.clone()
                probe[:, :, i] = float("inf")
                if align_corners:
                    gpu = cf.resize_flow(probe.cuda(), (h * s, 1), align_corners=True, backend=backend).cpu()
                    cpu = cf.resize_flow(probe, (h * s, 1), align_corners=True, backend="cpu")
                else:
                    gpu = cf.upsample_flow(probe.cuda(), s, backend=backend).cpu()
                    cpu = cf.upsample_flow(probe, s, backend="cpu")
                assert torch.equal(gpu.isfinite(), cpu.isfinite()), (h, s, i)


@pytest.mark.parametrize("backend", BACKENDS)
def test_charbonnier_fp64_constants_and_subnormal_roots(backend):
    """Item 5: eps = 0.1 with a zero difference is 0.1 in fp64; eps^2 = 0 in fp32 and d = 1e-20 (d^2
    subnormal) give the CPU's rho (about 1e-20) and finite gradient, not 0 and inf."""
    z = torch.zeros(4, dtype=torch.float64, device="cuda")
    assert cf.charbonnier(z, z, 0.1, "none", backend=backend)[0].item() == 0.1
    mean = cf.charbonnier(z + 1, z, 0.1, "mean", backend=backend).item()
    assert mean == cf.charbonnier((z + 1).cpu(), z.cpu(), 0.1, "mean", backend="cpu").item()
    grads, losses = [], []
    for dev, be in (("cuda", backend), ("cpu", "cpu")):
        d = torch.full((3,), 1e-20, device=dev, requires_grad=True)
        loss = cf.charbonnier(d, torch.zeros_like(d), 1e-30, "none", backend=be)  # eps^2 = 0 in fp32
        loss.sum().backward()
        losses.append(loss.detach().cpu())
        grads.append(d.grad.cpu())
    assert (losses[1] > 0).all() and torch.equal(losses[0], losses[1])
    assert torch.isfinite(grads[1]).all() and torch.equal(grads[0], grads[1])


def test_triton_results_do_not_depend_on_tuning():
    """Item 3: the reduced Triton loss and, in deterministic mode, the warp's flow gradient are the
    same bits with and without timing the configurations (first configuration untimed)."""
    pytest.importorskip("triton")
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 3, 257, 263, generator=gen).cuda()
    feats = [torch.randn(2, 96, 40, 52, generator=gen).cuda()]
    flows = [torch.randn(2, 2, 40, 52, generator=gen).cuda() * 3]
    gouts = [torch.randn(2, 96, 40, 52, generator=gen).cuda()]
    from crossnet_fast.triton import multiscale_warp as mw

    results = []
    for tune in ("1", "0"):
        os.environ["CROSSNET_FAST_TRITON_AUTOTUNE"] = tune
        try:
            loss = cf.charbonnier(pred, torch.zeros_like(pred), 1e-3, "mean", backend="triton")
            torch.use_deterministic_algorithms(True)
            gflow = mw.multiscale_warp_backward(gouts, feats, flows, "border", [False, True])[1][0]
        finally:
            torch.use_deterministic_algorithms(False)
            os.environ.pop("CROSSNET_FAST_TRITON_AUTOTUNE", None)
        results.append((loss.cpu(), gflow.cpu()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_triton_reflection_of_huge_coordinates_matches_the_reference():
    """Item 7, compiled: reflection beyond 2^24 spans equals the reference (exact fmod)."""
    pytest.importorskip("triton")
    gx = torch.tensor([1e8, 3.3e9, 1e12, 7.77e20, 1e30, -1e30, 0.3])
    for w in (2, 5, 6, 11, 640):
        grid = torch.stack([gx, torch.linspace(-3, 3, gx.numel())], -1).view(1, 1, -1, 2)
        inp = torch.arange(3 * w, dtype=torch.float32).view(1, 1, 3, w) * 1.5 + 0.25
        for ac in (False, True):
            out = cf.grid_sample(
                inp.cuda(), grid.cuda(), padding_mode="reflection", align_corners=ac, backend="triton"
            ).cpu()
            assert torch.equal(out, ref.grid_sample(inp, grid, padding_mode="reflection", align_corners=ac)), (w, ac)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grid_sample_backward_converts_grad_out_to_the_input_dtype(backend):
    """Item 8: an fp32 grad_out for fp16 input gives the gradients of grad_out.half() on every backend."""
    gen = torch.Generator().manual_seed(5)
    inp = torch.randn(1, 3, 4, 5, generator=gen).half().cuda()
    grid = (torch.rand(1, 3, 4, 2, generator=gen) * 2.2 - 1.1).half().cuda()
    gout = (torch.randn(1, 3, 3, 4, generator=gen) * (1 + 2.0**-12)).cuda()
    op = (
        torch.ops.crossnet_fast.grid_sample_backward
        if backend == "cuda"
        else __import__("crossnet_fast.triton.grid_sample", fromlist=["x"]).grid_sample_backward
    )
    a = op(gout, inp, grid, "zeros", False, [True, True])
    b = op(gout.half(), inp, grid, "zeros", False, [True, True])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.skipif(not LARGE or not _has_cuda_kernels(), reason="large (CROSSNET_FAST_GPU_LARGE=0) or no CUDA kernels")
def test_deterministic_cuda_backwards_past_the_int_max_sort():
    """Item 4: more than INT_MAX sort entries (4 per pixel / point) in deterministic mode: sorted per
    image, equal to the atomic path within fp32 rounding; one image past 536,870,911 raises clearly."""
    side = 16385  # 2 images of 268 M pixels: 2.1 G entries in one sort before the fix
    feat = torch.randn(2, 1, side, side, device="cuda", dtype=torch.float16)
    flow = torch.randn(2, 2, side, side, device="cuda", dtype=torch.float16) * 2
    gout = torch.randn_like(feat)
    op = torch.ops.crossnet_fast.multiscale_warp_backward
    fast = op([gout], [feat], [flow], "border", [True, False])[0][0]
    torch.use_deterministic_algorithms(True)
    try:
        det = op([gout], [feat], [flow], "border", [True, False])[0][0]
        again = op([gout], [feat], [flow], "border", [True, False])[0][0]
        assert torch.equal(det, again)
        torch.testing.assert_close(det.float(), fast.float(), rtol=2e-3, atol=2e-3)
        del fast, det, again, flow, gout, feat
        grid = torch.rand(2, side, side, 2, device="cuda", dtype=torch.float16) * 2 - 1
        inp = torch.randn(2, 1, 64, 64, device="cuda", dtype=torch.float16)
        go = torch.randn(2, 1, side, side, device="cuda", dtype=torch.float16)
        gi = torch.ops.crossnet_fast.grid_sample_backward(go, inp, grid, "zeros", False, [True, False])[0]
        assert gi.isfinite().all()
        del grid, go, gi
        big = 23171  # 536,895,241 pixels in one image
        f1 = torch.zeros(1, 1, big, big, device="cuda", dtype=torch.float16)
        v1 = torch.zeros(1, 2, big, big, device="cuda", dtype=torch.float16)
        with pytest.raises(RuntimeError, match="536,870,911"):
            op([f1], [f1], [v1], "border", [True, False])
    finally:
        torch.use_deterministic_algorithms(False)
