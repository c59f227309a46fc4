"""``[[data.multiview]]`` training sources (crossnet_fast/train/multiview.py) and the configs that use
them (multiview_cpu_x4 / x8).

Counts, distances and downscaled pixels are checked against formulas and readers of their own (file
names parsed here, PIL's ``Image.reduce``), never against the module under test. Tests that read
../shared/data skip when it is absent.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crossnet_fast.train import load_config
from crossnet_fast.train.config import CONFIG_DIR, TrainConfig, config_differences
from crossnet_fast.train.multiview import parse_specs
from crossnet_fast.train.pairs import Sources, TrainPairs, mix_seed

from _images import save_png, texture  # noqa: E402
from _threads import one_thread  # noqa: E402,F401  (autouse)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not all((SHARED / d).is_dir() for d in ("toys_lf", "llff_fern", "ngp_fox")),
    reason="../shared/data with toys_lf, llff_fern, ngp_fox not present",
)
HELD_OUT = {"antinous", "IMG_0001", "Adirondack", "Teddy", "Vintage", "vid4/walk"}


def _cfg(name: str, *overrides: str):
    return load_config(name, [f'data.root="{SHARED}"', *overrides])


def _recording(ds: TrainPairs) -> TrainPairs:
    """``ds`` whose image loads return (path relative to the data, downscale) instead of pixels."""
    ds.cache.load = lambda p, d=1: (Path(p).relative_to(SHARED).as_posix(), d)
    return ds


def _draw(ds: TrainPairs, entry, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [ds._pair(entry, g) for _ in range(n)]


# -- the tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item, key",
    [
        ({"kind": "grid", "grid": [2, 2]}, r"data\.multiview\[0\]\.path: missing"),
        ({"path": "x", "kind": "stack"}, r"data\.multiview\[0\]\.kind"),
        ({"path": "x", "kind": "grid"}, r"data\.multiview\[0\]\.grid"),
        ({"path": "x", "kind": "grid", "grid": [2, 0]}, r"data\.multiview\[0\]\.grid"),
        ({"path": "x", "kind": "images", "downscale": 0}, r"data\.multiview\[0\]\.downscale"),
        ({"path": "x", "kind": "images", "max_gap": 0}, r"data\.multiview\[0\]\.max_gap"),
        ({"path": "x", "kind": "images", "repeats": 1.5}, r"data\.multiview\[0\]\.repeats"),
        ({"path": "x", "kind": "images", "max_view_distance": 2}, r"data\.multiview\[0\]\.max_view_distance: only for"),
        ({"path": "x", "kind": "images", "gap": 2}, r"data\.multiview\[0\]: unknown key"),
    ],
)
def test_a_bad_table_is_refused_at_config_load_naming_its_key(item, key):
    with pytest.raises(ValueError, match=key):
        load_config({"data": {"multiview": [item]}})


def test_the_default_is_no_source_and_every_shipped_config_but_the_multiview_ones_has_none():
    # The multi-view stages and the refine stages built on them (refine_cpu_x4 / _x8) draw them.
    assert TrainConfig().data.multiview == [] and parse_specs([]) == []
    for path in sorted(CONFIG_DIR.glob("*.toml")):
        mv = load_config(path.stem).data.multiview
        assert (mv != []) == path.stem.startswith(("multiview_", "refine_")), path.stem


def test_a_missing_folder_fails_naming_the_key(tmp_path):
    cfg = load_config(
        {
            "data": {
                "root": str(tmp_path),
                "lightfields": [],
                "stereo": [],
                "holdout_lightfields": [],
                "holdout_stereo": [],
                "multiview": [{"path": "here", "kind": "images"}, {"path": "gone", "kind": "images"}],
            }
        }
    )
    d = tmp_path / "here"
    d.mkdir()
    for i in range(2):
        save_png(texture(32, 32, seed=i), d / f"{i}.png")
    with pytest.raises(FileNotFoundError, match=r"data\.multiview\[1\]\.path: no such folder .*gone"):
        Sources(cfg.data, 4)


def test_a_grid_whose_file_count_is_not_rows_times_cols_is_refused(tmp_path):
    d = tmp_path / "lf"
    d.mkdir()
    for i in range(5):
        save_png(texture(32, 32, seed=i), d / f"v{i + 1}.png")
    cfg = load_config(
        {
            "data": {
                "root": str(tmp_path),
                "lightfields": [],
                "stereo": [],
                "holdout_lightfields": [],
                "holdout_stereo": [],
                "multiview": [{"path": "lf", "kind": "grid", "grid": [2, 3]}],
            }
        }
    )
    with pytest.raises(ValueError, match=r"data\.multiview\[0\]\.grid: .* holds 5 images, not 2 x 3"):
        Sources(cfg.data, 4)


def test_grid_views_follow_the_number_in_the_name_not_its_spelling(tmp_path):
    """v2 is view (0, 1) and v10 is view (2, 1) on a 3x3 grid, though "v10" < "v2" as strings."""
    d = tmp_path / "lf"
    d.mkdir()
    for k in range(1, 10):
        save_png(texture(32, 32, seed=k), d / f"v{k}.png")
    cfg = load_config(
        {
            "data": {
                "root": str(tmp_path),
                "lightfields": [],
                "stereo": [],
                "holdout_lightfields": [],
                "holdout_stereo": [],
                "multiview": [{"path": "lf", "kind": "grid", "grid": [3, 3], "max_view_distance": 1}],
            }
        }
    )
    src = Sources(cfg.data, 4)
    mv = src.multiview[0]
    assert [(int(f.stem[1:]), v) for f, v in zip(mv.files, mv.views)] == [
        (k, ((k - 1) // 3, (k - 1) % 3)) for k in range(1, 10)
    ]


# -- the shipped sources ---------------------------------------------------------------------------


def _toys_view(rel: str) -> tuple[int, int]:
    k = int(re.fullmatch(r"toys_lf/lowtoys(\d+)\.png", rel).group(1))
    return (k - 1) // 16, (k - 1) % 16


@needs_data
@pytest.mark.parametrize("scale", [4, 8])
def test_pair_counts_and_distances_follow_the_settings(scale):
    cfg = _cfg(f"multiview_cpu_x{scale}")
    src = Sources(cfg.data, scale, cfg.val)
    ds = _recording(TrainPairs(src, cfg))
    mv_entries = [e for e in src.entries if e.kind == "multiview"]
    # Repeats as written in the file (8, 6, 6), after everything the matching config lists.
    assert [e.name for e in mv_entries] == ["toys_lf"] * 8 + ["llff_fern"] * 6 + ["ngp_fox"] * 6
    assert src.entries[-len(mv_entries) :] == mv_entries
    by_name = {m.name: m for m in src.multiview}
    # Ordered (ref, target) pairs: on a 16x16 grid, views within 2 steps on both axes:
    # (16 + 2 * (15 + 14))^2 pairs of (row pair, col pair) minus the 256 pairs of a view with itself.
    assert len(by_name["toys_lf"].pairs) == (16 + 2 * (15 + 14)) ** 2 - 256
    assert len(by_name["llff_fern"].pairs) == 2 * (19 + 18)  # 20 images, 1 <= |i - j| <= 2
    assert len(by_name["ngp_fox"].pairs) == 2 * (49 + 48)  # 50 frames
    fox_order = sorted(p.name for p in (SHARED / "ngp_fox").glob("*.jpg"))  # zero-padded numbers
    assert len(fox_order) == 50
    first = {e.name: e for e in mv_entries}
    seen = {"toys_lf": set(), "llff_fern": set(), "ngp_fox": set()}
    for name, entry in first.items():
        for (hr, d_hr), (ref, d_ref) in _draw(ds, entry, 300):
            assert d_hr == d_ref == {"toys_lf": 1, "llff_fern": 2, "ngp_fox": 4}[name]
            if name == "toys_lf":
                (r0, c0), (r1, c1) = _toys_view(ref), _toys_view(hr)
                dist = max(abs(r0 - r1), abs(c0 - c1))
            elif name == "llff_fern":
                i, j = (int(re.fullmatch(r"llff_fern/image(\d+)\.png", p).group(1)) for p in (ref, hr))
                dist = abs(i - j)
            else:
                i, j = (fox_order.index(Path(p).name) for p in (ref, hr))
                dist = abs(i - j)
            seen[name].add(dist)
    assert seen == {"toys_lf": {1, 2}, "llff_fern": {1, 2}, "ngp_fox": {1, 2}}


@needs_data
@pytest.mark.parametrize(
    "rel, factor, size",
    [
        ("toys_lf/lowtoys037.png", 1, (240, 320)),
        ("llff_fern/image007.png", 2, (378, 504)),
        ("ngp_fox/0042.jpg", 4, (480, 270)),
    ],
)
def test_images_are_the_real_files_at_the_stated_downscale(rel, factor, size):
    cfg = _cfg("multiview_cpu_x4")
    src = Sources(cfg.data, 4, cfg.val)
    ds = TrainPairs(src, cfg)
    got = ds.cache.load(src.root / rel, factor)
    with Image.open(SHARED / rel) as im:
        full = np.asarray(im.convert("RGB"), dtype=np.float64)
        pil = np.asarray(im.convert("RGB").reduce(factor), dtype=np.float32) / 255.0  # PIL's box mean
    h, w = size
    exact = full[: h * factor, : w * factor].reshape(h, factor, w, factor, 3).mean(axis=(1, 3)) / 255.0
    exact = torch.from_numpy(exact).permute(2, 0, 1)
    assert tuple(got.shape) == (3, *size) and pil.shape == (*size, 3)
    # The exact block mean rounded to 8-bit levels: within half a level, on the levels.
    assert (got.double() - exact).abs().max().item() <= 0.5 / 255 + 1e-6
    assert torch.equal((got * 255).round() / 255, got)
    # PIL rounds exact halves the other way: at most one level apart.
    assert (got - torch.from_numpy(pil).permute(2, 0, 1)).abs().max().item() <= 1.0 / 255 + 1e-6
    assert torch.equal(ds.cache.load(src.root / rel, factor), got)  # the cached copy is identical


@needs_data
def test_a_multiview_sample_is_a_training_crop_of_the_configured_size():
    cfg = _cfg("multiview_cpu_x8")
    ds = TrainPairs(Sources(cfg.data, 8, cfg.val), cfg)
    pos = next(p for p in range(ds.epoch_size) if ds.entry_at(p).name == "ngp_fox")
    s = ds[pos]
    assert s["hr"].shape == s["ref"].shape == (3, 128, 128) and s["lr"].shape == (3, 16, 16)
    assert torch.isfinite(s["lr"]).all() and s["hr"].std() > 0.01


# -- what must not change --------------------------------------------------------------------------


def _stream_digest(name: str) -> tuple[int, str]:
    """(epoch size, sha256 of [kind, name, hr file, ref file] for the first two epochs)."""
    cfg = _cfg(name)
    ds = _recording(TrainPairs(Sources(cfg.data, cfg.model.scale, cfg.val), cfg))
    rows = []
    for p in range(2 * ds.epoch_size):
        e = ds.entry_at(p)
        g = torch.Generator().manual_seed(mix_seed(cfg.run.seed, 2, p))
        (hr, _), (ref, _) = ds._pair(e, g)
        rows.append([e.kind, e.name, hr, ref])
    return ds.epoch_size, hashlib.sha256(json.dumps(rows).encode()).hexdigest()


@needs_data
@pytest.mark.parametrize("name", ["compact_cpu_x4", "matching_cpu_x4", "matching_cpu_x8"])
def test_an_existing_config_draws_exactly_the_pairs_it_drew_before(name):
    # Recorded with the code before data.multiview existed (commit 3f1a1f4): 8 backgammon slots,
    # 10 Middlebury pairs, 3 Vid4 sequences x 3; which entry each position takes and which files.
    assert _stream_digest(name) == (27, "22ce56f13ccdb0b85aa2f9468202ef1deb96a9ae8421327bae67c4a2ec096d90")


@needs_data
@pytest.mark.parametrize("scale", [4, 8])
def test_the_held_out_set_stays_out(scale):
    base, new = _cfg(f"matching_cpu_x{scale}"), _cfg(f"multiview_cpu_x{scale}")
    a, b = Sources(base.data, scale, base.val), Sources(new.data, scale, new.val)

    def val(s):
        return [lf.name for lf in s.val_lightfields], [n for n, _, _ in s.val_stereo], [n for n, _ in s.val_videos]

    assert val(a) == val(b) == (["antinous", "IMG_0001"], ["Adirondack", "Teddy", "Vintage"], ["vid4/walk"])
    assert not HELD_OUT & {e.name for e in b.entries}
    files = {str(f) for m in b.multiview for f in m.files}
    assert not [f for f in files if any(h in f for h in ("antinous", "IMG_0001", "middlebury", "vid4"))]
    assert b.entries[: len(a.entries)] == a.entries


@needs_data
@pytest.mark.parametrize(
    "path, key",
    [
        ("hci/antinous", "data.holdout_lightfields"),
        ("vid4", "data.holdout_video"),
        ("middlebury2014_quarter/left", "data.stereo"),
    ],
)
def test_a_source_over_held_out_data_is_refused(path, key):
    cfg = _cfg("matching_cpu_x4", f'data.multiview=[{{path = "{path}", kind = "images"}}]')
    with pytest.raises(ValueError, match=rf"data\.multiview\[0\]\.path: .*{re.escape(key)}"):
        Sources(cfg.data, 4, cfg.val)


def test_the_multiview_configs():
    for scale in (4, 8):
        cfg, base = load_config(f"multiview_cpu_x{scale}"), load_config(f"matching_cpu_x{scale}")
        assert cfg.model.scale == scale and cfg.model.options == base.model.options
        assert cfg.model.init == f"runs/matching2_x{scale}/model.safetensors" and cfg.model.init_strict
        assert (cfg.optim.iterations, cfg.optim.lr, cfg.optim.milestones) == (3000, 1.5e-4, [2100, 2600])
        assert cfg.run.out == f"runs/multiview_x{scale}"
        assert [
            d
            for d in config_differences(base.to_dict(), cfg.to_dict())
            if not d.startswith(("data.multiview", "model.init", "optim.lr", "run.out"))
        ] == []
    assert load_config("multiview_cpu_x4").data.multiview == load_config("multiview_cpu_x8").data.multiview
    specs = parse_specs(load_config("multiview_cpu_x4").data.multiview)
    assert [(s.path, s.kind, s.grid, s.max_view_distance, s.max_gap, s.downscale, s.repeats) for s in specs] == [
        ("toys_lf", "grid", (16, 16), 2, 1, 1, 8),
        ("llff_fern", "images", (0, 0), 1, 2, 2, 6),
        ("ngp_fox", "images", (0, 0), 1, 2, 4, 6),
    ]


def test_a_checkpoint_from_before_the_key_existed_resumes_without_a_difference():
    old = TrainConfig().to_dict()
    del old["data"]["multiview"]
    assert config_differences(old, TrainConfig().to_dict()) == []
    changed = load_config({"data": {"multiview": [{"path": "x", "kind": "images"}]}}).to_dict()
    assert [d.split(":")[0] for d in config_differences(old, changed)] == ["data.multiview"]
