"""Reading and writing images as float tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .._atomic import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")


def load_image(path) -> torch.Tensor:
    """Read an image file as RGB.

    Args:
        path: file path (str or Path). Grayscale, palette and RGBA images are converted to RGB
            (alpha dropped); 16-bit grayscale images are scaled by 1/65535. 16-bit colour PNGs
            are read at 8-bit precision (Pillow keeps the high byte of each sample).

    Returns:
        (3, H, W) float32 tensor in [0, 1] on the CPU.

    Raises:
        FileNotFoundError: no such file. ValueError: the file is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                arr = np.repeat(arr[..., None], 3, axis=2)
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read image file {path}: {exc}") from exc
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) float in [0, 1] -> (H, W, 3) or (H, W) uint8 (rounded)."""
    if img.dim() != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"img must have shape (3, H, W) or (1, H, W), got {tuple(img.shape)}")
    arr = (img.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
    arr = arr.permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 1 else arr


def save_image(img: torch.Tensor, path) -> None:
    """Write a (3, H, W) / (1, H, W) float tensor in [0, 1] as an 8-bit image, atomically
    (a temporary file in the same folder, then renamed), creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # atomic_path removes the temporary file on any error and names ``path`` in an OSError.
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(img)).save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))


def list_images(folder) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; FileNotFoundError if no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
