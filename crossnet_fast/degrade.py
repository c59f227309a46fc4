"""Degradation (HR -> LR) and MATLAB-style bicubic resizing, in torch, batched, CPU or GPU.

The RefSR literature makes LR images with MATLAB's ``imresize(hr, 1/s, 'bicubic')``: a cubic
convolution kernel (Keys, a = -0.5) that, when shrinking, is stretched by the scale factor
(antialiasing), normalised to sum to one per output pixel, with the image extended by symmetric
(edge-repeating) reflection. This module reproduces that exactly as a pair of dense matrices
(one per axis), so a resize is two matrix products: cheap at image sizes and batched for free.

Public functions:

- ``imresize(x, scale=None, size=None)``: MATLAB ``imresize`` (bicubic, antialiased when shrinking);
- ``degrade(hr, scale, method="bicubic", sigma=None)``: HR -> LR, output ``ceil(H/s) x ceil(W/s)``;
- ``upsample_bicubic_matlab(lr, scale, size=None)``: MATLAB-style bicubic upsampling (the "bicubic"
  baseline), optionally cropped to the HR size. (PyTorch's bicubic, which the model uses inside, is
  :func:`crossnet_fast.models.sisr.upsample_bicubic_torch`.)
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ._deprecated import renamed

__all__ = [
    "imresize",
    "degrade",
    "upsample_bicubic_matlab",
    "upsample_bicubic",
    "back_project",
    "resize_matrix",
    "gaussian_kernel1d",
]


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``); support [-2, 2]."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = 1.5 * ax3 - 2.5 * ax2 + 1.0
    outer = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return torch.where(ax <= 1, inner, torch.where(ax <= 2, outer, torch.zeros_like(ax)))


def _mirror(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Map 0-based indices outside [0, n) into it by symmetric reflection that repeats the edge
    sample (MATLAB ``imresize``'s ``[1:n, n:-1:1]`` periodic extension)."""
    period = 2 * n
    m = torch.remainder(idx, period)
    return torch.where(m < n, m, period - 1 - m)


@functools.lru_cache(maxsize=64)
def _resize_matrix_cpu(in_len: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    # Built once per (size, scale) in float64 on the CPU; callers move/cast the small result.
    shrink = scale < 1 and antialias
    kernel_width = 4.0 / scale if shrink else 4.0
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    # Output pixel x (1-based) sits at input coordinate u: pixel centres aligned, MATLAB's mapping.
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    w = w / w.sum(dim=1, keepdim=True)
    src = _mirror(idx.long() - 1, in_len)
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, src, w)
    return mat


def resize_matrix(
    in_len: int, out_len: int, scale: float, antialias: bool = True, device=None, dtype=torch.float32
) -> torch.Tensor:
    """The (out_len, in_len) matrix ``A`` such that ``A @ v`` is MATLAB's bicubic resize of a
    length-``in_len`` signal ``v`` by ``scale`` (> 0; < 1 shrinks). Rows sum to 1."""
    if in_len < 1 or out_len < 1:
        raise ValueError(f"in_len and out_len must be >= 1, got {in_len}, {out_len}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return _resize_matrix_cpu(int(in_len), int(out_len), float(scale), bool(antialias)).to(device=device, dtype=dtype)


def _check_image(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (..., H, W), got {tuple(x.shape)}")
    return x


def imresize(
    x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None, antialias: bool = True
) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` on the last two dimensions.

    Args:
        x: (..., H, W) floating tensor (any leading batch/channel dims), any device.
        scale: resize factor (> 1 enlarges, < 1 shrinks); output size is ``ceil(H*scale)``.
        size: (out_H, out_W) instead of ``scale``; the per-axis scale is then out/in, as MATLAB.
        antialias: stretch the kernel when shrinking (MATLAB's default, True).

    Returns:
        (..., out_H, out_W) tensor, same dtype and device as ``x``. Values are not clamped
        (bicubic overshoots slightly at edges, as in MATLAB before its uint8 rounding).
    """
    _check_image(x, "x")
    h, w = x.shape[-2:]
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    if scale is not None:
        if not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        sh = sw = float(scale)
        oh, ow = int(math.ceil(h * sh - 1e-9)), int(math.ceil(w * sw - 1e-9))
    else:
        oh, ow = (int(v) for v in size)
        if oh < 1 or ow < 1:
            raise ValueError(f"size must be positive, got {size}")
        sh, sw = oh / h, ow / w
    # Work in at least float32; float16/bfloat16 inputs lose too much in the accumulation.
    work = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    a_h = resize_matrix(h, oh, sh, antialias, device=x.device, dtype=work)
    a_w = resize_matrix(w, ow, sw, antialias, device=x.device, dtype=work)
    y = torch.matmul(a_h, x.to(work))
    y = torch.matmul(y, a_w.transpose(0, 1))
    return y.to(x.dtype)


def gaussian_kernel1d(sigma: float, radius: int | None = None, dtype=torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian, shape (2*radius+1,), radius ``ceil(3*sigma)`` by default."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = int(math.ceil(3.0 * sigma)) if radius is None else int(radius)
    t = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _gaussian_degrade(hr: torch.Tensor, scale: int, sigma: float | None) -> torch.Tensor:
    sigma = 0.5 * scale if sigma is None else float(sigma)  # ~the antialias bandwidth of bicubic
    k = gaussian_kernel1d(sigma).to(device=hr.device, dtype=hr.dtype)
    r = (k.numel() - 1) // 2
    lead = hr.shape[:-2]
    h, w = hr.shape[-2:]
    x = hr.reshape(-1, 1, h, w)
    # Symmetric border (edge repeated), like the bicubic path, via mirrored index gathers so that
    # any radius works, even one larger than the image.
    ih = _mirror(torch.arange(-r, h + r, device=hr.device), h)
    iw = _mirror(torch.arange(-r, w + r, device=hr.device), w)
    x = x[:, :, ih][:, :, :, iw]
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    # Sample the pixel nearest the centre of each s x s block, so LR pixel centres line up with
    # MATLAB's mapping (exact for odd s, half a pixel early for even s).
    off = (scale - 1) // 2
    oh, ow = -(-h // scale), -(-w // scale)
    rows = torch.clamp(torch.arange(oh, device=hr.device) * scale + off, max=h - 1)
    cols = torch.clamp(torch.arange(ow, device=hr.device) * scale + off, max=w - 1)
    x = x[:, :, rows][:, :, :, cols]
    return x.reshape(*lead, oh, ow)


def degrade(hr: torch.Tensor, scale: int, method: str = "bicubic", sigma: float | None = None) -> torch.Tensor:
    """Make the LR input from an HR image.

    Args:
        hr: (N, C, H, W) or (C, H, W) float tensor in [0, 1] (any float dtype, any device).
        scale: integer downsampling factor >= 1.
        method: ``"bicubic"``: MATLAB ``imresize(hr, 1/scale, 'bicubic')`` (antialiased);
            ``"gaussian"``: Gaussian blur (std ``sigma`` HR pixels, default ``scale/2``, symmetric
            border) then decimation by ``scale``.
        sigma: Gaussian std in HR pixels (``"gaussian"`` only).

    Returns:
        (N, C, ceil(H/scale), ceil(W/scale)) (or without N), same dtype/device, clamped to [0, 1].
    """
    _check_image(hr, "hr")
    if hr.dim() not in (3, 4):
        raise ValueError(f"hr must have shape (N, C, H, W) or (C, H, W), got {tuple(hr.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    if method == "bicubic":
        lr = imresize(hr, 1.0 / scale) if scale > 1 else hr.clone()
    elif method == "gaussian":
        lr = _gaussian_degrade(hr, scale, sigma)
    else:
        raise ValueError(f"method must be 'bicubic' or 'gaussian', got {method!r}")
    # Real LR images are stored as 8-bit images: values outside [0, 1] cannot exist.
    return lr.clamp(0.0, 1.0)


def upsample_bicubic_matlab(
    lr: torch.Tensor, scale: int, size: tuple[int, int] | None = None, clamp: bool = True
) -> torch.Tensor:
    """MATLAB ``imresize(lr, scale, 'bicubic')`` (Keys a = -0.5), then a top-left crop to ``size``.

    Args:
        lr: (..., h, w) float tensor in [0, 1].
        scale: integer factor >= 1.
        size: HR (H, W) to crop to (each <= h*scale); MATLAB's pixel-centre mapping is anchored
            at the top-left, so cropping the bottom/right matches an HR of that size.
        clamp: clamp the result to [0, 1].

    Returns:
        (..., H, W) tensor (H, W = size, or h*scale, w*scale), same dtype/device as ``lr``.
    """
    _check_image(lr, "lr")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    up = imresize(lr, float(scale)) if scale > 1 else lr.clone()
    if size is not None:
        H, W = (int(v) for v in size)
        if H > up.shape[-2] or W > up.shape[-1] or H < 1 or W < 1:
            raise ValueError(f"size {tuple(size)} does not fit the upsampled {tuple(up.shape[-2:])}")
        up = up[..., :H, :W]
    return up.clamp(0.0, 1.0) if clamp else up


upsample_bicubic = renamed(upsample_bicubic_matlab, "crossnet_fast.degrade.upsample_bicubic")


def back_project(sr: torch.Tensor, lr: torch.Tensor, scale: int, rounds: int, method: str = "bicubic") -> torch.Tensor:
    """Iterative back-projection: ``rounds`` times ``sr += upsample_bicubic_matlab(lr - degrade(clamp(sr)))``.

    Pushes an estimate towards consistency with the observed LR image (the last step of the
    patch-matching baseline and CrossNet's ``backprojection`` option). Differentiable.

    Args:
        sr: (N, 3, H, W) float estimate, values about [0, 1] (clamped before degrading, so
            out-of-range values do not feed back).
        lr: (N, 3, H/scale, W/scale) float observed LR image in [0, 1].
        scale: integer factor; method: the ``degrade`` method that made ``lr``.

    Returns:
        (N, 3, H, W) tensor of ``sr.dtype`` (the residual is computed in fp32; not clamped).
    """
    for _ in range(rounds):
        residual = lr.float() - degrade(sr.float().clamp(0, 1), scale, method=method)
        sr = sr + upsample_bicubic_matlab(residual, scale, clamp=False).to(sr.dtype)
    return sr
