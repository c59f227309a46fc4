"""CrossNet's correlation flow (models/corrflow.py) and the ``flow="correlation"`` option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from crossnet_fast.degrade import degrade
from crossnet_fast.models import CrossNet
from crossnet_fast.models.corrflow import (
    CorrelationFlow,
    _peak_soft_argmax,
    global_radius,
    hr_pyramid,
    patch_descriptor,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "crossnet_fast" / "examples" / "flowers_hr.png"
COMPACT = dict(sisr="bicubic", width=0.25, residual=True, flow_ref="degraded", ref_detail=True, flow="correlation")


def _example() -> torch.Tensor:
    """(1, 3, 192, 192) float32 in [0, 1]: the demo's real light-field view."""
    arr = np.array(Image.open(EXAMPLE).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def _shifted_pair(shift_x: int, shift_y: int, size: int = 128):
    """(hr, ref): two size x size crops of the example whose contents are shifted by
    (shift_x, shift_y) HR px, so the true backward flow from hr to ref is (-shift_x, -shift_y)."""
    img = _example()
    y0, x0 = 32, 32
    hr = img[..., y0 : y0 + size, x0 : x0 + size]
    ref = img[..., y0 + shift_y : y0 + shift_y + size, x0 + shift_x : x0 + shift_x + size]
    return hr.contiguous(), ref.contiguous()


def test_descriptor_is_unit_length_and_ignores_a_brightness_offset():
    img = _example()[..., :64, :64]
    d = patch_descriptor(img)
    assert d.shape == (1, 27, 64, 64) and d.dtype == torch.float32
    torch.testing.assert_close(d.norm(dim=1), torch.ones(1, 64, 64), atol=1e-5, rtol=0)
    # A band-pass: a constant offset cancels exactly (up to rounding).
    torch.testing.assert_close(patch_descriptor(img + 0.1), d, atol=1e-4, rtol=0)


def test_descriptor_matches_its_formula_at_an_interior_pixel():
    img = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = img.numpy()[0]
    y, c = 10, 9

    def box(k, yy, xx):
        r = k // 2
        return x[:, yy - r : yy + r + 1, xx - r : xx + r + 1].mean(axis=(1, 2))

    vec = np.concatenate(
        [
            [box(3, y + dy, c + dx)[ch] - box(7, y + dy, c + dx)[ch] for dy in (-2, 0, 2) for dx in (-2, 0, 2)]
            for ch in range(3)
        ]
    )
    vec /= np.linalg.norm(vec)
    got = patch_descriptor(img)[0, :, y, c].double().numpy()
    np.testing.assert_allclose(got, vec, atol=1e-5)


def test_global_search_covers_128_hr_pixels():
    for scale in (4, 8):
        # radius in pixels of the 1/16-HR search level.
        assert global_radius(scale) * 16 == 128


@pytest.mark.parametrize("scale, shift", [(4, (24, -16)), (4, (-28, 12)), (8, (24, 16))])
def test_untrained_estimator_finds_a_known_shift(scale, shift):
    """The fixed descriptor matches before any training: the median end-point error of a shift of
    tens of HR pixels is below 4 HR pixels (one x4 LR pixel) away from the borders the shift
    uncovers. The flow is at 1/4 of the HR size whatever the scale."""
    torch.manual_seed(0)
    hr, ref = _shifted_pair(*shift)
    lr, ref_lr = degrade(hr, scale), degrade(ref, scale)
    net = CorrelationFlow(scale, backend="reference").eval()
    with torch.no_grad():
        flow, conf = net(lr, ref_lr)
    h = hr.shape[-1] // 4
    assert flow.shape == (1, 2, h, h) and conf.shape == (1, 1, h, h)
    assert bool((conf >= 0).all() and (conf <= 1).all())
    true = -torch.tensor(shift, dtype=torch.float32).view(1, 2, 1, 1) / 4
    m = max(2, h // 8)
    err = (flow - true).norm(dim=1)[..., m:-m, m:-m]
    assert float(err.median()) < 1.0, float(err.median())


def test_hr_pyramid_resizes_and_scales_by_the_size_ratio():
    g = torch.Generator().manual_seed(3)
    flow = torch.randn(2, 2, 8, 12, generator=g)
    conf = torch.rand(2, 1, 8, 12, generator=g)
    vs, cs = hr_pyramid(flow, conf, backend="reference")
    for i, (v, c) in enumerate(zip(vs, cs)):
        size = (8 * 4 // 2**i, 12 * 4 // 2**i)
        expect = F.interpolate(flow, size=size, mode="bilinear", align_corners=False) * (size[0] / 8)
        torch.testing.assert_close(v, expect, atol=1e-5, rtol=1e-5)
        assert c.shape == (2, 1, *size)


@pytest.mark.slow
def test_correlation_model_has_no_flownet_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = CrossNet(scale=4, backend="reference", **COMPACT).eval()
    keys = model.state_dict().keys()
    assert not any(k.startswith("flownet.") for k in keys)
    assert any(k.startswith("corrflow.") for k in keys)
    hr, ref = _shifted_pair(8, 4)
    lr = degrade(hr, 4)
    with torch.no_grad():
        parts = model(lr, ref, return_parts=True)
    assert parts["out"].shape == hr.shape
    assert [tuple(v.shape[-2:]) for v in parts["flows"]] == [(128, 128), (64, 64), (32, 32), (16, 16)]
    assert len(parts["confidences"]) == 4
    model.save(tmp_path / "m.safetensors")
    back = CrossNet.load(tmp_path / "m.safetensors", backend="reference")
    assert back.cfg.flow == "correlation"
    with torch.no_grad():
        torch.testing.assert_close(back(lr, ref), parts["out"], atol=0, rtol=0)


def test_zero_confidence_ignores_the_reference_features():
    """The confidence gates the warped reference features: at zero confidence and without the
    detail path, the output does not depend on the reference's content."""
    torch.manual_seed(0)
    model = CrossNet(
        scale=4, backend="reference", sisr="bicubic", width=0.25, residual=True, flow_ref="degraded", flow="correlation"
    ).eval()
    with torch.no_grad():
        model.corrflow.steps[-1].net[-1].bias[2] = -1e4  # confidence logit -> sigmoid = 0
    hr, ref = _shifted_pair(8, 4)
    lr = degrade(hr, 4)
    other = torch.rand_like(ref)
    with torch.no_grad():
        a, b = model(lr, ref), model(lr, other)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_flow_option_is_validated():
    with pytest.raises(ValueError, match="flow must be one of"):
        CrossNet(scale=4, flow="raft")
    with pytest.raises(ValueError, match="flow_init"):
        CrossNet(scale=4, flow="correlation", flow_init="patchmatch")


def test_correlation_model_is_differentiable_end_to_end():
    torch.manual_seed(0)
    model = CrossNet(scale=4, backend="reference", **COMPACT)
    hr, ref = _shifted_pair(8, 4, size=64)
    lr = degrade(hr, 4)
    out = model(lr, ref)
    (out - hr).abs().mean().backward()
    grads = {n: p.grad for n, p in model.corrflow.named_parameters()}
    # At initialisation the learned features enter through zero-initialised layers (the mix
    # weight and the estimators' last convolutions), which must receive a gradient.
    for name in ("global_cost.mix", "steps.1.net.4.weight", "steps.0.cost.mix"):
        assert grads[name] is not None and float(grads[name].abs().sum()) > 0, name


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_peak_soft_argmax_is_the_masked_softmax_over_the_window(radius):
    """Against the formula written over the whole window: a softmax of the logits with every
    displacement more than one step from the arg-max masked out, then the expected (dx, dy);
    peaks on the window's edge and corner included. Values and gradients."""
    side = 2 * radius + 1
    g = torch.Generator().manual_seed(radius)
    logits = torch.randn(2, side * side, 5, 6, generator=g, dtype=torch.float64) * 3
    logits[0, 0, 0, 0] = 20.0  # a corner peak
    logits[1, side * side - 1 - radius, 1, 1] = 20.0  # an edge peak
    logits.requires_grad_(True)
    r = torch.arange(-radius, radius + 1, dtype=torch.float64)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    dy, dx = dy.reshape(1, -1, 1, 1), dx.reshape(1, -1, 1, 1)
    best = logits.argmax(1, keepdim=True)
    by = torch.gather(dy.expand_as(logits), 1, best)
    bx = torch.gather(dx.expand_as(logits), 1, best)
    near = ((dy - by).abs() <= 1) & ((dx - bx).abs() <= 1)
    w = torch.softmax(logits.masked_fill(~near, float("-inf")), 1)
    want = torch.cat(((w * dx).sum(1, keepdim=True), (w * dy).sum(1, keepdim=True)), 1)
    got, peak = _peak_soft_argmax(logits, radius)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(peak, w.amax(1, keepdim=True))
    gw = torch.randn(want.shape, generator=g, dtype=torch.float64)
    (g_want,) = torch.autograd.grad((want * gw).sum(), logits)
    (g_got,) = torch.autograd.grad((got * gw).sum(), logits)
    torch.testing.assert_close(g_got, g_want)
