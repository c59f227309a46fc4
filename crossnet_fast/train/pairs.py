"""The training and validation pairs: where they come from, and the deterministic training stream.

Sources: light fields, stereo folders and video sequences described by ``[data]``, split into
training entries and held-out validation pairs. Training entries are plain descriptions (no pixels),
so the list is cheap to build and identical on every rank; pixels are read by :class:`ImageCache`
in the data workers.

The stream: global sample position -> augmented (lr, ref, hr), deterministically. Sample ``p``
(0, 1, 2, ... over the whole run) is entry ``perm_e[p % E]`` of epoch ``e = p // E`` (``perm_e`` a
permutation seeded by (seed, e)), augmented with a generator seeded by (seed, p). Step ``t``
consumes positions ``[t * G, (t + 1) * G)`` for the global batch ``G`` = batch x world; rank ``r``
takes the ``r``-th block of ``batch`` of them (DistributedSampler-style sharding). So the data-order
state is one integer, the next position: saving it and resuming reproduces the stream exactly, for
any number of DataLoader workers, and a 2-rank run sees the same global batches as a 1-rank run
with twice the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from ..data import ViewFolderLightField, list_images, load_image
from ..data.samples import make_sample
from ..degrade import degrade
from . import augment as A
from .multiview import MultiviewSource, load_downscaled, open_sources

# -- sources ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One epoch slot. kind "lf": a light field (a fresh view pair is drawn per use);
    kind "stereo": a rectified pair (``ref``, ``hr`` file paths; sides may be swapped per use);
    kind "video": a frame sequence (``index`` into Sources.videos; a fresh frame pair per use);
    kind "multiview": a ``[[data.multiview]]`` source (``index`` into Sources.multiview; a fresh
    (reference, target) pair of its allowed pairs per use)."""

    kind: str
    name: str
    index: int = -1  # light field index into Sources.lightfields
    left: str = ""
    right: str = ""


class ImageCache:
    """Decoded images, kept as uint8 (a quarter of float32) when ``enabled``."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._store: dict[str, torch.Tensor] = {}

    def load(self, path, downscale: int = 1) -> torch.Tensor:
        """(3, H, W) float32 in [0, 1]; ``downscale`` > 1: (3, H // d, W // d), block means rounded
        to 8-bit levels (train/multiview.py), cached under their own key."""
        key = str(path) if downscale == 1 else f"{path}@{int(downscale)}"
        if key in self._store:
            return self._store[key].float().div_(255.0)
        img = load_image(path) if downscale == 1 else load_downscaled(path, downscale)
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
        # Multi-view sources come last, so a config without them lists exactly the entries above.
        self.multiview: list[MultiviewSource] = open_sources(data_cfg, root)
        for i, mv in enumerate(self.multiview):
            self.entries += [Entry("multiview", mv.name, index=i)] * mv.spec.repeats
        if not self.entries:
            raise ValueError("no training data: every light field and stereo pair is held out (or the repeats are 0)")
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
                out.append(
                    self._sample(hr, ref, f"{lf.name}_{ref_v[0]}{ref_v[1]}-{lr_v[0]}{lr_v[1]}", degradation, max_size)
                )
        if self.val_cfg is None or self.val_cfg.stereo:
            for name, lp, rp in self.val_stereo:
                out.append(self._sample(load_image(rp), load_image(lp), f"{name}_left-right", degradation, max_size))
        for name, frames in self.val_videos:
            if len(frames) >= 3:  # the paper-style video protocol: reference frame t, LR frame t + 2
                out.append(
                    self._sample(
                        load_image(frames[2]), load_image(frames[0]), f"{Path(name).name}_t0-t2", degradation, max_size
                    )
                )
        return out

    def _sample(self, hr, ref, name, degradation, max_size):
        crop = None
        if max_size:
            crop = (min(max_size, hr.shape[-2]), min(max_size, hr.shape[-1]))
        return make_sample(hr, ref, self.scale, name=name, crop=crop, degradation=degradation)


# -- the training stream ---------------------------------------------------------------------------

_MASK = (1 << 63) - 1


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64 finaliser), so nearby positions get unrelated streams."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
        x = x * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x & _MASK


def epoch_permutation(seed: int, epoch: int, n: int) -> list[int]:
    g = torch.Generator().manual_seed(mix_seed(seed, 1, epoch))
    return torch.randperm(n, generator=g).tolist()


class TrainPairs(Dataset):
    """Map-style dataset indexed by global position; items are dicts of
    ``lr`` (3, h, w), ``ref`` (3, H, W), ``hr`` (3, H, W) float32 in [0, 1] (H, W = ``data.crop``),
    ``position`` (int), ``synthetic`` (bool), ``shift`` ((dx, dy) px of the reference),
    ``flips`` ((h, v) bools)."""

    def __init__(self, sources: Sources, cfg):
        self.sources, self.cfg = sources, cfg
        self.scale = cfg.model.scale
        self.seed = cfg.run.seed
        self.cache = ImageCache(cfg.data.cache_images)
        self._perm: tuple[int, list[int]] | None = None

    @property
    def epoch_size(self) -> int:
        return len(self.sources.entries)

    def __len__(self):  # positions are unbounded; this is one epoch, for information only
        return self.epoch_size

    def entry_at(self, position: int):
        e, i = divmod(int(position), self.epoch_size)
        if self._perm is None or self._perm[0] != e:
            self._perm = (e, epoch_permutation(self.seed, e, self.epoch_size))
        return self.sources.entries[self._perm[1][i]]

    def _pair(self, entry, gen):
        """Full-size (hr, ref) images of one entry, drawing the view pair / side."""
        if entry.kind == "lf":
            lf = self.sources.lightfields[entry.index]
            views = lf.views
            maxd = self.cfg.data.max_view_distance
            while True:  # distinct views anywhere on the grid (index 7 included), within maxd
                i, j = torch.randint(len(views), (2,), generator=gen).tolist()
                a, b = views[i], views[j]
                if i != j and (not maxd or max(abs(a[0] - b[0]), abs(a[1] - b[1])) <= maxd):
                    break
            return (self.cache.load(lf.path(b)), self.cache.load(lf.path(a)))
        if entry.kind == "video":
            frames = self.sources.videos[entry.index][1]
            gap = self.cfg.data.video_max_gap
            while True:  # reference frame t, LR frame t + k, 1 <= |k| <= gap (both directions)
                i, j = torch.randint(len(frames), (2,), generator=gen).tolist()
                if i != j and abs(i - j) <= gap:
                    break
            return self.cache.load(frames[j]), self.cache.load(frames[i])
        if entry.kind == "multiview":
            mv = self.sources.multiview[entry.index]
            ref_i, hr_i = mv.pairs[int(torch.randint(len(mv.pairs), (), generator=gen))]
            d = mv.spec.downscale
            return self.cache.load(mv.files[hr_i], d), self.cache.load(mv.files[ref_i], d)
        swap = bool(torch.rand((), generator=gen) < 0.5) and self.cfg.data.stereo_swap
        hr_p, ref_p = (entry.left, entry.right) if swap else (entry.right, entry.left)
        return self.cache.load(hr_p), self.cache.load(ref_p)

    def __getitem__(self, position: int) -> dict:
        cfg, aug = self.cfg, self.cfg.augment
        gen = torch.Generator().manual_seed(mix_seed(self.seed, 2, position))
        entry = self.entry_at(position)
        hr_full, ref_full = self._pair(entry, gen)
        h, w = cfg.data.crop
        synthetic = bool(torch.rand((), generator=gen) < cfg.data.synthetic_fraction)
        if synthetic:
            s = cfg.synthetic
            hr, ref = A.random_synthetic_pair(
                hr_full,
                (h, w),
                gen,
                flow_amplitude=s.flow_amplitude,
                flow_grid=s.flow_grid,
                parallax=s.parallax,
                margin=s.margin,
            )
            shift = (0, 0)
        else:
            if hr_full.shape[-2:] != ref_full.shape[-2:]:
                raise ValueError(
                    f"{entry.name}: reference and HR sizes differ "
                    f"({tuple(ref_full.shape[-2:])} vs {tuple(hr_full.shape[-2:])})"
                )
            top, left = A.random_crop_box(hr_full.shape[-2:], (h, w), gen)
            shift = A.draw_shift(gen, aug.parallax)
            hr = hr_full[:, top : top + h, left : left + w].contiguous()
            ref = A.shifted_crop(ref_full, top, left, h, w, *shift).contiguous()
        flips = A.draw_flips(gen, aug.hflip, aug.vflip)
        jit = A.draw_jitter(gen, aug.brightness_std, aug.color, aug.contrast)
        jit_ref = A.draw_jitter(gen, aug.brightness_std, aug.color, aug.contrast) if aug.independent_ref_jitter else jit
        # Jitter the HR view before degrading it, so the LR input is always exactly the
        # degradation of the target (as in validation); the reference gets the same jitter
        # (or its own, to mimic exposure differences between cameras).
        hr = A.apply_jitter(hr, jit)
        ref = A.apply_jitter(ref, jit_ref)
        lr = degrade(hr[None], self.scale, method=cfg.data.degradation)[0]
        # One mirror for all three: LR, reference and HR stay aligned (real flips, channels kept).
        lr, ref, hr = A.flip((lr, ref, hr), *flips)
        return {
            "lr": lr.contiguous(),
            "ref": ref.contiguous(),
            "hr": hr.contiguous(),
            "position": int(position),
            "synthetic": synthetic,
            "shift": torch.tensor(shift),
            "flips": torch.tensor(flips),
        }


class StepBatchSampler(Sampler):
    """Yields, for steps ``start_step .. iterations - 1``, this rank's list of positions.

    ``start_position``: the global position of ``start_step``'s first sample (the saved
    data-order state; equals ``start_step * global_batch`` unless the batch changed).
    """

    def __init__(
        self,
        start_step: int,
        iterations: int,
        batch: int,
        rank: int = 0,
        world: int = 1,
        start_position: int | None = None,
    ):
        self.start_step, self.iterations = int(start_step), int(iterations)
        self.batch, self.rank, self.world = int(batch), int(rank), int(world)
        self.global_batch = self.batch * self.world
        self.start_position = self.start_step * self.global_batch if start_position is None else int(start_position)

    def position_of(self, step: int) -> int:
        """Global position of the first sample of ``step``."""
        return self.start_position + (int(step) - self.start_step) * self.global_batch

    def __iter__(self):
        for t in range(self.start_step, self.iterations):
            first = self.position_of(t) + self.rank * self.batch
            yield list(range(first, first + self.batch))

    def __len__(self):
        return max(0, self.iterations - self.start_step)


__all__ = ["Entry", "ImageCache", "Sources", "TrainPairs", "StepBatchSampler", "mix_seed", "epoch_permutation"]
