"""The auxiliary flow losses of the trainer (crossnet_fast.train.losses), against formulas written
here with F.grid_sample, and the photometric loss's purpose: it teaches the flow net to align."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crossnet_fast.models import CrossNet
from crossnet_fast.train.losses import aux_weight, photometric_loss, smoothness_loss

from _threads import one_thread  # noqa: F401  (autouse: small tensors, one thread)


def _grid_warp(img, flow):
    """Border-padded backward warp with grid_sample (align_corners=True); flow (N, 2, H, W) px."""
    n, _, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij")
    grid = torch.stack((2 * (xs + flow[:, 0]) / (w - 1) - 1, 2 * (ys + flow[:, 1]) / (h - 1) - 1), -1)
    return F.grid_sample(img, grid, "bilinear", "border", align_corners=True)


def test_photometric_loss_matches_its_formula():
    gen = torch.Generator().manual_seed(0)
    n, h, w = 2, 32, 48
    lr_up, ref = torch.rand(n, 3, h, w, generator=gen), torch.rand(n, 3, h, w, generator=gen)
    flows = [torch.randn(n, 2, h >> i, w >> i, generator=gen) * 2 for i in range(4)]
    expected = 0.0
    for i, v in enumerate(flows):
        a = F.avg_pool2d(lr_up, 2**i) if i else lr_up
        b = F.avg_pool2d(ref, 2**i) if i else ref
        d = _grid_warp(b, v) - a
        expected += torch.sqrt(d * d + 1e-6).mean() * 3 * h * w
    got = photometric_loss(flows, lr_up, ref, eps=1e-3, backend="reference")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match=r"flows\[1\]"):
        photometric_loss([flows[0], flows[0]], lr_up, ref)


def test_smoothness_loss_and_weight_schedule():
    v = torch.zeros(1, 2, 4, 4)
    v[:, 0, :, 2:] = 1.0  # a 1-px step in x on 4 rows: 4 of the 2*4*3 x-differences are 1, none in y
    got = smoothness_loss([v], numel_per_image=30)
    torch.testing.assert_close(got, torch.tensor(4 / 24 * 30))
    assert smoothness_loss([torch.zeros(1, 2, 3, 3)], 10) == 0
    assert aux_weight(0, 101, 1.0, 0.1) == 1.0
    assert aux_weight(100, 101, 1.0, 0.1) == pytest.approx(0.1)
    assert aux_weight(50, 101, 1.0, 0.1) == pytest.approx(0.55)
    assert aux_weight(7, 10, 0.0, 0.1) == 0.0


@pytest.mark.slow
def test_photometric_loss_teaches_the_flow_net_to_align():
    """A reference displaced by a known flow (3, -2) px: a few steps of the photometric loss alone bring
    the full-resolution flow V0 much closer to the true displacement (endpoint error)."""
    rng = np.random.default_rng(0)
    small = rng.random((3, 20, 20))
    big = torch.from_numpy(np.kron(small, np.ones((1, 4, 4)))).float()[None]  # 80x80 texture
    big = F.avg_pool2d(F.pad(big, (1, 1, 1, 1), mode="replicate"), 3, 1)  # soften the edges
    hr = big[..., 8:72, 8:72]
    ref = torch.roll(big, shifts=(-2, 3), dims=(2, 3))[..., 8:72, 8:72]  # ref(y, x) = hr(y + 2, x - 3)
    true = torch.tensor([3.0, -2.0]).view(1, 2, 1, 1)  # hr(y, x) = ref(y + Vy, x + Vx)
    torch.testing.assert_close(_grid_warp(ref, true.expand(1, 2, 64, 64))[..., 8:-8, 8:-8], hr[..., 8:-8, 8:-8])
    torch.manual_seed(0)
    model = CrossNet(4, "official", "bicubic", width=0.0625, residual=True, backend="reference")
    from crossnet_fast import degrade

    lr = degrade(hr, 4)
    opt = torch.optim.Adam(model.flownet.parameters(), lr=1e-3)

    def epe():
        with torch.no_grad():
            v0 = model(lr, ref, return_parts=True)["flows"][0]
        return float((v0 - true)[..., 8:-8, 8:-8].norm(dim=1).mean())

    before = epe()
    for _ in range(60):
        parts = model(lr, ref, return_parts=True)
        loss = photometric_loss(parts["flows"], parts["lr_up"], parts["flow_ref"], backend="reference")
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = epe()
    assert after < 0.5 * before, (before, after)
