"""The native ops' registrations: schemas, opcheck, torch.compile(fullgraph=True), build checks."""

import os
import re

import pytest
import torch
from conftest import NATIVE_CPU

import crossnet_fast as cf
from crossnet_fast import _extension
from crossnet_fast.ops import _registration

from oracles import charbonnier_formula, fractional_flow, grid_sample_warp

pytestmark = NATIVE_CPU
OPS = torch.ops.crossnet_fast if _extension.loaded else None


def test_extension_is_built_when_required():
    # CI sets CROSSNET_FAST_REQUIRE_EXT=1, so a broken build fails here instead of skipping tests.
    if os.environ.get("CROSSNET_FAST_REQUIRE_EXT") == "1":
        assert _extension.loaded, _extension.load_error
    info = cf.build_info()
    for key in ("torch", "cuda", "cuda_version", "triton"):
        assert key in info
    assert info["built_with_torch"] == torch.__version__
    assert "cpu" in cf.available_backends()


def test_cpp_schemas_equal_the_python_table():
    for name, schema in _registration.SCHEMAS.items():
        cpp = str(getattr(OPS, name).default._schema)
        assert re.sub(r"^crossnet_fast::\w+", "", cpp) == schema, name


def _warp_samples(gen):
    feats = [
        torch.randn(2, 3, 6, 7, generator=gen, dtype=torch.float64),
        torch.randn(2, 3, 3, 4, generator=gen, dtype=torch.float64),
    ]
    flows = [fractional_flow(2, 6, 7, outside=0.2, generator=gen), fractional_flow(2, 3, 4, generator=gen)]
    return feats, flows


@pytest.mark.parametrize("padding", ["border", "zeros"])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_multiscale_warp(padding, requires_grad, gen):
    feats, flows = _warp_samples(gen)
    feats = [f.requires_grad_(requires_grad) for f in feats]
    flows = [v.requires_grad_(requires_grad) for v in flows]
    torch.library.opcheck(OPS.multiscale_warp.default, (feats, flows, padding))
    grads = [torch.randn_like(f) for f in feats]
    for mask in ([True, True], [True, False], [False, True]):
        torch.library.opcheck(
            OPS.multiscale_warp_backward.default,
            (grads, [f.detach() for f in feats], [v.detach() for v in flows], padding, mask),
        )


def test_opcheck_channels_last_output_layout(gen):
    feat = torch.randn(1, 4, 5, 6, generator=gen).contiguous(memory_format=torch.channels_last)
    flow = fractional_flow(1, 5, 6, generator=gen).float()
    torch.library.opcheck(OPS.multiscale_warp.default, ([feat.requires_grad_()], [flow.requires_grad_()], "border"))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_upsample_flow(requires_grad, gen):
    flow = torch.randn(2, 2, 3, 5, generator=gen, dtype=torch.float64, requires_grad=requires_grad)
    torch.library.opcheck(OPS.upsample_flow.default, (flow, 2))
    torch.library.opcheck(OPS.upsample_flow_backward.default, (torch.randn(2, 2, 9, 15, dtype=torch.float64), 3))


@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("align_corners", [False, True])
def test_opcheck_resize_flow(requires_grad, align_corners, gen):
    flow = torch.randn(2, 2, 3, 5, generator=gen, dtype=torch.float64, requires_grad=requires_grad)
    torch.library.opcheck(OPS.resize_flow.default, (flow, 7, 4, align_corners))
    torch.library.opcheck(
        OPS.resize_flow_backward.default, (torch.randn(2, 2, 7, 4, dtype=torch.float64), 3, 5, align_corners)
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "batch", "none"])
@pytest.mark.parametrize("compute_grad", [False, True])
def test_opcheck_charbonnier(reduction, compute_grad, gen):
    pred = torch.rand(2, 3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(OPS.charbonnier.default, (pred, target, 1e-3, reduction, compute_grad))
    grad = torch.rand(() if reduction != "none" else pred.shape, dtype=torch.float64)
    torch.library.opcheck(OPS.charbonnier_backward.default, (grad, pred.detach(), target.detach(), 1e-3, reduction))


def _pipeline(feats, flows, target):
    warped = cf.multiscale_warp(feats, flows, "border")
    up = cf.upsample_flow(flows[1], 2)
    return cf.charbonnier(warped[0] + up[:, :1], target, reduction="batch") + warped[1].square().sum()


@pytest.mark.parametrize("compiler", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compile_fullgraph_agrees_with_eager(compiler, gen):
    torch._dynamo.reset()
    feats = [
        torch.randn(2, 3, 8, 8, generator=gen, requires_grad=True),
        torch.randn(2, 3, 4, 4, generator=gen, requires_grad=True),
    ]
    flows = [
        fractional_flow(2, 8, 8, generator=gen).float().requires_grad_(),
        fractional_flow(2, 4, 4, generator=gen).float().requires_grad_(),
    ]
    target = torch.rand(2, 3, 8, 8, generator=gen)
    with cf.use_backend("cpu"):
        eager = _pipeline(feats, flows, target)
        compiled = torch.compile(_pipeline, fullgraph=True, backend=compiler)(feats, flows, target)
    g_eager = torch.autograd.grad(eager, feats + flows)
    g_comp = torch.autograd.grad(compiled, feats + flows)
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(g_comp, g_eager):
        torch.testing.assert_close(a, b)
    # and against the independent definitions, so agreement is not agreement in error
    want = charbonnier_formula(
        grid_sample_warp(feats[0].double(), flows[0].double(), "border")
        + 2 * torch.nn.functional.interpolate(flows[1].double(), scale_factor=2, mode="bilinear")[:, :1],
        target.double(),
        1e-3,
        "batch",
    )
    want = want + grid_sample_warp(feats[1].double(), flows[1].double(), "border").square().sum()
    torch.testing.assert_close(compiled.double(), want, atol=1e-4, rtol=1e-5)
