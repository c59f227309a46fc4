"""``open_dataset``: one entry point from a path and a layout name (used by ``crossnet-fast eval``)."""

from __future__ import annotations

from pathlib import Path

from .datasets import LightFieldDataset, PairListDataset, StereoDataset
from .io import IMAGE_EXTENSIONS, list_images
from .lightfield import MosaicLightField, TiledLightField, ViewFolderLightField

LAYOUTS = ("auto", "views", "mosaic", "tiles", "stereo", "pairs")


def _is_view_folder(folder: Path) -> bool:
    try:
        ViewFolderLightField(folder)
        return True
    except (FileNotFoundError, ValueError):
        return False


def detect_layout(path) -> str:
    """Guess the layout of ``path``: a list file -> "pairs"; a folder with ``left/`` and
    ``right/`` -> "stereo"; a folder of per-view images, or of such folders -> "views".
    Mosaics and tiles look like ordinary images, so they must be named explicitly."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset path not found: {path}")
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise ValueError(f"{path} is a single image: pass --layout mosaic or tiles")
        return "pairs"
    if (path / "left").is_dir() and (path / "right").is_dir():
        return "stereo"
    if _is_view_folder(path) or any(_is_view_folder(d) for d in sorted(path.iterdir()) if d.is_dir()):
        return "views"
    raise ValueError(f"cannot tell the layout of {path}: pass --layout (one of {', '.join(LAYOUTS[1:])})")


def _files_or_folder(path: Path):
    return [path] if path.is_file() else list_images(path)


def open_dataset(
    path,
    layout: str = "auto",
    scale: int = 4,
    ref_view=(0, 0),
    lr_view=(1, 1),
    crop=None,
    degradation: str = "bicubic",
    ref_side: str = "left",
    kind: str = "hr",
    **lf_kwargs,
):
    """A Dataset of RefSR samples (see ``datasets``) for ``path`` in ``layout``.

    ``views``: ``path`` is a folder of views or a folder of such folders (one light field each);
    ``mosaic`` / ``tiles``: an image file or a folder of them; ``stereo``: a folder with
    ``left/`` and ``right/``; ``pairs``: a list file. ``ref_view``/``lr_view`` apply to light
    fields, ``ref_side`` to stereo, ``kind`` to pairs. Extra keyword arguments go to
    ``LightFieldDataset`` (``random_views``, ``patch``, ``seed``, ...).
    """
    path = Path(path)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not path.exists():
        raise FileNotFoundError(f"dataset path not found: {path}")
    if layout == "auto":
        layout = detect_layout(path)
    if layout == "pairs":
        return PairListDataset(path, scale, kind=kind, crop=crop, degradation=degradation)
    if layout == "stereo":
        return StereoDataset(
            path / "left", path / "right", scale, ref_side=ref_side, crop=crop, degradation=degradation
        )
    if layout == "views":
        if _is_view_folder(path):
            lfs = [ViewFolderLightField(path)]
        else:
            lfs = [ViewFolderLightField(d) for d in sorted(path.iterdir()) if d.is_dir() and _is_view_folder(d)]
            if not lfs:
                raise FileNotFoundError(f"no light-field view folders in {path}")
    elif layout == "mosaic":
        lfs = [MosaicLightField(f) for f in _files_or_folder(path)]
    else:
        lfs = [TiledLightField(f) for f in _files_or_folder(path)]
    if not lfs:
        raise FileNotFoundError(f"no images in {path}")
    return LightFieldDataset(
        lfs, scale, ref_view=ref_view, lr_view=lr_view, crop=crop, degradation=degradation, **lf_kwargs
    )
