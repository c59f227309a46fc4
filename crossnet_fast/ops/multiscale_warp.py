"""Public warp ops: ``backward_warp`` (one scale) and ``multiscale_warp`` (a pyramid, one launch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import reference
from . import _validation
from ._dispatch import native_or_triton_ops, pick


def multiscale_warp(
    feats: Sequence[torch.Tensor],
    flows: Sequence[torch.Tensor],
    padding: str = "border",
    backend: str = "auto",
) -> list[torch.Tensor]:
    """Backward-warp every scale of a feature pyramid with its own flow (fused on CUDA).

    Args:
        feats: list of S tensors (N, C_s, H_s, W_s), float16/bfloat16/float32 (float64 on CPU), any
            layout; one dtype and device for all scales.
        flows: list of S tensors (N, 2, H_s, W_s), float, displacement in pixels of scale s;
            channel 0 = x (columns), channel 1 = y (rows). May differ in dtype from ``feats``
            (an fp32 flow with bf16 features is the usual mixed-precision case).
        padding: ``"border"`` (clamp the sample point into the image, CrossNet's behaviour) or
            ``"zeros"`` (taps outside the image contribute 0, like ``grid_sample``'s default).
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        list of S tensors (N, C_s, H_s, W_s) with ``feats[s].dtype`` and layout:
        ``out[s][n, c, y, x] = bilinear(feats[s][n, c], x + flows[s][n, 0, y, x], y + flows[s][n, 1, y, x])``
        with pixel centres at integer coordinates (``align_corners=True``). Differentiable
        w.r.t. ``feats`` and ``flows``.
    """
    op = "multiscale_warp"
    feats, flows = _validation.check_pyramid(op, feats, flows)
    _validation.check_padding(op, padding)
    if not feats:
        return []
    chosen = pick(op, feats[0].device, backend)
    if chosen == "reference":
        return reference.multiscale_warp(feats, flows, padding)
    return list(native_or_triton_ops(chosen).multiscale_warp(feats, flows, padding))


def backward_warp(
    feat: torch.Tensor, flow: torch.Tensor, padding: str = "border", backend: str = "auto"
) -> torch.Tensor:
    """Backward-warp one feature map: ``out(y, x) = feat(y + flow_y, x + flow_x)``, bilinear.

    A drop-in replacement for the ``grid_sample`` flow warp of optical-flow and RefSR models
    (``grid_sample(feat, grid_from(flow), align_corners=True, padding_mode=padding)``), with the
    flow kept in pixels.

    Args:
        feat: (N, C, H, W) float tensor, any layout.
        flow: (N, 2, H, W) float tensor, displacement in pixels; channel 0 = x, channel 1 = y.
        padding: ``"border"`` or ``"zeros"`` (see :func:`multiscale_warp`).
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        (N, C, H, W) tensor of ``feat.dtype``, differentiable w.r.t. ``feat`` and ``flow``.
    """
    op = "backward_warp"
    _validation.check_warp_pair(op, feat, flow)
    _validation.check_padding(op, padding)
    chosen = pick("multiscale_warp", feat.device, backend)
    if chosen == "reference":
        return reference.backward_warp(feat, flow, padding)
    return native_or_triton_ops(chosen).multiscale_warp([feat], [flow], padding)[0]
