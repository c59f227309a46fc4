"""Peak signal-to-noise ratio."""

from __future__ import annotations

import torch

from ._common import as_batch, crop_border, to_channel


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    channel: str = "rgb",
    crop: int = 0,
    data_range: float = 1.0,
    reduction: str = "none",
) -> torch.Tensor:
    """PSNR in dB, ``10 log10(data_range^2 / MSE)``, MSE over all pixels and channels of an image.

    Args:
        pred, target: (N, C, H, W), (C, H, W) or (H, W) float tensors with values in [0, 1].
        channel: ``"rgb"`` (the paper's protocol), ``"y"`` (BT.601 luma) or ``"gray"``.
        crop: pixels removed from each border before measuring.
        data_range: peak value (1.0 for images in [0, 1]).
        reduction: ``"none"`` -> one value per image, (N,) float64; ``"mean"`` -> scalar.

    Identical images give ``inf``. Same as ``skimage.metrics.peak_signal_noise_ratio`` with
    ``data_range=1`` on the (H, W, C) array.
    """
    p, t = as_batch(pred, target)
    p, t = crop_border(to_channel(p, channel), crop), crop_border(to_channel(t, channel), crop)
    mse = ((p - t) ** 2).flatten(1).mean(dim=1)
    out = 10.0 * torch.log10(data_range**2 / mse)
    if reduction == "mean":
        return out.mean()
    if reduction != "none":
        raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")
    return out
