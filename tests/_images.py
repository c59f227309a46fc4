"""Small generated images for the trainer tests (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """(h, w, 3) float in [0, 1]: 8x8-pixel blocks of random colour plus fine noise."""
    g = np.random.default_rng(seed)
    small = g.random((h // 8 + 2, w // 8 + 2, 3))
    img = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
    return (0.6 * img + 0.4 * g.random((h, w, 3))).clip(0, 1)


def save_png(arr: np.ndarray, path: Path) -> None:
    """Write an (h, w, 3) float image in [0, 1] as an 8-bit PNG, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((arr * 255).round().astype(np.uint8)).save(path)
