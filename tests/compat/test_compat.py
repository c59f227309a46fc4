"""crossnet_fast.compat helpers against PyTorch formulas and the originals they replace.

The models themselves (torchvision RAFT, BasicSR BasicVSR) patched vs unpatched: test_compat_models.py.
"""

import sys
import types

import pytest
import torch
import torch.nn.functional as F

from crossnet_fast import compat
from crossnet_fast.compat._rebind import rebind

from oracles import fractional_flow, grid_sample_warp

PADDINGS = ["zeros", "border", "reflection"]


def _grads(fn, *tensors, grad_out):
    leaves = [t.detach().requires_grad_() for t in tensors]
    out = fn(*leaves)
    return (out, *torch.autograd.grad(out, leaves, grad_out.to(out.dtype)))


def _assert_all_close(got, want, dtype):
    tol = {torch.float64: 1e-10, torch.float32: 1e-4}[dtype]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w.to(g.dtype), rtol=tol, atol=tol)


# flow_warp ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("size", [(2, 3, 9, 13), (1, 2, 1, 6)])
def test_flow_warp_matches_grid_sample_formula(padding, align_corners, dtype, size, gen):
    n, c, h, w = size
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    flow = fractional_flow(n, h, w, max_disp=3, outside=0.2, generator=gen)  # (N, 2, H, W)
    grad_out = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    got = _grads(
        lambda a, v: compat.flow_warp(a, v.permute(0, 2, 3, 1), padding_mode=padding, align_corners=align_corners),
        x.to(dtype),
        flow.to(dtype),
        grad_out=grad_out,
    )
    want = _grads(lambda a, v: grid_sample_warp(a, v, padding, align_corners), x, flow, grad_out=grad_out)
    _assert_all_close(got, want, dtype)


@pytest.mark.parametrize("keyword", ["interp_mode", "interpolation"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_flow_warp_mode_keywords(keyword, mode, gen):
    """BasicSR's interp_mode= and MMagic's interpolation= select the same mode."""
    x = torch.randn(2, 3, 8, 10, generator=gen, dtype=torch.float64)
    flow = fractional_flow(2, 8, 10, generator=gen)
    got = compat.flow_warp(x, flow.permute(0, 2, 3, 1), **{keyword: mode}, padding_mode="border")
    want = grid_sample_warp(x, flow, "border", True, mode=mode)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_flow_warp_defaults_are_basicsr_and_mmagic_defaults(gen):
    """Default: bilinear, zeros padding, align_corners=True."""
    x = torch.randn(1, 2, 6, 7, generator=gen, dtype=torch.float64)
    flow = fractional_flow(1, 6, 7, outside=0.3, generator=gen)
    torch.testing.assert_close(compat.flow_warp(x, flow.permute(0, 2, 3, 1)), grid_sample_warp(x, flow, "zeros"))


@pytest.mark.parametrize("flow_shape", [(1, 5, 6, 2), (1, 6, 5, 2), (2, 6, 6, 2), (1, 2, 6, 6)])
def test_flow_warp_rejects_mismatched_flow(flow_shape):
    with pytest.raises(ValueError, match="flow"):
        compat.flow_warp(torch.zeros(1, 3, 6, 6), torch.zeros(flow_shape))


# RAFT's bilinear_sampler / coords_grid --------------------------------------------------------------


def _raft_formula(img, coords):
    """RAFT's definition: normalise by (size - 1), bilinear, zeros padding, align_corners=True."""
    h, w = img.shape[-2:]
    scale = torch.tensor([2 / (w - 1), 2 / (h - 1)], dtype=coords.dtype)
    return F.grid_sample(img, coords * scale - 1, mode="bilinear", padding_mode="zeros", align_corners=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bilinear_sampler_matches_raft_formula(dtype, gen):
    img = torch.randn(3, 4, 7, 9, generator=gen, dtype=torch.float64)
    # Another output size than img's, points inside and outside the image.
    coords = torch.rand(3, 5, 11, 2, generator=gen, dtype=torch.float64) * torch.tensor([12.0, 10.0]) - 1.5
    grad_out = torch.randn(3, 4, 5, 11, generator=gen, dtype=torch.float64)
    got = _grads(compat.bilinear_sampler, img.to(dtype), coords.to(dtype), grad_out=grad_out)
    want = _grads(_raft_formula, img, coords, grad_out=grad_out)
    _assert_all_close(got, want, dtype)


def test_bilinear_sampler_mask_is_strictly_inside():
    img = torch.randn(1, 2, 5, 8, dtype=torch.float64)
    # x: on the left edge, inside, on the right edge (W-1 = 7), outside; y likewise (H-1 = 4).
    xs = torch.tensor([0.0, 0.5, 3.2, 7.0, 7.5, -0.1], dtype=torch.float64)
    ys = torch.tensor([2.0, 0.0, 1.0, 4.0, 3.9, -2.0], dtype=torch.float64)
    coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).unsqueeze(0)  # (1, 6, 6, 2)
    out, mask = compat.bilinear_sampler(img, coords, mask=True)
    want = (coords[..., 0] > 0) & (coords[..., 0] < 7) & (coords[..., 1] > 0) & (coords[..., 1] < 4)
    assert mask.dtype == torch.float32 and mask.shape == (1, 6, 6, 1)
    assert torch.equal(mask, want.unsqueeze(-1).float())
    torch.testing.assert_close(out, _raft_formula(img, coords))


def test_coords_grid():
    grid = compat.coords_grid(2, 3, 5)
    assert grid.shape == (2, 2, 3, 5) and grid.dtype == torch.float32
    cols = torch.arange(5.0).expand(3, 5)
    rows = torch.arange(3.0).view(3, 1).expand(3, 5)
    assert torch.equal(grid, torch.stack((cols, rows)).expand(2, 2, 3, 5))
    grid[0] += 1  # each batch entry owns its memory, as with RAFT's repeat()
    assert torch.equal(grid[1], torch.stack((cols, rows)))


# torchvision's RAFT helpers, against torchvision's own functions -------------------------------------


@pytest.fixture(scope="module")
def tv_utils():
    return pytest.importorskip(
        "torchvision.models.optical_flow._utils",
        reason="torchvision not installed (scripts/install.sh WITH_TEST_DEPS=1 installs it)",
    )


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("img_shape", [(6, 1, 7, 9), (4, 3, 1, 12)])  # RAFT's corr volumes; RAFT-Stereo's 1-row
def test_tv_grid_sample_matches_torchvision(tv_utils, align_corners, mode, img_shape, gen):
    img = torch.randn(img_shape, generator=gen)
    n, _, h, w = img_shape
    coords = torch.rand(n, 5, 5, 2, generator=gen) * torch.tensor([w + 2.0, h + 2.0]) - 1
    grad_out = torch.randn(n, img_shape[1], 5, 5, generator=gen)
    got = _grads(
        lambda a, g: compat.tv_grid_sample(a, g, mode=mode, align_corners=align_corners), img, coords, grad_out=grad_out
    )
    want = _grads(
        lambda a, g: tv_utils.grid_sample(a, g, mode=mode, align_corners=align_corners), img, coords, grad_out=grad_out
    )
    _assert_all_close(got, want, torch.float32)


@pytest.mark.parametrize("factor", [8, 4])
@pytest.mark.parametrize("with_mask", [False, True])
def test_tv_upsample_flow_matches_torchvision(tv_utils, factor, with_mask, gen):
    flow = torch.randn(2, 2, 5, 6, generator=gen)
    mask = torch.randn(2, 9 * factor * factor, 5, 6, generator=gen) if with_mask else None
    grad_out = torch.randn(2, 2, 5 * factor, 6 * factor, generator=gen)
    got = _grads(lambda f: compat.tv_upsample_flow(f, mask, factor=factor), flow, grad_out=grad_out)
    want = _grads(lambda f: tv_utils.upsample_flow(f, mask, factor=factor), flow, grad_out=grad_out)
    _assert_all_close(got, want, torch.float32)


# Patching ------------------------------------------------------------------------------------------


@pytest.fixture
def fake_package():
    """A package 'cf_fakepkg' whose modules import a helper by name (and under an alias)."""
    util = types.ModuleType("cf_fakepkg.util")

    def helper(x):
        return x + 1

    util.helper = helper
    user = types.ModuleType("cf_fakepkg.user")
    user.helper, user.renamed = helper, helper
    outsider = types.ModuleType("cf_other")  # not in the package: must be left alone
    outsider.helper = helper
    mods = {
        "cf_fakepkg": types.ModuleType("cf_fakepkg"),
        "cf_fakepkg.util": util,
        "cf_fakepkg.user": user,
        "cf_other": outsider,
    }
    sys.modules.update(mods)
    yield mods, helper
    for name in mods:
        sys.modules.pop(name, None)
    sys.modules.pop("cf_fakepkg.late", None)


def test_rebind_swaps_every_alias_and_restores(fake_package):
    mods, helper = fake_package

    def replacement(x):
        return x + 2

    with rebind("cf_fakepkg", "cf_fakepkg.util", {"helper": replacement}) as originals:
        assert originals == {"helper": helper}
        assert mods["cf_fakepkg.util"].helper is replacement
        assert mods["cf_fakepkg.user"].helper is replacement and mods["cf_fakepkg.user"].renamed is replacement
        assert mods["cf_other"].helper is helper
        # A module imported inside the block picks up the replacement by name ...
        late = types.ModuleType("cf_fakepkg.late")
        late.helper = mods["cf_fakepkg.util"].helper
        sys.modules["cf_fakepkg.late"] = late
    # ... and gets the original back on exit, like every other module.
    for module, attr in [
        ("cf_fakepkg.util", "helper"),
        ("cf_fakepkg.user", "helper"),
        ("cf_fakepkg.user", "renamed"),
        ("cf_fakepkg.late", "helper"),
    ]:
        assert getattr(sys.modules[module], attr) is helper, (module, attr)


def test_rebind_restores_on_exception_and_nests(fake_package):
    mods, helper = fake_package

    def outer(x):
        return x

    def inner(x):
        return x

    with pytest.raises(RuntimeError, match="boom"):
        with rebind("cf_fakepkg", "cf_fakepkg.util", {"helper": outer}):
            with rebind("cf_fakepkg", "cf_fakepkg.util", {"helper": inner}) as seen:
                assert seen["helper"] is outer and mods["cf_fakepkg.user"].helper is inner
            assert mods["cf_fakepkg.user"].helper is outer and mods["cf_fakepkg.user"].renamed is outer
            raise RuntimeError("boom")
    assert mods["cf_fakepkg.user"].helper is helper and mods["cf_fakepkg.util"].helper is helper


def test_patch_torchvision_raft_restores_originals(tv_utils):
    raft_mod = pytest.importorskip("torchvision.models.optical_flow.raft")
    before = {name: (tv_utils.__dict__[name], raft_mod.__dict__[name]) for name in ("grid_sample", "upsample_flow")}
    with pytest.raises(KeyError):
        with compat.patch_torchvision_raft() as originals:
            for name, (orig, _) in before.items():
                assert originals[name] is orig
                assert getattr(tv_utils, name) is not orig and getattr(raft_mod, name) is getattr(tv_utils, name)
            raise KeyError("leave the block by an exception")
    for name, (orig_utils, orig_raft) in before.items():
        assert getattr(tv_utils, name) is orig_utils and getattr(raft_mod, name) is orig_raft


def test_functional_tensor_alias_serves_basicsrs_import():
    pytest.importorskip("torchvision", reason="torchvision not installed")
    compat.install_functional_tensor_alias()
    from torchvision.transforms.functional import rgb_to_grayscale as current
    from torchvision.transforms.functional_tensor import rgb_to_grayscale  # BasicSR 1.4.2's import

    img = torch.rand(3, 4, 5)
    assert torch.equal(rgb_to_grayscale(img), current(img))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("spans", [(12.0, 7.0), (12.0, None), (0.0, 1.0), (1.0, 0.0)])
def test_normalise_is_the_formula_bit_for_bit(dtype, spans, gen):
    """The fast normalisation (coords / (span / 2) + offset) gives exactly 2 * p / span - 1 per axis (y unchanged
    for a None span), zero spans included (inf/NaN), in every float dtype."""
    from crossnet_fast.compat._pixels import normalise

    w_span, h_span = spans
    coords = (torch.rand(2, 5, 7, 2, generator=gen, dtype=torch.float64) * 30 - 10).to(dtype)
    coords[0, 0, 0] = 0.0  # 0 / 0 where a span is 0
    coords[0, 0, 1] = -0.0  # y passes through with its sign
    x, y = coords.unbind(-1)
    want_x = 2 * x / w_span - 1
    want_y = y if h_span is None else 2 * y / h_span - 1
    got = normalise(coords, w_span, h_span)
    assert got.dtype == dtype
    assert torch.equal(got.isnan(), torch.stack((want_x, want_y), -1).isnan())
    torch.testing.assert_close(got, torch.stack((want_x, want_y), -1), rtol=0, atol=0, equal_nan=True)
    assert torch.equal(got.signbit(), torch.stack((want_x, want_y), -1).signbit())
