"""Pixel <-> normalised coordinates, the one conversion every adapter in this package needs."""

from __future__ import annotations

import functools

import torch


def normalise(coords: torch.Tensor, w_span: float, h_span: float | None) -> torch.Tensor:
    """Absolute pixel coordinates -> ``grid_sample``'s normalised coordinates.

    ``g = 2 * p / span - 1`` per axis, so that with ``align_corners=True`` pixel 0 maps to -1 and
    pixel ``span`` to +1 (``span`` is ``size - 1`` for the callers here; BasicSR/MMagic clamp it to
    at least 1, RAFT does not, torchvision leaves y as it is for single-row images).

    Two ops, ``coords / (span / 2) + offset`` with cached (2,) tensors, instead of the eight of
    the usual unbind / scale / stack (RAFT normalises 48 times per forward, and those small ops
    cost about as much as its sampling; ``addcdiv`` was slower still). Bit-identical to
    ``2 * p / span - 1``: halving the span and doubling p are exact, so both divisions round the
    same real number; y passes through as ``y / 1 + (-0.0)``, which is y. A zero span gives
    inf/NaN, as the formula does. (fp32 and fp64; fp16/bf16, where span / 2 need not be exact,
    take the formula itself.)

    Args:
        coords: (N, Ho, Wo, 2) float tensor, (x, y) in pixels of the sampled image.
        w_span: divisor of the x coordinate (pixels).
        h_span: divisor of the y coordinate (pixels), or None to pass y through unchanged.

    Returns:
        (N, Ho, Wo, 2) tensor of ``coords.dtype``, differentiable in ``coords``.
    """
    if coords.dtype not in (torch.float32, torch.float64):
        # span / 2 need not be exact in fp16/bf16: keep the formula's roundings.
        x, y = coords.unbind(-1)
        return torch.stack((2 * x / w_span - 1, y if h_span is None else 2 * y / h_span - 1), -1)
    args = (float(w_span), None if h_span is None else float(h_span), coords.dtype, coords.device)
    offset, half_span = _affine(*args) if torch.compiler.is_compiling() else _cached_affine(*args)
    return torch.div(coords, half_span).add_(offset)


def _affine(w_span: float, h_span: float | None, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(2,) offset and half span of ``normalise`` (y: divisor 1, offset -0.0 when h_span is None)."""
    offset = torch.tensor([-1.0, -0.0 if h_span is None else -1.0], dtype=dtype, device=device)
    half_span = torch.tensor([w_span / 2, 1.0 if h_span is None else h_span / 2], dtype=dtype, device=device)
    return offset, half_span


@functools.lru_cache(maxsize=64)
def _cached_affine(
    w_span: float, h_span: float | None, dtype: torch.dtype, device
) -> tuple[torch.Tensor, torch.Tensor]:
    # Never written to: the ops only read them.
    return _affine(w_span, h_span, dtype, device)


def pixel_grid(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(H, W, 2) tensor of each pixel's own (x, y) coordinate, in pixels, of ``dtype``."""
    ys = torch.arange(h, dtype=dtype, device=device).view(h, 1).expand(h, w)
    xs = torch.arange(w, dtype=dtype, device=device).view(1, w).expand(h, w)
    return torch.stack((xs, ys), -1)
