"""PSNR / SSIM against scikit-image; IFC against its definition and expected behaviour."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from crossnet_fast.degrade import degrade, upsample_bicubic_matlab
from crossnet_fast.metrics import ifc, psnr, ssim
from crossnet_fast.metrics._steerable import steerable_pyramid
from crossnet_fast.metrics.ifc import subband_information

from _threads import one_thread  # noqa: F401  (autouse fixture)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
HCI = DATA / "hci" / "antinous"


def _real_pair():
    if not (HCI / "input_Cam000.png").is_file():
        pytest.skip(f"real data not found in {DATA}")
    from crossnet_fast.data import load_image

    hr = load_image(HCI / "input_Cam010.png")[:, 100:196, 150:246]
    sr = upsample_bicubic_matlab(degrade(hr, 4), 4)
    return sr, hr


def _random_pair(seed=0, shape=(3, 40, 52)):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(*shape, generator=g, dtype=torch.float64)
    p = (t + 0.1 * torch.randn(*shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return p, t


def _hwc(x):
    return x.double().permute(1, 2, 0).numpy()


def _sk_ssim(p, t, **kw):
    return structural_similarity(
        p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, **kw
    )


@pytest.mark.parametrize("source", ["random", "real"])
def test_psnr_ssim_match_skimage(source):
    p, t = _random_pair() if source == "random" else _real_pair()
    assert abs(psnr(p, t).item() - peak_signal_noise_ratio(_hwc(t), _hwc(p), data_range=1.0)) < 1e-3
    assert abs(ssim(p, t).item() - _sk_ssim(_hwc(p), _hwc(t), channel_axis=-1)) < 1e-4


def test_y_channel_and_crop_match_skimage():
    p, t = _random_pair(1)
    w = np.array([65.481, 128.553, 24.966]) / 255.0

    def y(x):
        return (_hwc(x) * w).sum(-1) + 16 / 255

    yp, yt = y(p)[4:-4, 4:-4], y(t)[4:-4, 4:-4]
    assert abs(psnr(p, t, channel="y", crop=4).item() - peak_signal_noise_ratio(yt, yp, data_range=1.0)) < 1e-3
    assert abs(ssim(p, t, channel="y", crop=4).item() - _sk_ssim(yp, yt)) < 1e-4


def test_batched_float32_and_known_values():
    p, t = _random_pair(2, (2, 3, 32, 32))
    out = psnr(p.float(), t.float())
    assert out.shape == (2,) and out.dtype == torch.float64
    assert torch.allclose(out, torch.stack([psnr(p[i], t[i])[0] for i in range(2)]), atol=1e-3)
    # A uniform error of 0.1 is an MSE of 0.01: exactly 20 dB.
    x = torch.full((3, 16, 16), 0.5)
    assert psnr(x + 0.1, x).item() == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(psnr(x, x).item())
    assert ssim(t, t).allclose(torch.ones(2, dtype=torch.float64))
    assert psnr(p, t, reduction="mean").dim() == 0


def test_metric_errors():
    a = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, torch.rand(3, 16, 15))
    with pytest.raises(TypeError, match="pred"):
        ssim(a.numpy(), a)
    with pytest.raises(ValueError, match="channel"):
        psnr(a, a, channel="lab")
    with pytest.raises(ValueError, match="crop"):
        psnr(a, a, crop=8)
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="32x32"):
        ifc(torch.rand(3, 16, 16), torch.rand(3, 16, 16))


# ---- IFC ---------------------------------------------------------------------------------------
def _reflect101(i, n):
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def _subband_information_loop(c, d, win, m=3):
    """ifcvec's per-subband information, written block by block in numpy."""
    h, w = (c.shape[0] // m) * m, (c.shape[1] // m) * m
    c, d = c[:h, :w], d[:h, :w]
    vecs = np.array([c[y : y + m, x : x + m].ravel() for y in range(h - m + 1) for x in range(w - m + 1)])
    vecs = vecs - vecs.mean(0)
    cu = vecs.T @ vecs / len(vecs)
    lam = np.linalg.eigvalsh(cu)
    off = math.ceil(((win - 1) // 2) / m)
    total = 0.0
    for by in range(off, h // m - off):
        for bx in range(off, w // m - off):
            cy, cx = by * m + 1, bx * m + 1
            idx = [
                (_reflect101(cy + a, h), _reflect101(cx + b, w))
                for a in range(-(win // 2), win // 2 + 1)
                for b in range(-(win // 2), win // 2 + 1)
            ]
            xs = np.array([c[p] for p in idx])
            ys = np.array([d[p] for p in idx])
            sxx = ((xs - xs.mean()) ** 2).sum()
            syy = ((ys - ys.mean()) ** 2).sum()
            sxy = ((xs - xs.mean()) * (ys - ys.mean())).sum()
            g = sxy / (sxx + 1e-15)
            vv = (syy - g * sxy) / len(idx)
            if g < 0:
                g, vv = 0.0, syy
            vv = max(vv, 1e-15)
            blk = c[by * m : (by + 1) * m, bx * m : (bx + 1) * m].ravel()
            s2 = blk @ np.linalg.solve(cu, blk) / (m * m)
            total += np.log2(1 + g * g * s2 * lam / (vv + 1e-10)).sum()
    return total


@pytest.mark.parametrize("win", [3, 5, 9])
def test_subband_information_matches_block_loop(win):
    rng = np.random.default_rng(win)
    c = rng.normal(size=(25, 28)) * 10
    d = 0.7 * c + rng.normal(size=c.shape) * 3
    ours = subband_information(torch.from_numpy(c), torch.from_numpy(d), win).item()
    assert ours == pytest.approx(_subband_information_loop(c, d, win), rel=1e-9)
    assert ours > 0


def test_subband_information_hand_cases():
    c = torch.from_numpy(np.random.default_rng(0).normal(size=(18, 18)))
    # Nothing of the reference gets through: zero information.
    assert subband_information(c, torch.zeros_like(c), 3).item() == 0.0
    # Pure gain: D = g C exactly, so sigma_v^2 hits its floor (1e-15) and each term is
    # log2(1 + g^2 s^2 lambda / (1e-15 + 1e-10)): more gain, more information, in closed form.
    i1 = subband_information(c, c, 3).item()
    i2 = subband_information(c, 2 * c, 3).item()
    assert i2 > i1 > 0


def test_ifc_identity_noise_blur_monotone():
    if not (HCI / "input_Cam000.png").is_file():
        pytest.skip(f"real data not found in {DATA}")
    from crossnet_fast.data import load_image

    hr = load_image(HCI / "input_Cam040.png")[:, 128:256, 128:256][None]
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(hr.shape, generator=g)
    ident = ifc(hr, hr).item()
    noisy = [ifc((hr + s * noise).clamp(0, 1), hr).item() for s in (0.01, 0.03, 0.1)]
    blurred = [ifc(upsample_bicubic_matlab(degrade(hr, s), s), hr).item() for s in (2, 4, 8)]
    assert ident > noisy[0] > noisy[1] > noisy[2] > 0
    assert ident > blurred[0] > blurred[1] > blurred[2] > 0
    # A flat image carries no information about the reference.
    assert ifc(torch.full_like(hr, 0.5), hr).item() == pytest.approx(0.0, abs=1e-9)
    # Batched == one by one.
    both = ifc(torch.cat([hr, (hr + 0.03 * noise).clamp(0, 1)]), torch.cat([hr, hr]))
    assert both[0].item() == pytest.approx(ident) and both[1].item() == pytest.approx(noisy[1])


def test_steerable_pyramid_orientation_and_shapes():
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(70.0), indexing="ij")
    grating = torch.cos(2 * math.pi * x / 5).double()  # varies along x: frequency angle 0
    bands = steerable_pyramid(grating, levels=4, orientations=6)
    assert [tuple(b[0].shape) for b in bands] == [(64, 70), (32, 35), (16, 18), (8, 9)]
    e = [float((b**2).sum()) for b in bands[0]]
    assert e[0] > 10 * e[3]  # energy in the orientation tuned to it, not the orthogonal one
