"""Property-based checks of every op against PyTorch (issue 12): the strategies and the checks.

Shared by tests/ops/test_properties.py (cpu, reference, cuda) and tests/ops/test_properties_triton.py (the
Triton kernels under the CPU interpreter). The oracle is always PyTorch in float64 —
``F.grid_sample``, ``F.interpolate`` x scale, the written Charbonnier formula — never our reference.

Tolerances (stated once): an output or gradient of dtype ``d`` may differ from the float64 oracle by
``TOL[d] * (1 + max |oracle|)`` elementwise, a few units in the last place of ``d`` (fp16 and bf16
outputs are rounded once from an fp32 accumulator; fp32 kernels sum four taps in fp32).

Semantics of non-finite values that the checks enforce (docs/SEMANTICS.md, "Non-finite values"):
* features: a tap is used only where its coefficient is non-zero, so an inf/NaN feature reaches
  exactly the samples that weight it (F.grid_sample also spreads it to samples lying exactly on a
  pixel row or column, with weight 0; the check computes the reach from the bilinear weights);
* flows: zeros padding: a non-finite sample point samples nothing (0, zero gradients);
  border: +-inf clamps to the border like any far point, NaN gives NaN in every channel and a NaN
  flow gradient (F.grid_sample gives NaN for an infinite grid with zeros padding, and crashes the
  process on a NaN grid with border padding in torch 2.14, so it is not the oracle there).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# CI: a bounded run (the examples per test below, a few minutes in all on 2 cores);
# HYPOTHESIS_PROFILE=long: 25x as many, to run by hand.
CI_EXAMPLES = 200
LONG_EXAMPLES = 5000
_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
    print_blob=True,
)
settings.register_profile("ci", max_examples=CI_EXAMPLES, **_COMMON)
settings.register_profile("long", max_examples=LONG_EXAMPLES, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
TOL = {torch.float64: 1e-9, torch.float32: 4e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
SPECIAL = (float("inf"), -float("inf"), float("nan"))
LAYOUTS = ("nchw", "channels_last", "noncontig")


def layout(t: torch.Tensor, kind: str) -> torch.Tensor:
    """The same values as NCHW-contiguous, channels_last, or a strided (every other column) view."""
    if kind == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if kind == "noncontig":
        big = torch.zeros(*t.shape[:3], 2 * t.shape[3], dtype=t.dtype, device=t.device)
        big[..., ::2] = t
        return big[..., ::2]
    return t.contiguous()


@st.composite
def warp_case(draw, max_channels: int = 5, max_size: int = 6):
    """A warp input: dict with feat (N, C, H, W), flow (N, 2, H, W), grad_out, padding, and which
    non-finite values were planted where."""
    n = draw(st.integers(0, 2))
    c = draw(st.integers(0, max_channels))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(("zero", "smooth", "random", "integer", "huge", "nonfinite")))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    if kind == "zero":
        flow = torch.zeros(n, 2, h, w, dtype=torch.float64)
    elif kind == "smooth":  # a global shift plus a gentle ramp, up to ~3 px
        base = (torch.rand(n, 2, 1, 1, generator=g, dtype=torch.float64) - 0.5) * 6
        ramp = torch.linspace(-1, 1, w, dtype=torch.float64).view(1, 1, 1, w)
        flow = base + ramp * (torch.rand(n, 2, 1, 1, generator=g, dtype=torch.float64) - 0.5)
        flow = flow.expand(n, 2, h, w).clone()
    elif kind == "integer":  # exact integer displacements: every sample on a pixel
        flow = torch.randint(-3, 4, (n, 2, h, w), generator=g).to(torch.float64)
    else:  # random, huge and nonfinite start from independent per-pixel flows of up to 2 sizes
        flow = (torch.rand(n, 2, h, w, generator=g, dtype=torch.float64) - 0.5) * 4 * max(h, w)
    cells = [(i, y, x) for i in range(n) for y in range(h) for x in range(w)]
    if kind in ("huge", "nonfinite") and cells:
        values = (1e30, -1e30, 3e38, -3e38) if kind == "huge" else SPECIAL
        for _ in range(draw(st.integers(1, 3))):
            i, y, x = draw(st.sampled_from(cells))
            flow[i, draw(st.integers(0, 1)), y, x] = draw(st.sampled_from(values))
    bad_feat = []
    if draw(st.booleans()) and c and cells:
        corners = [(i, y, x) for i in range(n) for y in {0, h - 1} for x in {0, w - 1}]
        for _ in range(draw(st.integers(1, 3))):
            i, y, x = draw(st.sampled_from(corners if draw(st.booleans()) else cells))
            ch = draw(st.integers(0, c - 1))
            feat[i, ch, y, x] = draw(st.sampled_from(SPECIAL))
            bad_feat.append((i, ch, y, x))
    flow_dtype = dtype if dtype in (torch.float32, torch.float64) else draw(st.sampled_from((dtype, torch.float32)))
    return {
        "feat": feat.to(dtype),
        "flow": flow.to(flow_dtype),
        "dtype": dtype,
        "grad_out": torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype),
        "padding": draw(st.sampled_from(("border", "zeros"))),
        "kind": kind,
        "layout": draw(st.sampled_from(LAYOUTS)),
        "bad_feat": bad_feat,
    }


def _compute(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def sample_points(flow: torch.Tensor, compute) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample point (x, y) of every pixel, computed in the kernels' compute dtype (the op's
    definition: column + flow_x, row + flow_y), returned in float64 (exactly)."""
    n, _, h, w = flow.shape
    fl = flow.to(compute)
    xs = torch.arange(w, dtype=compute).view(1, 1, w)
    ys = torch.arange(h, dtype=compute).view(1, h, 1)
    return (xs + fl[:, 0]).double(), (ys + fl[:, 1]).double()


def grid_sample_oracle(feat64, x, y, padding, grad_out64):
    """F.grid_sample (align_corners=False, which maps pixel centres to integers for any size,
    size 1 included) at the finite pixel coordinates x, y (N, H, W) float64: the output, the feature
    gradient and the flow gradient (d/dx, d/dy in pixels) for the upstream gradient grad_out64."""
    n, c, h, w = feat64.shape
    gx = (2 * x + 1) / w - 1
    gy = (2 * y + 1) / h - 1
    feat = feat64.clone().requires_grad_()
    grid = torch.stack((gx, gy), -1).requires_grad_()
    out = F.grid_sample(feat, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    gf, gg = torch.autograd.grad(out, (feat, grid), grad_out64, allow_unused=True)
    gflow = torch.stack((gg[..., 0] * 2 / w, gg[..., 1] * 2 / h), 1)
    return out.detach(), gf, gflow


def used_taps_sum(feat64, x, y, padding):
    """The bilinear sum over the taps of non-zero weight only, written out in float64 at the exact
    sample points x, y (N, H, W): (value (N, C, H, W), hit (N, C, H, W) bool: a non-finite feature
    has a non-zero weight). The oracle of the non-finite samples, where grid_sample also reads
    zero-weight neighbours."""
    n, c, h, w = feat64.shape
    if padding == "border":
        x, y = x.clamp(0, w - 1), y.clamp(0, h - 1)
    x0, y0 = torch.floor(x), torch.floor(y)
    ax, ay = x - x0, y - y0
    value = torch.zeros(n, c, h, w, dtype=torch.float64)
    hit = torch.zeros(n, c, h, w, dtype=torch.bool)
    flat = feat64.reshape(n, c, h * w)
    for dy, wy in ((0, 1 - ay), (1, ay)):
        for dx, wx in ((0, 1 - ax), (1, ax)):
            xi, yi = x0 + dx, y0 + dy
            weight = wx * wy
            used = ((xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1) & (weight != 0)).unsqueeze(1)
            idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().view(n, 1, h * w).expand(n, c, h * w)
            tap = torch.gather(flat, 2, idx).view(n, c, h, w)
            value = value + torch.where(used, weight.unsqueeze(1) * tap, 0.0)
            hit |= used & ~torch.isfinite(tap)
    return value, hit


def smooth_points(x, y, h, w, padding, margin=1e-3) -> torch.Tensor:
    """(N, H, W) bool: sample points where bilinear sampling is differentiable in both axes (not
    within ``margin`` of a pixel row/column, nor of the clamp bounds with border padding): there
    the flow gradient is unique and the oracle's must match."""

    def ok(v, size):
        frac = v - torch.floor(v)
        good = (frac > margin) & (frac < 1 - margin)
        if padding == "border":
            good &= (v > margin) & (v < size - 1 - margin)
        return good

    return ok(x, w) & ok(y, h)


def assert_close(actual, expected, dtype, what, mask=None):
    """Elementwise |actual - expected| <= TOL[dtype] * (1 + max|expected|) where ``mask``; the
    non-finite pattern must match exactly (NaN with NaN, +-inf with the same inf)."""
    a, e = actual.detach().double().cpu(), expected.detach().double()
    if mask is not None:
        a, e = a[mask], e[mask]
    fin = torch.isfinite(e)
    bad_pattern = (torch.isfinite(a) != fin) | (torch.isnan(a) != torch.isnan(e))
    assert not bad_pattern.any(), (
        f"{what}: non-finite pattern differs at {int(bad_pattern.sum())} of "
        f"{a.numel()} elements: got {a[bad_pattern][:6].tolist()}, "
        f"want {e[bad_pattern][:6].tolist()}"
    )
    inf = ~fin & ~torch.isnan(e)
    assert torch.equal(a[inf], e[inf]), f"{what}: infinities of the wrong sign"
    if fin.any():
        scale = 1 + float(e[fin].abs().max())
        err = float((a[fin] - e[fin]).abs().max())
        assert err <= TOL[dtype] * scale, f"{what}: max error {err:.3g} > {TOL[dtype]:.1g} x {scale:.3g}"


def check_warp(case, warp_fn, device="cpu"):
    """Run ``warp_fn(feat, flow, padding)`` (forward + backward) on ``case`` and check it against
    F.grid_sample, with the non-finite semantics of the module docstring."""
    dtype, padding = case["dtype"], case["padding"]
    feat_in = layout(case["feat"], case["layout"]).to(device).requires_grad_()
    flow_in = layout(case["flow"], case["layout"]).to(device).requires_grad_()
    out = warp_fn(feat_in, flow_in, padding)
    assert out.shape == case["feat"].shape and out.dtype == dtype, (out.shape, out.dtype)
    grads = torch.autograd.grad(out, (feat_in, flow_in), case["grad_out"].to(device), allow_unused=True)
    gfeat = torch.zeros_like(feat_in) if grads[0] is None else grads[0]
    gflow = torch.zeros_like(flow_in) if grads[1] is None else grads[1]
    assert gfeat.dtype == dtype and gflow.dtype == case["flow"].dtype

    n, c, h, w = case["feat"].shape
    feat64, go64 = case["feat"].double(), case["grad_out"].double()
    x, y = sample_points(case["flow"], _compute(dtype))
    nan_pt = torch.isnan(x) | torch.isnan(y)
    nonfinite_pt = ~(torch.isfinite(x) & torch.isfinite(y))
    # Points the oracle can take: non-finite ones become far-away finite points (clamped to the
    # same border pixel with border padding; sampling nothing with zeros padding), NaN ones are
    # checked separately.
    far = 4.0 * (h + w) + 8
    x_o = torch.where(torch.isnan(x), 0.0, x.clamp(-far, far))
    y_o = torch.where(torch.isnan(y), 0.0, y.clamp(-far, far))
    if padding == "zeros":
        x_o = torch.where(nonfinite_pt, -far, x_o)
        y_o = torch.where(nonfinite_pt, -far, y_o)
    bad = ~torch.isfinite(feat64)
    go_o = torch.where(nan_pt.unsqueeze(1), 0.0, go64)
    want, want_gf, want_gflow = grid_sample_oracle(torch.where(bad, 0.0, feat64), x_o, y_o, padding, go_o)
    # Forward: grid_sample of the features with non-finite values zeroed, except where a
    # non-finite value has a non-zero weight: there the written-out sum gives inf, -inf or NaN.
    value, hit = used_taps_sum(feat64, x_o, y_o, padding)
    want = torch.where(hit, value, want)
    if padding == "border":
        want = torch.where(nan_pt.unsqueeze(1).expand_as(want), float("nan"), want)
    assert_close(out, want, dtype, "forward")

    # Feature gradient: independent of the feature values; a NaN border point has NaN weights on
    # the taps around pixel (0, 0) (where csrc/bilinear.h puts a NaN point's taps).
    if padding == "border" and c:
        want_gf = want_gf.clone()
        for i in range(n):
            if nan_pt[i].any():
                want_gf[i, :, :2, :2] = float("nan")
    assert_close(gfeat, want_gf, dtype, "feature gradient")

    # Flow gradient at differentiable points: equal to grid_sample's where that is finite, and
    # non-finite exactly where grid_sample's is (there every tap has a non-zero derivative).
    gflow_cpu = gflow.detach().double().cpu()
    flow_dtype = case["flow"].dtype if case["flow"].dtype != torch.float64 else torch.float64
    smooth = smooth_points(x_o, y_o, h, w, padding) & ~nonfinite_pt
    exact_gflow = grid_sample_oracle(feat64, x_o, y_o, padding, go_o)[2] if bad.any() else want_gflow
    mask = smooth.unsqueeze(1).expand(n, 2, h, w)
    fin = torch.isfinite(exact_gflow)
    assert torch.equal(torch.isfinite(gflow_cpu)[mask], fin[mask]), "flow gradient: non-finite pattern"
    assert_close(gflow_cpu, want_gflow, flow_dtype, "flow gradient", mask=mask & fin)
    if padding == "border":  # a clamped axis has a zero derivative, whatever the features hold
        for axis, (v, size) in enumerate(((x, w), (y, h))):
            clamped = ((v < 0) | (v > size - 1)) & ~nan_pt
            assert (gflow_cpu[:, axis][clamped] == 0).all(), f"border: clamped axis {axis}"
        if nan_pt.any() and c:
            assert torch.isnan(gflow_cpu.permute(1, 0, 2, 3)[:, nan_pt]).all(), "border: NaN point"
    elif nonfinite_pt.any():
        assert (gflow_cpu.permute(1, 0, 2, 3)[:, nonfinite_pt] == 0).all(), "zeros: non-finite point"


@st.composite
def upsample_case(draw):
    n, h, w = draw(st.integers(0, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    flow = (torch.rand(n, 2, h, w, generator=g, dtype=torch.float64) - 0.5) * draw(st.sampled_from((1.0, 20.0, 1e30)))
    cells = [(i, ch, y, x) for i in range(n) for ch in range(2) for y in range(h) for x in range(w)]
    if cells and draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            flow[draw(st.sampled_from(cells))] = draw(st.sampled_from(SPECIAL))
    return {
        "flow": flow.to(dtype),
        "dtype": dtype,
        "scale": draw(st.integers(1, 4)),
        "layout": draw(st.sampled_from(LAYOUTS)),
        "grad_seed": seed,
    }


def _upsample_used_taps(flow64, s):
    """Written-out x``s`` bilinear upsampling (align_corners=False, source (dst + 0.5) / s - 0.5
    clamped at 0) that sums only the taps of non-zero weight, in float64, times ``s``: the oracle of
    the non-finite outputs (F.interpolate also reads the zero-weight neighbour at the clamped first
    row and column, and at scale 1). Returns (value, hit: a non-finite input has a non-zero weight)."""
    h, w = flow64.shape[-2:]

    def axis(size):
        src = ((torch.arange(size * s, dtype=torch.float64) + 0.5) / s - 0.5).clamp(min=0)
        i0 = src.floor().long().clamp(max=size - 1)
        return ((i0, 1 - (src - i0)), ((i0 + 1).clamp(max=size - 1), src - i0))

    value, hit = _sum_used_taps(flow64, axis(h), axis(w))
    return value * s, hit


def _sum_used_taps(flow64, y_taps, x_taps):
    """Bilinear sum over the taps of non-zero weight only, float64. y_taps, x_taps: per axis, the
    two (index, weight) pairs of every output coordinate. Returns (value, hit: a non-finite input
    has a non-zero weight)."""
    n, c = flow64.shape[:2]
    value = torch.zeros(n, c, len(y_taps[0][0]), len(x_taps[0][0]), dtype=torch.float64)
    hit = torch.zeros(value.shape, dtype=torch.bool)
    for yi, wy in y_taps:
        for xi, wx in x_taps:
            weight = wy.view(-1, 1) * wx.view(1, -1)
            tap = flow64[:, :, yi][:, :, :, xi]
            used = weight != 0
            value = value + torch.where(used, weight * tap, 0.0)
            hit |= used & ~torch.isfinite(tap)
    return value, hit


def check_upsample(case, upsample_fn, device="cpu"):
    """upsample_flow against F.interpolate(align_corners=False) * scale in float64, forward and
    gradient; where a non-finite input has a non-zero weight, against the written-out sum."""
    dtype, s = case["dtype"], case["scale"]
    x = layout(case["flow"], case["layout"]).to(device).requires_grad_()
    out = upsample_fn(x, s)
    n, _, h, w = case["flow"].shape
    assert out.shape == (n, 2, h * s, w * s) and out.dtype == dtype
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(case["grad_seed"]), dtype=torch.float64).to(
        dtype
    )
    (gx,) = torch.autograd.grad(out, x, go.to(device))
    flow64 = case["flow"].double()
    ref_in = torch.where(torch.isfinite(flow64), flow64, 0.0).requires_grad_()
    want = F.interpolate(ref_in, scale_factor=s, mode="bilinear", align_corners=False) * s
    (want_g,) = torch.autograd.grad(want, ref_in, go.double())
    value, hit = _upsample_used_taps(flow64, s)
    assert_close(out, torch.where(hit, value, want), dtype, "upsample forward")
    assert_close(gx, want_g, dtype, "upsample gradient")  # independent of the values


@st.composite
def resize_case(draw):
    """A flow field, an output size (smaller, equal or larger per axis) and a convention."""
    case = draw(upsample_case())
    n, _, h, w = case["flow"].shape
    case["size"] = (draw(st.integers(1, 3 * h + 1)), draw(st.integers(1, 3 * w + 1)))
    case["align_corners"] = draw(st.booleans())
    return case


def _resize_axis(size_in, size_out, align_corners, compute):
    """Taps ((i0, w0), (i1, w1)) of one axis as F.interpolate(size=...) places them: the step and
    the source coordinates in the compute dtype (fp32 for fp32/fp16/bf16), which decides which
    taps a point lands on exactly; the weights in float64."""
    d = torch.arange(size_out, dtype=compute)
    if align_corners:
        step = torch.tensor((size_in - 1) / (size_out - 1) if size_out > 1 else 0.0, dtype=compute)
        src = d * step
    else:
        src = (torch.tensor(size_in / size_out, dtype=compute) * (d + 0.5) - 0.5).clamp(min=0)
    src = src.double()
    i0 = src.floor().long().clamp(max=size_in - 1)
    return ((i0, 1 - (src - i0)), ((i0 + 1).clamp(max=size_in - 1), src - i0))


def check_resize(case, resize_fn, device="cpu"):
    """resize_flow against F.interpolate(size) with x times w/W and y times h/H, in float64,
    forward and gradient; where a non-finite input has a non-zero weight, against the written-out
    sum of the used taps."""
    dtype, (ho, wo), align = case["dtype"], case["size"], case["align_corners"]
    x = layout(case["flow"], case["layout"]).to(device).requires_grad_()
    out = resize_fn(x, (ho, wo), align)
    n, _, h, w = case["flow"].shape
    assert out.shape == (n, 2, ho, wo) and out.dtype == dtype
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(case["grad_seed"]), dtype=torch.float64).to(
        dtype
    )
    (gx,) = torch.autograd.grad(out, x, go.to(device))
    flow64 = case["flow"].double()
    ratio = torch.tensor([wo / w, ho / h], dtype=torch.float64).view(1, 2, 1, 1)
    ref_in = torch.where(torch.isfinite(flow64), flow64, 0.0).requires_grad_()
    want = F.interpolate(ref_in, size=(ho, wo), mode="bilinear", align_corners=align) * ratio
    (want_g,) = torch.autograd.grad(want, ref_in, go.double())
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    value, hit = _sum_used_taps(flow64, _resize_axis(h, ho, align, compute), _resize_axis(w, wo, align, compute))
    assert_close(out, torch.where(hit, value * ratio, want), dtype, "resize forward")
    assert_close(gx, want_g, dtype, "resize gradient")  # independent of the values


@st.composite
def loss_case(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=4)))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(shape, generator=g, dtype=torch.float64)
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    if pred.numel() and draw(st.booleans()):
        flat_p, flat_t = pred.view(-1), target.view(-1)
        for _ in range(draw(st.integers(1, 2))):
            which = flat_p if draw(st.booleans()) else flat_t
            which[draw(st.integers(0, pred.numel() - 1))] = draw(st.sampled_from(SPECIAL + (1e30,)))
    return {
        "pred": pred.to(dtype),
        "target": target.to(dtype),
        "dtype": dtype,
        "eps": draw(st.sampled_from((1e-3, 1e-6, 0.5))),
        "reduction": draw(st.sampled_from(("mean", "sum", "batch", "none"))) if len(shape) else "mean",
    }


def check_charbonnier(case, loss_fn, device="cpu"):
    """Charbonnier loss and both gradients against the formula sqrt(d^2 + eps^2) in float64."""
    dtype, eps, red = case["dtype"], case["eps"], case["reduction"]
    if red == "batch" and case["pred"].dim() == 0:
        red = "mean"
    p = case["pred"].to(device).requires_grad_()
    t = case["target"].to(device).requires_grad_()
    loss = loss_fn(p, t, eps, red)
    p64 = case["pred"].double().requires_grad_()
    t64 = case["target"].double().requires_grad_()
    rho = torch.sqrt((p64 - t64) ** 2 + eps**2)
    # The mean over zero elements is 0 by the op's definition (torch.mean would give NaN).
    want = {
        "none": rho,
        "sum": rho.sum(),
        "mean": rho.sum() / max(rho.numel(), 1),
        "batch": rho.sum() / max(p64.shape[0], 1) if p64.dim() else rho.sum(),
    }[red]
    assert loss.dtype == dtype and loss.shape == want.shape
    assert_close(loss, want, dtype, f"charbonnier {red}")
    if p.numel() == 0:
        return
    go = torch.ones_like(want) if red == "none" else torch.tensor(1.0, dtype=torch.float64)
    gp, gt = torch.autograd.grad(loss, (p, t), go.to(dtype).to(device))
    wp, wt = torch.autograd.grad(want, (p64, t64), go)
    assert_close(gp, wp, dtype, "charbonnier d pred")
    assert_close(gt, wt, dtype, "charbonnier d target")
