"""Where training and validation pairs come from: light fields, stereo folders, held-out splits.

Training entries are plain descriptions (no pixels), so the list is cheap to build and identical on
every rank; pixels are read by :class:`ImageCache` in the data workers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import ViewFolderLightField, list_images, load_image
from ..data.samples import make_sample


@dataclass(frozen=True)
class Entry:
    """One epoch slot. kind "lf": a light field (a fresh view pair is drawn per use);
    kind "stereo": a rectified pair (``ref``, ``hr`` file paths; sides may be swapped per use);
    kind "video": a frame sequence (``index`` into Sources.videos; a fresh frame pair per use)."""
    kind: str
    name: str
    index: int = -1              # light field index into Sources.lightfields
    left: str = ""
    right: str = ""


class ImageCache:
    """Decoded images, kept as uint8 (a quarter of float32) when ``enabled``."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._store: dict[str, torch.Tensor] = {}

    def load(self, path) -> torch.Tensor:
        """(3, H, W) float32 in [0, 1]."""
        key = str(path)
        if key in self._store:
            return self._store[key].float().div_(255.0)
        img = load_image(key)
        if self.enabled:
            q = (img * 255.0).round_().to(torch.uint8)
            # Only 8-bit sources round-trip exactly through uint8; keep the rest out of the cache.
            if torch.equal(q.float().div_(255.0), img):
                self._store[key] = q
        return img


def _resolve(root: Path, rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else root / p


def _stereo_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    left, right = folder / "left", folder / "right"
    if not (left.is_dir() and right.is_dir()):
        raise FileNotFoundError(f"stereo folder {folder} must hold left/ and right/")
    rights = {p.name: p for p in list_images(right)}
    return [(p.stem, p, rights[p.name]) for p in list_images(left) if p.name in rights]


class Sources:
    """The training entries and the held-out validation pairs described by a ``DataConfig``."""

    def __init__(self, data_cfg, scale: int, val_cfg=None):
        root = Path(data_cfg.root)
        self.root = root
        hold_lf = {str(Path(h)) for h in data_cfg.holdout_lightfields}
        hold_st = set(data_cfg.holdout_stereo)
        self.lightfields: list[ViewFolderLightField] = []
        self.val_lightfields: list[ViewFolderLightField] = []
        for rel in data_cfg.lightfields:
            lf = ViewFolderLightField(_resolve(root, rel))
            (self.val_lightfields if str(Path(rel)) in hold_lf else self.lightfields).append(lf)
        missing = hold_lf - {str(Path(r)) for r in data_cfg.lightfields}
        for rel in sorted(missing):  # held out but not listed for training: still validated
            self.val_lightfields.append(ViewFolderLightField(_resolve(root, rel)))
        self.stereo: list[tuple[str, Path, Path]] = []
        self.val_stereo: list[tuple[str, Path, Path]] = []
        for rel in data_cfg.stereo:
            for name, lp, rp in _stereo_pairs(_resolve(root, rel)):
                (self.val_stereo if name in hold_st else self.stereo).append((name, lp, rp))
        unknown = hold_st - {n for n, _, _ in self.stereo + self.val_stereo}
        if unknown:
            raise ValueError(f"config data.holdout_stereo: no such stereo pairs {sorted(unknown)}")
        hold_vid = {str(Path(h)) for h in data_cfg.holdout_video}
        self.videos: list[tuple[str, list[Path]]] = []
        self.val_videos: list[tuple[str, list[Path]]] = []
        for rel in list(data_cfg.video) + sorted(hold_vid - {str(Path(r)) for r in data_cfg.video}):
            folder = _resolve(root, rel)
            if not folder.is_dir():
                raise FileNotFoundError(f"config data.video: no such folder {folder}")
            frames = list_images(folder)
            if len(frames) < 2:
                raise ValueError(f"config data.video: {folder} holds {len(frames)} frame(s), need >= 2")
            name = str(Path(rel))
            (self.val_videos if name in hold_vid else self.videos).append((name, frames))
        self.entries: list[Entry] = []
        for i, lf in enumerate(self.lightfields):
            if len(lf.views) < 2:
                raise ValueError(f"light field {lf.folder} has fewer than two views")
            self.entries += [Entry("lf", lf.name, index=i)] * int(data_cfg.lightfield_repeats)
        for name, lp, rp in self.stereo:
            self.entries += [Entry("stereo", name, left=str(lp), right=str(rp))] * int(data_cfg.stereo_repeats)
        for i, (name, _) in enumerate(self.videos):
            self.entries += [Entry("video", name, index=i)] * int(data_cfg.video_repeats)
        if not self.entries:
            raise ValueError("no training data: every light field and stereo pair is held out "
                             "(or the repeats are 0)")
        self.scale = scale
        self.val_cfg = val_cfg

    def validation_pairs(self, degradation: str = "bicubic", max_size: int = 0) -> list[dict]:
        """Held-out samples: dicts with ``lr`` (3, h, w), ``ref``, ``hr`` (3, H, W) and ``name``.

        Light fields use the (ref, LR) views of ``val.views`` (paper: (0,0) -> (1,1), (7,7)) where
        present; stereo pairs use reference = left, LR = right. ``max_size`` > 0: top-left crop.
        """
        views = [((v[0], v[1]), (v[2], v[3])) for v in (self.val_cfg.views if self.val_cfg else [])]
        out = []
        for lf in self.val_lightfields:
            for ref_v, lr_v in views:
                if not (lf.has_view(ref_v) and lf.has_view(lr_v)):
                    continue
                hr, ref = lf.view(lr_v), lf.view(ref_v)
                out.append(self._sample(hr, ref, f"{lf.name}_{ref_v[0]}{ref_v[1]}-{lr_v[0]}{lr_v[1]}",
                                        degradation, max_size))
        if self.val_cfg is None or self.val_cfg.stereo:
            for name, lp, rp in self.val_stereo:
                out.append(self._sample(load_image(rp), load_image(lp), f"{name}_left-right",
                                        degradation, max_size))
        for name, frames in self.val_videos:
            if len(frames) >= 3:  # the paper-style video protocol: reference frame t, LR frame t + 2
                out.append(self._sample(load_image(frames[2]), load_image(frames[0]),
                                        f"{Path(name).name}_t0-t2", degradation, max_size))
        return out

    def _sample(self, hr, ref, name, degradation, max_size):
        crop = None
        if max_size:
            crop = (min(max_size, hr.shape[-2]), min(max_size, hr.shape[-1]))
        return make_sample(hr, ref, self.scale, name=name, crop=crop, degradation=degradation)


__all__ = ["Entry", "ImageCache", "Sources"]
