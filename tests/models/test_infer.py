"""super_resolve: any size, sliding windows, seamless blending, input forms, clear errors.

Stand-in models with known behaviour make the checks exact: an identity on the reference proves the
padding, cropping and weight normalisation; a local convolution model (receptive field far smaller
than the window overlap) must give the single-full-pass result; a model whose windows disagree on
purpose (each outputs its own mean) must still produce an image without jumps at window borders.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crossnet_fast.infer import super_resolve
from crossnet_fast.models import CrossNet


class RefIdentity(nn.Module):
    """Returns the reference window unchanged."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.calls = []

    def forward(self, lr, ref):
        assert ref.shape[-2] % 64 == 0 and ref.shape[-1] % 64 == 0
        assert lr.shape[-2] * self.scale == ref.shape[-2] and lr.shape[-1] * self.scale == ref.shape[-1]
        self.calls.append(tuple(ref.shape))
        return ref.clone()


class Local(nn.Module):
    """Translation-equivariant, 5x5 receptive field: conv(ref) + conv(nearest-upsampled lr)."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 3, 5, padding=2)
        self.b = nn.Conv2d(3, 3, 1)

    def forward(self, lr, ref):
        return self.a(ref) + self.b(F.interpolate(lr, scale_factor=self.scale, mode="nearest"))


class WindowMean(nn.Module):
    """Every window outputs its own mean reference colour: neighbouring windows disagree."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, lr, ref):
        return ref.mean(dim=(2, 3), keepdim=True).expand_as(ref).clone()


def _pair(h, w, scale, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=gen), torch.rand(1, 3, h * scale, w * scale, generator=gen)


def test_identity_any_size_tensor_and_numpy():
    model = RefIdentity(4)
    lr, ref = _pair(25, 41, 4)  # HR 100 x 164: not multiples of 64, larger than the window
    out = super_resolve(model, lr, ref, window=64, stride=32)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert set(model.calls) == {(1, 3, 64, 64)}
    # 128 x 192 padded, window 64, stride 32: starts 0,32,64 (rows) x 0,32,...,128 (cols).
    assert len(model.calls) == 3 * 5

    lr8 = (lr[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    ref8 = (ref[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    out8 = super_resolve(model, lr8, ref8, window=64, stride=32)
    assert out8.dtype == np.uint8 and out8.shape == (100, 164, 3)
    np.testing.assert_array_equal(out8, ref8)
    # (3, H, W) in, (3, H, W) out; one pass when the padded image fits the window.
    model.calls.clear()
    out3 = super_resolve(model, lr[0], ref[0], window=512, stride=256)
    assert out3.shape == ref[0].shape and model.calls == [(1, 3, 128, 192)]


@pytest.mark.parametrize("scale", [4, 8])
def test_windowed_equals_full_pass_for_local_model(scale):
    model = Local(scale)
    lr, ref = _pair(200 // scale, 264 // scale, scale, seed=1)
    out = super_resolve(model, lr, ref, window=128, stride=64, clamp=False)
    # Single full pass on the same edge-replicated padding (256 x 320), cropped.
    H, W = ref.shape[-2:]
    ref_p = F.pad(ref, (0, 320 - W, 0, 256 - H), mode="replicate")
    lr_p = F.pad(lr, (0, (320 - W) // scale, 0, (256 - H) // scale), mode="replicate")
    with torch.no_grad():
        full = model(lr_p, ref_p)[..., :H, :W]
    # Window-edge outputs differ from the full pass, but the outer overlap/4 = 16 px of every inner
    # window edge (> the 2 px receptive radius) gets weight 0 and the weights sum to 1.
    torch.testing.assert_close(out, full, rtol=0, atol=1e-5)


def test_no_seams_where_windows_disagree():
    scale = 4
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 192), torch.linspace(0, 1, 256), indexing="ij")
    ref = torch.stack((xx, yy, (xx + yy) / 2)).unsqueeze(0)  # smooth ramps: window means differ
    lr = F.avg_pool2d(ref, scale)
    model = WindowMean(scale)
    out = super_resolve(model, lr, ref, window=64, stride=32, clamp=False)
    # What a hard stitch would show: the jump between neighbouring windows' constants (~0.125).
    windows = ref.unfold(2, 64, 32).unfold(3, 64, 32).mean(dim=(-1, -2))  # (1, 3, 5, 7)
    jump = max(
        (windows[..., 1:, :] - windows[..., :-1, :]).abs().max(),
        (windows[..., :, 1:] - windows[..., :, :-1]).abs().max(),
    ).item()
    assert jump > 0.1
    step = max(
        (out[..., 1:, :] - out[..., :-1, :]).abs().max(), (out[..., :, 1:] - out[..., :, :-1]).abs().max()
    ).item()
    # A raised-cosine cross-fade over overlap/2 = 16 px changes by at most pi/32 of the jump per
    # pixel; a hard stitch would show the whole jump.
    assert step < 0.12 * jump, (step, jump)
    # And the blend is a convex combination of the window outputs.
    assert out.min() >= windows.min() - 1e-6 and out.max() <= windows.max() + 1e-6


def test_batched_windows_and_progress_match():
    model = Local(4)
    lr, ref = _pair(30, 40, 4, seed=2)  # 120 x 160 -> padded 128 x 192
    calls = []
    one = super_resolve(model, lr, ref, window=64, stride=32, progress=lambda d, t: calls.append((d, t)))
    three = super_resolve(model, lr, ref, window=64, stride=32, batch_size=3)
    torch.testing.assert_close(three, one, rtol=0, atol=1e-6)
    assert calls[-1] == (15, 15) and len(calls) == 15


@pytest.fixture(scope="module")
def crossnet_x4():
    torch.manual_seed(0)
    return CrossNet(4, "official", "bicubic", backend="auto").eval()


def test_crossnet_any_size_and_windows(crossnet_x4):
    gen = torch.Generator().manual_seed(3)
    lr = torch.randint(0, 256, (16, 27, 3), dtype=torch.uint8, generator=gen).numpy()
    ref = torch.randint(0, 256, (64, 108, 3), dtype=torch.uint8, generator=gen).numpy()
    calls = []
    out = super_resolve(crossnet_x4, lr, ref, window=64, stride=32, progress=lambda d, t: calls.append(t))
    assert out.shape == (64, 108, 3) and out.dtype == np.uint8
    assert calls == [3, 3, 3]  # padded to 64x128: windows at x = 0, 32, 64
    # A window covering the padded image is exactly one direct forward pass.
    lr_t, ref_t = _pair(16, 16, 4, seed=4)
    with torch.no_grad():
        direct = crossnet_x4(lr_t, ref_t).clamp(0, 1)
    torch.testing.assert_close(super_resolve(crossnet_x4, lr_t, ref_t), direct, rtol=0, atol=0)


def test_bf16_and_channels_last_agree_with_fp32(crossnet_x4):
    lr, ref = _pair(16, 16, 4, seed=5)
    fp32 = super_resolve(crossnet_x4, lr, ref, clamp=False)
    cl = super_resolve(crossnet_x4, lr, ref, clamp=False, channels_last=True)
    crossnet_x4.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(cl, fp32, rtol=1e-4, atol=1e-4)
    bf16 = super_resolve(crossnet_x4, lr, ref, clamp=False, precision="bf16")
    assert bf16.dtype == torch.float32
    scale = fp32.abs().max()
    assert (bf16 - fp32).abs().max() < 0.05 * scale


def test_errors_name_the_argument():
    model = RefIdentity(4)
    lr, ref = _pair(16, 16, 4)
    # A reference of another size is placed (tests/cli/test_ref_any_size.py), unless it is less
    # than half the 64x64 output on a side.
    with pytest.raises(ValueError, match=r"ref is 64x31 \(width x height\), less than half of the 64x64 output"):
        super_resolve(model, lr, ref[..., :31, :])
    with pytest.raises(TypeError, match="lr must be a uint8"):
        super_resolve(model, np.zeros((16, 16, 3), np.float32), np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="ref must be an"):
        super_resolve(model, np.zeros((16, 16, 3), np.uint8), np.zeros((64, 64), np.uint8))
    with pytest.raises(TypeError, match="same kind"):
        super_resolve(model, lr, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="lr must have shape"):
        super_resolve(model, lr[:, :1], ref)
    with pytest.raises(ValueError, match="window"):
        super_resolve(model, lr, ref, window=100)
    with pytest.raises(ValueError, match="stride"):
        super_resolve(model, lr, ref, window=64, stride=128)
    with pytest.raises(ValueError, match="stride"):
        super_resolve(model, lr, ref, window=64, stride=30)
    with pytest.raises(ValueError, match="precision"):
        super_resolve(model, lr, ref, precision="fp8")
    with pytest.raises(ValueError, match="cuda_graph"):
        super_resolve(Local(4), lr, ref, cuda_graph=True)
    with pytest.raises(TypeError, match="model"):
        super_resolve(nn.Identity(), lr, ref)
