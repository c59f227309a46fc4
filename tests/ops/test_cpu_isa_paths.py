"""The CPU kernels' AVX2 paths (tap fills, gathers, scatter products) against their portable
scalar paths (CROSSNET_FAST_CPU_ISA=baseline): the same arithmetic in the same order, so every
output and gradient must be bit-identical. Each run is a child process (the choice is read once)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import NATIVE_CPU

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import json, sys, torch
import crossnet_fast as cf
torch.manual_seed(0)
results = {}
# Sizes whose tiles are whole multiples of 8 points, so no point takes a scalar tail. Channels:
# 11 = a block of 8 (8-channel input-gradient pass) and 3 planes left to the plane-by-plane loop
# (and the coordinate gradient); 24 (below) = every gradient in blocks of 8 (a chunk of 16, then
# one of 8); tap pairs from 4 channels.
x = torch.randn(2, 11, 12, 16)
for pad in ("zeros", "border", "reflection"):
    for ac in (False, True):
        g = (torch.rand(2, 8, 16, 2) * 2.6 - 1.3)
        g[0, 0, :3] = torch.tensor([[float("nan"), 0.0], [-1.0, 1.0], [float("inf"), 0.2]])
        # Points whose only inside tap is a corner pixel (a tap pair read around the last element
        # of the plane, or starting at the other tap), in the right half of the last pixel etc.
        hi_x, hi_y, lo_x, lo_y = 1 - 0.5 / 16, 1 - 0.5 / 12, -1 + 0.2 / 16, -1 + 0.2 / 12
        g[1, 1, :4] = torch.tensor([[hi_x, hi_y], [lo_x, hi_y], [hi_x, lo_y], [lo_x, lo_y]])
        xi, gi = x.clone().requires_grad_(), g.clone().requires_grad_()
        out = cf.grid_sample(xi, gi, padding_mode=pad, align_corners=ac, backend="cpu")
        ga, gb = torch.autograd.grad(out, (xi, gi), torch.randn(out.shape, generator=torch.Generator().manual_seed(1)))
        results[f"grid-{pad}-{ac}"] = [t.flatten().tolist() for t in (out, ga, gb)]
# Degenerate planes: one column (pairs across rows), one pixel (no pairs: a single element).
for h, w in ((7, 1), (1, 1)):
    xs = torch.randn(2, 16, h, w)
    g = torch.rand(2, 4, 8, 2) * 2.6 - 1.3
    xi, gi = xs.clone().requires_grad_(), g.clone().requires_grad_()
    out = cf.grid_sample(xi, gi, padding_mode="zeros", align_corners=False, backend="cpu")
    ga, gb = torch.autograd.grad(out, (xi, gi), torch.randn(out.shape, generator=torch.Generator().manual_seed(3)))
    results[f"grid-{h}x{w}"] = [t.flatten().tolist() for t in (out, ga, gb)]
# One channel, few points per image (RAFT's lookups): the grid runs as one flattened tile sequence
# whose offsets move image by image (8 points at a time where an image has >= 8 points).
for ho, wo in ((7, 7), (1, 3)):
    xs = torch.randn(40, 1, 9, 10)
    g = torch.rand(40, ho, wo, 2) * 2.4 - 1.2
    g[13, 0, wo - 1, 0] = float("nan")  # a NaN point: NaN out, in a lane of the 8-image blocks too
    out = cf.grid_sample(xs, g, padding_mode="zeros", align_corners=True, backend="cpu")
    results[f"grid-flat-{ho}x{wo}"] = [out.flatten().tolist(), [], []]
    # The same points in RAFT's layout (batch innermost, x and y planes apart): read with strides.
    g_strided = g.permute(3, 1, 2, 0).contiguous().permute(3, 1, 2, 0)
    out = cf.grid_sample(xs, g_strided, padding_mode="zeros", align_corners=True, backend="cpu")
    results[f"grid-flat-strided-{ho}x{wo}"] = [out.flatten().tolist(), [], []]
# Two channels (flow fields): taps in registers, all channels from them; 25 points per image leave
# a point-by-point tail; a NaN point; the same points with rows not packed take the table path.
xs = torch.randn(2, 2, 12, 16)
for pad in ("zeros", "border"):
    g = torch.rand(2, 5, 5, 2) * 2.6 - 1.3
    g[0, 0, 1] = torch.tensor([float("nan"), 0.5])
    for layout, grid in (("packed", g), ("columns", g.transpose(1, 2).contiguous().transpose(1, 2))):
        out = cf.grid_sample(xs, grid, padding_mode=pad, align_corners=False, backend="cpu")
        results[f"grid-c2-{pad}-{layout}"] = [out.flatten().tolist(), [], []]
# A strided grid with channels (both gradients, 8-channel blocks and the plane-by-plane rest).
xs = torch.randn(3, 11, 9, 10)
g = (torch.rand(3, 6, 5, 2) * 2.4 - 1.2).permute(3, 1, 2, 0).contiguous().permute(3, 1, 2, 0)
xi, gi = xs.clone().requires_grad_(), g.clone(memory_format=torch.preserve_format).requires_grad_()
out = cf.grid_sample(xi, gi, padding_mode="border", align_corners=False, backend="cpu")
ga, gb = torch.autograd.grad(out, (xi, gi), torch.randn(out.shape, generator=torch.Generator().manual_seed(5)))
results["grid-strided"] = [t.flatten().tolist() for t in (out, ga, gb)]
x24 = torch.randn(2, 24, 12, 16)
for pad in ("zeros", "reflection"):
    g = (torch.rand(2, 8, 16, 2) * 2.6 - 1.3)
    g[0, 0, :2] = torch.tensor([[float("nan"), 0.0], [-1.0, 1.0]])
    xi, gi = x24.clone().requires_grad_(), g.clone().requires_grad_()
    out = cf.grid_sample(xi, gi, padding_mode=pad, align_corners=False, backend="cpu")
    ga, gb = torch.autograd.grad(out, (xi, gi), torch.randn(out.shape, generator=torch.Generator().manual_seed(4)))
    results[f"grid24-{pad}"] = [t.flatten().tolist() for t in (out, ga, gb)]
feat = torch.randn(2, 16, 16, 24)
for pad in ("zeros", "border"):
    flow = (torch.rand(2, 2, 16, 24) * 2 - 1) * 6
    flow[1, 0, 3, :2] = torch.tensor([float("inf"), -1e30])
    f, v = feat.clone().requires_grad_(), flow.clone().requires_grad_()
    out = cf.backward_warp(f, v, pad, backend="cpu")
    ga, gb = torch.autograd.grad(out, (f, v), torch.randn(out.shape, generator=torch.Generator().manual_seed(2)))
    results[f"warp-{pad}"] = [t.flatten().tolist() for t in (out, ga, gb)]
json.dump(results, sys.stdout)
"""


def _run(isa: str) -> dict:
    env = dict(os.environ, CROSSNET_FAST_CPU_ISA=isa)
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow
@NATIVE_CPU
def test_avx2_and_scalar_paths_are_bit_identical():
    native, baseline = _run("native"), _run("baseline")
    assert native.keys() == baseline.keys()
    for key in native:
        for name, a, b in zip(("out", "grad_input", "grad_coordinates"), native[key], baseline[key]):
            ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
            assert torch.equal(torch.isnan(ta), torch.isnan(tb)), (key, name)
            keep = ~torch.isnan(ta)
            assert torch.equal(ta[keep], tb[keep]), (key, name, (ta[keep] - tb[keep]).abs().max().item())
