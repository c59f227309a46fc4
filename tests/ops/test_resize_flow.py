"""upsample_flow(align_corners=True) and resize_flow against F.interpolate (float64 oracle)."""

import pytest
import torch
import torch.nn.functional as F
from conftest import NATIVE_CPU

import crossnet_fast as cf

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
@pytest.mark.parametrize(
    "shape,size",
    [
        ((2, 2, 5, 7), (10, 14)),
        ((1, 2, 8, 6), (3, 11)),
        ((2, 2, 4, 4), (4, 4)),
        ((1, 2, 1, 5), (3, 1)),
        ((1, 2, 6, 9), (17, 5)),
    ],
)
def test_resize_flow_matches_interpolate(backend, align_corners, dtype, shape, size, gen):
    flow = (torch.randn(*shape, generator=gen, dtype=torch.float64) * 3).to(dtype)
    grad_out = torch.randn(shape[0], 2, *size, generator=gen, dtype=torch.float64)
    got = _value_and_grad(
        lambda f: cf.resize_flow(f, size, align_corners=align_corners, backend=backend), flow, grad_out
    )
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
    got = _value_and_grad(
        lambda f: cf.upsample_flow(f, scale, align_corners=align_corners, backend=backend), flow, grad_out
    )
    want = _value_and_grad(
        lambda f: F.interpolate(f, scale_factor=scale, mode="bilinear", align_corners=align_corners) * scale,
        flow,
        grad_out,
    )
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(size=(0, 4)), ValueError, "size must be"),
        (dict(size=(4,)), ValueError, "size must be"),
        (dict(size=(4.0, 4)), ValueError, "size must be"),
        (dict(flow=torch.zeros(1, 3, 4, 4)), ValueError, "2 channels"),
        (dict(flow=torch.zeros(1, 2, 4)), ValueError, "4-D"),
        (dict(align_corners=1), TypeError, "align_corners must be a bool"),
    ],
)
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
    """Repeated calls with other batch sizes agree with F.interpolate, and
    torch.compile(fullgraph=True) traces the op."""
    for n in (1, 3, 1):
        flow = torch.randn(n, 2, 6, 5, generator=gen)
        want = _interpolate_flow(flow.double(), (12, 10), True)
        torch.testing.assert_close(
            cf.resize_flow(flow, (12, 10), align_corners=True, backend=backend).double(), want, atol=1e-5, rtol=1e-5
        )
    torch._dynamo.reset()
    flow = torch.randn(2, 2, 6, 5, generator=gen)
    compiled = torch.compile(lambda f: cf.resize_flow(f, (9, 7), backend=backend), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(flow), cf.resize_flow(flow, (9, 7), backend=backend), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_flow_every_size_pair(backend, align_corners, gen):
    """Down-, up- and same-size resizing over a sweep of axis lengths (the backward gathers a
    footprint per input sample: every output that reads it must be inside), float64."""
    for h_in, h_out in [(1, 1), (1, 4), (2, 1), (2, 7), (3, 2), (5, 16), (5, 23), (7, 3), (16, 5), (23, 11)]:
        w_in, w_out = h_out, h_in  # the other axis the other way round
        flow = torch.randn(1, 2, h_in, w_in, generator=gen, dtype=torch.float64)
        grad_out = torch.randn(1, 2, h_out, w_out, generator=gen, dtype=torch.float64)
        got = _value_and_grad(
            lambda f: cf.resize_flow(f, (h_out, w_out), align_corners=align_corners, backend=backend), flow, grad_out
        )
        want = _value_and_grad(lambda f: _interpolate_flow(f, (h_out, w_out), align_corners), flow, grad_out)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_upsample_flow_align_corners_raft_size_and_any_channel_count(backend, gen):
    """RAFT's x8 upsampling of a 1/8-resolution flow (F.interpolate(size, align_corners=True) * 8),
    and a 3-channel field (both ratios are the factor: a uniform scale)."""
    flow = torch.randn(2, 2, 16, 12, generator=gen) * 4
    want = F.interpolate(flow.double(), size=(128, 96), mode="bilinear", align_corners=True) * 8
    # fp32 coordinates (the step 15/127 is rounded): a few fp32 ulps of the largest value.
    torch.testing.assert_close(
        cf.upsample_flow(flow, 8, align_corners=True, backend=backend).double(),
        want,
        atol=4e-6 * float(want.abs().max()),
        rtol=0,
    )
    three = torch.randn(1, 3, 4, 5, generator=gen, dtype=torch.float64)
    want = F.interpolate(three, scale_factor=3, mode="bilinear", align_corners=True) * 3
    torch.testing.assert_close(
        cf.upsample_flow(three, 3, align_corners=True, backend=backend), want, atol=1e-12, rtol=1e-12
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_flow_half_precision_is_rounded_once(backend, dtype, gen):
    """fp16/bf16 flows are interpolated and scaled in fp32 and rounded once: the result equals the
    fp32 result of the same inputs rounded to the dtype (up to one ulp for rounding-boundary cases)."""
    flow = (torch.randn(2, 2, 5, 6, generator=gen) * 4).to(dtype)
    got = cf.resize_flow(flow, (11, 9), align_corners=True, backend=backend)
    assert got.dtype == dtype and got.is_contiguous()
    want = cf.resize_flow(flow.float(), (11, 9), align_corners=True, backend="reference").to(dtype)
    torch.testing.assert_close(got, want, atol=0, rtol=torch.finfo(dtype).eps)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_flow_layouts_and_empty_batch(backend, gen):
    flow = torch.randn(2, 2, 6, 8, generator=gen)
    want = cf.resize_flow(flow, (5, 13), backend="reference")
    for variant in (
        flow.contiguous(memory_format=torch.channels_last),
        flow.transpose(2, 3).contiguous().transpose(2, 3),
    ):
        torch.testing.assert_close(cf.resize_flow(variant, (5, 13), backend=backend), want, atol=1e-6, rtol=1e-6)
    empty = torch.zeros(0, 2, 3, 3, requires_grad=True)
    out = cf.resize_flow(empty, (7, 2), backend=backend)
    assert out.shape == (0, 2, 7, 2)
    out.sum().backward()
    assert empty.grad.shape == empty.shape


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: cf.resize_flow(torch.zeros(1, 2, 0, 4), (3, 3)), "non-empty"),
        (lambda: torch.ops.crossnet_fast.resize_flow(torch.zeros(1, 2, 0, 4), 3, 3, False), "non-empty"),
        (
            lambda: torch.ops.crossnet_fast.resize_flow(torch.zeros(1, 2, 4, 4), 0, 3, False),
            "height, width must be positive",
        ),
        (
            lambda: torch.ops.crossnet_fast.resize_flow_backward(torch.zeros(1, 2, 4, 4), 3, -1, True),
            "must be positive",
        ),
        (lambda: torch.ops.crossnet_fast.resize_flow(torch.zeros(1, 2, 4), 3, 3, False), "must be \\(N, C, H, W\\)"),
    ],
)
@NATIVE_CPU
def test_resize_op_bad_input(call, match):
    with pytest.raises((ValueError, RuntimeError), match=match):
        call()
