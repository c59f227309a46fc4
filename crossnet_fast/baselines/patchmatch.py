"""Patch-based reference SR with PatchMatch (Boominathan, Mitra & Veeraraghavan, ICCP 2014).

For every pixel of the bicubic-upsampled LR image, find the reference patch whose *low-frequency*
content (the reference degraded and upsampled exactly like the LR) matches best, using the
PatchMatch algorithm (Barnes et al. 2009: random initialisation, propagation, random search) on a
dense nearest-neighbour field; then add the matched patches' *high frequencies* (reference minus
its low-frequency version) to the upsampled LR, averaging overlapping patches and trusting a match
less the worse it fits. An optional iterative back-projection makes the result consistent with
the LR input.

Defaults were tuned on ../shared/data (scripts/eval_baselines.py; x4 gains over bicubic on a
6-scene subset): match-quality scale tau 0.02 -> 0.05 (+1.8 -> +2.4 dB: a stricter weight throws
away good detail), 2 back-projection rounds (+1.3 dB without), 4 PatchMatch iterations (+0.4 dB
over 2), pasted patch scale + 1 (+0.5 dB over 3).

The search itself (``patchmatch``, ``nearest_neighbour_flow``) lives in crossnet_fast/matching/
patchmatch.py, shared with the model (CrossNet's ``flow_init="patchmatch"``); it is re-exported
here under the names this module has always exposed.
"""

from __future__ import annotations

import torch

from ..degrade import back_project, degrade, upsample_bicubic_matlab

# Re-exported: the public names (and the private helpers tests use) stay importable from here.
from ..matching.patchmatch import _luma, _patch_features, nearest_neighbour_flow, patchmatch  # noqa: F401


def _transfer(hf: torch.Tensor, qy, qx, weight: torch.Tensor, patch: int) -> torch.Tensor:
    """Blend overlapping high-frequency patches.

    Pixel p's match q pastes ``hf[q + d]`` at ``p + d`` for every d in a ``patch`` x ``patch``
    window, weighted by ``weight[p]``; every output pixel is divided by the number of patches
    covering it (not by the weight sum), so poorly matched regions fade towards zero detail.
    hf: (N, 3, Hb, Wb); qy, qx, weight: (N, H, W). Returns (N, 3, H, W).
    """
    n, c, hb, wb = hf.shape
    _, h, w = qy.shape
    r = patch // 2
    acc = hf.new_zeros(n, c, h + 2 * r, w + 2 * r)
    cnt = hf.new_zeros(1, 1, h + 2 * r, w + 2 * r)
    flat_hf = hf.reshape(n, c, hb * wb)
    wgt = weight.unsqueeze(1)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            sy, sx = (qy + dy).clamp(0, hb - 1), (qx + dx).clamp(0, wb - 1)
            idx = (sy * wb + sx).view(n, 1, h * w).expand(-1, c, -1)
            vals = torch.gather(flat_hf, 2, idx).view(n, c, h, w)
            acc[:, :, r + dy : r + dy + h, r + dx : r + dx + w] += vals * wgt
            cnt[:, :, r + dy : r + dy + h, r + dx : r + dx + w] += 1.0
    return (acc / cnt)[:, :, r : r + h, r : r + w]


def patchmatch_sr(
    lr: torch.Tensor,
    ref: torch.Tensor,
    scale: int,
    *,
    taps: int = 5,
    dilation: int | None = None,
    patch: int | None = None,
    iterations: int = 4,
    tau: float = 0.05,
    backprojection: int = 2,
    degradation: str = "bicubic",
    size: tuple[int, int] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Reference-based SR by PatchMatch high-frequency transfer.

    Args:
        lr: (N, 3, h, w) or (3, h, w) float tensor in [0, 1]: the low-resolution input.
        ref: (N, 3, Hr, Wr) or (3, Hr, Wr) float tensor in [0, 1]: the high-resolution reference
            (another view of the scene; any size, same device and batch).
        scale: integer upscaling factor >= 2.
        taps: matching patch is ``taps x taps`` samples of the luma ...
        dilation: ... spaced ``dilation`` HR pixels apart (default ``max(1, scale // 2)``, so the
            patch spans about two LR pixels: smaller patches of a blurry image are ambiguous).
        patch: side of the high-frequency patch pasted per pixel (default ``scale + 1``).
        iterations: PatchMatch rounds.
        tau: match-quality scale: a match with RMS low-frequency error e gets weight
            ``exp(-(e / tau)^2)`` (values in [0, 1] units).
        backprojection: rounds of iterative back-projection onto the LR afterwards (0: none).
        degradation: how the reference's low frequencies are made: the same ``degrade`` method
            that made the LR ("bicubic" or "gaussian").
        size: optional (H, W) to crop the (h*scale, w*scale) output to.
        seed: seed of the random field initialisation and search.

    Returns:
        (N, 3, H, W) (or (3, H, W)) float tensor in [0, 1], dtype/device of ``lr``.
    """
    for t, name in ((lr, "lr"), (ref, "ref")):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got {t.dtype}")
        if t.dim() not in (3, 4) or t.shape[-3] != 3:
            raise ValueError(f"{name} must have shape (N, 3, H, W) or (3, H, W), got {tuple(t.shape)}")
    if lr.dim() != ref.dim():
        raise ValueError(f"lr and ref must both be batched or both not, got {tuple(lr.shape)} and {tuple(ref.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
    unbatched = lr.dim() == 3
    if unbatched:
        lr, ref = lr[None], ref[None]
    if lr.shape[0] != ref.shape[0]:
        raise ValueError(f"lr and ref batch sizes differ: {lr.shape[0]} vs {ref.shape[0]}")
    if ref.device != lr.device:
        raise ValueError(f"lr and ref must be on the same device, got {lr.device} and {ref.device}")
    if min(ref.shape[-2:]) < scale:
        raise ValueError(f"ref {tuple(ref.shape[-2:])} is smaller than one LR pixel at x{scale}")
    out_dtype = lr.dtype
    lr, ref = lr.float(), ref.to(lr.device, torch.float32)
    dilation = max(1, scale // 2) if dilation is None else int(dilation)
    patch = scale + 1 if patch is None else int(patch)
    if taps < 1 or dilation < 1 or patch < 1 or iterations < 0:
        raise ValueError("taps, dilation and patch must be >= 1 and iterations >= 0")

    up = upsample_bicubic_matlab(lr, scale, clamp=False)
    H, W = up.shape[-2:]
    # The reference's low frequencies, made exactly like the LR's, so the two are comparable.
    ref_low = upsample_bicubic_matlab(degrade(ref, scale, method=degradation), scale, size=ref.shape[-2:], clamp=False)
    ref_high = ref - ref_low
    flow, cost = nearest_neighbour_flow(
        up, ref_low, scale, taps=taps, dilation=dilation, iterations=iterations, seed=seed
    )
    qx = flow[:, 0].long() + torch.arange(W, device=lr.device).view(1, 1, W)
    qy = flow[:, 1].long() + torch.arange(H, device=lr.device).view(1, H, 1)
    weight = torch.exp(-cost / (tau * tau))
    sr = up + _transfer(ref_high, qy, qx, weight, patch)
    sr = back_project(sr, lr, scale, backprojection, method=degradation).clamp(0.0, 1.0)
    if size is not None:
        h_out, w_out = (int(v) for v in size)
        if not (0 < h_out <= H and 0 < w_out <= W):
            raise ValueError(f"size {tuple(size)} does not fit the output {(H, W)}")
        sr = sr[..., :h_out, :w_out]
    sr = sr.to(out_dtype)
    return sr[0] if unbatched else sr


__all__ = ["nearest_neighbour_flow", "patchmatch", "patchmatch_sr"]
