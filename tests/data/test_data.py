"""Data loading: per-view folders (both namings), mosaics and tiles (synthetic), stereo, pair
lists, the protocol and random views, and clear errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crossnet_fast.data import (
    LightFieldDataset,
    MosaicLightField,
    PairListDataset,
    StereoDataset,
    TiledLightField,
    ViewFolderLightField,
    detect_layout,
    load_image,
    open_dataset,
)
from crossnet_fast.degrade import degrade

from _threads import one_thread  # noqa: F401  (autouse fixture)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _view_pixels(u, v, h=6, w=7):
    """A distinct uint8 (h, w, 3) image per view (u, v)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(u * 30 + y * 3) % 256, (v * 30 + x * 3) % 256, (u * 8 + v + y + x) % 256], -1).astype(np.uint8)


def _save(arr, path):
    Image.fromarray(arr).save(path)
    return path


def _as_tensor(arr):
    return torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)


def test_mosaic_layout(tmp_path):
    h, w, pitch = 6, 7, 14
    # Exactly h x w lenses (a ragged size is a bad input: see tests/cli/test_bad_inputs.py).
    mosaic = np.zeros((h * pitch, w * pitch, 3), np.uint8)
    for u in range(pitch):
        for v in range(pitch):
            mosaic[u : h * pitch : pitch, v : w * pitch : pitch] = _view_pixels(u, v, h, w)
    lf = MosaicLightField(_save(mosaic, tmp_path / "scene.png"))
    assert lf.grid == (8, 8) and len(lf.views) == 64
    for u, v in [(0, 0), (1, 1), (7, 7), (3, 5)]:
        # Central 8x8 of 14x14: view (u, v) sits at lens offset (u + 3, v + 3).
        assert torch.equal(lf.view((u, v)), _as_tensor(_view_pixels(u + 3, v + 3, h, w)))
    with pytest.raises(FileNotFoundError, match=r"no view \(8, 0\)"):
        lf.view((8, 0))


def test_tiles_layout(tmp_path):
    h, w = 5, 6
    frame = np.zeros((8 * h, 8 * w, 3), np.uint8)
    for r in range(8):
        for c in range(8):
            frame[r * h : (r + 1) * h, c * w : (c + 1) * w] = _view_pixels(r, c, h, w)
    lf = TiledLightField(_save(frame, tmp_path / "frame_0001.png"))
    for r, c in [(0, 0), (1, 1), (7, 7), (2, 6)]:
        assert torch.equal(lf.view((r, c)), _as_tensor(_view_pixels(r, c, h, w)))
    bad = TiledLightField(_save(frame[:-1], tmp_path / "bad.png"))
    with pytest.raises(ValueError, match="multiple of the 8x8"):
        bad.view((0, 0))


def _hci_folder(root, views, size=(16, 24)):
    root.mkdir(parents=True)
    for r, c in views:
        _save(_view_pixels(r, c, *size), root / f"input_Cam{9 * r + c:03d}.png")
    return root


def test_view_folder_namings(tmp_path):
    hci = ViewFolderLightField(_hci_folder(tmp_path / "hci", [(0, 0), (1, 1), (7, 7), (0, 8)]))
    assert hci.views == [(0, 0), (0, 8), (1, 1), (7, 7)] and hci.grid == (8, 9)
    assert torch.equal(hci.view((7, 7)), _as_tensor(_view_pixels(7, 7, 16, 24)))
    with pytest.raises(FileNotFoundError, match=r"no view \(2, 2\)"):
        hci.view((2, 2))
    lytro = tmp_path / "IMG_0009"
    lytro.mkdir()
    k = 0
    for r in range(1, 4):  # serpentine k: the index says nothing about the position
        for c in range(1, 4) if r % 2 else range(3, 0, -1):
            k += 1
            _save(_view_pixels(r - 1, c - 1), lytro / f"IMG_0009_{k:03d}_{r:02d}_{c:02d}.png")
    lf = ViewFolderLightField(lytro)
    assert lf.grid == (3, 3)
    assert torch.equal(lf.view((2, 0)), _as_tensor(_view_pixels(2, 0)))


def test_protocol_dataset_and_errors(tmp_path):
    folder = _hci_folder(tmp_path / "scene", [(0, 0), (1, 1)], size=(30, 37))
    ds = LightFieldDataset([ViewFolderLightField(folder)], scale=4)
    s = ds[0]
    # Cropped to multiples of the scale, LR made by the bicubic degradation of the (1,1) view.
    assert s["hr"].shape == (3, 28, 36) and s["lr"].shape == (3, 7, 9) and s["ref"].shape == (3, 28, 36)
    assert torch.equal(s["hr"], _as_tensor(_view_pixels(1, 1, 30, 37))[:, :28, :36])
    assert torch.allclose(s["lr"], degrade(s["hr"], 4))
    assert s["lr_view"] == (1, 1) and s["ref_view"] == (0, 0)
    cropped = LightFieldDataset([ViewFolderLightField(folder)], scale=4, crop=(16, 20))[0]
    assert cropped["hr"].shape == (3, 16, 20) and torch.equal(cropped["hr"], s["hr"][:, :16, :20])
    with pytest.raises(ValueError, match="crop 40x16 does not fit"):
        LightFieldDataset([ViewFolderLightField(folder)], scale=4, crop=(16, 40))[0]
    with pytest.raises(FileNotFoundError, match=r"\(7, 7\)"):
        LightFieldDataset([ViewFolderLightField(folder)], scale=4, lr_view=(7, 7))
    # Mismatched view sizes.
    _save(_view_pixels(2, 2, 20, 37), folder / "input_Cam020.png")
    ds = LightFieldDataset([ViewFolderLightField(folder)], scale=4, lr_view=(2, 2))
    with pytest.raises(ValueError, match=r"view \(2, 2\).*must match"):
        ds[0]
    # Unreadable file.
    (folder / "input_Cam030.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="input_Cam030.png"):
        LightFieldDataset([ViewFolderLightField(folder)], scale=4, lr_view=(3, 3))[0]
    with pytest.raises(ValueError, match="scale"):
        LightFieldDataset([ViewFolderLightField(folder)], scale=0)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_image(tmp_path / "nope.png")


def test_random_views_for_training(tmp_path):
    views = [(r, c) for r in range(3) for c in range(3)]
    folder = _hci_folder(tmp_path / "scene", views, size=(24, 24))
    ds = LightFieldDataset(
        [ViewFolderLightField(folder)] * 4, scale=4, random_views=True, max_distance=1, patch=16, seed=3
    )
    pairs = set()
    for i in range(4):
        a, b = ds[i], ds[i]
        assert (a["ref_view"], a["lr_view"]) == (b["ref_view"], b["lr_view"])  # seeded
        assert torch.equal(a["hr"], b["hr"])
        assert a["hr"].shape == (3, 16, 16) and a["lr"].shape == (3, 4, 4)
        assert a["ref_view"] != a["lr_view"]
        d = max(abs(a["ref_view"][0] - a["lr_view"][0]), abs(a["ref_view"][1] - a["lr_view"][1]))
        assert d <= 1
        pairs.add((a["ref_view"], a["lr_view"]))
    assert len(pairs) > 1
    with pytest.raises(ValueError, match="patch"):
        LightFieldDataset([ViewFolderLightField(folder)], scale=4, random_views=True, patch=10)


def test_stereo_and_pair_list(tmp_path):
    for side in ("left", "right"):
        (tmp_path / "st" / side).mkdir(parents=True)
        for n, u in (("a", 0), ("b", 1)):
            _save(_view_pixels(u, side == "right", 16, 20), tmp_path / "st" / side / f"{n}.png")
    assert detect_layout(tmp_path / "st") == "stereo"
    ds = open_dataset(tmp_path / "st", scale=4)
    assert isinstance(ds, StereoDataset) and len(ds) == 2
    s = ds[1]
    assert s["name"] == "b" and torch.equal(s["ref"], _as_tensor(_view_pixels(1, 0, 16, 20)))
    assert torch.equal(s["hr"], _as_tensor(_view_pixels(1, 1, 16, 20)))
    assert torch.equal(
        StereoDataset(tmp_path / "st" / "left", tmp_path / "st" / "right", 4, ref_side="right")[1]["ref"], s["hr"]
    )
    _save(_view_pixels(0, 0), tmp_path / "st" / "left" / "c.png")
    with pytest.raises(FileNotFoundError, match="c.png"):
        open_dataset(tmp_path / "st", scale=4)

    lst = tmp_path / "pairs.txt"
    lst.write_text("# image reference\nst/right/a.png st/left/a.png\n\nst/right/b.png, st/left/b.png\n")
    ds = open_dataset(lst, scale=2)
    assert isinstance(ds, PairListDataset) and len(ds) == 2 and ds[0]["lr"].shape == (3, 8, 10)
    lr = _save(_view_pixels(0, 0, 4, 5), tmp_path / "lr.png")
    ok = PairListDataset([(lr, tmp_path / "st/left/a.png")], scale=4, kind="lr")[0]
    assert "hr" not in ok and ok["lr"].shape == (3, 4, 5)
    # A reference of another size is placed top-left (cropped here: 20x16 on a 10x8 canvas).
    placed = PairListDataset([(lr, tmp_path / "st/left/a.png")], scale=2, kind="lr")[0]
    assert torch.equal(placed["ref"], _as_tensor(_view_pixels(0, 0, 16, 20))[:, :8, :10])
    assert placed["ref_placement"].startswith("reference 20x16 cropped to 10x8")
    with pytest.raises(ValueError, match="reference .*a.png is 20x16 .* less than half"):
        PairListDataset([(lr, tmp_path / "st/left/a.png")], scale=16, kind="lr")[0]
    lst.write_text("only_one_path.png\n")
    with pytest.raises(ValueError, match="two paths"):
        PairListDataset(lst, scale=2)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        PairListDataset([(tmp_path / "missing.png", lr)], scale=2)


def test_open_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="layout"):
        open_dataset(tmp_path, layout="zip")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="--layout"):
        detect_layout(tmp_path / "x.png")


def test_real_data_layouts():
    if not (DATA / "hci").is_dir():
        pytest.skip(f"real data not found in {DATA}")
    hci = open_dataset(DATA / "hci", scale=8)
    assert [lf.name for lf in hci.lightfields] == ["antinous", "backgammon"]
    lytro = ViewFolderLightField(DATA / "lytro_flowers" / "IMG_0001")
    assert lytro.grid == (10, 10) and lytro.path((1, 1)).name.endswith("_02_02.png")
    assert detect_layout(DATA / "middlebury2014_quarter") == "stereo"
    s = open_dataset(DATA / "lytro_flowers", scale=4, lr_view=(7, 7))[0]
    assert s["hr"].shape == (3, 256, 256) and s["lr"].shape == (3, 64, 64)
