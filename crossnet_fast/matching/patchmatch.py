"""PatchMatch search (Barnes et al. 2009) on dense patch features, shared by the model and the baselines.

``nearest_neighbour_flow`` matches the bicubic-upsampled LR image against the reference degraded
and upsampled the same way, and returns the field as a flow: CrossNet's ``flow_init="patchmatch"``
(models/crossnet.py) starts its full-resolution flow from it, and the patch-matching RefSR
baseline (baselines/patchmatch.py) transfers high frequencies along it. It lives here, below both,
so that the model never imports a baseline.

Everything is vectorised over pixels and batch in torch, so it runs on CPU or GPU; the
propagation step is the parallel (jump-flooding) variant: every pixel looks at neighbours 8, 4,
2 and 1 pixels away in four directions at once, instead of the sequential scan-line order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _patch_features(y: torch.Tensor, taps: int, dilation: int) -> torch.Tensor:
    """(N, 1, H, W) -> (N, taps*taps, H*W): each pixel's patch (replicate-padded border)."""
    r = (taps // 2) * dilation
    yp = F.pad(y, (r, r, r, r), mode="replicate")
    return F.unfold(yp, kernel_size=taps, dilation=dilation)


class _Matcher:
    """Holds the features and evaluates candidate fields. Coordinates are (N, H, W) long."""

    def __init__(self, fa: torch.Tensor, fb: torch.Tensor, hb: int, wb: int):
        n, f, _ = fa.shape
        # Pixel-major (N*H*W, F): a candidate's whole feature vector is one contiguous row, so
        # fetching it is a single row gather instead of F scattered ones.
        self.fa = fa.transpose(1, 2).reshape(-1, f).contiguous()
        self.fb = fb.transpose(1, 2).reshape(-1, f).contiguous()
        self.hb, self.wb = hb, wb
        self.base = (torch.arange(n, device=fb.device) * (hb * wb)).view(n, 1, 1)

    def cost(self, qy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
        """Mean squared feature difference for matches p -> (qy, qx); (N, H, W)."""
        d = self.fb.index_select(0, (qy * self.wb + qx + self.base).reshape(-1))
        # In place: these are the biggest temporaries of the algorithm, allocated ~100 times.
        d.sub_(self.fa).square_()
        return d.mean(dim=1).view(qy.shape)

    def clamp(self, qy, qx):
        return qy.clamp(0, self.hb - 1), qx.clamp(0, self.wb - 1)


def _improve(m: _Matcher, best, qy, qx):
    """Keep the candidate (qy, qx) where it is better; returns the new (cost, y, x)."""
    qy, qx = m.clamp(qy, qx)
    c = m.cost(qy, qx)
    better = c < best[0]
    return (torch.where(better, c, best[0]), torch.where(better, qy, best[1]), torch.where(better, qx, best[2]))


def _shift(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[y, x] = t[y - dy, x - dx] (edge-replicated) for (N, H, W) tensors."""
    n, h, w = t.shape
    ys = (torch.arange(h, device=t.device) - dy).clamp(0, h - 1)
    xs = (torch.arange(w, device=t.device) - dx).clamp(0, w - 1)
    return t[:, ys][:, :, xs]


def patchmatch(
    fa: torch.Tensor,
    fb: torch.Tensor,
    size_a,
    size_b,
    iterations: int = 4,
    generator: torch.Generator | None = None,
    init=None,
):
    """Dense approximate nearest-neighbour field from A's patches to B's.

    Args:
        fa: (N, F, Ha*Wa) patch features of A; fb: (N, F, Hb*Wb) of B (same F, same dtype).
        size_a, size_b: (Ha, Wa), (Hb, Wb).
        iterations: rounds of propagation + random search.
        generator: for the random initialisation and search (reproducibility).
        init: optional (qy, qx) (N, Ha, Wa) long starting field instead of a random one.

    Returns:
        (cost, qy, qx): (N, Ha, Wa) float mean squared patch difference and long coordinates in B.
    """
    (ha, wa), (hb, wb) = size_a, size_b
    n, dev = fa.shape[0], fa.device
    m = _Matcher(fa, fb, hb, wb)
    if init is None:
        qy = torch.randint(0, hb, (n, ha, wa), device=dev, generator=generator)
        qx = torch.randint(0, wb, (n, ha, wa), device=dev, generator=generator)
    else:
        qy, qx = m.clamp(*init)
    best = (m.cost(qy, qx), qy, qx)
    max_radius = max(hb, wb)
    for _ in range(iterations):
        # Propagation: a good match at p - d suggests its shifted match at p.
        for step in (8, 4, 2, 1):
            for dy, dx in ((step, 0), (-step, 0), (0, step), (0, -step)):
                best = _improve(m, best, _shift(best[1], dy, dx) + dy, _shift(best[2], dy, dx) + dx)
        # Random search around the current match at exponentially shrinking radii.
        radius = max_radius
        while radius >= 1:
            ry = torch.randint(-radius, radius + 1, (n, ha, wa), device=dev, generator=generator)
            rx = torch.randint(-radius, radius + 1, (n, ha, wa), device=dev, generator=generator)
            best = _improve(m, best, best[1] + ry, best[2] + rx)
            radius //= 2
    return best


def nearest_neighbour_flow(
    up: torch.Tensor,
    ref_low: torch.Tensor,
    scale: int,
    *,
    taps: int = 5,
    dilation: int | None = None,
    iterations: int = 4,
    seed: int = 0,
):
    """PatchMatch correspondences from an upsampled LR image to a degraded reference, as a flow.

    Matches luma patches of ``taps x taps`` samples ``dilation`` px apart (default
    ``max(1, scale // 2)``, about two LR pixels) of ``up`` against those of ``ref_low``.

    Args:
        up: (N, 3, H, W) float32 bicubic-upsampled LR image, values in [0, 1].
        ref_low: (N, 3, Hr, Wr) float32 reference degraded and upsampled like ``up``.
        scale: the LR-to-HR factor (sets the default dilation).
        iterations, seed: PatchMatch rounds and the seed of its random initialisation and search
            (a fixed seed makes the field a deterministic function of the images).

    Returns:
        (flow, cost): flow (N, 2, H, W) float32 integer displacements in HR pixels, channel 0 = x,
        1 = y (the match of pixel p is ``p + flow[p]``, CrossNet's backward-warp convention);
        cost (N, H, W) float32 mean squared luma difference of each match.
    """
    dilation = max(1, scale // 2) if dilation is None else int(dilation)
    (h, w), size_b = up.shape[-2:], tuple(ref_low.shape[-2:])
    fa = _patch_features(_luma(up), taps, dilation)
    fb = _patch_features(_luma(ref_low), taps, dilation)
    gen = torch.Generator(device=up.device)
    gen.manual_seed(int(seed))
    cost, qy, qx = patchmatch(fa, fb, (h, w), size_b, iterations, gen)
    ys = torch.arange(h, device=up.device).view(1, h, 1)
    xs = torch.arange(w, device=up.device).view(1, 1, w)
    flow = torch.stack(((qx - xs).float(), (qy - ys).float()), 1)
    return flow, cost


__all__ = ["patchmatch", "nearest_neighbour_flow"]
