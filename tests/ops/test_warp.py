"""backward_warp / multiscale_warp on the CPU backends against F.grid_sample (align_corners=True)."""

import pytest
import torch
from conftest import NATIVE_CPU

import crossnet_fast as cf

from oracles import fractional_flow, grid_sample_warp

BACKENDS = [pytest.param("cpu", marks=NATIVE_CPU), "reference"]
PADDINGS = ["border", "zeros"]
# fp32 tight; fp16/bf16 bounded by the reference's own error at that precision (checked below).
LOW_PRECISION = [torch.float16, torch.bfloat16]


def _inputs(gen, n=2, c=5, h=9, w=13, outside=0.25, dtype=torch.float64):
    feat = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64).to(dtype)
    flow = fractional_flow(n, h, w, max_disp=3, outside=outside, generator=gen).to(dtype)
    return feat, flow


def _forward_and_grads(fn, feat, flow, grad_out):
    feat = feat.detach().requires_grad_()
    flow = flow.detach().requires_grad_()
    out = fn(feat, flow)
    g_feat, g_flow = torch.autograd.grad(out, (feat, flow), grad_out.to(out.dtype))
    return out, g_feat, g_flow


def _oracle(feat, flow, padding, grad_out):
    return _forward_and_grads(lambda f, v: grid_sample_warp(f, v, padding), feat.double(), flow.double(), grad_out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("size", [(2, 5, 9, 13), (1, 3, 16, 16), (3, 1, 7, 4)])
def test_warp_matches_grid_sample(backend, padding, dtype, size, gen):
    n, c, h, w = size
    feat, flow = _inputs(gen, n, c, h, w, dtype=dtype)
    grad_out = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    got = _forward_and_grads(lambda f, v: cf.backward_warp(f, v, padding, backend=backend), feat, flow, grad_out)
    want = _oracle(feat, flow, padding, grad_out)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for name, a, b in zip(("out", "grad_feat", "grad_flow"), got, want):
        assert a.dtype == dtype, name
        torch.testing.assert_close(a.double(), b, atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_warp_low_precision_within_reference_error(backend, padding, dtype, gen):
    feat, flow = _inputs(gen, 2, 8, 12, 10)
    feat_lp, flow_lp = feat.to(dtype), flow.float()  # the usual mix: low-precision features, fp32 flow
    grad_out = torch.randn(2, 8, 12, 10, generator=gen, dtype=torch.float64)
    want = _oracle(feat_lp, flow_lp, padding, grad_out.to(dtype).double())
    ref = _forward_and_grads(
        lambda f, v: cf.backward_warp(f, v, padding, backend="reference"), feat_lp, flow_lp, grad_out
    )
    got = _forward_and_grads(lambda f, v: cf.backward_warp(f, v, padding, backend=backend), feat_lp, flow_lp, grad_out)
    assert got[0].dtype == dtype and got[1].dtype == dtype and got[2].dtype == torch.float32
    for name, g, r, w in zip(("out", "grad_feat", "grad_flow"), got, ref, want):
        ref_err = (r.double() - w).abs().max().item()
        err = (g.double() - w).abs().max().item()
        assert err <= 2 * ref_err + 1e-6 * w.abs().max().item() + 1e-6, (name, err, ref_err)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multiscale_equals_per_scale(backend, gen):
    sizes = [(16, 20), (8, 10), (4, 5), (2, 3)]
    feats = [torch.randn(2, 4, h, w, generator=gen) for h, w in sizes]
    flows = [fractional_flow(2, h, w, outside=0.2, generator=gen).float() for h, w in sizes]
    for padding in PADDINGS:
        outs = cf.multiscale_warp(feats, flows, padding, backend=backend)
        assert len(outs) == len(sizes)
        for f, v, o in zip(feats, flows, outs):
            torch.testing.assert_close(o, cf.backward_warp(f, v, padding, backend=backend), atol=0, rtol=0)
            torch.testing.assert_close(
                o.double(), grid_sample_warp(f.double(), v.double(), padding), atol=1e-5, rtol=1e-5
            )


@pytest.mark.parametrize("backend", BACKENDS)
def test_multiscale_gradients_with_unused_scale(backend, gen):
    # Only scale 0 reaches the loss: scale 1 must get zero gradients, scale 0 the oracle's.
    feats = [
        torch.randn(1, 3, 8, 8, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(1, 3, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True),
    ]
    flows = [
        fractional_flow(1, 8, 8, generator=gen).requires_grad_(),
        fractional_flow(1, 4, 4, generator=gen).requires_grad_(),
    ]
    outs = cf.multiscale_warp(feats, flows, backend=backend)
    outs[0].sum().backward()
    want = _oracle(feats[0], flows[0], "border", torch.ones(1, 3, 8, 8, dtype=torch.float64))
    torch.testing.assert_close(feats[0].grad, want[1])
    torch.testing.assert_close(flows[0].grad, want[2])
    assert feats[1].grad is None or feats[1].grad.abs().max() == 0
    assert flows[1].grad is None or flows[1].grad.abs().max() == 0


@pytest.mark.parametrize("backend", [pytest.param("cpu", marks=[NATIVE_CPU, pytest.mark.slow]), "reference"])
@pytest.mark.parametrize("padding", PADDINGS)
def test_gradcheck_float64(backend, padding, gen):
    feat = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    flow = fractional_flow(2, 5, 6, outside=0.3, generator=gen).requires_grad_()
    assert torch.autograd.gradcheck(lambda f, v: cf.backward_warp(f, v, padding, backend=backend), (feat, flow))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["channels_last", "non_contiguous"])
def test_layouts(backend, layout, gen):
    feat, flow = _inputs(gen, 2, 6, 10, 12, dtype=torch.float32)
    if layout == "channels_last":
        feat_in = feat.contiguous(memory_format=torch.channels_last)
        flow_in = flow.contiguous(memory_format=torch.channels_last)
    else:
        feat_in = torch.randn(2, 12, 10, 12, generator=gen)[:, ::2].copy_(feat)  # every other channel
        flow_in = flow.transpose(2, 3).contiguous().transpose(2, 3)
        assert not feat_in.is_contiguous() and not flow_in.is_contiguous()
    grad_out = torch.randn(2, 6, 10, 12, generator=gen, dtype=torch.float64)
    got = _forward_and_grads(lambda f, v: cf.backward_warp(f, v, "zeros", backend=backend), feat_in, flow_in, grad_out)
    want = _oracle(feat, flow, "zeros", grad_out)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-5)
    if layout == "channels_last" and backend == "cpu":
        assert got[0].is_contiguous(memory_format=torch.channels_last)  # the layout rule of the fakes


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch_and_empty_channels(backend):
    for shape in [(0, 3, 5, 5), (2, 0, 5, 5)]:
        feat = torch.randn(*shape, requires_grad=True)
        flow = torch.randn(shape[0], 2, 5, 5, requires_grad=True)
        out = cf.backward_warp(feat, flow, backend=backend)
        assert out.shape == shape
        out.sum().backward()
        assert feat.grad.shape == shape and flow.grad.shape == flow.shape
    assert cf.multiscale_warp([], [], backend=backend) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_and_huge_flows_are_safe(backend, gen):
    feat = torch.randn(1, 4, 6, 7, generator=gen)
    flow = fractional_flow(1, 6, 7, generator=gen).float()
    flow[0, 0, 1, 2] = float("nan")
    flow[0, 1, 3, 3] = float("inf")
    flow[0, 0, 4, 5] = -1e30
    flow[0, 1, 5, 6] = 3e38
    border = cf.backward_warp(feat, flow, "border", backend=backend)
    zeros = cf.backward_warp(feat, flow, "zeros", backend=backend)
    assert torch.isnan(border[0, :, 1, 2]).all()
    assert (zeros[0, :, 1, 2] == 0).all() and (zeros[0, :, 3, 3] == 0).all()
    assert (zeros[0, :, 4, 5] == 0).all() and (zeros[0, :, 5, 6] == 0).all()
    # inf / huge displacements clamp to the border: compare with grid_sample on the clamped flow.
    clamped = flow.clone()
    clamped[0, 1, 3, 3] = 100.0
    clamped[0, 0, 4, 5] = -100.0
    clamped[0, 1, 5, 6] = 100.0
    want = grid_sample_warp(feat.double(), clamped.nan_to_num(0).double(), "border")
    mask = torch.ones(6, 7, dtype=torch.bool)
    mask[1, 2] = False
    torch.testing.assert_close(border[0][:, mask].double(), want[0][:, mask], atol=1e-5, rtol=1e-5)
    # Gradients exist and stay finite away from the NaN pixel.
    f = feat.clone().requires_grad_()
    v = flow.clone().requires_grad_()
    cf.backward_warp(f, v, "zeros", backend=backend).sum().backward()
    finite = torch.ones(1, 2, 6, 7, dtype=torch.bool)
    finite[0, :, 1, 2] = False  # d out / d flow at a NaN or infinite sample point is undefined
    finite[0, :, 3, 3] = False
    assert torch.isfinite(v.grad[finite]).all() and torch.isfinite(f.grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("needs", ["feat", "flow"])
def test_gradient_for_one_input_only(backend, needs, gen):
    # Only one side needs a gradient (e.g. warping a fixed image by a learned flow).
    feat, flow = _inputs(gen, 1, 3, 6, 7)
    feat.requires_grad_(needs == "feat")
    flow.requires_grad_(needs == "flow")
    cf.backward_warp(feat, flow, backend=backend).square().sum().backward()
    x = feat if needs == "feat" else flow
    other = flow if needs == "feat" else feat
    ref_in = [feat.detach().clone().requires_grad_(), flow.detach().clone().requires_grad_()]
    grid_sample_warp(*ref_in, "border").square().sum().backward()
    torch.testing.assert_close(x.grad, ref_in[0 if needs == "feat" else 1].grad)
    assert other.grad is None
    outs = cf.multiscale_warp([feat, feat[:, :, :3, :4]], [flow, flow[:, :, :3, :4]], backend=backend)
    sum(o.sum() for o in outs).backward()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("padding", PADDINGS)
def test_nan_flow_gradients_follow_the_reference(backend, padding, gen):
    # Feature gradient of NaN sample points: as the reference defines it (NaN on the taps around
    # pixel (0, 0) with border, nothing with zeros); the flow gradient is compared where defined.
    feat, flow = _inputs(gen, 1, 3, 6, 7, dtype=torch.float32)
    flow[0, 0, 2, 3] = float("nan")
    flow[0, 1, 4, 1] = float("nan")
    grad_out = torch.randn(1, 3, 6, 7, generator=gen)
    got = _forward_and_grads(lambda f, v: cf.backward_warp(f, v, padding, backend=backend), feat, flow, grad_out)
    want = _forward_and_grads(lambda f, v: cf.backward_warp(f, v, padding, backend="reference"), feat, flow, grad_out)
    torch.testing.assert_close(got[0], want[0], equal_nan=True)
    torch.testing.assert_close(got[1], want[1], equal_nan=True)
    defined = ~torch.isnan(flow).any(dim=1, keepdim=True).expand_as(flow)
    torch.testing.assert_close(got[2][defined], want[2][defined])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_feature_gradient_of_thousands_of_samples_on_one_pixel(backend, dtype):
    """Issue 10 item 2: every sample clamped onto pixel (0, 0) (border padding, a far flow): its
    gradient is the sum of 4096 contributions of 1. A 16-bit accumulator stalls at 256 (bf16) or
    2048 (fp16); an fp32 one gives 4096 exactly."""
    feat = torch.randn(1, 2, 64, 64, dtype=dtype, requires_grad=True)
    flow = torch.full((1, 2, 64, 64), -1000.0)
    out = cf.backward_warp(feat, flow, "border", backend=backend)
    (g,) = torch.autograd.grad(out, feat, torch.ones_like(out))
    assert g[0, :, 0, 0].tolist() == [4096.0, 4096.0]
    assert (g.flatten(2)[..., 1:] == 0).all()


@NATIVE_CPU
@pytest.mark.parametrize("padding", PADDINGS)
def test_vectorised_taps_match_reference_with_non_finite_flows(padding, gen):
    """fp32 images whose tiles are whole multiples of 8 pixels take the CPU kernel's AVX2 tap fill
    (where the CPU has AVX2): outputs and both gradients equal the reference's, with NaN, +-inf and
    far flows, points exactly on the border and exactly on pixels."""
    feat = torch.randn(2, 3, 16, 24, generator=gen)
    flow = fractional_flow(2, 16, 24, max_disp=4, outside=0.2, generator=gen).float()
    flow[0, 0, 0, :4] = torch.tensor([float("nan"), float("inf"), float("-inf"), 1e30])
    flow[1, 1, 5, :3] = torch.tensor([float("nan"), -1e30, 0.0])
    flow[1, :, 7, 8:12] = torch.tensor([[-8.0, 15.0, 0.0, 1.0], [0.0, -7.0, 8.0, -0.5]])  # onto the border, on pixels
    grad_out = torch.randn(2, 3, 16, 24, generator=gen)
    got = _forward_and_grads(lambda f, v: cf.backward_warp(f, v, padding, backend="cpu"), feat, flow, grad_out)
    want = _forward_and_grads(lambda f, v: cf.backward_warp(f, v, padding, backend="reference"), feat, flow, grad_out)
    for name, a, b in zip(("out", "grad_feat", "grad_flow"), got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, equal_nan=True, msg=lambda m: f"{name}: {m}")
