"""Extra training sources from multi-view captures: ``[[data.multiview]]`` in a training config.

Each source is a folder of images of one scene and adds ``repeats`` slots to every epoch; a slot
draws a fresh (reference, target) pair among the source's allowed pairs each time it is used
(train/pairs.py), like a light field of ``data.lightfields`` does. Two kinds:

- ``kind = "grid"``: a camera grid (a light field whose files carry no row/col in their names).
  ``grid = [rows, cols]``; the files, sorted by the last number in their names (then by name),
  are the views in row-major order: file ``i`` (0-based) is view ``(i // cols, i % cols)``.
  Allowed pairs: two distinct views at most ``max_view_distance`` steps apart on both axes
  (Chebyshev distance; 0 = any two views).
- ``kind = "images"``: an ordered set of views (a hand-held or forward-facing capture, video frames
  with gaps). Files sorted like above; allowed pairs: reference ``i``, target ``j`` with
  ``1 <= |i - j| <= max_gap`` positions in that order (both directions; not file numbers).

Both take ``downscale`` (integer >= 1): every image is reduced by that factor by averaging each
``downscale x downscale`` block (area resampling, what a sensor with bigger pixels would record;
a remainder of rows/columns at the bottom/right is dropped) and rounded to 8-bit levels, so a
large capture gives a training view of sensible size and the cache can keep it as uint8.

The table of one source, with its defaults::

    [[data.multiview]]
    path = "toys_lf"            # folder, relative to data.root (required)
    kind = "grid"               # "grid" | "images" (required)
    grid = [16, 16]             # rows, cols (kind "grid" only, required there)
    max_view_distance = 1       # kind "grid" only; 0 = any two views
    max_gap = 1                 # kind "images" only
    downscale = 1
    repeats = 1                 # epoch slots

:func:`parse_specs` checks the tables alone (at config load); :func:`open_sources` lists the files
and refuses a missing folder, and a source whose folder overlaps a held-out light field or video,
or a stereo folder (where the held-out stereo pairs live), so the held-out set stays out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import list_images, load_image

KINDS = ("grid", "images")
_KEYS = {"path", "kind", "grid", "max_view_distance", "max_gap", "downscale", "repeats"}
_ONLY_FOR = {"grid": "grid", "max_view_distance": "grid", "max_gap": "images"}
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class MultiviewSpec:
    """One validated ``[[data.multiview]]`` table; ``key`` is its name in messages
    (``data.multiview[i]``)."""

    key: str
    path: str
    kind: str
    grid: tuple[int, int] = (0, 0)
    max_view_distance: int = 1
    max_gap: int = 1
    downscale: int = 1
    repeats: int = 1


@dataclass(frozen=True)
class MultiviewSource:
    """An opened source: ``files`` in view order, ``views`` their (row, col) for a grid (else
    ``(0, i)``), and ``pairs``, every allowed (reference index, target index) into ``files``."""

    spec: MultiviewSpec
    name: str
    files: tuple[Path, ...]
    views: tuple[tuple[int, int], ...]
    pairs: tuple[tuple[int, int], ...]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bad(key: str, value, want: str) -> ValueError:
    return ValueError(f"config {key}: got {value!r}, expected {want}")


def parse_specs(items) -> list[MultiviewSpec]:
    """``data.multiview`` (a list of tables) -> specs; ValueError naming the first bad key."""
    if not isinstance(items, (list, tuple)):
        raise _bad("data.multiview", items, "a list of tables ([[data.multiview]])")
    specs = []
    for i, item in enumerate(items):
        key = f"data.multiview[{i}]"
        if not isinstance(item, dict):
            raise _bad(key, item, "a table with path, kind, ...")
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise ValueError(f"config {key}: unknown key(s) {unknown} (known: {', '.join(sorted(_KEYS))})")
        for req in ("path", "kind"):
            if req not in item:
                raise ValueError(f"config {key}.{req}: missing (required)")
        path, kind = item["path"], item["kind"]
        if not isinstance(path, str) or not path:
            raise _bad(f"{key}.path", path, "a folder, relative to data.root")
        if kind not in KINDS:
            raise _bad(f"{key}.kind", kind, " or ".join(repr(k) for k in KINDS))
        for k, only in _ONLY_FOR.items():
            if k in item and only != kind:
                raise ValueError(f"config {key}.{k}: only for kind = {only!r} (this source is {kind!r})")
        for k, low in (("max_view_distance", 0), ("max_gap", 1), ("downscale", 1), ("repeats", 0)):
            if k in item and not (_is_int(item[k]) and item[k] >= low):
                raise _bad(f"{key}.{k}", item[k], f"an integer >= {low}")
        grid = (0, 0)
        if kind == "grid":
            g = item.get("grid")
            if not (isinstance(g, (list, tuple)) and len(g) == 2 and all(_is_int(v) and v >= 1 for v in g)):
                raise _bad(f"{key}.grid", g, "[rows, cols], positive integers (required for kind 'grid')")
            grid = (int(g[0]), int(g[1]))
        specs.append(
            MultiviewSpec(
                key=key,
                path=path,
                kind=kind,
                grid=grid,
                max_view_distance=int(item.get("max_view_distance", 1)),
                max_gap=int(item.get("max_gap", 1)),
                downscale=int(item.get("downscale", 1)),
                repeats=int(item.get("repeats", 1)),
            )
        )
    return specs


def _view_order(files: list[Path]) -> list[Path]:
    """By the last number in the stem (``0009.jpg`` before ``0012.jpg``, ``view2`` before
    ``view10``), then by name; names without a number after all numbered ones."""

    def key(p: Path):
        m = _TRAILING_NUMBER.search(p.stem)
        return (0, int(m.group(1)), p.name) if m else (1, 0, p.name)

    return sorted(files, key=key)


def allowed_pairs(spec: MultiviewSpec, views) -> list[tuple[int, int]]:
    """Every ordered (reference, target) index pair the spec allows between ``views``."""
    n = len(views)
    if spec.kind == "images":
        return [(i, j) for i in range(n) for j in range(n) if 1 <= abs(i - j) <= spec.max_gap]
    d = spec.max_view_distance
    return [
        (i, j)
        for i, a in enumerate(views)
        for j, b in enumerate(views)
        if i != j and (d == 0 or max(abs(a[0] - b[0]), abs(a[1] - b[1])) <= d)
    ]


def _overlaps(a: Path, b: Path) -> bool:
    """One folder path is the other or lies inside it (as written, relative to data.root)."""
    pa, pb = a.parts, b.parts
    return pa[: len(pb)] == pb or pb[: len(pa)] == pa


def open_source(spec: MultiviewSpec, root: Path, held_out=()) -> MultiviewSource:
    """List a source's files and pairs. ``held_out``: (folder as written, config key) the source
    must not overlap. FileNotFoundError / ValueError naming ``spec.key``."""
    rel = Path(spec.path)
    for other, why in held_out:
        if not rel.is_absolute() and _overlaps(rel, Path(other)):
            raise ValueError(
                f"config {spec.key}.path: {spec.path!r} overlaps {other!r} of {why}: "
                "held-out (or stereo) data may not be a multi-view training source"
            )
    folder = rel if rel.is_absolute() else Path(root) / rel
    if not folder.is_dir():
        raise FileNotFoundError(f"config {spec.key}.path: no such folder {folder} (data.root = {str(root)!r})")
    files = _view_order(list_images(folder))
    if spec.kind == "grid":
        rows, cols = spec.grid
        if len(files) != rows * cols:
            raise ValueError(
                f"config {spec.key}.grid: {folder} holds {len(files)} images, not {rows} x {cols} = {rows * cols}"
            )
        views = [(i // cols, i % cols) for i in range(len(files))]
    else:
        views = [(0, i) for i in range(len(files))]
    pairs = allowed_pairs(spec, views)
    if not pairs:
        raise ValueError(f"config {spec.key}: {folder} ({len(files)} images) gives no (reference, target) pair")
    return MultiviewSource(spec=spec, name=str(rel), files=tuple(files), views=tuple(views), pairs=tuple(pairs))


def open_sources(data_cfg, root: Path) -> list[MultiviewSource]:
    """Every source of ``data_cfg.multiview``, checked against the held-out light fields and
    videos and the stereo folders of the same config."""
    held_out = (
        [(p, "data.holdout_lightfields") for p in data_cfg.holdout_lightfields]
        + [(p, "data.holdout_video") for p in data_cfg.holdout_video]
        + [(p, "data.stereo (held-out pairs live there)") for p in data_cfg.stereo]
    )
    return [open_source(s, root, held_out) for s in parse_specs(data_cfg.multiview)]


def downscale_area(img: torch.Tensor, factor: int) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1] -> (3, H // factor, W // factor): the mean of each
    ``factor x factor`` block (the bottom/right remainder dropped), rounded to 8-bit levels
    (multiples of 1/255)."""
    if factor == 1:
        return img
    h, w = (img.shape[-2] // factor) * factor, (img.shape[-1] // factor) * factor
    if h == 0 or w == 0:
        raise ValueError(f"downscale {factor}: image {tuple(img.shape[-2:])} is smaller than one block")
    out = F.avg_pool2d(img[None, :, :h, :w], factor)[0]
    return out.mul_(255.0).round_().div_(255.0)


def load_downscaled(path, factor: int) -> torch.Tensor:
    """The image file ``path`` reduced by ``factor`` (:func:`downscale_area`); (3, h, w) float32."""
    return downscale_area(load_image(path), int(factor))


__all__ = [
    "KINDS",
    "MultiviewSpec",
    "MultiviewSource",
    "parse_specs",
    "allowed_pairs",
    "open_source",
    "open_sources",
    "downscale_area",
    "load_downscaled",
]
