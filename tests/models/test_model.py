"""CrossNet model: exact parameter counts, shapes, configurations, backends, training step.

The architecture is checked against an independent functional re-implementation written from the
layer tables of docs/DESIGN.md (F.conv2d / F.grid_sample on the model's state dict), so a wrong stride,
activation, concatenation order or warp direction in crossnet_fast.models fails here.
"""

from __future__ import annotations

import ast
import math
import os
import pathlib

import pytest
import torch
import torch.nn.functional as F

import crossnet_fast
from crossnet_fast.models import MDSR, SRCNN, VDSR, Bicubic, CrossNet, Encoder, FlowNetSPlus


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_params(cin, cout, k):
    return cin * cout * k * k + cout


# ---------------------------------------------------------------- parameter counts (docs/DESIGN.md, "The model")

# Counting needs no weights: build on the meta device (no allocation, no initialisation cost).


def test_flownet_and_encoder_param_counts():
    with torch.device("meta"):
        assert n_params(FlowNetSPlus()) == 33_830_110
        assert n_params(Encoder()) == 414_720


@pytest.mark.parametrize("config,expected", [("official", 35_183_841), ("paper", 35_598_561)])
@pytest.mark.parametrize("scale", [4, 8])
def test_crossnet_param_counts(config, expected, scale):
    with torch.device("meta"):
        assert n_params(CrossNet(scale=scale, config=config, sisr="bicubic")) == expected


def test_sisr_baselines_param_counts_and_shapes():
    lr = torch.rand(2, 3, 3, 5)
    # SRCNN 9-1-5 with 64/32 filters; VDSR: 20 3x3 layers of 64 filters (RGB in/out).
    assert n_params(SRCNN(4)) == conv_params(3, 64, 9) + conv_params(64, 32, 1) + conv_params(32, 3, 5)
    assert n_params(VDSR(4)) == conv_params(3, 64, 3) + 18 * conv_params(64, 64, 3) + conv_params(64, 3, 3)
    assert n_params(Bicubic(4)) == 0
    for s in (4, 8):
        assert SRCNN(s)(lr).shape == (2, 3, 3 * s, 5 * s)
        assert VDSR(s)(lr).shape == (2, 3, 3 * s, 5 * s)
    expected = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(Bicubic(4)(lr), expected, rtol=0, atol=0)


def test_mdsr_heads():
    m = MDSR(scales=(2, 4, 8), blocks=2)
    lr = torch.rand(1, 3, 6, 5)
    for s in (2, 4, 8):
        assert m(lr, s).shape == (1, 3, 6 * s, 5 * s)
    with pytest.raises(ValueError, match="scale"):
        m(lr)  # ambiguous without a scale
    # Pixel-shuffle upsampler: log2(s) stages of a 3x3 conv 64 -> 256.
    assert n_params(m.up["x8"]) == 3 * conv_params(64, 256, 3)
    # No batch norm anywhere (EDSR family).
    assert not any(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in m.modules())


# ---------------------------------------------------------------- configurations and shapes


@pytest.mark.parametrize(
    "scale,config,sisr,n,h,w",
    [(4, "official", "mdsr", 2, 64, 64), (8, "paper", "mdsr", 1, 64, 64), (8, "official", "bicubic", 1, 64, 128)],
)
def test_forward_shapes(scale, config, sisr, n, h, w):
    torch.manual_seed(0)
    model = CrossNet(scale=scale, config=config, sisr=sisr, backend="auto").eval()
    lr = torch.rand(n, 3, h // scale, w // scale)
    ref = torch.rand(n, 3, h, w)
    with torch.no_grad():
        out = model(lr, ref)
    assert out.shape == (n, 3, h, w) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_official_shares_encoder_paper_does_not():
    with torch.device("meta"):
        official = CrossNet(4, "official", "bicubic").state_dict()
        paper = CrossNet(4, "paper", "bicubic").state_dict()
    assert not any(k.startswith("encoder_ref.") for k in official)
    assert sum(k.startswith("encoder_ref.") for k in paper) == 10
    assert "decoder.fusion2.0.weight" in official and "decoder.fusion2.0.weight" in paper


class _Seen(Exception):
    pass


def _flownet_input(model, lr, ref):
    """The image the flow net receives, captured by a pre-hook that then stops the forward pass."""

    def hook(module, args):
        raise _Seen(args[0])

    handle = model.flownet.register_forward_pre_hook(hook)
    try:
        with torch.no_grad(), pytest.raises(_Seen) as seen:
            model(lr, ref)
    finally:
        handle.remove()
    return seen.value.args[0]


def test_flow_input_bicubic_official_sisr_paper():
    torch.manual_seed(0)
    lr, ref = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64)
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    official = CrossNet(4, "official", "srcnn", backend="reference").eval()
    torch.testing.assert_close(_flownet_input(official, lr, ref), bicubic)
    paper = CrossNet(4, "paper", "srcnn", backend="reference").eval()
    with torch.no_grad():
        srcnn = paper.sisr.body(bicubic)  # SRCNN refines the bicubic image
    torch.testing.assert_close(_flownet_input(paper, lr, ref), srcnn)


@pytest.mark.parametrize(
    "kwargs,word",
    [
        ({"scale": 3}, "scale"),
        ({"config": "x"}, "config"),
        ({"sisr": "esrgan"}, "sisr"),
        ({"backend": "gpu"}, "backend"),
    ],
)
def test_constructor_errors(kwargs, word):
    with pytest.raises(ValueError, match=word):
        CrossNet(**kwargs)


def test_input_errors():
    model = CrossNet(4, "official", "bicubic", backend="reference")
    with pytest.raises(ValueError, match="ref must be 4x"):
        model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 128, 64))
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="lr must have shape"):
        model(torch.rand(3, 16, 16), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="batch size"):
        model(torch.rand(2, 3, 16, 16), torch.rand(1, 3, 64, 64))


def test_models_use_only_public_ops():
    src = pathlib.Path(crossnet_fast.__file__).parent / "models"
    for path in src.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert "reference" not in (node.module or "").split("."), (path, node.module)
                assert "reference" not in [a.name for a in node.names], path
            if isinstance(node, ast.Import):
                assert not any("reference" in a.name.split(".") for a in node.names), path
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("grid_sample", "remap"), (path, node.attr)


# ---------------------------------------------------------------- independent functional model


def _grid_warp(feat, flow):
    """Border-padded backward warp via grid_sample (align_corners=True), flow in pixels."""
    n, _, h, w = feat.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=feat.dtype), torch.arange(w, dtype=feat.dtype), indexing="ij")
    gx = 2 * (xs + flow[:, 0]) / (w - 1) - 1
    gy = 2 * (ys + flow[:, 1]) / (h - 1) - 1
    return F.grid_sample(feat, torch.stack((gx, gy), -1), "bilinear", "border", align_corners=True)


def _functional_crossnet(sd, lr, ref, scale, flow_ref=None, return_fused=False, v0=None):
    """CrossNet "official" with bicubic SISR, written from the docs/DESIGN.md tables. ``flow_ref``: the
    image the flow net compares the LR with (default: the reference itself, as in the paper)."""
    flow_ref = ref if flow_ref is None else flow_ref
    lrelu = lambda x: F.leaky_relu(x, 0.1)  # noqa: E731

    def conv(x, k, s=1):
        return F.conv2d(x, sd[k + ".weight"], sd[k + ".bias"], s, sd[k + ".weight"].shape[-1] // 2)

    up = lambda x, k: F.conv_transpose2d(x, sd[k + ".weight"], sd[k + ".bias"], 2, 1)  # noqa: E731
    lr_up = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    f = "flownet."
    c1 = lrelu(conv(torch.cat((lr_up, flow_ref), 1), f + "conv1.0", 2))
    c2 = lrelu(conv(c1, f + "conv2.0", 2))
    c3 = lrelu(conv(lrelu(conv(c2, f + "conv3.0", 2)), f + "conv3_1.0"))
    c4 = lrelu(conv(lrelu(conv(c3, f + "conv4.0", 2)), f + "conv4_1.0"))
    c5 = lrelu(conv(lrelu(conv(c4, f + "conv5.0", 2)), f + "conv5_1.0"))
    x = lrelu(conv(lrelu(conv(c5, f + "conv6.0", 2)), f + "conv6_1.0"))
    flows = {}
    for level, skip in ((6, c5), (5, c4), (4, c3), (3, c2), (2, c1), (1, flow_ref)):
        flows[level] = conv(x, f + f"flow{level}")
        x = torch.cat((skip, lrelu(up(x, f + f"deconv{level}.0")), up(flows[level], f + f"flow{level}_up")), 1)
    raw_v0 = conv(F.selu(conv(F.selu(conv(x, f + "flow0.0")), f + "flow0.2")), f + "flow0.4")
    flows_used = [raw_v0 if v0 is None else v0, flows[1], flows[2], flows[3]]

    def encode(img):
        e = "encoder."
        f0 = F.selu(conv(F.selu(conv(img, e + "conv0.0")), e + "conv1.0"))
        f1 = F.selu(conv(f0, e + "conv2.0", 2))
        f2 = F.selu(conv(f1, e + "conv3.0", 2))
        return [f0, f1, f2, F.selu(conv(f2, e + "conv4.0", 2))]

    f_lr, f_ref = encode(lr_up), encode(ref)
    warped = [_grid_warp(fr, v) for fr, v in zip(f_ref, flows_used)]
    d = "decoder."
    x = F.selu(up(torch.cat((f_lr[3], warped[3]), 1), d + "deconv3.0"))
    x = F.selu(up(torch.cat((x, f_lr[2], warped[2]), 1), d + "deconv2.0"))
    x = F.selu(up(torch.cat((x, f_lr[1], warped[1]), 1), d + "deconv1.0"))
    x = F.selu(conv(torch.cat((x, f_lr[0], warped[0]), 1), d + "fusion1.0"))
    if return_fused:
        return conv(x, d + "out"), flows_used, x
    return conv(x, d + "out"), flows_used


@pytest.fixture(scope="module")
def official_x4():
    """Official x4 bicubic model whose flows are fractional, several-pixel displacements."""
    torch.manual_seed(1)
    model = CrossNet(4, "official", "bicubic", backend="reference").eval()
    with torch.no_grad():  # biases so that every warped scale really moves (and not by whole pixels)
        model.flownet.flow0[4].bias.copy_(torch.tensor([2.3, -1.6]))
        model.flownet.flow1.bias.copy_(torch.tensor([-1.4, 0.7]))
        model.flownet.flow2.bias.copy_(torch.tensor([0.6, 1.3]))
        model.flownet.flow3.bias.copy_(torch.tensor([-0.45, -0.8]))
    return model


def test_matches_functional_spec(official_x4):
    gen = torch.Generator().manual_seed(2)
    lr, ref = torch.rand(1, 3, 16, 32, generator=gen), torch.rand(1, 3, 64, 128, generator=gen)
    sd = official_x4.state_dict()
    with torch.no_grad():
        expected, flows = _functional_crossnet(sd, lr, ref, 4)
        out = official_x4(lr, ref)
    assert [tuple(v.shape) for v in flows] == [(1, 2, 64, 128), (1, 2, 32, 64), (1, 2, 16, 32), (1, 2, 8, 16)]
    assert all(v.abs().mean() > 0.3 for v in flows)  # the warp is exercised
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(
    "cpu" not in crossnet_fast.available_backends() and os.environ.get("CROSSNET_FAST_REQUIRE_EXT") != "1",
    reason="C++ extension not built",
)
def test_cpu_backend_matches_reference(official_x4):
    gen = torch.Generator().manual_seed(3)
    lr = torch.rand(1, 3, 16, 16, generator=gen)
    ref = torch.rand(1, 3, 64, 64, generator=gen, requires_grad=True)
    outs, grads = [], []
    official_x4.requires_grad_(False)  # input gradients only: half the backward cost
    try:
        for backend in ("reference", "cpu"):
            official_x4.backend = backend
            ref.grad = None
            out = official_x4(lr, ref)
            out.square().sum().backward()  # through the warp's feat and flow gradients
            outs.append(out.detach())
            grads.append(ref.grad.clone())
    finally:
        official_x4.backend = "reference"
        official_x4.requires_grad_(True)
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-4)


def test_training_step_lowers_loss():
    torch.manual_seed(4)
    model = CrossNet(4, "official", "mdsr", backend="auto", freeze_sisr=True)
    model.sisr.body = model.sisr.body[-1:]  # keep only the body's last conv: a cheap step, same code path
    gen = torch.Generator().manual_seed(5)
    lr, ref = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 64, 64, generator=gen)
    target = F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss = crossnet_fast.charbonnier(model(lr, ref), target, reduction="batch")
    loss.backward()
    opt.step()
    assert all(p.grad is None for p in model.sisr.parameters())  # frozen SISR
    assert model.decoder.out.weight.grad is not None and model.flownet.conv1[0].weight.grad is not None
    with torch.no_grad():
        pred = model(lr, ref)
        after = crossnet_fast.charbonnier(pred, target, reduction="batch")
    # "batch" = sum over C, H, W / N, checked against the formula.
    manual = torch.sqrt((pred - target) ** 2 + 1e-6).sum() / 2
    torch.testing.assert_close(after, manual, rtol=1e-5, atol=1e-3)
    assert after.item() < loss.item()


def test_torch_compile_fullgraph_matches_eager(official_x4):
    """The model traces as one graph (no breaks around the custom ops) and computes the same thing.

    aot_eager exercises Dynamo + AOTAutograd with the ops' fake registrations without the minutes
    of C++ compilation that inductor needs on a small CPU machine.
    """
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(6)
    lr, ref = torch.rand(1, 3, 16, 16, generator=gen), torch.rand(1, 3, 64, 64, generator=gen)
    official_x4.backend = "auto"
    try:
        with torch.no_grad():
            eager = official_x4(lr, ref)
            compiled = torch.compile(official_x4, backend="aot_eager", fullgraph=True)(lr, ref)
    finally:
        official_x4.backend = "reference"
        torch._dynamo.reset()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)


def test_compact_width_configuration_roundtrips(tmp_path):
    # The compact configuration used for shipped weights: 1/4 of the channels everywhere.
    model = CrossNet(scale=4, sisr="bicubic", width=0.25).eval()
    assert model.encoder.conv0[0].out_channels == 16
    assert model.flownet.conv6_1[0].out_channels == 256
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 35_183_841 / 10
    lr, ref = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model(lr, ref)
    assert out.shape == (1, 3, 64, 64)
    path = tmp_path / "compact.safetensors"
    model.save(path)
    loaded = crossnet_fast.load_model(path)
    assert loaded.config["width"] == 0.25
    with torch.no_grad():
        assert torch.equal(loaded(lr, ref), out)
    with pytest.raises(ValueError, match="width"):
        CrossNet(scale=4, width=2.0)


# ---------------------------------------------------------------- trainability options


def _biased_flows(model):
    with torch.no_grad():  # fractional, several-pixel flows at every scale
        model.flownet.flow0[4].bias.copy_(torch.tensor([2.3, -1.6]))
        model.flownet.flow1.bias.copy_(torch.tensor([-1.4, 0.7]))
        model.flownet.flow2.bias.copy_(torch.tensor([0.6, 1.3]))
        model.flownet.flow3.bias.copy_(torch.tensor([-0.45, -0.8]))


def test_faithful_defaults_have_no_options():
    model = CrossNet(4, "official", "bicubic", width=0.25)
    assert model.config == {
        "scale": 4,
        "config": "official",
        "sisr": "bicubic",
        "width": 0.25,
        "residual": False,
        "flow_ref": "sharp",
        "ref_detail": False,
        "refine_radius": 0,
        "refine_steps": 2,
        "flow_init": "net",
        "backprojection": 0,
        "flow": "flownet",
    }
    assert model.ref_detail is None and model.refine is None
    assert not any(k.startswith(("ref_detail", "refine")) for k in model.state_dict())


def test_residual_model_starts_as_bicubic():
    torch.manual_seed(0)
    model = CrossNet(4, "official", "bicubic", width=0.25, residual=True).eval()
    gen = torch.Generator().manual_seed(3)
    lr, ref = torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        out = model(lr, ref)
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.equal(out, bicubic)


@pytest.mark.parametrize("scale,flow_init", [(4, "net"), (8, "net"), (4, "patchmatch")])
def test_options_match_functional_spec(scale, flow_init):
    """residual + flow_ref="degraded" + ref_detail against the functional model written from the
    option definitions: out = bicubic + decoder + sigmoid(gate(fused, detail, mismatch)) * detail.
    flow_init="patchmatch": the search starts from the PatchMatch field instead of the net's V0
    (the field itself is tested against a known shift in test_nearest_neighbour_flow_*)."""
    from crossnet_fast import degrade
    from crossnet_fast.baselines import nearest_neighbour_flow

    torch.manual_seed(4)
    model = CrossNet(
        scale,
        "official",
        "bicubic",
        width=0.25,
        residual=True,
        flow_ref="degraded",
        ref_detail=True,
        refine_radius=1,
        flow_init=flow_init,
        backend="reference",
    ).eval()
    _biased_flows(model)
    with torch.no_grad():  # a gate and a decoder output that are not their initialisation
        model.ref_detail.trust.weight.normal_(0, 0.1)
        model.ref_detail.trust.bias.fill_(0.4)
        model.decoder.out.weight.normal_(0, 0.01)
    gen = torch.Generator().manual_seed(5)
    ref = torch.rand(1, 3, 64, 128, generator=gen)
    lr = torch.rand(1, 3, 64 // scale, 128 // scale, generator=gen)
    up = lambda x: F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)  # noqa: E731
    ref_low = up(degrade(ref, scale))
    with torch.no_grad():
        raw = _functional_crossnet(model.state_dict(), lr, ref, scale, flow_ref=ref_low)[1]
        start = raw[0] if flow_init == "net" else nearest_neighbour_flow(up(lr), ref_low, scale)[0]
        v0 = _functional_refine(start, up(lr), ref_low, 1, scale + 3, 0.01)
        dec, flows, fused = _functional_crossnet(
            model.state_dict(), lr, ref, scale, flow_ref=ref_low, return_fused=True, v0=v0
        )
        detail = _grid_warp(ref - ref_low, v0)
        mismatch = up(lr) - _grid_warp(ref_low, v0)
        box = torch.ones(1, 1, scale + 3, scale + 3)
        count = F.conv2d(torch.ones(1, 1, *mismatch.shape[-2:]), box, padding=(scale + 3) // 2)
        cost = F.conv2d(mismatch.square().sum(1, keepdim=True), box, padding=(scale + 3) // 2) / count
        gate = torch.sigmoid(
            F.conv2d(
                torch.cat((fused, detail, mismatch, torch.log(cost + 1e-6)), 1),
                model.ref_detail.trust.weight,
                model.ref_detail.trust.bias,
                1,
                1,
            )
        )
        expected = up(lr) + dec + gate * detail
        parts = model(lr, ref, return_parts=True)
    assert gate.std() > 0.01 and (detail.abs().mean() > 0.01)
    torch.testing.assert_close(parts["out"], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts["flow_ref"], ref_low)
    torch.testing.assert_close(parts["lr_up"], up(lr))
    torch.testing.assert_close(parts["v0_used"], v0, rtol=1e-4, atol=1e-4)
    assert (v0 - raw[0]).abs().mean() > 0.05  # the search moved the flow
    for v, w in zip(parts["flows"], raw):  # the raw flows (what the photometric loss trains)
        torch.testing.assert_close(v, w, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(model(lr, ref), parts["out"])


def test_option_errors():
    with pytest.raises(ValueError, match="flow_ref"):
        CrossNet(4, sisr="bicubic", flow_ref="blurred")
    with pytest.raises(ValueError, match="residual"):
        CrossNet(4, sisr="bicubic", residual=1)
    with pytest.raises(ValueError, match="refine_radius"):
        CrossNet(4, sisr="bicubic", refine_radius=9)
    with pytest.raises(ValueError, match="flow_init must be one of"):
        CrossNet(4, sisr="bicubic", flow_init="sift")
    with pytest.raises(ValueError, match="backprojection must be an integer"):
        CrossNet(4, sisr="bicubic", backprojection=True)


@pytest.mark.parametrize("scale", [4, 8])
def test_backprojection_matches_its_formula_and_moves_towards_the_lr(scale):
    """backprojection=k: k rounds of out += bicubic_up(lr - degrade(clamp(out, 0, 1))) after the
    decoder, with the same weights as the model without it; each round brings degrade(out) closer
    to the observed LR."""
    from crossnet_fast import degrade
    from crossnet_fast.degrade import upsample_bicubic_matlab

    torch.manual_seed(9)
    plain = CrossNet(scale, "official", "bicubic", width=0.25, residual=True, backend="reference").eval()
    with torch.no_grad():
        plain.decoder.out.weight.normal_(0, 0.02)
    bp = CrossNet(scale, "official", "bicubic", width=0.25, residual=True, backprojection=2, backend="reference").eval()
    bp.load_state_dict(plain.state_dict())
    gen = torch.Generator().manual_seed(10)
    hr = torch.rand(1, 3, 64, 128, generator=gen)
    lr, ref = degrade(hr, scale), torch.rand(1, 3, 64, 128, generator=gen)
    with torch.no_grad():
        out = plain(lr, ref)
        want, errors = out, [float((degrade(out.clamp(0, 1), scale) - lr).abs().mean())]
        for _ in range(2):
            want = want + upsample_bicubic_matlab(lr - degrade(want.clamp(0, 1), scale), scale, clamp=False)
            errors.append(float((degrade(want.clamp(0, 1), scale) - lr).abs().mean()))
        got = bp(lr, ref)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert errors[2] < errors[1] < errors[0], errors
    gen_out = bp(lr, ref.requires_grad_())  # differentiable
    gen_out.sum().backward()


def test_nearest_neighbour_flow_finds_a_large_shift_and_reports_its_cost():
    """A textured image against itself shifted by (+13, -5) px: PatchMatch must find that integer
    flow almost everywhere away from the wrapped border, and its cost must be the mean squared luma
    difference of the matched patches, recomputed here with unfold at the returned matches."""
    from crossnet_fast.baselines import nearest_neighbour_flow

    gen = torch.Generator().manual_seed(8)
    small = torch.rand(1, 3, 24, 36, generator=gen)
    big = F.interpolate(small, size=(96, 144), mode="bicubic", align_corners=False).clamp(0, 1)
    sx, sy = 13, -5
    ref_low = torch.roll(big, shifts=(sy, sx), dims=(2, 3))  # big(y, x) = ref_low(y + sy, x + sx)
    flow, cost = nearest_neighbour_flow(big, ref_low, 4)
    assert flow.shape == (1, 2, 96, 144) and flow.dtype == torch.float32 and cost.shape == (1, 96, 144)
    inner = flow[..., 12:-12, 20:-20]
    hit = (inner[:, 0] == sx) & (inner[:, 1] == sy)
    assert hit.float().mean() > 0.97, float(hit.float().mean())
    luma = (big * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    luma_ref = (ref_low * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    pad = lambda y: F.pad(y, (4, 4, 4, 4), mode="replicate")  # noqa: E731  5 taps, dilation 2
    pa = F.unfold(pad(luma), 5, dilation=2).view(25, 96, 144)
    pb = F.unfold(pad(luma_ref), 5, dilation=2).view(25, 96, 144)
    ys, xs = torch.meshgrid(torch.arange(96), torch.arange(144), indexing="ij")
    qy, qx = ys + flow[0, 1].long(), xs + flow[0, 0].long()
    assert qy.min() >= 0 and qx.min() >= 0 and qy.max() < 96 and qx.max() < 144
    expected = (pb[:, qy, qx] - pa).square().mean(0)
    torch.testing.assert_close(cost[0], expected, rtol=1e-5, atol=1e-7)


def _functional_refine(flow, lr_up, ref_low, radius, patch, temperature, steps=2):
    """The local search written out: a loop over offsets, grid_sample warps, a box filter as a
    convolution with a normalised ones kernel (counting only in-image pixels), soft-argmin."""
    for _ in range(steps):
        costs, offsets = [], []
        ones = torch.ones(1, 1, patch, patch)
        count = F.conv2d(torch.ones(1, 1, *flow.shape[-2:]), ones, padding=patch // 2)
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                d = torch.tensor([dx, dy], dtype=torch.float32).view(1, 2, 1, 1)
                sq = (_grid_warp(ref_low, flow + d) - lr_up).square().sum(1, keepdim=True)
                costs.append(F.conv2d(sq, ones, padding=patch // 2) / count)
                offsets.append(d)
        w = torch.softmax(-torch.cat(costs, 1) / temperature, 1)
        flow = flow + sum(w[:, i : i + 1] * d for i, d in enumerate(offsets))
    return flow


def test_refinement_matches_its_formula_and_finds_a_shift():
    from crossnet_fast.models.refine import LocalSearchRefinement

    gen = torch.Generator().manual_seed(6)
    small = torch.rand(1, 3, 24, 24, generator=gen)
    big = F.interpolate(small, size=(48, 48), mode="bicubic", align_corners=False).clamp(0, 1)
    lr_up = big[..., 8:40, 8:40]
    ref_low = torch.roll(big, shifts=(1, -2), dims=(2, 3))[..., 8:40, 8:40]  # lr_up(y, x) = ref_low(y + 1, x - 2)
    flow = torch.randn(1, 2, 32, 32, generator=gen) * 0.3
    refine = LocalSearchRefinement(radius=2, steps=2, patch=5, backend="reference")
    with torch.no_grad():
        refine.log_temperature.fill_(math.log(1e-3))
        got = refine(flow, lr_up, ref_low)
    torch.testing.assert_close(got, _functional_refine(flow, lr_up, ref_low, 2, 5, 1e-3), rtol=1e-4, atol=1e-4)
    # Non-learned: from zero flow the search lands on the true (-2, +1) px in the interior (an
    # integer search keeps a start's sub-pixel noise, hence a clean start here).
    with torch.no_grad():
        found = refine(torch.zeros_like(flow), lr_up, ref_low)
    err = (found - torch.tensor([-2.0, 1.0]).view(1, 2, 1, 1))[..., 4:-4, 4:-4].norm(dim=1)
    assert err.mean() < 0.1, float(err.mean())
    gradient = torch.autograd.grad(refine(flow.requires_grad_(), lr_up, ref_low).sum(), refine.log_temperature)[0]
    assert torch.isfinite(gradient)
    with pytest.raises(ValueError, match="patch odd"):
        LocalSearchRefinement(radius=2, patch=4)


def test_detail_gate_starts_open_where_the_reference_matches():
    from crossnet_fast.models.decoder import ReferenceDetailGate

    gate = ReferenceDetailGate(4, patch=3)
    fused, detail = torch.randn(1, 4, 8, 8), torch.ones(1, 3, 8, 8)
    mismatch = torch.zeros(1, 3, 8, 8)
    mismatch[..., :, 4:] = 0.1  # right half: 3 * 0.01 = 0.03 squared difference, 30 x c0
    with torch.no_grad():
        g = gate(fused, detail, mismatch)[0, 0]
    torch.testing.assert_close(g[:, :3], torch.full((8, 3), 1e-3 / (1e-3 + 1e-6)))
    torch.testing.assert_close(g[:, 5:], torch.full((8, 3), 1e-3 / (1e-3 + 0.03 + 1e-6)))


def test_detail_gate_is_its_formula_with_and_without_autograd():
    # sigmoid(conv3x3(cat(fused, detail, mismatch, log cost))) * detail, the cost written out here
    # as the 5x5 window mean of the channel sum of squares (F.avg_pool2d, count_include_pad=False).
    from crossnet_fast.models.decoder import ReferenceDetailGate

    g = torch.Generator().manual_seed(4)
    gate = ReferenceDetailGate(6, patch=5)
    with torch.no_grad():
        gate.trust.weight.copy_(torch.randn(gate.trust.weight.shape, generator=g) * 0.1)
    fused = torch.randn(2, 6, 11, 13, generator=g).contiguous(memory_format=torch.channels_last)
    detail, mismatch = torch.randn(2, 3, 11, 13, generator=g), torch.randn(2, 3, 11, 13, generator=g) * 0.1
    cost = F.avg_pool2d(mismatch.square().sum(1, keepdim=True), 5, 1, 2, count_include_pad=False)
    x = torch.cat((fused, detail, mismatch, torch.log(cost + 1e-6)), 1)
    expected = torch.sigmoid(F.conv2d(x, gate.trust.weight, gate.trust.bias, 1, 1)) * detail
    with torch.no_grad():
        torch.testing.assert_close(gate(fused, detail, mismatch), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gate(fused, detail, mismatch), expected, atol=1e-5, rtol=1e-5)


def test_refine_steps_option():
    from crossnet_fast.models.crossnet import CrossNetConfig

    assert CrossNetConfig().refine_steps == 2  # what files written before the option ran
    m = CrossNet(scale=4, sisr="bicubic", width=0.125, refine_radius=1, refine_steps=1)
    assert m.refine.steps == 1 and m.refine.radius == 1
    old = {k: v for k, v in m.cfg.to_dict().items() if k != "refine_steps"}
    assert CrossNet.from_config(old).refine.steps == 2
    for bad in (0, 5, True, 1.0):
        with pytest.raises(ValueError, match="refine_steps"):
            CrossNetConfig(refine_steps=bad)
