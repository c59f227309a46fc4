"""Validation on held-out real view pairs: PSNR of the model and of bicubic upsampling."""
from __future__ import annotations

import torch

from ..baselines import bicubic
from ..infer import super_resolve
from ..metrics import psnr


@torch.no_grad()
def validate(model, pairs: list[dict], precision: str = "fp32", window: int = 512) -> list[dict]:
    """Evaluate ``model`` (on its device) on ``pairs`` (dicts of lr (3, h, w), ref, hr (3, H, W)
    float32 CPU tensors, name).

    The whole image is super-resolved (``super_resolve`` pads to multiples of 64 and slides
    ``window``-sized windows), clamped to [0, 1], and compared with the HR view: PSNR on RGB,
    no border crop (the paper's protocol). Returns one dict per pair: name, psnr, psnr_bicubic (dB).
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        for s in pairs:
            lr, ref, hr = s["lr"][None], s["ref"][None], s["hr"][None]
            sr = super_resolve(model, lr, ref, window=window, stride=window // 2,
                               precision=precision).cpu().float()
            bic = bicubic(lr, model.scale, size=tuple(hr.shape[-2:])).clamp(0, 1)
            out.append({"name": s["name"], "psnr": float(psnr(sr, hr)[0]),
                        "psnr_bicubic": float(psnr(bic, hr)[0])})
    finally:
        model.train(was_training)
    return out


__all__ = ["validate"]
