"""The training stream: global sample position -> augmented (lr, ref, hr), deterministically.

Sample ``p`` (0, 1, 2, ... over the whole run) is entry ``perm_e[p % E]`` of epoch ``e = p // E``
(``perm_e`` a permutation seeded by (seed, e)), augmented with a generator seeded by (seed, p).
Step ``t`` consumes positions ``[t * G, (t + 1) * G)`` for the global batch ``G`` = batch x world;
rank ``r`` takes the ``r``-th block of ``batch`` of them (DistributedSampler-style sharding).
So the data-order state is one integer, the next position: saving it and resuming reproduces
the stream exactly, for any number of DataLoader workers, and a 2-rank run sees the same global
batches as a 1-rank run with twice the batch.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler

from ..degrade import degrade
from . import augment as A
from .sources import ImageCache, Sources
from .synthetic import random_synthetic_pair

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
            hr, ref = random_synthetic_pair(hr_full, (h, w), gen, flow_amplitude=s.flow_amplitude,
                                            flow_grid=s.flow_grid, parallax=s.parallax, margin=s.margin)
            shift = (0, 0)
        else:
            if hr_full.shape[-2:] != ref_full.shape[-2:]:
                raise ValueError(f"{entry.name}: reference and HR sizes differ "
                                 f"({tuple(ref_full.shape[-2:])} vs {tuple(hr_full.shape[-2:])})")
            top, left = A.random_crop_box(hr_full.shape[-2:], (h, w), gen)
            shift = A.draw_shift(gen, aug.parallax)
            hr = hr_full[:, top:top + h, left:left + w].contiguous()
            ref = A.shifted_crop(ref_full, top, left, h, w, *shift).contiguous()
        flips = A.draw_flips(gen, aug.hflip, aug.vflip)
        jit = A.draw_jitter(gen, aug.brightness_std, aug.color, aug.contrast)
        jit_ref = A.draw_jitter(gen, aug.brightness_std, aug.color, aug.contrast) \
            if aug.independent_ref_jitter else jit
        # Jitter the HR view before degrading it, so the LR input is always exactly the
        # degradation of the target (as in validation); the reference gets the same jitter
        # (or its own, to mimic exposure differences between cameras).
        hr = A.apply_jitter(hr, jit)
        ref = A.apply_jitter(ref, jit_ref)
        lr = degrade(hr[None], self.scale, method=cfg.data.degradation)[0]
        # One mirror for all three: LR, reference and HR stay aligned (real flips, channels kept).
        lr, ref, hr = A.flip((lr, ref, hr), *flips)
        return {"lr": lr.contiguous(), "ref": ref.contiguous(), "hr": hr.contiguous(),
                "position": int(position), "synthetic": synthetic,
                "shift": torch.tensor(shift), "flips": torch.tensor(flips)}


class StepBatchSampler(Sampler):
    """Yields, for steps ``start_step .. iterations - 1``, this rank's list of positions.

    ``start_position``: the global position of ``start_step``'s first sample (the saved
    data-order state; equals ``start_step * global_batch`` unless the batch changed).
    """

    def __init__(self, start_step: int, iterations: int, batch: int, rank: int = 0, world: int = 1,
                 start_position: int | None = None):
        self.start_step, self.iterations = int(start_step), int(iterations)
        self.batch, self.rank, self.world = int(batch), int(rank), int(world)
        self.global_batch = self.batch * self.world
        self.start_position = (self.start_step * self.global_batch if start_position is None
                               else int(start_position))

    def position_of(self, step: int) -> int:
        """Global position of the first sample of ``step``."""
        return self.start_position + (int(step) - self.start_step) * self.global_batch

    def __iter__(self):
        for t in range(self.start_step, self.iterations):
            first = self.position_of(t) + self.rank * self.batch
            yield list(range(first, first + self.batch))

    def __len__(self):
        return max(0, self.iterations - self.start_step)


__all__ = ["TrainPairs", "StepBatchSampler", "mix_seed", "epoch_permutation"]
