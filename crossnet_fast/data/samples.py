"""Turning an (HR, reference) pair into a RefSR sample."""

from __future__ import annotations

import torch

from ..degrade import degrade
from ..placement import place_reference


def check_same_size(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str) -> None:
    """ValueError naming both images if their (H, W) differ."""
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(
            f"{what_a} is {a.shape[-1]}x{a.shape[-2]} but {what_b} is "
            f"{b.shape[-1]}x{b.shape[-2]} (width x height); they must match"
        )


def crop_top_left(img: torch.Tensor, size, what: str) -> torch.Tensor:
    """Top-left (h, w) crop of (..., H, W); ValueError naming ``what`` if it does not fit."""
    h, w = (int(v) for v in size)
    if h < 1 or w < 1 or h > img.shape[-2] or w > img.shape[-1]:
        raise ValueError(f"crop {w}x{h} does not fit {what} of size {img.shape[-1]}x{img.shape[-2]} (width x height)")
    return img[..., :h, :w]


def make_sample(
    hr: torch.Tensor,
    ref: torch.Tensor,
    scale: int,
    *,
    name: str,
    crop=None,
    degradation: str = "bicubic",
    hr_what: str = "the HR view",
    ref_what: str = "the reference view",
    place_ref: bool = False,
) -> dict:
    """Crop (top-left ``crop``, then down to multiples of ``scale``) and degrade.

    Args:
        hr, ref: (3, H, W) float32 in [0, 1], same size (or, with ``place_ref``, any size).
        scale: integer >= 1. crop: optional (h, w). degradation: ``degrade`` method.
        place_ref: a reference of another size than ``hr`` is placed on the cropped HR canvas
            (``crossnet_fast.placement``: top-left aligned, cropped or edge-replicated, never
            resized) instead of being an error; ``crop`` applies to ``hr`` only then (placement
            is itself a top-left crop).

    Returns:
        dict with ``lr`` (3, H'/scale, W'/scale), ``ref`` and ``hr`` (3, H', W'), float32 in
        [0, 1], and ``name`` (str); H', W' the cropped size (multiples of ``scale``). A placed
        reference adds ``ref_placement``: the one-line note of what was done.
    """
    placed = place_ref and hr.shape[-2:] != ref.shape[-2:]
    if not placed:
        check_same_size(hr, ref, hr_what, ref_what)
    if crop is not None:
        hr = crop_top_left(hr, crop, hr_what)
        if not placed:
            ref = crop_top_left(ref, crop, ref_what)
    H, W = (hr.shape[-2] // scale) * scale, (hr.shape[-1] // scale) * scale
    if H == 0 or W == 0:
        raise ValueError(f"{hr_what} ({hr.shape[-1]}x{hr.shape[-2]}) is smaller than the scale {scale}")
    hr = hr[:, :H, :W].contiguous()
    sample = {}
    if placed:
        ref, placement = place_reference(ref, (H, W), name=ref_what)
        if placement.note is not None:
            sample["ref_placement"] = placement.note
    ref = ref[:, :H, :W].contiguous()
    lr = degrade(hr[None], scale, method=degradation)[0]
    return {"lr": lr, "ref": ref, "hr": hr, "name": name, **sample}
