"""upsample_flow(align_corners=True) and resize_flow against F.interpolate (float64 oracle)."""
import pytest
import torch
import torch.nn.functional as F

import crossnet_fast as cf
from conftest import NATIVE_CPU

BACKENDS = [pytest.param("cpu", marks=NATIVE_CPU), "reference"]


def _interpolate_flow(flow, size, align_corners):
    """The oracle: F.interpolate, then x scaled by w/W and y by h/H (SPyNet's and RAFT's rule)."""
    h, w = size
    out = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=align_corners)
    ratio = torch.tensor([w / flow.shape[-1], h / flow.shape[-2]], dtype=flow.dtype).view(1, 2, 1, 1)
    return out * ratio


def _value_and_grad(fn, flow, grad_out):
    flow = flow.detach().requires_grad_()
    out = fn(flow)
    return out, torch.autograd.grad(out, flow, grad_out.to(out.dtype))[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape,size", [((2, 2, 5, 7), (10, 14)), ((1, 2, 8, 6), (3, 11)), ((2, 2, 4, 4), (4, 4)),
                                        ((1, 2, 1, 5), (3, 1)), ((1, 2, 6, 9), (17, 5))])
def test_resize_flow_matches_interpolate(backend, align_corners, dtype, shape, size, gen):
    flow = (torch.randn(*shape, generator=gen, dtype=torch.float64) * 3).to(dtype)
    grad_out = torch.randn(shape[0], 2, *size, generator=gen, dtype=torch.float64)
    got = _value_and_grad(lambda f: cf.resize_flow(f, size, align_corners=align_corners, backend=backend), flow, grad_out)
    want = _value_and_grad(lambda f: _interpolate_flow(f, size, align_corners), flow.double(), grad_out)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, b in zip(got, want):
        assert a.dtype == dtype
        torch.testing.assert_close(a.double(), b, atol=tol, rtol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("scale", [1, 2, 8])
def test_upsample_flow_both_conventions(backend, align_corners, scale, gen):
    """upsample_flow = F.interpolate(scale_factor) * scale, for either align_corners."""
    flow = torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(2, 2, 5 * scale, 6 * scale, generator=gen, dtype=torch.float64)
    got = _value_and_grad(lambda f: cf.upsample_flow(f, scale, align_corners=align_corners, backend=backend),
                          flow, grad_out)
    want = _value_and_grad(lambda f: F.interpolate(f, scale_factor=scale, mode="bilinear",
                                                   align_corners=align_corners) * scale, flow, grad_out)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(size=(0, 4)), ValueError, "size must be"),
    (dict(size=(4,)), ValueError, "size must be"),
    (dict(size=(4.0, 4)), ValueError, "size must be"),
    (dict(flow=torch.zeros(1, 3, 4, 4)), ValueError, "2 channels"),
    (dict(flow=torch.zeros(1, 2, 4)), ValueError, "4-D"),
    (dict(align_corners=1), TypeError, "align_corners must be a bool"),
])
def test_resize_flow_bad_input(kwargs, exc, match):
    args = dict(flow=torch.zeros(1, 2, 4, 4), size=(8, 8))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        cf.resize_flow(**args)


def test_upsample_flow_rejects_non_bool_align_corners():
    with pytest.raises(TypeError, match="align_corners must be a bool"):
        cf.upsample_flow(torch.zeros(1, 2, 4, 4), 2, align_corners="true")


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_flow_repeated_calls_and_compile(backend, gen):
    """The sample points are built once per size (cached): repeated calls with other batch sizes
    agree with F.interpolate, and torch.compile(fullgraph=True) traces it (no cache there)."""
    for n in (1, 3, 1):
        flow = torch.randn(n, 2, 6, 5, generator=gen)
        want = _interpolate_flow(flow.double(), (12, 10), True)
        torch.testing.assert_close(cf.resize_flow(flow, (12, 10), align_corners=True, backend=backend).double(), want,
                                   atol=1e-5, rtol=1e-5)
    torch._dynamo.reset()
    flow = torch.randn(2, 2, 6, 5, generator=gen)
    compiled = torch.compile(lambda f: cf.resize_flow(f, (9, 7), backend=backend), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(flow), cf.resize_flow(flow, (9, 7), backend=backend), atol=1e-6, rtol=1e-6)
