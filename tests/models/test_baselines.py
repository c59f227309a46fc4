"""Bicubic and patch-matching baselines."""

from pathlib import Path

import pytest
import torch

from crossnet_fast.baselines import bicubic, patchmatch, patchmatch_sr
from crossnet_fast.baselines.patchmatch import _patch_features
from crossnet_fast.degrade import degrade, upsample_bicubic_matlab
from crossnet_fast.metrics import psnr

from _threads import one_thread  # noqa: F401  (autouse fixture)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_bicubic_is_matlab_upsampling():
    lr = torch.rand(2, 3, 10, 12)
    out = bicubic(lr, 4, size=(38, 48))
    assert out.shape == (2, 3, 38, 48)
    assert torch.equal(out, upsample_bicubic_matlab(lr, 4)[..., :38, :48])


def test_patchmatch_recovers_a_translation():
    g = torch.Generator().manual_seed(0)
    b = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 70, 70, generator=g), 3, 1, 1)
    a = b[:, :, 5:53, 9:57]  # A(y, x) = B(y + 5, x + 9)
    fa, fb = _patch_features(a, 5, 1), _patch_features(b, 5, 1)
    cost, qy, qx = patchmatch(fa, fb, (48, 48), (70, 70), iterations=4, generator=g)
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    inner = (slice(None), slice(2, -2), slice(2, -2))  # replicate-padded borders are ambiguous
    exact = ((qy - yy == 5) & (qx - xx == 9))[inner].float().mean()
    assert exact > 0.98
    assert cost[inner].max() < 1e-3


def _crop_pair(folder, ref_name, lr_name, box):
    from crossnet_fast.data import load_image

    if not (folder / ref_name).is_file():
        pytest.skip(f"real data not found in {DATA}")
    y, x, h, w = box
    return (
        load_image(folder / ref_name)[:, y : y + h, x : x + w],
        load_image(folder / lr_name)[:, y : y + h, x : x + w],
    )


@pytest.mark.parametrize("scene,scale", [("antinous", 4), ("backgammon", 8), ("lytro", 4)])
def test_patchmatch_beats_bicubic_on_real_crops(scene, scale):
    # Fast version of the must-show (full images: scripts/eval_baselines.py).
    if scene == "lytro":
        folder = DATA / "lytro_flowers" / "IMG_0001"
        names = sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []
        ref_name = next((n for n in names if n.endswith("_01_01.png")), "missing")
        lr_name = next((n for n in names if n.endswith("_02_02.png")), "missing")
        ref, hr = _crop_pair(folder, ref_name, lr_name, (64, 64, 96, 96))
    else:
        ref, hr = _crop_pair(DATA / "hci" / scene, "input_Cam000.png", "input_Cam010.png", (160, 160, 128, 128))
    lr = degrade(hr, scale)
    p_bic = psnr(bicubic(lr, scale), hr).item()
    sr = patchmatch_sr(lr, ref, scale)
    assert sr.shape == hr.shape and sr.min() >= 0 and sr.max() <= 1
    assert psnr(sr, hr).item() > p_bic + 1.0


def test_patchmatch_sr_batched_and_reproducible():
    g = torch.Generator().manual_seed(1)
    hr = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 48, 40, generator=g), 3, 1, 1)
    lr = degrade(hr, 4)
    a = patchmatch_sr(lr, hr, 4, seed=5)
    assert a.shape == (2, 3, 48, 40)
    assert torch.equal(a, patchmatch_sr(lr, hr, 4, seed=5))
    assert torch.allclose(a[1], patchmatch_sr(lr[1], hr[1], 4, seed=5), atol=0.05)
    # With the ground truth as reference, the transferred detail must help a lot.
    assert psnr(a, hr).mean() > psnr(bicubic(lr, 4), hr).mean() + 3
    assert patchmatch_sr(lr, hr, 4, size=(45, 39)).shape == (2, 3, 45, 39)
    assert patchmatch_sr(lr.double(), hr.double(), 4).dtype == torch.float64


def test_patchmatch_sr_errors():
    lr, ref = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="scale"):
        patchmatch_sr(lr, ref, 1)
    with pytest.raises(TypeError, match="ref"):
        patchmatch_sr(lr, ref.numpy(), 4)
    with pytest.raises(ValueError, match="lr"):
        patchmatch_sr(torch.rand(1, 1, 8, 8), ref, 4)
    with pytest.raises(ValueError, match="batch"):
        patchmatch_sr(lr, torch.rand(2, 3, 32, 32), 4)
    with pytest.raises(TypeError, match="lr"):
        patchmatch_sr(lr.to(torch.uint8), ref, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_patchmatch_sr_cuda():
    hr = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64), 3, 1, 1)
    lr = degrade(hr, 4)
    out = patchmatch_sr(lr.cuda(), hr.cuda(), 4)
    assert out.is_cuda and out.shape == (1, 3, 64, 64)
    assert psnr(out.cpu(), hr).item() > psnr(bicubic(lr, 4), hr).item() + 3
