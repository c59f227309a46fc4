"""Light fields: a grid of views, each a (3, H, W) image, addressed by (row, col), 0-based.

Three on-disk layouts:

- ``ViewFolderLightField``: one file per view, either HCI ``input_CamNNN.png`` (NNN = row * 9 +
  col on a 9x9 grid) or ``<name>_<k>_<row>_<col>.<ext>`` with 1-based row and col (the Lytro
  decoding toolbox's naming; ``k`` is a running index in any order and is ignored);
- ``MosaicLightField``: a Lytro Illum "lenslet mosaic" PNG as in the Flower dataset, where view
  (u, v) of the central 8x8 is ``img[u + 3 :: 14, v + 3 :: 14]``;
- ``TiledLightField``: a frame that tiles the views as a grid of equal rectangles (LFVideo: 8x8).

All load lazily and cache nothing but the last mosaic/tile file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .io import list_images, load_image

_HCI = re.compile(r"^input_Cam(\d+)$")
_INDEXED = re.compile(r"^(.*)_(\d+)_(\d+)_(\d+)$")


class LightField:
    """Base class. Subclasses set ``name``, ``grid`` ((rows, cols)) and implement ``_load``."""

    name: str = ""
    grid: tuple[int, int] = (0, 0)

    @property
    def views(self) -> list[tuple[int, int]]:
        """Available (row, col) views, sorted."""
        return [(r, c) for r in range(self.grid[0]) for c in range(self.grid[1])]

    def has_view(self, view) -> bool:
        return tuple(view) in set(self.views)

    def view(self, view) -> torch.Tensor:
        """The (3, H, W) float32 [0, 1] image of view (row, col); FileNotFoundError if absent."""
        view = _as_view(view)
        if not self.has_view(view):
            raise FileNotFoundError(
                f"light field {self.name!r} has no view {view}; available "
                f"rows 0..{self.grid[0] - 1}, cols 0..{self.grid[1] - 1}"
                + ("" if len(self.views) == self.grid[0] * self.grid[1] else f" (only {len(self.views)} views present)")
            )
        return self._load(view)

    def _load(self, view):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, grid={self.grid}, views={len(self.views)})"


def _as_view(view) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in view)
    except (TypeError, ValueError):
        raise ValueError(f"a view must be a (row, col) pair of integers, got {view!r}") from None
    if r < 0 or c < 0:
        raise ValueError(f"view indices must be >= 0, got {view!r}")
    return r, c


class ViewFolderLightField(LightField):
    """A folder with one image per view (HCI or ``<name>_<k>_<row>_<col>`` naming).

    Args:
        folder: the folder.
        hci_grid: grid side of the HCI naming (9 in the 4D Light Field Benchmark).
    """

    def __init__(self, folder, hci_grid: int = 9):
        self.folder = Path(folder)
        self.name = self.folder.name
        files = list_images(self.folder)
        self._files: dict[tuple[int, int], Path] = {}
        for f in files:
            m = _HCI.match(f.stem)
            if m:
                k = int(m.group(1))
                self._add((k // hci_grid, k % hci_grid), f)
                continue
            m = _INDEXED.match(f.stem)
            if m:
                r, c = int(m.group(3)), int(m.group(4))
                if r < 1 or c < 1:
                    raise ValueError(f"{f}: row and col are 1-based in <name>_<k>_<row>_<col>")
                self._add((r - 1, c - 1), f)
        if not self._files:
            raise FileNotFoundError(
                f"no light-field views in {self.folder}: expected input_CamNNN.png or <name>_<k>_<row>_<col>.png files"
            )
        self.grid = (max(r for r, _ in self._files) + 1, max(c for _, c in self._files) + 1)

    def _add(self, view, f):
        if view in self._files:
            raise ValueError(f"two files for view {view} in {self.folder}: {self._files[view].name} and {f.name}")
        self._files[view] = f

    @property
    def views(self):
        return sorted(self._files)

    def path(self, view) -> Path:
        return self._files[_as_view(view)]

    def _load(self, view):
        return load_image(self._files[view])


class _SingleFileLightField(LightField):
    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"light-field file not found: {self.path}")
        self.name = self.path.stem
        self._cached = None

    def _image(self) -> torch.Tensor:
        if self._cached is None:
            self._cached = load_image(self.path)
        return self._cached


class MosaicLightField(_SingleFileLightField):
    """A lenslet mosaic: view (u, v) is ``img[:, u + offset :: pitch, v + offset :: pitch]``.

    Args:
        path: the mosaic image (H = pitch * view_H, W = pitch * view_W exactly: any other size
            means another pitch or a cropped file, and reading a view raises a ValueError).
        pitch: pixels per microlens (14 for the Lytro Illum Flower dataset).
        offset: first view kept under each lens (3: the central 8x8 of 14x14).
        size: views kept per axis (8).
    """

    def __init__(self, path, pitch: int = 14, offset: int = 3, size: int = 8):
        super().__init__(path)
        if pitch < 1 or offset < 0 or size < 1 or offset + size > pitch:
            raise ValueError(
                f"need 0 <= offset, 1 <= size, offset + size <= pitch; got pitch={pitch}, offset={offset}, size={size}"
            )
        self.pitch, self.offset, self.grid = pitch, offset, (size, size)

    def _load(self, view):
        img = self._image()
        h, w = img.shape[-2] // self.pitch, img.shape[-1] // self.pitch
        if h < 1 or w < 1:
            raise ValueError(
                f"{self.path}: a {tuple(img.shape[-2:])} image is smaller than one {self.pitch}x{self.pitch} lens"
            )
        H, W = img.shape[-2:]
        if H % self.pitch or W % self.pitch:
            raise ValueError(
                f"{self.path}: size {W}x{H} (width x height) is not a multiple of the "
                f"lenslet pitch {self.pitch}; expected a whole number of "
                f"{self.pitch}x{self.pitch} lenses (is the pitch right?)"
            )
        u, v = view
        return img[:, u + self.offset :: self.pitch, v + self.offset :: self.pitch].contiguous()


class TiledLightField(_SingleFileLightField):
    """A frame tiling the views as a ``tiles x tiles`` grid of equal rectangles (LFVideo: 8)."""

    def __init__(self, path, tiles: int = 8):
        super().__init__(path)
        if tiles < 1:
            raise ValueError(f"tiles must be >= 1, got {tiles}")
        self.grid = (tiles, tiles)

    def _load(self, view):
        img = self._image()
        H, W = img.shape[-2:]
        t = self.grid[0]
        if H % t or W % t:
            raise ValueError(f"{self.path}: size {W}x{H} is not a multiple of the {t}x{t} tiling")
        h, w = H // t, W // t
        r, c = view
        return img[:, r * h : (r + 1) * h, c * w : (c + 1) * w].contiguous()
