"""The bad-input corpus: every reader and every command, one row per bad input.

``CASES`` is the table. A row is (id, how the bad input is made, the reader call or the command
line, the expected error). For every row:

- a reader raises the expected exception type, with a message naming the file (or argument) and
  what was expected;
- a command returns a non-zero exit code and prints exactly one line
  ``crossnet-fast <command>: error: ...`` on stderr (no traceback) with the expected message;
- nothing is left behind: no file appears that was not there before (no partial output, no
  temporary file), except the complete outputs a row lists in ``creates`` (a training run that
  fails at its second checkpoint keeps its first one), and every file that was there before is
  byte-identical afterwards (an existing output is never destroyed).

Faults: a read-only folder is ``chmod 0o555``; where that does not stop writes (tests running as
root), the denial is simulated by patching the calls that write into that folder. A full disk is
simulated by patching the writer (Pillow, ``Path.write_text``, matplotlib, safetensors) to write
part of the file and then fail with ENOSPC, as a real full disk does.

Valid but unusual PNGs (16-bit, grayscale, RGBA, palette, 1-bit) are not bad inputs: the second
table checks that they load as RGB equal to an independent numpy conversion.
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import gc
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import save_file

from crossnet_fast.checkpoint import load_model
from crossnet_fast.cli import main
from crossnet_fast.commands.sr import read_rgb
from crossnet_fast.data import (
    MosaicLightField,
    PairListDataset,
    StereoDataset,
    TiledLightField,
    ViewFolderLightField,
    load_image,
    open_dataset,
    read_pair_list,
)
from crossnet_fast.models import CrossNet
from crossnet_fast.train import TinyRefSR, load_config, run_state

from _threads import one_thread  # noqa: F401  (autouse: tiny tensors, one thread)

ROOT = Path(__file__).resolve().parents[2]


# -- making inputs -----------------------------------------------------------------------------------


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(path: Path, arr: np.ndarray, mode=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return path


def _png_bytes(h=16, w=16, seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_rgb(h, w, seed)).save(buf, format="PNG")
    return buf.getvalue()


def _truncated_png(path: Path, h=16, w=16) -> Path:
    """A PNG cut in the middle of its pixel data."""
    data = _png_bytes(h, w)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def _png16(path: Path, arr: np.ndarray) -> Path:
    """A 16-bit PNG written by hand (Pillow writes 16-bit grayscale only): gray, gray+alpha, RGB
    or RGBA for 2-D, (h, w, 2), (h, w, 3), (h, w, 4) uint16 arrays."""
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = arr.reshape(h, w * channels).astype(">u2")
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def _views(folder: Path, n: int, size=(16, 24), skip=(), sizes=None) -> Path:
    """An n x n light field ``<folder>/lf_<k>_<row>_<col>.png`` (1-based), views in ``skip``
    left out, view (r, c) of size ``sizes[(r, c)]`` if given, else ``size`` (h, w)."""
    for r in range(n):
        for c in range(n):
            if (r, c) not in skip:
                h, w = (sizes or {}).get((r, c), size)
                _png(folder / f"lf_{r * n + c + 1}_{r + 1}_{c + 1}.png", _rgb(h, w, r * n + c))
    return folder


def _crossnet_file(path: Path, meta: dict | None = None, scale: int = 4) -> Path:
    """A small CrossNet checkpoint; ``meta``: replace its ``crossnet_fast`` metadata entry."""
    torch.manual_seed(0)
    CrossNet(scale, "official", "bicubic", width=0.25).save(path)
    if meta is not None:
        from safetensors.torch import load_file

        save_file(load_file(str(path)), str(path), metadata={"crossnet_fast": meta["value"]})
    return path


def _header_past_eof(path: Path) -> Path:
    """A safetensors file whose 8-byte header length is larger than the whole file."""
    save_file({"w": torch.zeros(4)}, str(path))
    data = path.read_bytes()
    path.write_bytes(struct.pack("<Q", len(data) * 10) + data[8:])
    return path


def _cut(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Valid inputs shared by the rows (never written to): lr.png 16x16, ref.png and hr.png 64x64,
    w.safetensors (a small x4 CrossNet), data/ (a training root: lf_a 3x3 and lf_val 2x2 views of
    72x72) and base.json (a tiny training config on it, without run.out)."""
    g = tmp_path_factory.mktemp("good")
    _png(g / "lr.png", _rgb(16, 16, 1))
    _png(g / "ref.png", _rgb(64, 64, 2))
    _png(g / "hr.png", _rgb(64, 64, 3))
    _crossnet_file(g / "w.safetensors")
    _views(g / "data" / "lf_a", 3, size=(72, 72))
    _views(g / "data" / "lf_val", 2, size=(72, 72))
    return g


def _train_cfg(g: Path, d: Path, **sections) -> dict:
    cfg = {
        "model": {"name": "tiny", "scale": 4},
        "data": {
            "root": str(g / "data"),
            "lightfields": ["lf_a", "lf_val"],
            "stereo": [],
            "holdout_lightfields": ["lf_val"],
            "holdout_stereo": [],
            "crop": [64, 64],
            "batch_size": 1,
            "lightfield_repeats": 2,
            "num_workers": 0,
        },
        "optim": {"iterations": 2, "milestones": [1]},
        "run": {
            "out": str(d / "run"),
            "device": "cpu",
            "checkpoint_every": 1,
            "keep_last": 3,
            "log_every": 1,
            "progress": False,
            "tensorboard": False,
            "plot": False,
        },
        "val": {"every": 0, "views": [[0, 0, 1, 1]], "window": 64, "max_size": 64, "stereo": False},
    }
    for sec, vals in sections.items():
        cfg.setdefault(sec, {}).update(vals)
    return cfg


def _toml(cfg: dict) -> str:
    """TOML of a two-level dict of plain values (JSON literals are TOML literals for these)."""
    out = []
    for sec, vals in cfg.items():
        out.append(f"[{sec}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in vals.items()]
    return "\n".join(out) + "\n"


def _write_cfg(d: Path, g: Path, text: str | None = None, name="c.toml", **sections) -> None:
    (d / name).write_text(_toml(_train_cfg(g, d, **sections)) if text is None else text)


def _checkpoint(d: Path, g: Path, scale=4, name="tiny") -> Path:
    """A training checkpoint of ``run/`` whose saved config has this model name and scale."""
    cfg = load_config(_train_cfg(g, d, model={"name": name, "scale": scale}))
    return run_state.save(d / "run" / "checkpoints", 1, TinyRefSR(scale), {"config": cfg.to_dict()})


# -- faults --------------------------------------------------------------------------------------------


def _inside(path, folder: Path) -> bool:
    if isinstance(path, int):
        return False
    p = Path(os.path.abspath(os.fspath(path)))
    return p == folder or folder in p.parents


def read_only(folder: Path, monkeypatch) -> None:
    """Make ``folder`` read-only: chmod 0o555, and where that does not stop writes (root), refuse
    every write into it (open for writing, os.open with O_CREAT/O_WRONLY/O_RDWR, mkdir, unlink,
    rename) with EACCES, as the kernel would."""
    folder = Path(os.path.abspath(folder))
    folder.chmod(0o555)
    probe = folder / ".write-probe"
    try:
        probe.write_bytes(b"")
    except PermissionError:
        return  # the chmod works: nothing to simulate
    probe.unlink()

    def deny(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    real_open, real_os_open = builtins.open, os.open

    def fake_open(file, mode="r", *a, **k):
        if any(ch in mode for ch in "wax+") and _inside(file, folder):
            deny(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _inside(path, folder):
            deny(path)
        return real_os_open(path, flags, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("mkdir", "unlink", "remove", "rmdir"):
        real = getattr(os, name)

        def guarded(path, *a, _real=real, **k):
            if _inside(path, folder):
                deny(path)
            return _real(path, *a, **k)

        monkeypatch.setattr(os, name, guarded)
    for name in ("rename", "replace"):
        real = getattr(os, name)

        def guarded2(src, dst, *a, _real=real, **k):
            if _inside(src, folder) or _inside(dst, folder):
                deny(dst)
            return _real(src, dst, *a, **k)

        monkeypatch.setattr(os, name, guarded2)


def _write_part_and_fail(target, data: bytes):
    """What a full disk does: part of the bytes reach the file, then ENOSPC."""
    with open(target, "wb") as f:
        f.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def disk_full_pillow(monkeypatch):
    real = Image.Image.save

    def save(self, fp, format=None, **params):
        buf = io.BytesIO()
        real(self, buf, format=format or "PNG", **params)
        _write_part_and_fail(fp, buf.getvalue())

    monkeypatch.setattr(Image.Image, "save", save)


def disk_full_text(monkeypatch):
    def write_text(self, data, *a, **k):
        _write_part_and_fail(self, data.encode())

    monkeypatch.setattr(Path, "write_text", write_text)


def disk_full_savefig(monkeypatch):
    import matplotlib.figure

    def savefig(self, fname, *a, **k):
        _write_part_and_fail(fname, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)


def disk_full_safetensors(monkeypatch, at_call: int):
    """safetensors' ``save_file`` in the trainer fails at its ``at_call``-th call (1-based) the
    way the real one does on a full disk: a SafetensorError naming os error 28."""
    real, calls = run_state.save_file, []

    def save(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == at_call:
            Path(filename).write_bytes(b"\x00" * 10)  # part of a file
            raise SafetensorError(
                f"Error while serializing: I/O error: No space left on device (os error 28) at path {filename!r}"
            )
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(run_state, "save_file", save)


# -- the table -------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One bad input. ``make(d, g)`` creates it in the row's folder ``d`` (``g``: the shared good
    inputs). ``call``: a command line (``{d}``, ``{g}`` are filled in) or a reader call
    ``fn(d, g)``. ``error``: a regular expression the message must match. ``exc``: the exception
    type a reader raises. ``fault(d, monkeypatch)``: a simulated read-only folder or full disk.
    ``creates``: glob patterns (relative to ``d``) of complete outputs the command may write
    before it fails. ``check(d)``: further assertions on what is left."""

    id: str
    make: Callable
    call: object
    error: str
    exc: type | None = None
    fault: Callable | None = None
    creates: tuple = ()
    check: Callable | None = None


def _nothing(d, g):
    pass


def _sentinel(path: Path, data=b"previous output, must survive") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _with(argv, **change):
    """``argv`` with the values of some options changed (``lr="x"`` sets ``--lr x``)."""
    argv = list(argv)
    for k, v in change.items():
        argv[argv.index("--" + k) + 1] = v
    return argv


SR = [
    "sr",
    "--lr",
    "{g}/lr.png",
    "--ref",
    "{g}/ref.png",
    "--scale",
    "4",
    "--weights",
    "{g}/w.safetensors",
    "--out",
    "{d}/out.png",
    "--device",
    "cpu",
    "--no-progress",
    "--window",
    "64",
]


def sr(**change):
    return _with(SR, **change)


EVAL = ["eval", "{d}/lf", "--methods", "bicubic", "--metrics", "psnr", "--no-progress", "--out", "{d}/res"]
DEMO = [
    "demo",
    "--weights",
    "{g}/w.safetensors",
    "--ref",
    "{g}/ref.png",
    "--hr",
    "{g}/hr.png",
    "--out",
    "{d}/demo.png",
    "--device",
    "cpu",
]
TRAIN = ["train", "--config", "{d}/c.toml"]


def _ckpt_left_at_step_1(d: Path) -> None:
    root = d / "run" / "checkpoints"
    assert json.loads((root / "latest.json").read_text()) == {"step": 1, "dir": "step_00000001"}
    run_state.verify(root / "step_00000001")  # complete: sizes and sha256 match
    assert not list(root.glob(".tmp-*")) and not list(root.glob(".*.tmp*"))


CASES = [
    # -- image files (load_image: every reader goes through it) ----------------------------------
    Case(
        "png-zero-byte",
        lambda d, g: (d / "empty.png").write_bytes(b""),
        lambda d, g: load_image(d / "empty.png"),
        r"cannot read image file .*empty\.png: cannot identify image file",
        ValueError,
    ),
    Case(
        "png-truncated",
        lambda d, g: _truncated_png(d / "cut.png"),
        lambda d, g: load_image(d / "cut.png"),
        r"cannot read image file .*cut\.png: image file is truncated",
        ValueError,
    ),
    Case(
        "png-signature-only",
        lambda d, g: (d / "sig.png").write_bytes(_png_bytes()[:8]),
        lambda d, g: load_image(d / "sig.png"),
        r"cannot read image file .*sig\.png",
        ValueError,
    ),
    Case(
        "png-not-an-image",
        lambda d, g: (d / "text.png").write_text("not a picture"),
        lambda d, g: load_image(d / "text.png"),
        r"cannot read image file .*text\.png",
        ValueError,
    ),
    Case(
        "png-missing",
        _nothing,
        lambda d, g: load_image(d / "nope.png"),
        r"image file not found: .*nope\.png",
        FileNotFoundError,
    ),
    # -- light fields ------------------------------------------------------------------------------
    Case(
        "lf-mismatched-sizes",
        lambda d, g: _views(d / "lf", 2, sizes={(1, 1): (16, 20)}),
        lambda d, g: open_dataset(d / "lf", scale=4)[0],
        r"view \(1, 1\) of 'lf' is 20x16 but view \(0, 0\) of 'lf' is 24x16 .*must match",
        ValueError,
    ),
    Case(
        "lf-missing-view",
        lambda d, g: _views(d / "lf", 2, skip={(1, 1)}),
        lambda d, g: open_dataset(d / "lf", scale=4),
        r"light field 'lf' has no view \(1, 1\).*only 3 views present",
        FileNotFoundError,
    ),
    Case(
        "lf-view-truncated",
        lambda d, g: (_views(d / "lf", 2), _truncated_png(d / "lf" / "lf_4_2_2.png")),
        lambda d, g: open_dataset(d / "lf", scale=4)[0],
        r"cannot read image file .*lf_4_2_2\.png: image file is truncated",
        ValueError,
    ),
    Case(
        "lf-two-files-for-a-view",
        lambda d, g: (_views(d / "lf", 2), _png(d / "lf" / "input_Cam010.png", _rgb(16, 24))),
        lambda d, g: ViewFolderLightField(d / "lf"),
        r"two files for view \(1, 1\) in .*lf: input_Cam010\.png and lf_4_2_2\.png",
        ValueError,
    ),
    Case(
        "lf-zero-based-index",
        lambda d, g: _png(d / "lf" / "x_1_0_1.png", _rgb(4, 4)),
        lambda d, g: ViewFolderLightField(d / "lf"),
        r"x_1_0_1\.png: row and col are 1-based",
        ValueError,
    ),
    Case(
        "lf-no-views",
        lambda d, g: _png(d / "lf" / "holiday.png", _rgb(4, 4)),
        lambda d, g: ViewFolderLightField(d / "lf"),
        r"no light-field views in .*lf: expected input_CamNNN\.png or",
        FileNotFoundError,
    ),
    Case(
        "mosaic-not-a-multiple-of-the-pitch",
        lambda d, g: _png(d / "m.png", _rgb(14 * 6 + 5, 14 * 7 + 3)),
        lambda d, g: MosaicLightField(d / "m.png").view((0, 0)),
        r"m\.png: size 101x89 .*not a multiple of the lenslet pitch 14",
        ValueError,
    ),
    Case(
        "mosaic-smaller-than-a-lens",
        lambda d, g: _png(d / "m.png", _rgb(10, 10)),
        lambda d, g: MosaicLightField(d / "m.png").view((0, 0)),
        r"m\.png: a \(10, 10\) image is smaller than one 14x14 lens",
        ValueError,
    ),
    Case(
        "tiles-not-a-multiple",
        lambda d, g: _png(d / "t.png", _rgb(8 * 4 + 1, 8 * 5)),
        lambda d, g: TiledLightField(d / "t.png").view((0, 0)),
        r"t\.png: size 40x33 is not a multiple of the 8x8 tiling",
        ValueError,
    ),
    Case(
        "stereo-names-differ",
        lambda d, g: (_png(d / "s" / "left" / "a.png", _rgb(16, 16)), _png(d / "s" / "right" / "b.png", _rgb(16, 16))),
        lambda d, g: StereoDataset(d / "s" / "left", d / "s" / "right", 4),
        r"stereo folders differ: only in .*left: \['a\.png'\]; only in .*right: \['b\.png'\]",
        FileNotFoundError,
    ),
    # A reference of another size is placed on the HR canvas (tests/cli/test_ref_any_size.py);
    # one less than half of it on a side is refused, named by its file.
    Case(
        "stereo-reference-too-small",
        lambda d, g: (_png(d / "s" / "left" / "a.png", _rgb(16, 9)), _png(d / "s" / "right" / "a.png", _rgb(16, 20))),
        lambda d, g: StereoDataset(d / "s" / "left", d / "s" / "right", 4)[0],
        r"left/a\.png is 9x16 \(width x height\), less than half of the 20x16 output on the width",
        ValueError,
    ),
    # -- pair lists --------------------------------------------------------------------------------
    Case(
        "pairs-names-a-missing-file",
        lambda d, g: (d / "pairs.txt").write_text(f"{g}/hr.png nope.png\n"),
        lambda d, g: PairListDataset(d / "pairs.txt", 4),
        r"image file not found: .*nope\.png",
        FileNotFoundError,
    ),
    Case(
        "pairs-line-with-one-path",
        lambda d, g: (d / "pairs.txt").write_text("# hr ref\na.png b.png\nc.png\n"),
        lambda d, g: read_pair_list(d / "pairs.txt"),
        r"pairs\.txt:3: expected two paths \(image, reference\), got 'c\.png'",
        ValueError,
    ),
    Case(
        "pairs-empty",
        lambda d, g: (d / "pairs.txt").write_text("# nothing\n\n"),
        lambda d, g: read_pair_list(d / "pairs.txt"),
        r"pair list .*pairs\.txt is empty",
        ValueError,
    ),
    Case(
        "pairs-lr-and-ref-sizes",
        lambda d, g: (d / "pairs.txt").write_text(f"{g}/lr.png {g}/lr.png\n"),
        lambda d, g: PairListDataset(d / "pairs.txt", 4, kind="lr")[0],
        r"reference .*lr\.png is 16x16 \(width x height\), less than half of the 64x64 output",
        ValueError,
    ),
    # -- safetensors checkpoints (load_model) ------------------------------------------------------
    Case(
        "st-truncated-body",
        lambda d, g: _cut(g / "w.safetensors", d / "cut.safetensors"),
        lambda d, g: load_model(d / "cut.safetensors"),
        r"cut\.safetensors' is not a safetensors file \(truncated, corrupt or another format: .*"
        r"file not fully covered",
        ValueError,
    ),
    Case(
        "st-header-length-past-eof",
        lambda d, g: _header_past_eof(d / "big.safetensors"),
        lambda d, g: load_model(d / "big.safetensors"),
        r"big\.safetensors' is not a safetensors file \(truncated, corrupt",
        ValueError,
    ),
    Case(
        "st-zero-byte",
        lambda d, g: (d / "z.safetensors").write_bytes(b""),
        lambda d, g: load_model(d / "z.safetensors"),
        r"z\.safetensors' is not a safetensors file",
        ValueError,
    ),
    Case(
        "st-metadata-not-json",
        lambda d, g: _crossnet_file(d / "m.safetensors", {"value": "{scale: 4"}),
        lambda d, g: load_model(d / "m.safetensors"),
        r"m\.safetensors' has an unreadable configuration: Expecting property name",
        ValueError,
    ),
    Case(
        "st-metadata-names-another-model",
        lambda d, g: _crossnet_file(
            d / "m.safetensors",
            {"value": json.dumps({"format": "crossnet_fast.SISR", "format_version": 1, "config": {"scale": 4}})},
        ),
        lambda d, g: load_model(d / "m.safetensors"),
        r"m\.safetensors' has an unreadable configuration: format is 'crossnet_fast\.SISR', "
        r"expected 'crossnet_fast\.CrossNet'",
        ValueError,
    ),
    Case(
        "st-metadata-newer-format",
        lambda d, g: _crossnet_file(
            d / "m.safetensors",
            {"value": json.dumps({"format": "crossnet_fast.CrossNet", "format_version": 99, "config": {"scale": 4}})},
        ),
        lambda d, g: load_model(d / "m.safetensors"),
        r"format_version 99 is newer than this library's",
        ValueError,
    ),
    Case(
        "st-another-scale",
        _nothing,
        lambda d, g: load_model(g / "w.safetensors", scale=8),
        r"w\.safetensors' holds x4 weights, expected x8",
        ValueError,
    ),
    Case(
        "st-no-crossnet-metadata",
        lambda d, g: run_state.save_weights(TinyRefSR(4), d / "tiny.safetensors"),
        lambda d, g: load_model(d / "tiny.safetensors"),
        r"tiny\.safetensors' is not a crossnet_fast checkpoint",
        ValueError,
    ),
    # -- crossnet-fast sr --------------------------------------------------------------------------
    Case(
        "sr-lr-truncated",
        lambda d, g: _truncated_png(d / "cut.png"),
        sr(lr="{d}/cut.png"),
        r"--lr: cannot read image file '.*cut\.png' \(image file is truncated\)",
    ),
    Case(
        "sr-ref-zero-byte",
        lambda d, g: (d / "empty.png").write_bytes(b""),
        sr(ref="{d}/empty.png"),
        r"--ref: cannot read image file '.*empty\.png'",
    ),
    Case(
        "sr-weights-truncated-body",
        lambda d, g: _cut(g / "w.safetensors", d / "cut.safetensors"),
        sr(weights="{d}/cut.safetensors"),
        r"--weights: '.*cut\.safetensors' is not a safetensors file \(truncated, corrupt",
    ),
    Case(
        "sr-weights-header-length-past-eof",
        lambda d, g: _header_past_eof(d / "big.safetensors"),
        sr(weights="{d}/big.safetensors"),
        r"--weights: '.*big\.safetensors' is not a safetensors file",
    ),
    Case(
        "sr-weights-a-pickle",
        lambda d, g: torch.save({"w": torch.zeros(1)}, d / "m.pth"),
        sr(weights="{d}/m.pth"),
        r"--weights: '.*m\.pth' is not a safetensors file.*never unpickles",
    ),
    Case(
        "sr-weights-another-scale",
        _nothing,
        sr(scale="8"),
        r"--weights: '.*w\.safetensors' holds x4 weights, expected x8",
    ),
    Case(
        "sr-out-in-a-missing-folder",
        _nothing,
        sr(out="{d}/no/such/out.png"),
        r"--out: folder '.*no/such' does not exist",
    ),
    Case(
        "sr-out-is-a-folder",
        lambda d, g: (d / "out.png").mkdir(),
        sr(),
        r"--out: '.*out\.png' is a folder; expected the path of an image file",
    ),
    Case(
        "sr-out-in-a-read-only-folder",
        lambda d, g: _sentinel(d / "ro" / "out.png"),
        sr(out="{d}/ro/out.png"),
        r"cannot write '.*ro/out\.png': Permission denied",
        fault=lambda d, mp: read_only(d / "ro", mp),
    ),
    Case(
        "sr-out-disk-full",
        lambda d, g: _sentinel(d / "out.png"),
        sr(),
        r"cannot write '.*out\.png': No space left on device",
        fault=lambda d, mp: disk_full_pillow(mp),
    ),
    # -- crossnet-fast demo ------------------------------------------------------------------------
    Case(
        "demo-hr-truncated",
        lambda d, g: _truncated_png(d / "cut.png", 64, 64),
        _with(DEMO, hr="{d}/cut.png"),
        r"cannot read image file .*cut\.png: image file is truncated",
    ),
    Case(
        "demo-weights-not-a-crossnet-checkpoint",
        lambda d, g: run_state.save_weights(TinyRefSR(4), d / "tiny.safetensors"),
        _with(DEMO, weights="{d}/tiny.safetensors"),
        r"tiny\.safetensors' is not a crossnet_fast checkpoint",
    ),
    Case(
        "demo-out-in-a-read-only-folder",
        lambda d, g: _sentinel(d / "ro" / "demo.png"),
        _with(DEMO, out="{d}/ro/demo.png"),
        r"cannot write '.*ro/demo\.png': Permission denied",
        fault=lambda d, mp: read_only(d / "ro", mp),
    ),
    # -- crossnet-fast eval ------------------------------------------------------------------------
    Case(
        "eval-view-truncated",
        lambda d, g: (_views(d / "lf", 2), _truncated_png(d / "lf" / "lf_4_2_2.png")),
        EVAL,
        r"cannot read image file .*lf_4_2_2\.png: image file is truncated",
    ),
    Case(
        "eval-lf-mismatched-sizes",
        lambda d, g: _views(d / "lf", 2, sizes={(1, 1): (16, 20)}),
        EVAL,
        r"view \(1, 1\) of 'lf' is 20x16 but view \(0, 0\) of 'lf' is 24x16",
    ),
    Case(
        "eval-lf-missing-view",
        lambda d, g: _views(d / "lf", 2, skip={(1, 1)}),
        EVAL,
        r"light field 'lf' has no view \(1, 1\)",
    ),
    Case(
        "eval-mosaic-not-a-multiple-of-the-pitch",
        lambda d, g: _png(d / "m.png", _rgb(14 * 6 + 5, 14 * 7)),
        [
            "eval",
            "{d}/m.png",
            "--layout",
            "mosaic",
            "--methods",
            "bicubic",
            "--metrics",
            "psnr",
            "--no-progress",
            "--out",
            "{d}/res",
        ],
        r"m\.png: size 98x89 .*not a multiple of the lenslet pitch 14",
    ),
    Case(
        "eval-tiles-not-a-multiple",
        lambda d, g: _png(d / "t.png", _rgb(8 * 8 + 3, 8 * 8)),
        ["eval", "{d}/t.png", "--layout", "tiles", "--methods", "bicubic", "--no-progress", "--out", "{d}/res"],
        r"t\.png: size 64x67 is not a multiple of the 8x8 tiling",
    ),
    Case(
        "eval-stereo-names-differ",
        lambda d, g: (_png(d / "s" / "left" / "a.png", _rgb(16, 16)), _png(d / "s" / "right" / "b.png", _rgb(16, 16))),
        ["eval", "{d}/s"] + EVAL[2:],
        r"stereo folders differ",
    ),
    Case(
        "eval-pairs-name-a-missing-file",
        lambda d, g: (d / "pairs.txt").write_text(f"{g}/hr.png nope.png\n"),
        ["eval", "{d}/pairs.txt"] + EVAL[2:],
        r"image file not found: .*nope\.png",
    ),
    Case(
        "eval-weights-another-scale",
        lambda d, g: _views(d / "lf", 2, size=(64, 64)),
        EVAL[:3] + ["crossnet", "--weights", "{g}/w.safetensors", "--scale", "8"] + EVAL[4:],
        r"--weights .*w\.safetensors is a x4 model but --scale is 8",
    ),
    Case(
        "eval-out-is-a-file",
        lambda d, g: (_views(d / "lf", 2), _sentinel(d / "res")),
        EVAL,
        r"--out: '.*res' is a file; expected a folder",
    ),
    Case(
        "eval-out-in-a-read-only-folder",
        lambda d, g: (_views(d / "lf", 2), _sentinel(d / "res" / "results.json")),
        EVAL,
        r"cannot write '.*res/results\.md': Permission denied",
        fault=lambda d, mp: read_only(d / "res", mp),
    ),
    Case(
        "eval-results-disk-full",
        lambda d, g: (_views(d / "lf", 2), _sentinel(d / "res" / "results.md"), _sentinel(d / "res" / "results.json")),
        EVAL,
        r"cannot write '.*res/results\.md': No space left on device",
        fault=lambda d, mp: disk_full_text(mp),
    ),
    Case(
        "eval-plot-disk-full",
        lambda d, g: (_views(d / "lf", 2), _sentinel(d / "res" / "psnr.png")),
        EVAL + ["--plot"],
        r"cannot write '.*res/psnr\.png': No space left on device",
        fault=lambda d, mp: disk_full_savefig(mp),
        creates=("res/results.md", "res/results.json"),
    ),
    # -- crossnet-fast train: the TOML config and --set ------------------------------------------
    Case(
        "toml-unknown-key",
        lambda d, g: _write_cfg(d, g, optim={"lrr": 1e-4}),
        TRAIN,
        r"config: unknown key 'optim\.lrr' \(known: lr, betas",
    ),
    Case(
        "toml-unknown-section",
        lambda d, g: _write_cfg(d, g, optimizer={"lr": 1e-4}),
        TRAIN,
        r"config: unknown key 'optimizer' \(known: model, data",
    ),
    Case(
        "toml-string-for-a-number",
        lambda d, g: _write_cfg(d, g, optim={"lr": "fast"}),
        TRAIN,
        r"config optim\.lr: got 'fast' \(str\), expected a number",
    ),
    Case(
        "toml-string-for-an-integer",
        lambda d, g: _write_cfg(d, g, data={"batch_size": "2"}),
        TRAIN,
        r"config data\.batch_size: got '2' \(str\), expected an integer",
    ),
    Case(
        "toml-float-for-an-integer",
        lambda d, g: _write_cfg(d, g, optim={"iterations": 2.5}),
        TRAIN,
        r"config optim\.iterations: got 2\.5 \(float\), expected an integer",
    ),
    Case(
        "toml-string-for-a-bool",
        lambda d, g: _write_cfg(d, g, run={"progress": "no"}),
        TRAIN,
        r"config run\.progress: got 'no' \(str\), expected true or false",
    ),
    Case(
        "toml-number-for-a-list",
        lambda d, g: _write_cfg(d, g, data={"crop": 64}),
        TRAIN,
        r"config data\.crop: got 64 \(int\), expected a list",
    ),
    Case(
        "toml-value-for-a-section",
        lambda d, g: _write_cfg(d, g, text='model = "tiny"\n'),
        TRAIN,
        r"config model: expected a table, got str",
    ),
    Case(
        "toml-syntax-error",
        lambda d, g: _write_cfg(d, g, text="[optim\nlr = 1\n"),
        TRAIN,
        r"config file .*c\.toml: not valid TOML \(.*line 1",
    ),
    Case(
        "toml-not-utf8",
        lambda d, g: (d / "c.toml").write_bytes(b"[optim]\nlr = '\xff\xfe'\n"),
        TRAIN,
        r"config file .*c\.toml: not valid TOML",
    ),
    Case(
        "yaml-not-a-table",
        lambda d, g: (d / "c.yaml").write_text("- model\n- data\n"),
        ["train", "--config", "{d}/c.yaml"],
        r"config file .*c\.yaml: expected a table of sections, got list",
    ),
    Case(
        "config-missing-file",
        _nothing,
        ["train", "--config", "{d}/nope.toml"],
        r"config file not found: .*nope\.toml \(shipped configs: ",
    ),
    Case(
        "set-without-a-value",
        lambda d, g: _write_cfg(d, g),
        TRAIN + ["--set", "optim.lr"],
        r"override 'optim\.lr': expected section\.key=value",
    ),
    Case(
        "set-a-key-under-a-value",
        lambda d, g: _write_cfg(d, g, optim={"lr": 1e-4}),
        TRAIN + ["--set", "optim.lr.x=1"],
        r"override 'optim\.lr\.x=1': optim\.lr is a value, not a section",
    ),
    Case(
        "set-wrong-type",
        lambda d, g: _write_cfg(d, g),
        TRAIN + ["--set", "run.checkpoint_every=often"],
        r"config run\.checkpoint_every: got 'often' \(str\), expected an integer",
    ),
    # -- crossnet-fast train: data, checkpoints to resume, outputs --------------------------------
    Case(
        "train-data-folder-missing",
        lambda d, g: _write_cfg(d, g, data={"lightfields": ["nope", "lf_val"]}),
        TRAIN,
        r"folder not found: .*data/nope",
    ),
    Case(
        "train-view-truncated-in-a-worker",
        lambda d, g: (
            _views(d / "bad" / "lf", 2, size=(72, 72)),
            [_truncated_png(p, 72, 72) for p in (d / "bad" / "lf").iterdir()],
            _write_cfg(
                d,
                g,
                data={"root": str(d / "bad"), "lightfields": ["lf"], "holdout_lightfields": [], "num_workers": 1},
                optim={"iterations": 1},
            ),
        ),
        TRAIN,
        r"^crossnet-fast train: error: cannot read image file .*lf_\d_\d_\d\.png: image file is truncated$",
        creates=("run/config.json",),
    ),
    Case(
        "resume-with-no-checkpoint",
        lambda d, g: (_write_cfg(d, g), (d / "run").mkdir()),
        TRAIN + ["--resume", "{d}/run"],
        r"resume: no usable checkpoint in .*run",
    ),
    Case(
        "resume-state-json-not-json",
        lambda d, g: (_write_cfg(d, g), (_checkpoint(d, g) / "state.json").write_text("{oops")),
        TRAIN + ["--resume", "{d}/run"],
        r"no usable checkpoint in .*checkpoints \(checkpoint "
        r".*step_00000001: unreadable state\.json",
    ),
    Case(
        "resume-checkpoint-of-another-scale",
        lambda d, g: (_write_cfg(d, g), _checkpoint(d, g, scale=8)),
        TRAIN + ["--resume", "{d}/run"],
        r"resume: the checkpoint's model differs from the config: \['model\.scale: 8 -> 4'\]",
    ),
    Case(
        "resume-checkpoint-of-another-model",
        lambda d, g: (_write_cfg(d, g), _checkpoint(d, g, name="sisr")),
        TRAIN + ["--resume", "{d}/run"],
        r"resume: the checkpoint's model differs from the config: "
        r"\[\"model\.name: 'sisr' -> 'tiny'\"\]",
    ),
    Case(
        "train-over-an-existing-run",
        lambda d, g: (_write_cfg(d, g), _checkpoint(d, g), _sentinel(d / "run" / "train.csv")),
        TRAIN,
        r"run\.out: .*run already holds a training run .*latest\.json\); continue it with --resume",
    ),
    Case(
        "train-out-in-a-read-only-folder",
        lambda d, g: (_write_cfg(d, g, run={"out": str(d / "ro" / "run")}), (d / "ro").mkdir()),
        TRAIN,
        r"Permission denied: '.*ro/run",
        fault=lambda d, mp: read_only(d / "ro", mp),
    ),
    Case(
        "train-checkpoint-disk-full",
        lambda d, g: _write_cfg(d, g, optim={"iterations": 3}),
        TRAIN,
        r"No space left on device: '.*step_00000002.*/state\.safetensors'",
        fault=lambda d, mp: disk_full_safetensors(mp, at_call=4),  # step 1: 2 files, step 2: weights, state
        creates=("run/config.json", "run/train.csv", "run/checkpoints/latest.json", "run/checkpoints/step_00000001/*"),
        check=_ckpt_left_at_step_1,
    ),
    Case(
        "train-final-weights-disk-full",
        lambda d, g: (_write_cfg(d, g, optim={"iterations": 1}), _sentinel(d / "run" / "model.safetensors")),
        TRAIN,
        r"cannot write '.*run/model\.safetensors': No space left on device",
        fault=lambda d, mp: disk_full_safetensors(mp, at_call=3),  # step 1: 2 files, then the export
        creates=(
            "run/config.json",
            "run/train.csv",
            "run/val.csv",
            "run/checkpoints/latest.json",
            "run/checkpoints/step_00000001/*",
        ),
    ),
]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, good, tmp_path, monkeypatch, capsys):
    d, g = tmp_path, good
    case.make(d, g)
    before = _snapshot(d)
    try:
        if case.fault is not None:
            case.fault(d, monkeypatch)
        if callable(case.call):
            assert case.exc is not None, "a reader row names its exception type"
            with pytest.raises(case.exc) as info:
                case.call(d, g)
            message = str(info.value)
        else:
            argv = [a.format(d=d, g=g) for a in case.call]
            rc = main(argv)
            gc.collect()  # DataLoader workers of a failed training stop here, not in a later test
            err = capsys.readouterr().err
            lines = err.strip().splitlines()
            assert rc != 0, f"exit code {rc}: {err}"
            assert "Traceback" not in err and len(lines) == 1, err
            assert lines[0].startswith(f"crossnet-fast {argv[0]}: error: "), err
            message = lines[0]
        assert re.search(case.error, message), f"{message!r} does not match {case.error!r}"
    finally:
        monkeypatch.undo()
        for p in [d, *d.rglob("*")]:  # undo read-only folders (for the checks and the cleanup)
            if p.is_dir():
                p.chmod(0o755)
    after = _snapshot(d)
    changed = [k for k in before if after.get(k) != before[k]]
    assert not changed, f"existing files changed or removed: {changed}"
    new = [k for k in after if k not in before and not any(fnmatch.fnmatch(k, c) for c in case.creates)]
    assert not new, f"files left behind: {new}"
    if case.check is not None:
        case.check(d)


def test_table_covers_every_command_and_reader():
    """The corpus has rows for each command and each kind of input the issue lists."""
    ids = {c.id for c in CASES}
    commands = {c.call[0] for c in CASES if not callable(c.call)}
    assert commands == {"sr", "demo", "eval", "train"}
    for kind in (
        "png-zero-byte",
        "png-truncated",
        "lf-mismatched-sizes",
        "lf-missing-view",
        "mosaic-not-a-multiple-of-the-pitch",
        "pairs-names-a-missing-file",
        "st-truncated-body",
        "st-header-length-past-eof",
        "st-metadata-not-json",
        "st-metadata-names-another-model",
        "st-another-scale",
        "toml-unknown-key",
        "toml-string-for-a-number",
        "sr-out-in-a-missing-folder",
        "sr-out-in-a-read-only-folder",
        "sr-out-disk-full",
    ):
        assert kind in ids


@pytest.mark.slow
def test_a_bad_input_in_a_real_process_exits_1_without_a_traceback(good, tmp_path):
    """The same contract through ``python -m crossnet_fast`` (stderr as the user sees it)."""
    _truncated_png(tmp_path / "cut.png")
    argv = [a.format(d=tmp_path, g=good) for a in sr(lr="{d}/cut.png")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [sys.executable, "-m", "crossnet_fast"] + argv, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"crossnet-fast sr: error: --lr: cannot read image file '{tmp_path / 'cut.png'}' (image file is "
        "truncated); expected a PNG, JPEG or other image Pillow reads"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.png"]


# -- valid but unusual PNGs --------------------------------------------------------------------------


def _palette(path: Path, transparency: bool):
    idx = np.random.default_rng(7).integers(0, 6, (5, 6), dtype=np.uint8)
    pal = np.random.default_rng(8).integers(0, 256, (6, 3), dtype=np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(pal.ravel().tolist())
    im.save(path, transparency=0) if transparency else im.save(path)
    return pal[idx].astype(np.float64) / 255


def _variant(kind: str, path: Path) -> np.ndarray:
    """Write ``path`` as ``kind``; returns the (H, W, 3) float64 RGB it must load as (numpy)."""
    g = np.random.default_rng(3)
    if kind == "gray8":
        a = g.integers(0, 256, (5, 6), dtype=np.uint8)
        _png(path, a)
        return np.repeat(a[..., None] / 255.0, 3, 2)
    if kind == "gray16":
        a = g.integers(0, 65536, (5, 6), dtype=np.uint16)
        Image.fromarray(a).save(path)
        return np.repeat(a[..., None] / 65535.0, 3, 2)
    if kind == "gray-alpha8":
        a = g.integers(0, 256, (5, 6, 2), dtype=np.uint8)
        _png(path, a, "LA")
        return np.repeat(a[..., :1] / 255.0, 3, 2)
    if kind == "rgba8":
        a = g.integers(0, 256, (5, 6, 4), dtype=np.uint8)
        _png(path, a, "RGBA")
        return a[..., :3] / 255.0
    if kind == "palette":
        return _palette(path, False)
    if kind == "palette-transparency":
        return _palette(path, True)
    if kind == "bilevel":
        a = g.integers(0, 2, (5, 6)).astype(bool)
        Image.fromarray(a).save(path)
        return np.repeat(a[..., None].astype(np.float64), 3, 2)
    if kind in ("rgb16", "rgba16", "gray-alpha16"):
        c = {"rgb16": 3, "rgba16": 4, "gray-alpha16": 2}[kind]
        a = g.integers(0, 65536, (5, 6, c), dtype=np.uint16)
        _png16(path, a)
        rgb = a[..., :3] if c >= 3 else np.repeat(a[..., :1], 3, 2)
        # Pillow reads 16-bit colour at 8 bits: the high byte of each sample.
        return (rgb >> 8) / 255.0
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "gray8",
        "gray16",
        "gray-alpha8",
        "rgba8",
        "palette",
        "palette-transparency",
        "bilevel",
        "rgb16",
        "rgba16",
        "gray-alpha16",
    ],
)
def test_valid_png_variants_load_as_rgb(kind, tmp_path):
    path = tmp_path / f"{kind}.png"
    want = _variant(kind, path)
    got = load_image(path)
    assert got.dtype == torch.float32 and got.shape == (3, 5, 6)
    np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), want, rtol=0, atol=1e-7)
    if kind == "gray16":
        with Image.open(path) as im:
            assert im.mode == "I;16"  # really 16-bit samples, read at full precision
    # ``sr`` reads the same pixels, rounded to 8 bits (16-bit grayscale used to clip to white).
    np.testing.assert_array_equal(read_rgb(path, "--lr"), np.rint(want * 255).astype(np.uint8))
