"""Augmentations of a RefSR training sample, each driven by an explicit ``torch.Generator``.

Images are float tensors (3, H, W) (or (N, 3, H, W)) in [0, 1]. Everything random is drawn from the
generator passed in, never from a global RNG, so a sample is a pure function of its seed (exact
resume, identical data for any number of DataLoader workers or DDP ranks).

- Crops, parallax shifts, flips and photometric jitter (the paper's augmentations).
- Synthetic pairs: a reference made by warping a real HR image,
  ``ref(y, x) = hr(y + V_y(y, x), x + V_x(y, x))`` (backward warp, bilinear, border clamp) with
  ``V`` = a random smooth flow (Gaussian control points, bicubically interpolated) plus a constant
  parallax shift. The model then learns to undo a known, dense, smooth-plus-global displacement: a
  cheap pretraining task before the real view pairs (the final evaluation uses real pairs only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ops import backward_warp

# -- crops, shifts, flips, photometric jitter ------------------------------------------------------


def uniform(gen: torch.Generator, low: float, high: float, size=()) -> torch.Tensor:
    """float64 samples of U(low, high)."""
    return low + (high - low) * torch.rand(size, generator=gen, dtype=torch.float64)


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """An int of U{low..high} (both ends included)."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def random_crop_box(size, crop, gen: torch.Generator) -> tuple[int, int]:
    """(top, left) of a uniformly placed (h, w) crop inside an image of ``size`` (H, W)."""
    (H, W), (h, w) = size, crop
    if h > H or w > W:
        raise ValueError(f"crop {w}x{h} (width x height) does not fit an image of {W}x{H}")
    return randint(gen, 0, H - h), randint(gen, 0, W - w)


def shifted_crop(img: torch.Tensor, top: int, left: int, h: int, w: int, dx: int = 0, dy: int = 0) -> torch.Tensor:
    """The (h, w) window at (top, left) of ``img`` with its content moved by (dx, dy) pixels.

    ``out[..., y, x] = img[..., top + y - dy, left + x - dx]``: positive dx moves the content right,
    positive dy down. The window is read from the whole image, so a shift reveals real pixels;
    only coordinates outside the image are clamped to its border (edge replication).
    """
    H, W = img.shape[-2:]
    rows = (torch.arange(h) + (top - dy)).clamp_(0, H - 1)
    cols = (torch.arange(w) + (left - dx)).clamp_(0, W - 1)
    return img.index_select(-2, rows).index_select(-1, cols)


def draw_shift(gen: torch.Generator, max_px: int) -> tuple[int, int]:
    """(dx, dy), each U{-max_px..max_px} (the paper's parallax augmentation: 15 px)."""
    if max_px <= 0:
        return 0, 0
    return randint(gen, -max_px, max_px), randint(gen, -max_px, max_px)


def flip(tensors, hflip: bool, vflip: bool) -> list[torch.Tensor]:
    """Mirror every tensor the same way: ``hflip`` reverses columns (a real left-right mirror of all
    three channels, not the released trainer's R/B swap), ``vflip`` reverses rows."""
    dims = ([-1] if hflip else []) + ([-2] if vflip else [])
    return [t.flip(dims) if dims else t for t in tensors]


def draw_flips(gen: torch.Generator, hflip: bool, vflip: bool) -> tuple[bool, bool]:
    """Two fair coins (always drawn, so the random stream does not depend on the settings)."""
    h, v = (torch.rand(2, generator=gen) < 0.5).tolist()
    return bool(h and hflip), bool(v and vflip)


def draw_jitter(gen: torch.Generator, brightness_std: float, color, contrast: float) -> dict:
    """Photometric jitter parameters (paper values: N(0, 0.02), U(0.9, 1.1), U(-0.3, 0.3)).

    Returns ``{"brightness": float, "gains": (3,) float64, "contrast": float}``.
    """
    b = float(torch.randn((), generator=gen, dtype=torch.float64)) * brightness_std
    gains = uniform(gen, color[0], color[1], (3,))
    c = float(uniform(gen, -contrast, contrast))
    return {"brightness": b, "gains": gains, "contrast": c}


def gray_mean(img: torch.Tensor) -> float:
    """Mean BT.601 luma of a (3, H, W) image (the pivot of the contrast blend)."""
    w = img.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return float((img * w).sum(0).mean())


def apply_jitter(img: torch.Tensor, params: dict, pivot: float | None = None) -> torch.Tensor:
    """Per-channel gain, then blend with the gray mean (contrast), then add brightness; clamp to
    [0, 1]. ``pivot``: the gray mean to blend with (default: this image's, after the gains).

    The map is affine per channel, so jittering an HR image and its bicubic LR with the same
    ``pivot`` commutes with the (row-normalised, linear) degradation, up to the clamp.
    """
    out = img * params["gains"].to(img.dtype).view(3, 1, 1)
    if pivot is None:
        pivot = gray_mean(out)
    c = params["contrast"]
    out = out * (1.0 + c) - c * pivot + params["brightness"]
    return out.clamp_(0.0, 1.0)


# -- synthetic pairs -------------------------------------------------------------------------------


def smooth_flow(gen: torch.Generator, h: int, w: int, amplitude: float, grid: int) -> torch.Tensor:
    """(2, h, w) float32 flow in pixels: ``grid`` x ``grid`` N(0, amplitude) control points per
    channel, bicubically interpolated to (h, w) (corners aligned)."""
    ctrl = torch.randn((1, 2, max(grid, 2), max(grid, 2)), generator=gen) * float(amplitude)
    return F.interpolate(ctrl, size=(h, w), mode="bicubic", align_corners=True)[0]


def synthetic_reference(
    hr_full: torch.Tensor,
    top: int,
    left: int,
    h: int,
    w: int,
    gen: torch.Generator,
    flow_amplitude: float = 4.0,
    flow_grid: int = 4,
    parallax: int = 15,
    margin: int = 32,
) -> torch.Tensor:
    """A (3, h, w) reference for the (h, w) crop at (top, left) of ``hr_full`` (3, H, W).

    The warp samples a window ``margin`` px larger on every side (real pixels where the image has
    them, edge replication beyond), so displacements up to ``margin`` never read a clamped border.
    """
    m = int(margin)
    window = shifted_crop(hr_full, top - m, left - m, h + 2 * m, w + 2 * m)
    dx, dy = draw_shift(gen, parallax)
    flow = smooth_flow(gen, h + 2 * m, w + 2 * m, flow_amplitude, flow_grid)
    flow[0] += dx
    flow[1] += dy
    ref = backward_warp(window[None].float(), flow[None].contiguous(), padding="border")[0]
    return ref[:, m : m + h, m : m + w].clamp(0.0, 1.0).contiguous()


def random_synthetic_pair(hr_full: torch.Tensor, crop, gen: torch.Generator, **kw):
    """(hr, ref), each (3, h, w): a random crop of ``hr_full`` and its synthetic reference."""
    h, w = crop
    top, left = random_crop_box(hr_full.shape[-2:], crop, gen)
    hr = hr_full[:, top : top + h, left : left + w].contiguous()
    return hr, synthetic_reference(hr_full, top, left, h, w, gen, **kw)


__all__ = [
    "random_crop_box",
    "shifted_crop",
    "draw_shift",
    "flip",
    "draw_flips",
    "draw_jitter",
    "apply_jitter",
    "gray_mean",
    "uniform",
    "randint",
    "smooth_flow",
    "synthetic_reference",
    "random_synthetic_pair",
]
