"""torch Datasets yielding RefSR samples: dicts with ``lr`` (3, h, w), ``ref`` (3, H, W),
``hr`` (3, H, W) (float32 in [0, 1], H = scale * h) and ``name`` (str).

- ``LightFieldDataset``: one sample per light field; fixed views (the paper's protocol: reference
  (0, 0), LR (1, 1) or (7, 7), optional top-left crop) or random view pairs and random crops for
  training;
- ``StereoDataset``: two folders with the same file names (reference = left by default);
- ``PairListDataset``: a plain list of (HR-or-LR, reference) image pairs.

Stereo and pair-list references of another size than their image (other cameras, crops) are
placed on the HR canvas by ``crossnet_fast.placement`` (top-left aligned, cropped or
edge-replicated, never resized; docs/USE_IN_YOUR_MODEL.md) and the sample gets a
``ref_placement`` note; light-field views must have one size.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..placement import place_reference
from .io import list_images, load_image
from .lightfield import LightField, _as_view
from .samples import check_same_size, crop_top_left, make_sample


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")


class LightFieldDataset(Dataset):
    """Samples from light fields.

    Args:
        lightfields: list of ``LightField`` objects (see ``crossnet_fast.data.lightfield``).
        scale: integer downsampling factor.
        ref_view, lr_view: (row, col) of the reference and of the view to super-resolve.
        crop: optional (h, w) top-left crop of both views before degradation (Flower: 320x512).
        degradation: ``"bicubic"`` (MATLAB imresize) or ``"gaussian"``.
        random_views: draw a new (reference, LR) view pair per item from the views present
            (two distinct views at most ``max_distance`` apart in Chebyshev distance), for training.
        patch: with ``random_views``, a random (p, p) crop (p a multiple of ``scale``).
        seed: None -> torch's global RNG (set per DataLoader worker); an int -> item i always
            draws the same views/crop (deterministic validation).
    """

    def __init__(
        self,
        lightfields,
        scale: int,
        ref_view=(0, 0),
        lr_view=(1, 1),
        crop=None,
        degradation: str = "bicubic",
        random_views: bool = False,
        max_distance: int | None = None,
        patch: int | None = None,
        seed: int | None = None,
    ):
        _check_scale(scale)
        self.lightfields = list(lightfields)
        if not self.lightfields:
            raise ValueError("lightfields is empty")
        for lf in self.lightfields:
            if not isinstance(lf, LightField):
                raise TypeError(f"lightfields must hold LightField objects, got {type(lf).__name__}")
        self.scale, self.crop, self.degradation = scale, crop, degradation
        self.ref_view, self.lr_view = _as_view(ref_view), _as_view(lr_view)
        self.random_views, self.max_distance, self.seed = random_views, max_distance, seed
        if patch is not None and (patch < scale or patch % scale):
            raise ValueError(f"patch must be a positive multiple of scale={scale}, got {patch}")
        self.patch = patch
        if not random_views:
            for lf in self.lightfields:  # fail now, not in the middle of an evaluation
                for v in (self.ref_view, self.lr_view):
                    if not lf.has_view(v):
                        lf.view(v)  # raises FileNotFoundError naming the light field and view

    def __len__(self):
        return len(self.lightfields)

    def _draw_views(self, lf, gen):
        views = lf.views
        if len(views) < 2:
            raise ValueError(f"light field {lf.name!r} has fewer than two views")
        while True:
            i, j = torch.randint(len(views), (2,), generator=gen).tolist()
            a, b = views[i], views[j]
            d = max(abs(a[0] - b[0]), abs(a[1] - b[1]))
            if i != j and (self.max_distance is None or d <= self.max_distance):
                return a, b

    def __getitem__(self, index):
        lf = self.lightfields[index]
        gen = None
        if self.seed is not None:
            gen = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(index))
        ref_v, lr_v = self._draw_views(lf, gen) if self.random_views else (self.ref_view, self.lr_view)
        ref, hr = lf.view(ref_v), lf.view(lr_v)
        check_same_size(hr, ref, f"view {lr_v} of {lf.name!r}", f"view {ref_v} of {lf.name!r}")
        if self.crop is not None:
            hr = crop_top_left(hr, self.crop, f"view {lr_v} of {lf.name!r}")
            ref = crop_top_left(ref, self.crop, f"view {ref_v} of {lf.name!r}")
        if self.random_views and self.patch is not None:
            p = self.patch
            if p > hr.shape[-2] or p > hr.shape[-1]:
                raise ValueError(f"patch {p} is larger than light field {lf.name!r} views {tuple(hr.shape[-2:])}")
            y = int(torch.randint(hr.shape[-2] - p + 1, (1,), generator=gen))
            x = int(torch.randint(hr.shape[-1] - p + 1, (1,), generator=gen))
            hr, ref = hr[:, y : y + p, x : x + p], ref[:, y : y + p, x : x + p]
        s = make_sample(
            hr,
            ref,
            self.scale,
            name=lf.name,
            degradation=self.degradation,
            hr_what=f"view {lr_v} of {lf.name!r}",
            ref_what=f"view {ref_v} of {lf.name!r}",
        )
        s["lr_view"], s["ref_view"] = lr_v, ref_v
        return s


class StereoDataset(Dataset):
    """Rectified stereo pairs in two folders holding the same file names.

    Args:
        left_dir, right_dir: the folders. scale, crop, degradation: as ``LightFieldDataset``.
        ref_side: ``"left"`` (reference = left, LR = right; the default) or ``"right"``.

    A reference of another size than its image is placed (see the module docstring).
    """

    def __init__(
        self, left_dir, right_dir, scale: int, ref_side: str = "left", crop=None, degradation: str = "bicubic"
    ):
        _check_scale(scale)
        if ref_side not in ("left", "right"):
            raise ValueError(f"ref_side must be 'left' or 'right', got {ref_side!r}")
        left = {p.name: p for p in list_images(left_dir)}
        right = {p.name: p for p in list_images(right_dir)}
        only_l, only_r = sorted(set(left) - set(right)), sorted(set(right) - set(left))
        if only_l or only_r:
            raise FileNotFoundError(
                f"stereo folders differ: only in {left_dir}: {only_l[:5]}; only in {right_dir}: {only_r[:5]}"
            )
        if not left:
            raise FileNotFoundError(f"no images in {left_dir}")
        self.names = sorted(left)
        self.left, self.right = left, right
        self.scale, self.ref_side, self.crop, self.degradation = scale, ref_side, crop, degradation

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        n = self.names[index]
        ref_p, hr_p = (self.left[n], self.right[n]) if self.ref_side == "left" else (self.right[n], self.left[n])
        return make_sample(
            load_image(hr_p),
            load_image(ref_p),
            self.scale,
            name=Path(n).stem,
            crop=self.crop,
            degradation=self.degradation,
            hr_what=str(hr_p),
            ref_what=str(ref_p),
            place_ref=True,
        )


def read_pair_list(path) -> list[tuple[Path, Path]]:
    """Parse a pair list: one ``IMAGE REFERENCE`` pair per line (whitespace, comma or tab
    separated; ``#`` comments and blank lines ignored); relative paths are relative to the list."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pair list not found: {path}")
    pairs = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in line.replace(",", " ").split() if p]
        if len(parts) != 2:
            raise ValueError(f"{path}:{no}: expected two paths (image, reference), got {line!r}")
        pairs.append(tuple((path.parent / p) if not Path(p).is_absolute() else Path(p) for p in parts))
    if not pairs:
        raise ValueError(f"pair list {path} is empty")
    return pairs


class PairListDataset(Dataset):
    """A plain list of (image, reference) pairs.

    Args:
        pairs: a list of (image, reference) paths, or the path of a list file (``read_pair_list``).
        scale: integer factor.
        kind: ``"hr"``: the image is the ground truth, degraded here (samples have ``hr``);
            ``"lr"``: the image already is the LR input (no ``hr``: inference only).
            A reference of another size than the HR image (``scale`` times the LR) is placed
            on it (see the module docstring).
        crop, degradation: as ``LightFieldDataset`` (``kind="hr"`` only).
    """

    def __init__(self, pairs, scale: int, kind: str = "hr", crop=None, degradation: str = "bicubic"):
        _check_scale(scale)
        if kind not in ("hr", "lr"):
            raise ValueError(f"kind must be 'hr' or 'lr', got {kind!r}")
        if isinstance(pairs, (str, Path)):
            pairs = read_pair_list(pairs)
        self.pairs = [(Path(a), Path(b)) for a, b in pairs]
        if not self.pairs:
            raise ValueError("pairs is empty")
        for a, b in self.pairs:
            for p in (a, b):
                if not p.is_file():
                    raise FileNotFoundError(f"image file not found: {p}")
        self.scale, self.kind, self.crop, self.degradation = scale, kind, crop, degradation

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        a, b = self.pairs[index]
        img, ref = load_image(a), load_image(b)
        if self.kind == "hr":
            return make_sample(
                img,
                ref,
                self.scale,
                name=a.stem,
                crop=self.crop,
                degradation=self.degradation,
                hr_what=str(a),
                ref_what=str(b),
                place_ref=True,
            )
        ref, placement = place_reference(
            ref, (img.shape[-2] * self.scale, img.shape[-1] * self.scale), name=f"reference {b}"
        )
        sample = {"lr": img, "ref": ref.contiguous(), "name": a.stem}
        if placement.note is not None:
            sample["ref_placement"] = placement.note
        return sample
