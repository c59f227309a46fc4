"""A real steerable pyramid (Simoncelli & Freeman 1995), built in the frequency domain.

Each level splits the current lowpass image into ``orientations`` oriented bandpass bands
(angular response ``cos(theta - pi k / K)^(K-1)``, radial response a log-frequency raised cosine
one octave wide) and a lowpass image that is subsampled by two. Bands are not subsampled within a
level, so level ``l`` bands have the size of the image divided by ``2^l``: the same layout as
matlabPyrTools' ``buildSpyr(im, levels, 'sp5Filters')`` used by the MATLAB IFC code, although
the filters themselves are the ideal frequency-domain ones rather than the 9x9 spatial kernels.

The image is extended by mirror symmetry to twice its size before the FFT, so the transform sees
a symmetric (not periodic) border, and the bands are cropped back to the original region.
"""

from __future__ import annotations

import math

import torch


def _raised_cosine(r: torch.Tensor):
    """(high, low) masks with a transition over r in [1/2, 1] (high**2 + low**2 == 1)."""
    t = torch.log2(r.clamp_min(1e-12)).clamp(-1.0, 0.0)
    return torch.cos(0.5 * math.pi * t), torch.cos(0.5 * math.pi * (t + 1.0))


def _grid(h: int, w: int, dtype, device):
    """Centred (fftshift-ed) radius and angle, with Nyquist at radius 1."""
    fy = (torch.arange(h, dtype=dtype, device=device) - h // 2) / (h / 2.0)
    fx = (torch.arange(w, dtype=dtype, device=device) - w // 2) / (w / 2.0)
    yy, xx = torch.meshgrid(fy, fx, indexing="ij")
    return torch.sqrt(xx * xx + yy * yy), torch.atan2(yy, xx)


def steerable_pyramid(img: torch.Tensor, levels: int = 4, orientations: int = 6, keep=None):
    """Decompose a grayscale image.

    Args:
        img: (H, W) float64 tensor (any value range).
        levels: number of bandpass levels.
        orientations: number of orientations K (K = 6 is the order-5 'sp5' pyramid).
        keep: orientation indices to compute (default all); the others are returned as None,
            which saves their inverse FFTs.

    Returns:
        ``bands[level][k]``: (ceil(H / 2^level), ceil(W / 2^level)) float64 tensors, level 0 the
        finest; orientation k is tuned to frequency angle ``pi * k / K``. The highpass and lowpass
        residuals are not returned (IFC does not use them).
    """
    if img.dim() != 2:
        raise ValueError(f"img must be (H, W), got {tuple(img.shape)}")
    H, W = img.shape
    order = orientations - 1
    # Tight-frame constant of the angular functions (sum over k of their squares is 1).
    const = math.sqrt((2.0 ** (2 * order)) * math.factorial(order) ** 2 / (orientations * math.factorial(2 * order)))
    ext = torch.cat([img, img.flip(-1)], dim=-1)
    ext = torch.cat([ext, ext.flip(-2)], dim=-2)
    X = torch.fft.fftshift(torch.fft.fft2(ext))
    r, _ = _grid(*X.shape, img.dtype, img.device)
    _, low0 = _raised_cosine(r)
    X = X * low0  # drop the highpass residual
    rot = (-1j) ** order  # makes the odd-order bands real
    bands = []
    for lev in range(levels):
        h, w = X.shape
        r, theta = _grid(h, w, img.dtype, img.device)
        high, low = _raised_cosine(2.0 * r)
        oh, ow = -(-H // 2**lev), -(-W // 2**lev)
        level_bands = []
        for k in range(orientations):
            if keep is not None and k not in keep:
                level_bands.append(None)
                continue
            ang = const * torch.cos(theta - math.pi * k / orientations) ** order
            band = torch.fft.ifft2(torch.fft.ifftshift(X * (high * ang * rot))).real
            level_bands.append(band[:oh, :ow])
        bands.append(level_bands)
        # Lowpass, then subsample by two by keeping the central half of the spectrum.
        X = X * low
        nh, nw = -(-h // 2), -(-w // 2)
        y0, x0 = h // 2 - nh // 2, w // 2 - nw // 2
        X = X[y0 : y0 + nh, x0 : x0 + nw] * (nh * nw) / (h * w)
    return bands
