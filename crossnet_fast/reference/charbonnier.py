"""Reference Charbonnier loss."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "batch", "none")


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3, reduction: str = "mean"):
    """Charbonnier penalty ``sqrt((pred - target)^2 + eps^2)``.

    Args:
        pred, target: tensors of one shape (N, ...), float.
        eps: smoothing constant (the paper's 1e-3), in the units of the inputs.
        reduction: ``"mean"`` over all elements, ``"sum"``, ``"batch"`` (sum / N, the paper's) or
            ``"none"`` (elementwise, same shape as ``pred``).

    Returns:
        0-d tensor (or ``pred``-shaped for ``"none"``) of ``pred.dtype``, accumulated in fp32
        (fp64 for fp64 inputs).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    compute = torch.float64 if pred.dtype == torch.float64 else torch.float32
    d = pred.to(compute) - target.to(compute)
    rho = torch.hypot(d, torch.tensor(eps, dtype=compute))  # sqrt(d^2 + eps^2), no overflow of d^2
    if reduction == "none":
        return rho.to(pred.dtype)
    total = rho.sum()
    if reduction == "mean":
        total = total / max(rho.numel(), 1)
    elif reduction == "batch":
        total = total / max(pred.shape[0], 1)
    return total.to(pred.dtype)
