"""Input checks, colour conversion and border crops shared by the metrics."""

from __future__ import annotations

import torch

# ITU-R BT.601 luma as MATLAB's rgb2ycbcr computes it for images in [0, 1]: Y in [16/255, 235/255].
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0
# MATLAB rgb2gray (used for IFC, which is defined on grayscale).
_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def as_batch(pred, target, name_pred: str = "pred", name_target: str = "target"):
    """Validate a (pred, target) pair and return both as float64 (N, C, H, W) tensors.

    Accepts (N, 3, H, W), (3, H, W), (N, 1, H, W), (1, H, W) or (H, W) floating tensors in [0, 1]
    on any device; both must have the same shape.
    """
    for t, n in ((pred, name_pred), (target, name_target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{n} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{n} must be a floating-point tensor in [0, 1], got {t.dtype}")
        if t.dim() not in (2, 3, 4):
            raise ValueError(f"{n} must have shape (N, C, H, W), (C, H, W) or (H, W), got {tuple(t.shape)}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{name_pred} and {name_target} must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    p, t = pred, target
    while p.dim() < 4:
        p, t = p.unsqueeze(0), t.unsqueeze(0)
    # float64: the metrics are compared with scikit-image (float64) to 1e-4.
    return p.to(torch.float64), t.to(target.device, torch.float64)


def to_channel(x: torch.Tensor, channel: str) -> torch.Tensor:
    """(N, C, H, W) -> the channels a metric is computed on.

    ``channel``: ``"rgb"`` (unchanged), ``"y"`` (BT.601 luma, (N, 1, H, W), needs C == 3),
    ``"gray"`` (MATLAB rgb2gray, (N, 1, H, W); a 1-channel input passes through).
    """
    c = x.shape[1]
    if channel == "rgb":
        return x
    if channel in ("y", "gray"):
        if c == 1:
            return x
        if c != 3:
            raise ValueError(f"channel={channel!r} needs 1 or 3 channels, got {c}")
        wts = _Y_WEIGHTS if channel == "y" else _GRAY_WEIGHTS
        w = torch.tensor(wts, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        out = (x * w).sum(dim=1, keepdim=True)
        return out + _Y_OFFSET if channel == "y" else out
    raise ValueError(f"channel must be 'rgb', 'y' or 'gray', got {channel!r}")


def crop_border(x: torch.Tensor, crop: int) -> torch.Tensor:
    """Remove ``crop`` pixels from each side of (N, C, H, W)."""
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 0:
        raise ValueError(f"crop must be an integer >= 0, got {crop!r}")
    if crop == 0:
        return x
    if 2 * crop >= min(x.shape[-2:]):
        raise ValueError(f"crop={crop} leaves nothing of a {tuple(x.shape[-2:])} image")
    return x[..., crop:-crop, crop:-crop]
