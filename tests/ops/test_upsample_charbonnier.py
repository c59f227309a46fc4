"""upsample_flow against F.interpolate * scale, charbonnier against the written formula."""

import pytest
import torch
from conftest import NATIVE_CPU

import crossnet_fast as cf

from oracles import charbonnier_formula, interpolate_flow

BACKENDS = [pytest.param("cpu", marks=NATIVE_CPU), "reference"]
REDUCTIONS = ["mean", "sum", "batch", "none"]
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(2, 2, 5, 7), (1, 2, 1, 1), (1, 3, 4, 4)])
def test_upsample_flow_matches_interpolate(backend, dtype, scale, size, gen):
    flow = (torch.randn(*size, generator=gen, dtype=torch.float64) * 3).to(dtype).requires_grad_()
    out = cf.upsample_flow(flow, scale, backend=backend)
    grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    (g,) = torch.autograd.grad(out, flow, grad_out.to(dtype))
    ref_in = flow.detach().double().requires_grad_()
    want = interpolate_flow(ref_in, scale)
    (g_want,) = torch.autograd.grad(want, ref_in, grad_out.to(dtype).double())
    assert out.shape == want.shape and out.dtype == dtype and g.dtype == dtype
    tol = TOL[dtype] * scale
    torch.testing.assert_close(out.double(), want, atol=tol * 3, rtol=tol)
    torch.testing.assert_close(g.double(), g_want, atol=tol * 3 * scale, rtol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_upsample_flow_gradcheck_and_layouts(backend, gen):
    flow = torch.randn(2, 2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: cf.upsample_flow(v, 3, backend=backend), (flow,))
    cl = flow.detach().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cf.upsample_flow(cl, 2, backend=backend), interpolate_flow(flow.detach(), 2))
    empty = torch.randn(0, 2, 3, 4)
    assert cf.upsample_flow(empty, 2, backend=backend).shape == (0, 2, 6, 8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_charbonnier_matches_formula(backend, reduction, dtype, gen):
    pred = torch.rand(3, 3, 17, 19, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
    target = torch.rand(3, 3, 17, 19, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
    loss = cf.charbonnier(pred, target, 1e-3, reduction, backend=backend)
    grad_out = torch.rand(loss.shape, generator=gen, dtype=torch.float64) + 0.5
    g_pred, g_target = torch.autograd.grad(loss, (pred, target), grad_out.to(dtype))
    p64 = pred.detach().double().requires_grad_()
    t64 = target.detach().double().requires_grad_()
    want = charbonnier_formula(p64, t64, 1e-3, reduction)
    w_pred, w_target = torch.autograd.grad(want, (p64, t64), grad_out.to(dtype).double())
    assert loss.dtype == dtype and loss.shape == want.shape
    tol = TOL[dtype]
    torch.testing.assert_close(loss.double(), want, atol=tol, rtol=tol)
    torch.testing.assert_close(g_pred.double(), w_pred, atol=tol * w_pred.abs().max().item() + 1e-12, rtol=tol)
    torch.testing.assert_close(g_target.double(), w_target, atol=tol * w_pred.abs().max().item() + 1e-12, rtol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_charbonnier_fused_and_unfused_backward_agree(backend, gen):
    # requires_grad decides whether the forward also writes the gradient; both routes must agree
    # with the formula (the unfused route runs when only the target needs a gradient).
    pred = torch.rand(2, 3, 8, 8, generator=gen, dtype=torch.float64)
    target = torch.rand(2, 3, 8, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    (g_target,) = torch.autograd.grad(cf.charbonnier(pred, target, 1e-2, "batch", backend=backend), target)
    t64 = target.detach().requires_grad_()
    (want,) = torch.autograd.grad(charbonnier_formula(pred, t64, 1e-2, "batch"), t64)
    torch.testing.assert_close(g_target, want)
    p = pred.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: cf.charbonnier(a, b, 0.05, "mean", backend=backend), (p, target))


@pytest.mark.parametrize("backend", BACKENDS)
def test_charbonnier_layouts_and_large_sum(backend, gen):
    pred = torch.rand(2, 3, 16, 16, generator=gen).contiguous(memory_format=torch.channels_last)
    target = torch.rand(2, 16, 16, 3, generator=gen).permute(0, 3, 1, 2)
    want = charbonnier_formula(pred.double(), target.double(), 1e-3, "none")
    got = cf.charbonnier(pred, target, reduction="none", backend=backend)
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=1e-6)
    # fp32 accumulation over many bf16 elements: a bf16 running sum would be off by far more.
    big = torch.full((4, 3, 256, 256), 0.5, dtype=torch.bfloat16)
    loss = cf.charbonnier(big, torch.zeros_like(big), 1e-3, "sum", backend=backend)
    assert abs(loss.float().item() - 0.5 * big.numel()) / (0.5 * big.numel()) < 1e-2


def charbonnier_fp16_mean_under_loss_scaling(backend):
    """fp16 pred/target, reduction "mean" over 2^17 elements, the loss scaled by 2^15 before
    backward (as torch.amp.GradScaler does). The true gradient 2^15 * (d / rho) / 2^17 is a normal
    fp16 number, but the reduction's factor times d / rho alone (~1e-8) is below fp16's smallest
    subnormal: a fused gradient stored with the factor already applied was all zeros (issue 10,
    item 3). Returns (max relative error against the float64 formula, fraction of zeros)."""
    g = torch.Generator().manual_seed(7)
    shape = (2, 4, 128, 128)
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    delta = (torch.rand(shape, generator=g, dtype=torch.float64) - 0.5) * 4e-3  # d / rho ~ 0.1 - 0.9
    pred16, target16 = (target + delta).half(), target.half()
    p = pred16.clone().requires_grad_()
    (cf.charbonnier(p, target16, 1e-3, "mean", backend=backend) * 2.0**15).backward()
    p64 = pred16.double().requires_grad_()
    (charbonnier_formula(p64, target16.double(), 1e-3, "mean") * 2.0**15).backward()
    rel = ((p.grad.double() - p64.grad).abs() / p64.grad.abs().clamp_min(1e-4)).max().item()
    lost = (p.grad == 0) & (p64.grad != 0)  # fp16 rounding makes some d exactly 0: those are right
    return rel, lost.double().mean().item()


@pytest.mark.parametrize("backend", BACKENDS)
def test_charbonnier_fp16_mean_gradient_survives_loss_scaling(backend):
    rel, zeros = charbonnier_fp16_mean_under_loss_scaling(backend)
    assert zeros == 0, f"{zeros:.3%} of the gradient is 0 where the formula's is not"
    assert rel < 4e-3, rel  # a couple of fp16 ulps
