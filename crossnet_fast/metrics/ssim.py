"""Structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import as_batch, crop_border, to_channel

_SIGMA = 1.5
_RADIUS = int(3.5 * _SIGMA + 0.5)  # 11-tap window, scikit-image's truncate=3.5


def _window(dtype, device) -> torch.Tensor:
    t = torch.arange(-_RADIUS, _RADIUS + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (t / _SIGMA) ** 2)
    return g / g.sum()


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    channel: str = "rgb",
    crop: int = 0,
    data_range: float = 1.0,
    reduction: str = "none",
) -> torch.Tensor:
    """Mean SSIM per image: Gaussian window (sigma 1.5, 11 taps), K1 = 0.01, K2 = 0.03, population
    (co)variances, averaged over the valid window positions and over channels.

    Args:
        pred, target: (N, C, H, W), (C, H, W) or (H, W) float tensors in [0, 1]; after ``crop``,
            H and W must be >= 11.
        channel: ``"rgb"`` (the paper's protocol), ``"y"`` or ``"gray"``.
        crop: pixels removed from each border first.
        data_range: peak value.
        reduction: ``"none"`` -> (N,) float64; ``"mean"`` -> scalar.

    Equals ``skimage.metrics.structural_similarity(p, t, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1)``: scikit-image filters with
    reflected borders and then drops the 5 border pixels, which are exactly the positions where the
    window would touch the border, so a 'valid' convolution gives the same numbers.
    """
    p, t = as_batch(pred, target)
    p, t = crop_border(to_channel(p, channel), crop), crop_border(to_channel(t, channel), crop)
    n, c, h, w = p.shape
    if min(h, w) < 2 * _RADIUS + 1:
        raise ValueError(f"ssim needs images of at least {2 * _RADIUS + 1}x{2 * _RADIUS + 1} pixels, got {h}x{w}")
    g = _window(p.dtype, p.device)
    kh, kw = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(x):  # separable, per channel, valid region only
        return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p * mu_p
    var_t = blur(t * t) - mu_t * mu_t
    cov = blur(p * t) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    out = s.flatten(2).mean(dim=2).mean(dim=1)
    if reduction == "mean":
        return out.mean()
    if reduction != "none":
        raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")
    return out
