"""crossnet_fast.compat's drop-in for the ``spatial-correlation-sampler`` package.

The package does not build on current torch (docs/USE_IN_YOUR_MODEL.md), so the oracle is an
independent NumPy implementation of its documented semantics (README and CPU source, read for
facts): for every output (b, ph, pw, h, w), the sum over channels and kernel taps (i, j) of
``input1[b, c, u + i*dil, v + j*dil] * input2[b, c, u + i*dil + sU, v + j*dil + sV]``, with
``u = h*stride - pad``, ``sU = (ph - (patch - 1)//2) * dilation_patch``, a term counting only when
both points are inside the image; output (B, patchH, patchW, oH, oW),
``oH = (H + 2*pad - ((k - 1)*dil + 1)) // stride + 1``. Its gradients are the same loop's
derivative, accumulated term by term (a scatter, unlike any crossnet_fast kernel).

The PWC-Net-style model (tests/compat/pwc_style_net.py) imports the package by name, as PWC-Net
ports do: here it gets a stand-in package backed by the oracle, and runs once with it and once
inside ``patch_spatial_correlation_sampler``.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import sys
import types

import numpy as np
import pytest
import torch

from crossnet_fast import compat
from crossnet_fast.compat import (
    SpatialCorrelationSampler,
    patch_spatial_correlation_sampler,
    spatial_correlation_sample,
)

PACKAGE = "spatial_correlation_sampler"


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _geometry(shape, kernel_size, patch_size, stride, padding, dilation, dilation_patch):
    kh, kw = _pair(kernel_size)
    ph, pw = _pair(patch_size)
    sh, sw = _pair(stride)
    padh, padw = _pair(padding)
    dh, dw = _pair(dilation)
    dph, dpw = _pair(dilation_patch)
    _, _, h, w = shape
    oh = (h + 2 * padh - ((kh - 1) * dh + 1)) // sh + 1
    ow = (w + 2 * padw - ((kw - 1) * dw + 1)) // sw + 1
    return kh, kw, ph, pw, sh, sw, padh, padw, dh, dw, dph, dpw, oh, ow


def _terms(shape, args):
    """Every (b, ph, pw, h, w, y1, x1, y2, x2) whose two points are inside the image."""
    kh, kw, ph, pw, sh, sw, padh, padw, dh, dw, dph, dpw, oh, ow = _geometry(shape, *args)
    n, _, hh, ww = shape
    for b, p, q, y, x, i, j in itertools.product(
        range(n), range(ph), range(pw), range(oh), range(ow), range(kh), range(kw)
    ):
        y1, x1 = y * sh - padh + i * dh, x * sw - padw + j * dw
        y2, x2 = y1 + (p - (ph - 1) // 2) * dph, x1 + (q - (pw - 1) // 2) * dpw
        if 0 <= y1 < hh and 0 <= x1 < ww and 0 <= y2 < hh and 0 <= x2 < ww:
            yield b, p, q, y, x, y1, x1, y2, x2


def oracle_forward(in1: np.ndarray, in2: np.ndarray, *args) -> np.ndarray:
    g = _geometry(in1.shape, *args)
    out = np.zeros((in1.shape[0], g[2], g[3], g[12], g[13]))  # (B, patchH, patchW, oH, oW)
    for b, p, q, y, x, y1, x1, y2, x2 in _terms(in1.shape, args):
        out[b, p, q, y, x] += float(np.dot(in1[b, :, y1, x1], in2[b, :, y2, x2]))
    return out


def oracle_backward(in1, in2, gout, *args):
    g1, g2 = np.zeros_like(in1), np.zeros_like(in2)
    for b, p, q, y, x, y1, x1, y2, x2 in _terms(in1.shape, args):
        go = gout[b, p, q, y, x]
        g1[b, :, y1, x1] += go * in2[b, :, y2, x2]
        g2[b, :, y2, x2] += go * in1[b, :, y1, x1]
    return g1, g2


class _OracleFunction(torch.autograd.Function):
    """The oracle as a torch function (float64 NumPy inside), for the stand-in package."""

    @staticmethod
    def forward(ctx, in1, in2, *args):
        ctx.save_for_backward(in1, in2)
        ctx.args = args
        out = oracle_forward(in1.detach().double().numpy(), in2.detach().double().numpy(), *args)
        return torch.from_numpy(out).to(in1.dtype)

    @staticmethod
    def backward(ctx, gout):
        in1, in2 = ctx.saved_tensors
        g1, g2 = oracle_backward(in1.double().numpy(), in2.double().numpy(), gout.double().numpy(), *ctx.args)
        return (torch.from_numpy(g1).to(in1.dtype), torch.from_numpy(g2).to(in2.dtype)) + (None,) * len(ctx.args)


def oracle_sample(input1, input2, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1):
    return _OracleFunction.apply(input1, input2, kernel_size, patch_size, stride, padding, dilation, dilation_patch)


def _data(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(shape, generator=g, dtype=torch.float64).to(dtype),
        torch.randn(shape, generator=g, dtype=torch.float64).to(dtype),
    )


# (kernel_size, patch_size, stride, padding, dilation, dilation_patch): the fused path (kernel 1,
# padding 0, odd square patch, one stride) and the general one (everything else), pairs included.
CASES = [
    (1, 9, 1, 0, 1, 1),  # PWC-Net
    (1, 7, 1, 0, 1, 2),  # FlowNetC-like (patch 21, dilation_patch 2, scaled down)
    (1, 3, 2, 0, 1, 1),
    (1, 5, 3, 0, 2, 1),  # dilation has no effect with kernel 1
    (1, 4, 1, 0, 1, 1),  # even patch: one more shift on the positive side
    (1, 3, 1, 2, 1, 1),  # kernel 1 with padding
    (3, 1, 2, 0, 2, 1),  # the package README's example
    (3, 3, 1, 1, 1, 1),
    (2, 3, 2, 1, 1, 2),
    (1, (3, 5), (1, 2), 0, 1, (2, 1)),
    ((3, 1), (5, 3), 1, (1, 0), (1, 1), 1),
]


@pytest.mark.parametrize("args", CASES)
def test_forward_and_gradients_match_the_numpy_oracle(args):
    in1, in2 = _data((2, 3, 6, 7), seed=1)
    a, b = in1.clone().requires_grad_(), in2.clone().requires_grad_()
    out = spatial_correlation_sample(a, b, *args)
    want = oracle_forward(in1.numpy(), in2.numpy(), *args)
    assert out.shape == want.shape and out.dtype == torch.float64
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=0, atol=1e-12)
    gout = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ga, gb = torch.autograd.grad(out, (a, b), gout)
    w1, w2 = oracle_backward(in1.numpy(), in2.numpy(), gout.numpy(), *args)
    np.testing.assert_allclose(ga.numpy(), w1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gb.numpy(), w2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("args", [CASES[0], CASES[7]])
def test_lower_precision_within_rounding_of_the_oracle(dtype, tol, args):
    in1, in2 = _data((2, 5, 6, 7), seed=3, dtype=dtype)
    out = spatial_correlation_sample(in1, in2, *args)
    want = oracle_forward(in1.double().numpy(), in2.double().numpy(), *args)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.double().numpy(), want, rtol=0, atol=tol * (1 + np.abs(want).max()))


@pytest.mark.parametrize("args", [CASES[0], CASES[1], CASES[8]])
def test_gradcheck(args):
    in1, in2 = _data((1, 2, 5, 6), seed=4)
    assert torch.autograd.gradcheck(
        lambda a, b: spatial_correlation_sample(a, b, *args), (in1.requires_grad_(), in2.requires_grad_())
    )


def test_module_equals_function_and_has_no_parameters():
    in1, in2 = _data((2, 4, 5, 6), seed=5)
    m = SpatialCorrelationSampler(kernel_size=1, patch_size=5, stride=1, padding=0, dilation_patch=2)
    assert list(m.parameters()) == [] and "patch_size=5" in repr(m)
    torch.testing.assert_close(m(in1, in2), spatial_correlation_sample(in1, in2, 1, 5, 1, 0, 1, 2), rtol=0, atol=0)


def test_sum_over_channels_not_mean():
    in1 = torch.ones(1, 6, 3, 3, dtype=torch.float64)
    out = spatial_correlation_sample(in1, in1, patch_size=3)
    assert out[0, 1, 1, 1, 1].item() == 6.0  # the centre shift of the centre point: 6 channels of 1*1
    assert out[0, 0, 0, 0, 0].item() == 0.0  # shift (-1, -1) from (0, 0): outside the image


def test_fused_path_keeps_non_finite_values_local():
    in1, in2 = _data((1, 2, 6, 6), seed=6)
    in2[0, 0, 0, 0] = float("nan")
    out = spatial_correlation_sample(in1, in2, patch_size=3)
    # Only outputs that read input2[0, :, 0, 0]: points (0,0) shift (0,0), (0,1) (0,-1), (1,0) (-1,0), (1,1) (-1,-1).
    assert int(out.isnan().sum()) == 4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kernel_size=0), "kernel_size"),
        (dict(patch_size=0), "patch_size"),
        (dict(stride=0), "stride"),
        (dict(padding=-1), "padding"),
        (dict(dilation=0), "dilation"),
        (dict(dilation_patch=(1, 0)), "dilation_patch"),
        (dict(kernel_size=9), "smaller than the dilated kernel"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    in1, in2 = _data((1, 2, 5, 6))
    with pytest.raises(ValueError, match=match):
        spatial_correlation_sample(in1, in2, **kwargs)


def test_bad_inputs():
    in1, in2 = _data((1, 2, 5, 6))
    with pytest.raises(ValueError, match="input2"):
        spatial_correlation_sample(in1, in2[:, :1])
    with pytest.raises(TypeError, match="kernel_size"):
        spatial_correlation_sample(in1, in2, kernel_size=1.5)


# ---------------------------------------------------------------------------------------------
# The PWC-Net-style model and the patch


@pytest.fixture
def stand_in_package():
    """A stand-in ``spatial_correlation_sampler`` package backed by the oracle (as installed:
    the functions defined in its submodule), and pwc_style_net freshly imported against it."""
    saved = {
        k: sys.modules.pop(k)
        for k in [PACKAGE, f"{PACKAGE}.spatial_correlation_sampler", "pwc_style_net"]
        if k in sys.modules
    }
    pkg = types.ModuleType(PACKAGE)
    sub = types.ModuleType(f"{PACKAGE}.spatial_correlation_sampler")

    def spatial_correlation_sample(*args, **kwargs):  # the package's name and module
        return oracle_sample(*args, **kwargs)

    spatial_correlation_sample.__module__ = sub.__name__

    class SpatialCorrelationSampler(torch.nn.Module):
        def __init__(self, kernel_size=1, patch_size=1, stride=1, padding=0, dilation=1, dilation_patch=1):
            super().__init__()
            self.args = (kernel_size, patch_size, stride, padding, dilation, dilation_patch)

        def forward(self, input1, input2):
            return oracle_sample(input1, input2, *self.args)

    SpatialCorrelationSampler.__module__ = sub.__name__
    for m in (pkg, sub):
        m.spatial_correlation_sample = spatial_correlation_sample
        m.SpatialCorrelationSampler = SpatialCorrelationSampler
    sys.modules[PACKAGE] = pkg
    sys.modules[sub.__name__] = sub
    net = importlib.import_module("pwc_style_net")
    try:
        yield pkg, net
    finally:
        for k in (PACKAGE, sub.__name__, "pwc_style_net"):
            sys.modules.pop(k, None)
        sys.modules.update(saved)


def _images(seed=7):
    g = torch.Generator().manual_seed(seed)
    img1 = torch.rand(2, 3, 24, 32, generator=g)
    img2 = torch.roll(img1, shifts=(1, 2), dims=(2, 3)) + 0.05 * torch.rand(2, 3, 24, 32, generator=g)
    return img1, img2


def _run(model, img1, img2):
    model.zero_grad()
    flow = model(img1, img2)
    (flow**2).mean().backward()
    return flow.detach(), [p.grad.clone() for p in model.parameters()]


def test_pwc_style_net_with_the_adapter_matches_the_oracle(stand_in_package):
    pkg, net = stand_in_package
    torch.manual_seed(0)
    model = net.PWCStyleNet()
    img1, img2 = _images()
    want_flow, want_grads = _run(model, img1, img2)
    oracle_fn = net.spatial_correlation_sample
    with patch_spatial_correlation_sampler(net) as originals:
        assert net.spatial_correlation_sample is not oracle_fn
        assert originals == {"pwc_style_net.spatial_correlation_sample": oracle_fn}
        got_flow, got_grads = _run(model, img1, img2)
    assert net.spatial_correlation_sample is oracle_fn  # restored
    assert want_flow.abs().max() > 1e-3  # the network computes something
    torch.testing.assert_close(got_flow, want_flow, rtol=1e-5, atol=1e-6)
    for got, want in zip(got_grads, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_patch_rebinds_aliases_the_class_and_the_module_and_restores_on_error(stand_in_package):
    pkg, _ = stand_in_package
    user = types.ModuleType("user_model")
    user.corr = pkg.spatial_correlation_sample  # `from ... import spatial_correlation_sample as corr`
    user.SpatialCorrelationSampler = pkg.SpatialCorrelationSampler
    user.scs = pkg  # `import spatial_correlation_sampler as scs`
    user.unrelated = torch.cat
    in1, in2 = _data((1, 3, 5, 6), seed=8)
    with pytest.raises(RuntimeError, match="inside"):
        with patch_spatial_correlation_sampler(user, backend="reference"):
            assert user.unrelated is torch.cat
            assert user.corr.__module__ == "crossnet_fast.compat.correlation"
            torch.testing.assert_close(user.corr(in1, in2, 1, 5), user.scs.spatial_correlation_sample(in1, in2, 1, 5))
            sampler = user.SpatialCorrelationSampler(kernel_size=1, patch_size=3)
            assert isinstance(sampler, SpatialCorrelationSampler) and sampler.backend == "reference"
            torch.testing.assert_close(sampler(in1, in2), oracle_sample(in1, in2, 1, 3), rtol=0, atol=1e-12)
            raise RuntimeError("inside")
    assert user.corr is pkg.spatial_correlation_sample
    assert user.SpatialCorrelationSampler is pkg.SpatialCorrelationSampler
    assert user.scs is pkg


def test_patch_provides_the_import_while_the_package_is_missing():
    saved = {k: sys.modules.pop(k) for k in [PACKAGE, "pwc_style_net"] if k in sys.modules}
    try:
        if importlib.util.find_spec(PACKAGE) is not None:
            pytest.skip("the real package is installed")
        with patch_spatial_correlation_sampler():
            import spatial_correlation_sampler as scs

            assert scs.spatial_correlation_sample.__module__ == "crossnet_fast.compat.correlation"
            net = importlib.import_module("pwc_style_net")  # imports the package by name
            img1, img2 = _images()
            flow = net.PWCStyleNet()(img1, img2)
            assert flow.shape == (2, 2, 12, 16) and flow.isfinite().all()
        assert PACKAGE not in sys.modules
    finally:
        for k in (PACKAGE, "pwc_style_net"):
            sys.modules.pop(k, None)
        sys.modules.update(saved)


def test_exported_from_compat():
    for name in ("spatial_correlation_sample", "SpatialCorrelationSampler", "patch_spatial_correlation_sampler"):
        assert name in compat.__all__ and getattr(compat, name) is not None


def test_patch_refuses_non_modules():
    with pytest.raises(TypeError, match="modules"):
        with patch_spatial_correlation_sampler(42):
            pass
