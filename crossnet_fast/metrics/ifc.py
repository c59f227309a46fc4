"""Information Fidelity Criterion (Sheikh, Bovik & de Veciana, IEEE TIP 2005).

Model: in each wavelet subband, the reference coefficients are a Gaussian scale mixture (GSM):
MxM blocks C = s U with U ~ N(0, C_U) and a scalar field s; the distorted coefficients are
D = g C + V with a locally constant gain g and additive Gaussian noise of variance sigma_v^2.
IFC is the mutual information I(C; D | s) summed over blocks and subbands:

    IFC = sum_subbands sum_blocks sum_j log2(1 + g^2 s^2 lambda_j / sigma_v^2)

with lambda_j the eigenvalues of C_U. Parameters follow the authors' MATLAB ``ifcvec``: M = 3;
4 levels x 6 orientations, of which orientations 0 and 3 of every level are used; g and sigma_v^2
by least squares in a (2^(4-l)+1)^2 window (l = 0 finest) at block centres, with symmetric
(reflect-without-repeat) borders; C_U from all overlapping blocks; s^2 = x^T C_U^-1 x / M^2 on
non-overlapping blocks; blocks near the subband border dropped; images on a 0-255 scale; the sum
divided by the number of pixels (as the SR literature's copy of ``ifcvec`` does).

The pyramid is a frequency-domain steerable pyramid (see ``_steerable``) rather than the 9x9
'sp5Filters' kernels, so values are close to, not identical with, the MATLAB code's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import as_batch, to_channel
from ._steerable import steerable_pyramid

BLOCK = 3  # M: GSM vector is an MxM block
LEVELS = 4
ORIENTATIONS = 6
USED_ORIENTATIONS = (0, 3)
_TOL = 1e-15  # variance treated as zero
_NOISE_FLOOR = 1e-10  # added to sigma_v^2 so undistorted blocks give finite information


def _mirror101(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect indices about the edge samples without repeating them (… 2 1 | 0 1 2 … n-1 | n-2 …)."""
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * n - 2
    m = torch.remainder(idx, period)
    return torch.where(m < n, m, period - m)


def _block_sums(x: torch.Tensor, win: int, step: int) -> torch.Tensor:
    """Sums of x over win x win windows centred on the block centres (1 + step*i, 1 + step*j).

    x: (h, w) with h, w multiples of ``step``; returns (h/step, w/step)."""
    h, w = x.shape
    p = win // 2
    rows = _mirror101(torch.arange(-p, h + p, device=x.device), h)
    cols = _mirror101(torch.arange(-p, w + p, device=x.device), w)
    xp = x[rows][:, cols][1:, 1:]
    ker = torch.ones(1, 1, win, win, dtype=x.dtype, device=x.device)
    return F.conv2d(xp[None, None], ker, stride=step)[0, 0]


def distortion_channel(c: torch.Tensor, d: torch.Tensor, win: int, m: int = BLOCK):
    """Gain g and noise variance sigma_v^2 of D = g C + V per MxM block.

    c, d: (h, w) reference and distorted subband, float64; returns two (h//m, w//m) tensors."""
    h, w = (c.shape[0] // m) * m, (c.shape[1] // m) * m
    c, d = c[:h, :w], d[:h, :w]
    n = float(win * win)
    sx, sy = _block_sums(c, win, m), _block_sums(d, win, m)
    mx, my = sx / n, sy / n
    cov = _block_sums(c * d, win, m) - n * mx * my
    ssx = (_block_sums(c * c, win, m) - n * mx * mx).clamp_min(0.0)
    ssy = (_block_sums(d * d, win, m) - n * my * my).clamp_min(0.0)
    g = cov / (ssx + _TOL)
    vv = (ssy - g * cov) / n
    # Degenerate cases, in ifcvec's order: flat reference -> no gain, all distorted energy is
    # noise; flat distorted -> nothing got through; negative gain -> treated as pure noise.
    flat_c = ssx < _TOL
    g = torch.where(flat_c, torch.zeros_like(g), g)
    vv = torch.where(flat_c, ssy, vv)
    flat_d = ssy < _TOL
    g = torch.where(flat_d, torch.zeros_like(g), g)
    vv = torch.where(flat_d, torch.zeros_like(vv), vv)
    neg = g < 0
    vv = torch.where(neg, ssy, vv)
    g = torch.where(neg, torch.zeros_like(g), g)
    return g, vv.clamp_min(_TOL)


def gsm_reference(c: torch.Tensor, m: int = BLOCK):
    """GSM parameters of a reference subband.

    c: (h, w) float64. Returns ``s2`` (h//m, w//m) (the squared multiplier per non-overlapping
    block), ``lam`` (m*m,) eigenvalues of C_U, and ``cu`` (m*m, m*m)."""
    h, w = (c.shape[0] // m) * m, (c.shape[1] // m) * m
    c = c[:h, :w]
    # All overlapping blocks as m*m-vectors, for the covariance.
    allv = F.unfold(c[None, None], kernel_size=m)[0]  # (m*m, n_all)
    allv = allv - allv.mean(dim=1, keepdim=True)
    cu = allv @ allv.T / allv.shape[1]
    blocks = F.unfold(c[None, None], kernel_size=m, stride=m)[0]  # (m*m, n_blocks)
    s2 = (blocks * torch.linalg.solve(cu, blocks)).sum(dim=0) / (m * m)
    lam = torch.linalg.eigvalsh(cu)
    return s2.reshape(h // m, w // m), lam, cu


def subband_information(c: torch.Tensor, d: torch.Tensor, win: int, m: int = BLOCK) -> torch.Tensor:
    """Information (bits) that distorted subband ``d`` carries about reference subband ``c``:
    ``sum_blocks sum_j log2(1 + g^2 s^2 lambda_j / (sigma_v^2 + 1e-10))`` over blocks at least
    ``ceil((win-1)/2 / m)`` blocks from the border. c, d: (h, w) float64; returns a 0-d tensor."""
    g, vv = distortion_channel(c, d, win, m)
    s2, lam, _ = gsm_reference(c, m)
    off = -(-((win - 1) // 2) // m)
    if off:
        g, vv, s2 = (t[off:-off, off:-off] for t in (g, vv, s2))
    snr = (g * g * s2 / (vv + _NOISE_FLOOR))[..., None] * lam.clamp_min(0.0)
    return torch.log2(1.0 + snr).sum()


def ifc(pred: torch.Tensor, target: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """IFC of ``pred`` (the distorted/super-resolved image) against ``target`` (the reference),
    on grayscale (MATLAB rgb2gray), in bits per pixel. Higher is better; not symmetric.

    Args:
        pred, target: (N, 3, H, W), (3, H, W), (N, 1, H, W) or (H, W) float tensors in [0, 1],
            H, W >= 32.
        reduction: ``"none"`` -> (N,) float64; ``"mean"`` -> scalar.
    """
    p, t = as_batch(pred, target)
    p, t = to_channel(p, "gray") * 255.0, to_channel(t, "gray") * 255.0
    H, W = p.shape[-2:]
    if min(H, W) < 32:
        raise ValueError(f"ifc needs images of at least 32x32 pixels, got {H}x{W}")
    out = []
    for i in range(p.shape[0]):
        bt = steerable_pyramid(t[i, 0], LEVELS, ORIENTATIONS, USED_ORIENTATIONS)
        bp = steerable_pyramid(p[i, 0], LEVELS, ORIENTATIONS, USED_ORIENTATIONS)
        total = torch.zeros((), dtype=torch.float64, device=p.device)
        for lev in range(LEVELS):
            win = 2 ** (LEVELS - lev) + 1  # finer subbands use wider windows
            for k in USED_ORIENTATIONS:
                total = total + subband_information(bt[lev][k], bp[lev][k], win)
        out.append(total / (H * W))
    res = torch.stack(out)
    if reduction == "mean":
        return res.mean()
    if reduction != "none":
        raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")
    return res
