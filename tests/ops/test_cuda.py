"""CUDA kernels of crossnet_fast vs the reference (and grid_sample / F.interpolate / the formula).

Skipped without a GPU or without compiled CUDA kernels, unless CROSSNET_FAST_REQUIRE_CUDA=1, which
turns either into a failure (scripts/gpu_check.sh sets it, so a broken build cannot pass silently).

Shapes are (N, C, H, W) features, (N, 2, H, W) pixel-unit flows (x then y); tolerances are per
dtype: fp64/fp32 tight, fp16/bf16 within a few units in the last place of the result's magnitude.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast
from crossnet_fast import _extension, reference

REQUIRE = os.environ.get("CROSSNET_FAST_REQUIRE_CUDA", "0") == "1"


def _unavailable() -> str | None:
    if not _extension.loaded:
        return f"the extension did not load: {_extension.load_error}"
    if not _extension.has_cuda_kernels():
        return "the extension was built without CUDA kernels"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


REASON = _unavailable()
pytestmark = pytest.mark.skipif(REASON is not None and not REQUIRE, reason=str(REASON))


@pytest.fixture(autouse=True)
def _need_cuda():
    if REASON is not None:
        pytest.fail(f"CROSSNET_FAST_REQUIRE_CUDA=1 but {REASON}")  # only reached when REQUIRE is set


def test_cuda_kernels_present():
    """Fails under REQUIRE (via the fixture) when CUDA is missing; otherwise checks the dispatch."""
    dump = torch._C._dispatch_dump("crossnet_fast::multiscale_warp")
    assert "CUDA" in dump


DEV = "cuda"
OPS = torch.ops.crossnet_fast
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
LAYOUTS = ["nchw", "channels_last"]
PADDINGS = ["border", "zeros"]


def tol(dtype: torch.dtype) -> dict:
    return {
        torch.float64: dict(rtol=1e-9, atol=1e-9),
        torch.float32: dict(rtol=1e-5, atol=1e-5),
        torch.float16: dict(rtol=4e-3, atol=4e-3),
        torch.bfloat16: dict(rtol=3e-2, atol=3e-2),
    }[dtype]


def grad_tol(dtype: torch.dtype, ref: torch.Tensor) -> dict:
    """Gradients sum many products: scale the absolute tolerance with the result's magnitude."""
    mag = float(ref.detach().abs().nan_to_num(0).max().clamp(min=1e-12)) if ref.numel() else 1.0
    t = {torch.float64: 1e-9, torch.float32: 2e-5, torch.float16: 8e-3, torch.bfloat16: 6e-2}[dtype]
    return dict(rtol=t, atol=t * mag)


def layout(t: torch.Tensor, name: str) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if name == "channels_last" else t.contiguous()


def make_flow(n, h, w, dtype=torch.float32, magnitude=3.0, outside=True, nan=False, seed=0):
    """(n, 2, h, w) flow: random displacements of a few pixels, a share far outside, optional NaNs."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    flow = (torch.rand(n, 2, h, w, generator=g) * 2 - 1) * magnitude
    if outside and flow.numel():
        mask = torch.rand(n, 1, h, w, generator=g) < 0.1
        flow = torch.where(mask, flow * 40, flow)
        flow.view(-1)[:: max(1, flow.numel() // 5)] = 1e30  # huge: must not overflow an index
    if nan and flow.numel():
        flow.view(-1)[1 :: max(2, flow.numel() // 7)] = float("nan")
    return flow.to(DEV, dtype)


def make_feat(n, c, h, w, dtype, seed=1):
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g).to(DEV, dtype)


def ref_warp_grads(feat, flow, grad_out, padding):
    """Reference gradients by autograd, computed in fp64 (fp32 inputs) or fp32 (half inputs)."""
    compute = torch.float64 if feat.dtype in (torch.float32, torch.float64) else torch.float32
    f = feat.detach().to(compute).requires_grad_(True)
    v = flow.detach().to(compute).requires_grad_(True)
    out = reference.backward_warp(f, v, padding)
    out.backward(grad_out.to(compute))
    return f.grad, v.grad


# ------------------------------------------------------------------------------------------------
# multiscale_warp forward

SHAPES = [(2, 3, 5, 7), (1, 8, 16, 16), (2, 64, 17, 33), (1, 70, 9, 11), (3, 12, 1, 13), (1, 1, 6, 4)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_warp_forward_matches_reference(dtype, padding, fmt, shape):
    n, c, h, w = shape
    feat = layout(make_feat(n, c, h, w, dtype), fmt)
    flow = make_flow(n, h, w, nan=True)
    out = OPS.multiscale_warp([feat], [flow], padding)[0]
    ref = reference.backward_warp(feat, flow, padding)
    assert out.dtype == dtype and out.shape == feat.shape
    assert out.stride() == torch.empty_like(feat).stride(), "output must follow the input's layout"
    torch.testing.assert_close(out, ref, equal_nan=True, **tol(dtype))


@pytest.mark.parametrize("padding", PADDINGS)
def test_warp_forward_matches_grid_sample(padding):
    n, c, h, w = 2, 16, 20, 24
    feat = make_feat(n, c, h, w, torch.float32)
    flow = make_flow(n, h, w, outside=False, magnitude=5.0)
    ys, xs = torch.meshgrid(torch.arange(h, device=DEV), torch.arange(w, device=DEV), indexing="ij")
    gx = (xs + flow[:, 0]) / (w - 1) * 2 - 1
    gy = (ys + flow[:, 1]) / (h - 1) * 2 - 1
    expected = F.grid_sample(feat, torch.stack([gx, gy], -1), mode="bilinear", padding_mode=padding, align_corners=True)
    out = OPS.multiscale_warp([feat], [flow], padding)[0]
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# multiscale_warp backward


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES[:5])
@pytest.mark.parametrize("deterministic", [False, True])
def test_warp_backward_matches_reference(dtype, padding, fmt, shape, deterministic):
    n, c, h, w = shape
    feat = layout(make_feat(n, c, h, w, dtype), fmt)
    flow = make_flow(n, h, w, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    grad_out = layout(make_feat(n, c, h, w, dtype, seed=7), fmt)
    ref_gf, ref_gv = ref_warp_grads(feat, flow, grad_out, padding)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        gf, gv = OPS.multiscale_warp_backward([grad_out], [feat], [flow], padding, [True, True])
    finally:
        torch.use_deterministic_algorithms(previous)
    gf, gv = gf[0], gv[0]
    assert gf.dtype == dtype and gf.stride() == torch.empty_like(feat).stride()
    assert gv.dtype == flow.dtype and gv.shape == flow.shape
    torch.testing.assert_close(gf.to(ref_gf.dtype), ref_gf, **grad_tol(dtype, ref_gf))
    torch.testing.assert_close(gv.to(ref_gv.dtype), ref_gv, **grad_tol(dtype, ref_gv))


@pytest.mark.parametrize("mask", [(True, False), (False, True), (False, False)])
def test_warp_backward_output_mask(mask):
    feat, flow = make_feat(2, 8, 9, 10, torch.float32), make_flow(2, 9, 10)
    grad_out = make_feat(2, 8, 9, 10, torch.float32, seed=3)
    gf, gv = OPS.multiscale_warp_backward([grad_out], [feat], [flow], "border", list(mask))
    assert len(gf) == int(mask[0]) and len(gv) == int(mask[1])
    full_f, full_v = OPS.multiscale_warp_backward([grad_out], [feat], [flow], "border", [True, True])
    if mask[0]:
        torch.testing.assert_close(gf[0], full_f[0], rtol=1e-6, atol=1e-6)
    if mask[1]:
        torch.testing.assert_close(gv[0], full_v[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("fmt", LAYOUTS)
def test_warp_nan_and_outside_flows_match_reference(padding, fmt):
    """NaN / huge flows: forward and feature gradient vs the reference; the flow gradient too,
    except at NaN sample points, where it is undefined (the reference gives NaN or 0 depending on
    which coordinate is NaN; the kernels give NaN)."""
    feat = layout(make_feat(2, 16, 11, 13, torch.float32), fmt)
    flow = make_flow(2, 11, 13, nan=True)
    grad_out = layout(make_feat(2, 16, 11, 13, torch.float32, seed=5), fmt)
    out = OPS.multiscale_warp([feat], [flow], padding)[0]
    torch.testing.assert_close(out, reference.backward_warp(feat, flow, padding), equal_nan=True, rtol=1e-5, atol=1e-5)
    gf, gv = OPS.multiscale_warp_backward([grad_out], [feat], [flow], padding, [True, True])
    f_ref = feat.detach().clone().requires_grad_()
    v_ref = flow.detach().clone().requires_grad_()
    rf, rv = torch.autograd.grad(reference.backward_warp(f_ref, v_ref, padding), (f_ref, v_ref), grad_out)
    torch.testing.assert_close(gf[0], rf, equal_nan=True, rtol=1e-5, atol=1e-5)
    defined = ~torch.isnan(flow).any(dim=1, keepdim=True).expand_as(flow)
    torch.testing.assert_close(gv[0][defined], rv[defined], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("fmt", LAYOUTS)
def test_fp32_flow_with_bf16_features(fmt):
    n, c, h, w = 2, 32, 24, 20
    feat = layout(make_feat(n, c, h, w, torch.bfloat16), fmt).requires_grad_(True)
    flow = make_flow(n, h, w, outside=False).requires_grad_(True)
    out = crossnet_fast.backward_warp(feat, flow, "border", backend="cuda")
    assert out.dtype == torch.bfloat16
    grad_out = make_feat(n, c, h, w, torch.bfloat16, seed=9)
    out.backward(grad_out)
    assert flow.grad.dtype == torch.float32 and feat.grad.dtype == torch.bfloat16
    ref_gf, ref_gv = ref_warp_grads(feat, flow, grad_out, "border")
    torch.testing.assert_close(
        out, reference.backward_warp(feat.detach(), flow.detach(), "border"), **tol(torch.bfloat16)
    )
    torch.testing.assert_close(feat.grad.float(), ref_gf, **grad_tol(torch.bfloat16, ref_gf))
    torch.testing.assert_close(flow.grad, ref_gv, **grad_tol(torch.bfloat16, ref_gv))


def _pyramid(dtype, fmt, channels=(64, 64, 48, 3)):
    sizes = [(32, 40), (16, 20), (8, 10), (4, 5)]
    feats = [layout(make_feat(2, c, h, w, dtype, seed=s), fmt) for s, (c, (h, w)) in enumerate(zip(channels, sizes))]
    flows = [make_flow(2, h, w, seed=10 + s) for s, (h, w) in enumerate(sizes)]
    grads = [
        layout(make_feat(2, c, h, w, dtype, seed=20 + s), fmt) for s, (c, (h, w)) in enumerate(zip(channels, sizes))
    ]
    return feats, flows, grads


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("channels", [(64, 64, 48, 8), (64, 32, 16, 3)])
def test_multiscale_equals_per_scale(fmt, channels):
    feats, flows, grads = _pyramid(torch.float32, fmt, channels)
    outs = OPS.multiscale_warp(feats, flows, "border")
    gfs, gvs = OPS.multiscale_warp_backward(grads, feats, flows, "border", [True, True])
    for s in range(len(feats)):
        one = OPS.multiscale_warp([feats[s]], [flows[s]], "border")[0]
        gf, gv = OPS.multiscale_warp_backward([grads[s]], [feats[s]], [flows[s]], "border", [True, True])
        torch.testing.assert_close(outs[s], one, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(gfs[s], gf[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gvs[s], gv[0], rtol=1e-5, atol=1e-4)


def test_more_scales_than_one_launch():
    sizes = [(8 + s, 9 + 2 * s) for s in range(11)]  # more than kMaxScales (8): split launches
    feats = [make_feat(1, 4, h, w, torch.float32, seed=s) for s, (h, w) in enumerate(sizes)]
    flows = [make_flow(1, h, w, seed=s) for s, (h, w) in enumerate(sizes)]
    outs = OPS.multiscale_warp(feats, flows, "zeros")
    for f, v, o in zip(feats, flows, outs):
        torch.testing.assert_close(o, reference.backward_warp(f, v, "zeros"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt", LAYOUTS)
def test_empty_batch(fmt):
    feat = layout(torch.empty(0, 8, 5, 6, device=DEV), fmt)
    flow = torch.empty(0, 2, 5, 6, device=DEV)
    out = OPS.multiscale_warp([feat], [flow], "border")[0]
    assert out.shape == feat.shape
    gf, gv = OPS.multiscale_warp_backward([out], [feat], [flow], "border", [True, True])
    assert gf[0].shape == feat.shape and gv[0].shape == flow.shape
    assert crossnet_fast.multiscale_warp([], [], "border", backend="cuda") == []


def test_non_dense_inputs():
    """Slices and expanded gradients are read through their strides."""
    big = make_feat(2, 20, 12, 14, torch.float32)
    feat = big[:, 2:18:2]  # non-contiguous channel slice
    flow = make_flow(2, 12, 14)
    out = OPS.multiscale_warp([feat], [flow], "border")[0]
    torch.testing.assert_close(out, reference.backward_warp(feat, flow, "border"), rtol=1e-5, atol=1e-5)
    grad_out = torch.ones(1, 1, 1, 1, device=DEV).expand_as(feat)  # stride-0 gradient
    ref_gf, ref_gv = ref_warp_grads(feat, flow, grad_out, "border")
    gf, gv = OPS.multiscale_warp_backward([grad_out], [feat], [flow], "border", [True, True])
    torch.testing.assert_close(gf[0].double(), ref_gf, **grad_tol(torch.float32, ref_gf))
    torch.testing.assert_close(gv[0].double(), ref_gv, **grad_tol(torch.float32, ref_gv))


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_deterministic_backward_is_bit_identical(fmt, dtype):
    """Converging flows (many sources per destination) make atomic order matter; the gather must not."""
    feats, flows, grads = _pyramid(dtype, fmt)
    flows = [
        (
            v * 0.2
            - 0.5
            * torch.stack(
                [
                    torch.arange(v.shape[3], device=DEV).expand(v.shape[2], -1),
                    torch.arange(v.shape[2], device=DEV)[:, None].expand(-1, v.shape[3]),
                ]
            )
        ).contiguous()
        for v in flows
    ]  # everything pulled toward the top-left quarter
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = OPS.multiscale_warp_backward(grads, feats, flows, "border", [True, True])
        second = OPS.multiscale_warp_backward(grads, feats, flows, "border", [True, True])
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        assert torch.equal(a, b)
    fast = OPS.multiscale_warp_backward(grads, feats, flows, "border", [True, True])
    for a, b in zip(first[0] + first[1], fast[0] + fast[1]):
        torch.testing.assert_close(a.float(), b.float(), **grad_tol(dtype, b.float()))


def test_nchw_backward_direct_and_channels_last_agree(monkeypatch):
    feats, flows, grads = _pyramid(torch.float32, "nchw")
    monkeypatch.setenv("CROSSNET_FAST_WARP_BACKWARD", "direct")
    direct = OPS.multiscale_warp_backward(grads, feats, flows, "zeros", [True, True])
    monkeypatch.setenv("CROSSNET_FAST_WARP_BACKWARD", "channels_last")
    viacl = OPS.multiscale_warp_backward(grads, feats, flows, "zeros", [True, True])
    for a, b in zip(direct[0] + direct[1], viacl[0] + viacl[1]):
        assert a.stride() == b.stride()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_warp_gradcheck_fp64():
    n, c, h, w = 1, 3, 5, 6
    feat = make_feat(n, c, h, w, torch.float64).requires_grad_(True)
    g = torch.Generator(device="cpu").manual_seed(4)
    # Fractional parts in [0.2, 0.8]: bilinear is not differentiable on grid lines.
    flow = torch.randint(-2, 3, (n, 2, h, w), generator=g) + 0.2 + 0.6 * torch.rand(n, 2, h, w, generator=g)
    flow = flow.to(DEV, torch.float64).requires_grad_(True)
    for padding in PADDINGS:
        assert torch.autograd.gradcheck(
            lambda f, v: crossnet_fast.backward_warp(f, v, padding, backend="cuda"), (feat, flow)
        )


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_properties(0).total_memory < 40 * 2**30,
    reason="needs a GPU with 40 GiB",
)
def test_int64_indexing_large_tensor():
    """A tensor past 2^31 elements takes the 64-bit index path; checked on its last rows."""
    n, c, h, w = 1, 9, 15500, 15500  # 2.16e9 elements of fp16
    feat = torch.empty(n, c, h, w, device=DEV, dtype=torch.float16)
    feat.view(-1)[:] = 0
    rows = slice(h - 6, h)
    feat[:, :, rows] = make_feat(n, c, 6, w, torch.float16)
    flow = torch.full((n, 2, h, w), 0.25, device=DEV)
    flow[:, 1] = -0.5
    out = OPS.multiscale_warp([feat], [flow], "zeros")[0]
    expected = reference.backward_warp(feat[:, :, rows], flow[:, :, rows], "zeros")
    torch.testing.assert_close(out[:, :, h - 4 : h], expected[:, :, 2:], **tol(torch.float16))
    del feat, flow, out
    torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------
# upsample_flow


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 2, 5, 7), (1, 2, 16, 16), (3, 3, 1, 9), (1, 2, 33, 17)])
def test_upsample_flow_matches_reference(dtype, scale, shape):
    flow = make_feat(*shape, dtype)
    out = OPS.upsample_flow(flow, scale)
    torch.testing.assert_close(out, reference.upsample_flow(flow, scale), **tol(dtype))
    if dtype in (torch.float32, torch.float64):
        # F.interpolate multiplies by 1/scale where the definition divides: a few ulps apart.
        expected = F.interpolate(flow, scale_factor=scale, mode="bilinear", align_corners=False) * scale
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    grad_out = make_feat(shape[0], shape[1], shape[2] * scale, shape[3] * scale, dtype, seed=3)
    compute = torch.float64
    f = flow.detach().to(compute).requires_grad_(True)
    reference.upsample_flow(f, scale).backward(grad_out.to(compute))
    grad = OPS.upsample_flow_backward(grad_out, scale)
    assert grad.shape == flow.shape and grad.dtype == dtype
    torch.testing.assert_close(grad.to(compute), f.grad, **grad_tol(dtype, f.grad))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "shape,size",
    [((2, 2, 5, 7), (40, 56)), ((1, 2, 16, 16), (128, 128)), ((3, 2, 1, 9), (4, 2)), ((1, 2, 33, 17), (12, 50))],
)
def test_resize_flow_matches_reference(dtype, align_corners, shape, size):
    flow = make_feat(*shape, dtype)
    out = OPS.resize_flow(flow, *size, align_corners)
    torch.testing.assert_close(out, reference.resize_flow(flow, size, align_corners), **tol(dtype))
    if dtype in (torch.float32, torch.float64):
        ratio = torch.tensor([size[1] / shape[3], size[0] / shape[2]], dtype=dtype, device=DEV).view(1, 2, 1, 1)
        expected = F.interpolate(flow, size=size, mode="bilinear", align_corners=align_corners) * ratio
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    grad_out = make_feat(shape[0], shape[1], *size, dtype, seed=3)
    f = flow.detach().double().requires_grad_(True)
    reference.resize_flow(f, size, align_corners).backward(grad_out.double())
    grad = OPS.resize_flow_backward(grad_out, shape[2], shape[3], align_corners)
    assert grad.shape == flow.shape and grad.dtype == dtype
    torch.testing.assert_close(grad.double(), f.grad, **grad_tol(dtype, f.grad))
    assert torch.equal(grad, OPS.resize_flow_backward(grad_out, shape[2], shape[3], align_corners))  # a gather


def test_upsample_flow_channels_last_and_empty():
    flow = make_feat(2, 2, 6, 8, torch.float32).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(OPS.upsample_flow(flow, 2), reference.upsample_flow(flow, 2), rtol=1e-6, atol=1e-6)
    empty = torch.empty(0, 2, 4, 4, device=DEV)
    assert OPS.upsample_flow(empty, 2).shape == (0, 2, 8, 8)
    assert OPS.upsample_flow_backward(torch.empty(0, 2, 8, 8, device=DEV), 2).shape == (0, 2, 4, 4)


def test_upsample_flow_backward_is_deterministic_and_gradchecks():
    g = make_feat(2, 2, 64, 64, torch.float32)
    assert torch.equal(OPS.upsample_flow_backward(g, 2), OPS.upsample_flow_backward(g, 2))
    flow = make_feat(1, 2, 4, 5, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: crossnet_fast.upsample_flow(v, 3, backend="cuda"), (flow,))


# ------------------------------------------------------------------------------------------------
# charbonnier


def ref_charbonnier_grad(pred, target, eps, reduction, upstream):
    compute = torch.float64
    p = pred.detach().to(compute).requires_grad_(True)
    loss = reference.charbonnier(p, target.detach().to(compute), eps, reduction)
    loss.backward(upstream.to(compute).expand_as(loss) if reduction == "none" else upstream.to(compute))
    return loss, p.grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "batch", "none"])
@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("shape", [(4, 3, 37, 41), (2, 3, 8, 8), (1, 1, 1, 5)])
def test_charbonnier_matches_reference(dtype, reduction, fmt, shape):
    pred = layout(make_feat(*shape, dtype), fmt)
    target = layout(make_feat(*shape, dtype, seed=2), fmt)
    eps = 1e-3
    for compute_grad in (False, True):
        loss, grad = OPS.charbonnier(pred, target, eps, reduction, compute_grad)
        ref = reference.charbonnier(pred, target, eps, reduction)
        assert loss.dtype == dtype and loss.shape == ref.shape
        torch.testing.assert_close(loss, ref, **tol(dtype))
        if reduction == "none":
            assert loss.stride() == torch.empty_like(pred).stride()
        upstream = torch.ones((), device=DEV) if reduction != "none" else torch.ones_like(pred)
        _, ref_grad = ref_charbonnier_grad(pred, target, eps, reduction, torch.ones((), device=DEV))
        if compute_grad:
            assert grad.shape == pred.shape and grad.stride() == torch.empty_like(pred).stride()
            # The fused output is d rho / d pred, unscaled by the reduction (autograd scales it).
            norm = {"mean": 1.0 / pred.numel(), "batch": 1.0 / pred.shape[0]}.get(reduction, 1.0)
            torch.testing.assert_close(grad.to(ref_grad.dtype) * norm, ref_grad, **grad_tol(dtype, ref_grad))
        else:
            assert grad.numel() == 0
        bwd = OPS.charbonnier_backward(upstream.to(dtype), pred, target, eps, reduction)
        torch.testing.assert_close(bwd.to(ref_grad.dtype), ref_grad, **grad_tol(dtype, ref_grad))


def test_charbonnier_autograd_both_inputs_and_determinism():
    pred = make_feat(4, 3, 64, 64, torch.float32).requires_grad_(True)
    target = make_feat(4, 3, 64, 64, torch.float32, seed=2).requires_grad_(True)
    loss = crossnet_fast.charbonnier(pred, target, 1e-3, "batch", backend="cuda")
    (loss * 3).backward()
    _, ref_grad = ref_charbonnier_grad(pred, target, 1e-3, "batch", torch.tensor(3.0, device=DEV))
    torch.testing.assert_close(pred.grad.double(), ref_grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(target.grad, -pred.grad)
    a = OPS.charbonnier(pred.detach(), target.detach(), 1e-3, "mean", False)[0]
    b = OPS.charbonnier(pred.detach(), target.detach(), 1e-3, "mean", False)[0]
    assert torch.equal(a, b)


def test_charbonnier_empty():
    e = torch.empty(0, 3, 4, 4, device=DEV)
    for reduction in ("mean", "sum", "batch", "none"):
        loss, _ = OPS.charbonnier(e, e, 1e-3, reduction, True)
        torch.testing.assert_close(loss, reference.charbonnier(e, e, 1e-3, reduction))


# ------------------------------------------------------------------------------------------------
# opcheck and torch.compile


def test_opcheck_all_ops():
    from torch.library import opcheck

    feats, flows, grads = _pyramid(torch.float32, "nchw", channels=(8, 8, 4, 3))
    feats = [f[:, :, :12, :12].contiguous().requires_grad_(True) for f in feats]
    flows = [v[:, :, :12, :12].contiguous().requires_grad_(True) for v in flows]
    grads = [g[:, :, :12, :12].contiguous() for g in grads]
    for padding in PADDINGS:
        opcheck(OPS.multiscale_warp.default, (feats, flows, padding))
        opcheck(
            OPS.multiscale_warp_backward.default,
            ([g for g in grads], [f.detach() for f in feats], [v.detach() for v in flows], padding, [True, True]),
        )
    cl = [f.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True) for f in feats]
    opcheck(OPS.multiscale_warp.default, (cl, flows, "border"))
    flow = make_feat(2, 2, 6, 7, torch.float32).requires_grad_(True)
    opcheck(OPS.upsample_flow.default, (flow, 2))
    opcheck(OPS.upsample_flow_backward.default, (make_feat(2, 2, 12, 14, torch.float32), 2))
    pred = make_feat(2, 3, 8, 8, torch.float32).requires_grad_(True)
    target = make_feat(2, 3, 8, 8, torch.float32, seed=3)
    for reduction in ("mean", "none"):
        for compute_grad in (False, True):
            opcheck(OPS.charbonnier.default, (pred, target, 1e-3, reduction, compute_grad))
        upstream = torch.ones((), device=DEV) if reduction == "mean" else torch.ones_like(pred)
        opcheck(OPS.charbonnier_backward.default, (upstream, pred.detach(), target, 1e-3, reduction))


def test_torch_compile_fullgraph_agrees():
    feats, flows, _ = _pyramid(torch.float32, "channels_last", channels=(16, 16, 8, 8))
    target = [torch.randn_like(f) for f in feats]

    def step(feats, flows, coarse):
        up = OPS.upsample_flow(coarse, 2)
        warped = OPS.multiscale_warp(feats, [up] + flows[1:], "border")
        return sum(OPS.charbonnier(w, t, 1e-3, "mean", True)[0] for w, t in zip(warped, target))

    coarse = flows[1].detach().clone()

    def run(fn):
        fs = [f.detach().clone().requires_grad_(True) for f in feats]
        vs = [v.detach().clone().requires_grad_(True) for v in flows]
        c = coarse.clone().requires_grad_(True)
        loss = fn(fs, vs, c)
        loss.backward()
        return [loss] + [f.grad for f in fs] + [v.grad for v in vs[1:]] + [c.grad]

    eager = run(step)
    compiled = run(torch.compile(step, fullgraph=True))
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
