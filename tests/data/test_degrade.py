"""MATLAB-compatible bicubic degradation: against an independent loop implementation and
hand-computed values."""

import math

import numpy as np
import pytest
import torch

from crossnet_fast.degrade import degrade, imresize, upsample_bicubic_matlab

from _threads import one_thread  # noqa: F401  (autouse fixture)


# ---- an independent implementation: one output sample at a time, explicit reflection ----------
def _keys(x):
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def _reflect(i, n):
    """1-based index i folded into 1..n by MATLAB's edge-repeating symmetric extension."""
    while i < 1 or i > n:
        i = 1 - i if i < 1 else 2 * n + 1 - i
    return i


def _resize_axis_loop(v, out_len, scale):
    """v: 1-D numpy array; MATLAB imresize along one axis, written sample by sample."""
    n = len(v)
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros(out_len)
    for i in range(1, out_len + 1):
        centre = (i - 0.5) / scale + 0.5  # input coordinate of the output pixel's centre
        first = int(math.floor(centre - width / 2))
        total, acc = 0.0, 0.0
        for j in range(first, first + int(math.ceil(width)) + 2):
            d = centre - j
            wgt = scale * _keys(scale * d) if scale < 1 else _keys(d)
            total += wgt
            acc += wgt * v[_reflect(j, n) - 1]
        out[i - 1] = acc / total
    return out


def matlab_imresize_loop(img, scale):
    """img: (C, H, W) numpy float64 -> (C, ceil(H*scale), ceil(W*scale))."""
    c, h, w = img.shape
    oh, ow = math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9)
    tmp = np.stack([[_resize_axis_loop(img[k, :, x], oh, scale) for x in range(w)] for k in range(c)], 0).transpose(
        0, 2, 1
    )
    return np.stack([[_resize_axis_loop(tmp[k, y, :], ow, scale) for y in range(oh)] for k in range(c)], 0)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_degrade_matches_loop_implementation(scale):
    g = torch.Generator().manual_seed(scale)
    hr = torch.rand(3, 29, 35, generator=g, dtype=torch.float64)
    ours = imresize(hr, 1.0 / scale).numpy()
    ref = matlab_imresize_loop(hr.numpy(), 1.0 / scale)
    assert ours.shape == ref.shape == (3, math.ceil(29 / scale), math.ceil(35 / scale))
    assert np.abs(ours - ref).max() < 1e-9  # far inside the required 1/255
    lr = degrade(hr.float()[None], scale)[0].double().numpy()
    assert np.abs(lr - np.clip(ref, 0, 1)).max() < 1 / 255


@pytest.mark.parametrize("scale", [2, 4])
def test_upsample_matches_loop_implementation(scale):
    lr = torch.rand(3, 9, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = upsample_bicubic_matlab(lr, scale, clamp=False).numpy()
    ref = matlab_imresize_loop(lr.numpy(), float(scale))
    assert np.abs(ours - ref).max() < 1e-9


def test_hand_computed_half_size():
    # x1/2 of [v1 v2 v3 v4]: the kernel 0.5*cubic(x/2) at distances +-0.5, 1.5, 2.5, 3.5 gives
    # taps 0.43359375, 0.11328125, -0.03515625, -0.01171875 (sum 1 over both sides); folding
    # the taps beyond the left edge back onto v1..v3 gives these weights for the first output:
    v = torch.tensor([[[0.2, 0.9, 0.4, 0.7]]], dtype=torch.float64)
    expected = 0.546875 * 0.2 + 0.3984375 * 0.9 + 0.1015625 * 0.4 - 0.046875 * 0.7
    out = imresize(v, 0.5)
    assert out.shape == (1, 1, 2)
    assert out[0, 0, 0].item() == pytest.approx(expected, abs=1e-12)
    # Symmetry: the second output is the mirror image of the first.
    assert out[0, 0, 1].item() == pytest.approx(imresize(v.flip(-1), 0.5)[0, 0, 0].item(), abs=1e-12)


@pytest.mark.parametrize("method", ["bicubic", "gaussian"])
def test_constant_stays_constant(method):
    hr = torch.full((2, 3, 37, 41), 0.625)
    lr = degrade(hr, 4, method=method)
    assert lr.shape == (2, 3, 10, 11)
    assert torch.allclose(lr, torch.full_like(lr, 0.625), atol=1e-6)
    up = upsample_bicubic_matlab(lr, 4, size=(37, 41))
    assert up.shape == (2, 3, 37, 41) and torch.allclose(up, torch.full_like(up, 0.625), atol=1e-6)


def test_batched_equals_single_and_dtypes():
    hr = torch.rand(3, 3, 32, 24)
    batched = degrade(hr, 4)
    for i in range(3):
        assert torch.allclose(batched[i], degrade(hr[i], 4), atol=1e-6)
    assert degrade(hr.double(), 4).dtype == torch.float64
    assert degrade(hr.half(), 4).dtype == torch.float16


def test_gaussian_samples_block_centres():
    hr = torch.zeros(1, 1, 12, 12)
    hr[0, 0, 4, 4] = 1.0  # centre of the second 3x3 block -> LR pixel (1, 1)
    lr = degrade(hr, 3, method="gaussian", sigma=0.3)
    assert lr.shape == (1, 1, 4, 4)
    assert lr[0, 0].argmax().item() == 1 * 4 + 1


def test_bad_input():
    with pytest.raises(ValueError, match="scale"):
        degrade(torch.rand(3, 8, 8), 0)
    with pytest.raises(ValueError, match="scale"):
        degrade(torch.rand(3, 8, 8), 2.5)
    with pytest.raises(TypeError, match="hr"):
        degrade(torch.zeros(3, 8, 8, dtype=torch.uint8), 2)
    with pytest.raises(TypeError, match="hr"):
        degrade(np.zeros((3, 8, 8)), 2)
    with pytest.raises(ValueError, match="method"):
        degrade(torch.rand(3, 8, 8), 2, method="nearest")
    with pytest.raises(ValueError, match="size"):
        upsample_bicubic_matlab(torch.rand(3, 4, 4), 2, size=(9, 8))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    hr = torch.rand(2, 3, 64, 48)
    assert torch.allclose(degrade(hr.cuda(), 4).cpu(), degrade(hr, 4), atol=1e-5)
    lr = degrade(hr, 4)
    assert torch.allclose(upsample_bicubic_matlab(lr.cuda(), 4).cpu(), upsample_bicubic_matlab(lr, 4), atol=1e-5)
