"""Public op ``charbonnier``: the Charbonnier (smooth L1) loss, fused, fp32 accumulation."""

from __future__ import annotations

import torch

from .. import reference
from . import _validation
from ._dispatch import native_or_triton_ops, pick


def charbonnier(
    pred: torch.Tensor,
    target: torch.Tensor,
    eps: float = 1e-3,
    reduction: str = "mean",
    backend: str = "auto",
) -> torch.Tensor:
    """Charbonnier loss ``sqrt((pred - target)^2 + eps^2)``.

    Args:
        pred, target: float tensors of one shape, dtype and device, typically (N, 3, H, W) images
            in [0, 1].
        eps: smoothing constant in the units of the inputs (the paper's 1e-3).
        reduction: ``"mean"`` (over all elements), ``"sum"``, ``"batch"`` (sum / N, CrossNet's
            training loss) or ``"none"`` (elementwise).
        backend: ``"auto"``, ``"cuda"``, ``"triton"``, ``"cpu"`` or ``"reference"``.

    Returns:
        0-d tensor (``pred``'s shape for ``"none"``) of ``pred.dtype``, accumulated in fp32 (fp64
        for fp64). Differentiable w.r.t. both inputs; when a gradient will be needed the native
        kernels produce it in the same pass as the loss.
    """
    op = "charbonnier"
    _validation.check_loss_pair(op, pred, target, eps, reduction)
    chosen = pick(op, pred.device, backend)
    if chosen == "reference":
        return reference.charbonnier(pred, target, float(eps), reduction)
    compute_grad = torch.is_grad_enabled() and (pred.requires_grad or target.requires_grad)
    loss, _ = native_or_triton_ops(chosen).charbonnier(pred, target, float(eps), reduction, compute_grad)
    return loss
