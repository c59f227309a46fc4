"""Side-by-side comparison image for ``crossnet-fast demo``: labelled panels in one row."""

from __future__ import annotations

import numpy as np

LABEL_HEIGHT = 14  # px of the caption strip above each panel (Pillow's built-in bitmap font)
GAP = 4  # px of white between panels


def nearest_upsample(lr: np.ndarray, scale: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (h*scale, w*scale, 3) uint8 by pixel repetition, so the LR input is
    shown at the output size with its pixels visible (no interpolation hides how little it has)."""
    return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)


def side_by_side(panels: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """One (LABEL_HEIGHT + H, sum(W) + gaps, 3) uint8 image of ``panels`` ((caption, (H_i, W_i, 3)
    uint8)) left to right, each under its caption; shorter panels are padded white at the bottom."""
    from PIL import Image, ImageDraw

    if not panels:
        raise ValueError("side_by_side: no panels")
    height = max(img.shape[0] for _, img in panels)
    width = sum(img.shape[1] for _, img in panels) + GAP * (len(panels) - 1)
    canvas = Image.new("RGB", (width, LABEL_HEIGHT + height), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for caption, img in panels:
        canvas.paste(Image.fromarray(np.ascontiguousarray(img), "RGB"), (x, LABEL_HEIGHT))
        draw.text((x + 2, 1), caption, fill="black")
        x += img.shape[1] + GAP
    return np.asarray(canvas, dtype=np.uint8).copy()


__all__ = ["side_by_side", "nearest_upsample", "LABEL_HEIGHT", "GAP"]
