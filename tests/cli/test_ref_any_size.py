"""A reference of another size than scale x the LR: ``super_resolve``, ``crossnet-fast sr`` and
``crossnet-fast eval`` place it on the output canvas (top-left aligned, cropped where larger,
edge-replicated where smaller; crossnet_fast/placement.py, docs/USE_IN_YOUR_MODEL.md).

The oracle is an independent construction: the canvas built by hand with numpy slicing and
``np.pad(mode="edge")``, or the exact-size reference itself (a reference that is it plus an extra
border must give the same output).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from crossnet_fast import ReferencePlacementWarning, super_resolve
from crossnet_fast.cli import main
from crossnet_fast.models import CrossNet
from crossnet_fast.placement import plan_placement

from _threads import one_thread  # noqa: F401  (autouse fixture)


def _canvas(ref: np.ndarray, h: int, w: int) -> np.ndarray:
    """The rule written independently: keep the top-left (h, w) of ``ref`` (H, W, C) and repeat
    its last row / column until the canvas is full."""
    top = ref[:h, :w]
    return np.pad(top, ((0, h - top.shape[0]), (0, w - top.shape[1]), (0, 0)), mode="edge")


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class RecordRef(nn.Module):
    """Returns the reference window it was given, and keeps it: the model's input, seen directly."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.refs = []

    def forward(self, lr, ref):
        assert lr.shape[-2] * self.scale == ref.shape[-2] and lr.shape[-1] * self.scale == ref.shape[-1]
        self.refs.append(ref.clone())
        return ref.clone()


# (reference height, width) for a 64x64 output (LR 16x16, x4): larger, smaller, off by a few, mixed.
SIZES = {"larger": (80, 97), "smaller": (40, 51), "off-by-a-few": (61, 67), "taller-narrower": (70, 62)}


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_model_input_is_the_hand_built_canvas(size):
    lr, ref = _rgb(16, 16, 0), _rgb(*size, 1)
    model = RecordRef(4)
    with pytest.warns(
        ReferencePlacementWarning,
        match=rf"reference {size[1]}x{size[0]} .* to 64x64 "
        r"\(top-left aligned",
    ):
        out = super_resolve(model, lr, ref)
    want = _canvas(ref, 64, 64)
    # 64x64 is one window with no padding to 64: the model saw exactly the canvas.
    assert len(model.refs) == 1
    got_in = (model.refs[0][0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(got_in, want)
    np.testing.assert_array_equal(out, want)


def test_windows_on_a_ragged_canvas_tensor_input():
    # LR 25x41 -> a 100x164 canvas (not multiples of 64: padded to 128x192, 15 windows); float
    # tensors in (N, 3, H, W); reference 3 px short at the bottom and 5 px too wide.
    g = torch.Generator().manual_seed(2)
    lr, ref = torch.rand(2, 3, 25, 41, generator=g), torch.rand(2, 3, 97, 169, generator=g)
    with pytest.warns(ReferencePlacementWarning, match="cropped and padded to 164x100"):
        out = super_resolve(RecordRef(4), lr, ref, window=64, stride=32)
    want = np.stack([_canvas(r.permute(1, 2, 0).numpy(), 100, 164) for r in ref])
    torch.testing.assert_close(out, torch.from_numpy(want).permute(0, 3, 1, 2), rtol=0, atol=1e-6)


def test_notes_say_what_was_done():
    assert plan_placement((500, 744), (500, 744)).note is None
    assert plan_placement((500, 741), (500, 744)).note == (
        "reference 741x500 padded to 744x500 (top-left aligned; 3 px on the right filled by edge replication)"
    )
    assert plan_placement((520, 760), (500, 744)).note == (
        "reference 760x520 cropped to 744x500 (top-left aligned; 16 px on the right and 20 px at the bottom cut off)"
    )
    assert plan_placement((480, 760), (500, 744)).note == (
        "reference 760x480 cropped and padded to 744x500 (top-left aligned; 16 px on the right cut off; "
        "20 px at the bottom filled by edge replication)"
    )
    p = plan_placement((480, 760), (500, 744))
    assert (p.crop_right, p.crop_bottom, p.pad_right, p.pad_bottom) == (16, 0, 0, 20)


@pytest.fixture(scope="module")
def crossnet():
    torch.manual_seed(0)
    return CrossNet(4, "official", "bicubic", backend="auto").eval()


def test_extra_border_gives_the_exact_size_output(crossnet):
    lr, exact = _rgb(16, 27, 3), _rgb(64, 108, 4)  # the 64x108 output: padded to 64x128
    bigger = _rgb(75, 121, 5)
    bigger[:64, :108] = exact  # the exact-size reference plus a border of other content
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReferencePlacementWarning)  # the exact size: no note
        want = super_resolve(crossnet, lr, exact, window=64, stride=32)
    with pytest.warns(ReferencePlacementWarning, match="cropped to 108x64"):
        got = super_resolve(crossnet, lr, bigger, window=64, stride=32)
    np.testing.assert_array_equal(got, want)


def test_exact_size_is_one_direct_forward(crossnet):
    g = torch.Generator().manual_seed(6)
    lr, ref = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReferencePlacementWarning)
        out = super_resolve(crossnet, lr, ref)
    with torch.no_grad():
        torch.testing.assert_close(out, crossnet(lr, ref).clamp(0, 1), rtol=0, atol=0)


def test_bad_references_name_the_argument():
    model = RecordRef(4)
    lr = _rgb(16, 16, 0)
    with pytest.raises(
        ValueError,
        match=r"ref is 64x31 \(width x height\), less than half of the 64x64 "
        r"output on the height \(at least 32x32 needed\)",
    ):
        super_resolve(model, lr, _rgb(31, 64, 1))
    with pytest.raises(ValueError, match=r"ref is 16x16 .* on both axes"):
        super_resolve(model, lr, lr)  # the LR given as the reference
    with pytest.raises(ValueError, match=r"ref must be an \(H, W, 3\) RGB array, got shape \(60, 60, 4\)"):
        super_resolve(model, lr, np.zeros((60, 60, 4), np.uint8))
    with pytest.raises(ValueError, match=r"ref must have shape \(3, H, W\) or \(N, 3, H, W\)"):
        super_resolve(model, torch.rand(1, 3, 16, 16), torch.rand(1, 1, 60, 60))
    assert model.refs == []


# -- the command line -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory, crossnet):
    d = tmp_path_factory.mktemp("refsize")
    crossnet.save(d / "w.safetensors")
    lr, ref = _rgb(16, 27, 7), _rgb(61, 110, 8)  # output 108x64: 2 px too wide, 3 px short
    Image.fromarray(lr).save(d / "lr.png")
    Image.fromarray(ref).save(d / "ref.png")
    Image.fromarray(ref[:30]).save(d / "ref_small.png")
    return d, lr, ref


def _sr(d, ref_name, out_name):
    return main(
        [
            "sr",
            "--lr",
            str(d / "lr.png"),
            "--ref",
            str(d / ref_name),
            "--scale",
            "4",
            "--weights",
            str(d / "w.safetensors"),
            "--out",
            str(d / out_name),
            "--window",
            "128",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )


def test_sr_prints_the_note_and_matches_the_hand_built_canvas(files, crossnet, capsys):
    d, lr, ref = files
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReferencePlacementWarning)  # printed once, not warned again
        assert _sr(d, "ref.png", "sr.png") == 0
    out = capsys.readouterr().out
    assert (
        "note: reference 110x61 cropped and padded to 108x64 (top-left aligned; 2 px on the right "
        "cut off; 3 px at the bottom filled by edge replication)"
    ) in out
    got = np.asarray(Image.open(d / "sr.png"))
    want = super_resolve(crossnet, lr, _canvas(ref, 64, 108), window=128, stride=64)
    np.testing.assert_array_equal(got, want)


def test_sr_exact_size_prints_no_note(files, capsys):
    d, lr, ref = files
    Image.fromarray(_canvas(ref, 64, 108)).save(d / "ref_exact.png")
    assert _sr(d, "ref_exact.png", "sr_exact.png") == 0
    out = capsys.readouterr().out
    assert "note:" not in out and "wrote" in out
    assert _sr(d, "ref.png", "sr_placed.png") == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(d / "sr_exact.png")), np.asarray(Image.open(d / "sr_placed.png"))
    )


def test_sr_too_small_reference_names_ref(files, capsys):
    d = files[0]
    assert _sr(d, "ref_small.png", "never.png") == 1
    err = capsys.readouterr().err
    assert "crossnet-fast sr: error: --ref is 110x30 (width x height), less than half of the 108x64 output" in err
    assert not (d / "never.png").exists()


def _stereo(root, left, right):
    for side, img in (("left", left), ("right", right)):
        (root / side).mkdir(parents=True)
        Image.fromarray(img).save(root / side / "a.png")
    return root


def test_eval_places_once_for_every_method(files, tmp_path, capsys):
    d = files[0]
    # Right view (the ground truth) 66x62 -> a 64x60 canvas at x4; left (the reference) 70x57:
    # 6 px too wide, 3 px short. The same pair with the reference placed by hand must give the
    # same numbers for every method.
    right, left = _rgb(62, 66, 9), _rgb(57, 70, 10)
    _stereo(tmp_path / "raw", left, right)
    _stereo(tmp_path / "hand", _canvas(left, 60, 64), right[:60, :64])
    results = {}
    for name in ("raw", "hand"):
        rc = main(
            [
                "eval",
                str(tmp_path / name),
                "--scale",
                "4",
                "--methods",
                "bicubic,patchmatch,crossnet",
                "--weights",
                str(d / "w.safetensors"),
                "--device",
                "cpu",
                "--metrics",
                "psnr,ssim",
                "--out",
                str(tmp_path / f"res_{name}"),
                "--no-progress",
            ]
        )
        assert rc == 0
        results[name] = (json.loads((tmp_path / f"res_{name}" / "results.json").read_text()), capsys.readouterr().out)
    (raw, printed), (hand, printed_hand) = results["raw"], results["hand"]
    note = (
        "reference 70x57 cropped and padded to 64x60 (top-left aligned; 6 px on the right cut off; "
        "3 px at the bottom filled by edge replication)"
    )
    assert raw["images"][0]["ref_placement"] == note and f"- a: {note}" in printed
    assert "ref_placement" not in hand["images"][0] and "Reference placed" not in printed_hand
    for m in ("bicubic", "patchmatch", "crossnet"):
        for k in ("psnr", "ssim"):
            assert raw["images"][0][m][k] == hand["images"][0][m][k], (m, k)
